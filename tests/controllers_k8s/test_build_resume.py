"""A build still running when wakeproxy restarts on Kubernetes is deployed once it
succeeds, as if no restart had happened: a review app's push and `build --deploy`, on
every replica that read it back (one rollout), unless a newer push came meanwhile; a
failed one leaves the previous release, and a plain build is never deployed.

Each build Job waits for a file named after its commit (holding its exit code), so a test
decides when, and how, a build ends: before or after the restart."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

from tests.controllers_k8s.layout import LEASE_NS, pushing
from tests.controllers_k8s.test_review_apps import deployment, marked, review_config, visit
from tests.controllers_k8s.test_review_restart import (
    HOST,
    SECRET,
    TOKEN,
    deliver,
    deployed_commit,
)
from tests.e2e.harness import Wakeproxy
from tests.e2e_k8s.cluster import start, until
from tests.k8s_emulator import Emulator
from tests.k8s_emulator import resources as r
from wakeproxy.controllers.builds import Build
from wakeproxy.controllers.cluster import KubernetesControllers
from wakeproxy.controllers.webhook import PullRequestEvent
from wakeproxy.model.apps import AppPolicy
from wakeproxy.platforms.kubernetes.api import Api
from wakeproxy.settings import KubernetesBuilds, LocalApp
from wakeproxy.settings import ReviewApps as ReviewSettings

FIRST, SECOND = "a" * 40, "b" * 40
APP = "pr-7-shop"


def gated(gate: Path) -> str:
    """A build script that ends when `gate/<commit>` appears, with the code it holds."""
    return (f'while [ ! -e {gate}/$WAKEPROXY_COMMIT ]; do sleep 0.05; done; '
            f'echo "building $WAKEPROXY_COMMIT"; exit "$(cat {gate}/$WAKEPROXY_COMMIT)"')


def finish(gate: Path, commit: str, code: int = 0) -> None:
    (gate / commit).write_text(str(code))


def replica(api: Api, gate: Path) -> KubernetesControllers:
    """One wakeproxy's controllers: app `shop` with review apps, builds held by `gate`."""
    shop = LocalApp(policy=AppPolicy(name="shop", hosts=("shop.localhost",)), command="",
                    repo="https://git.example/shop.git", github_repo="acme/shop")
    return KubernetesControllers(
        apps=[shop], review=ReviewSettings(domain="review.localhost", webhook_secret=SECRET),
        settings=KubernetesBuilds(builder_command=pushing(gated(gate))),
        api=lambda: api, lease_namespace=LEASE_NS, lease_name="wakeproxy")


def push(c: KubernetesControllers, action: str, commit: str) -> None:
    assert c.reviews is not None
    assert c.reviews.submit(PullRequestEvent(action, 7, commit, "acme/shop",
                                             f"{action}-{commit[:4]}")) == [APP]


async def opened(c: KubernetesControllers) -> None:
    push(c, "opened", FIRST)


def job_running(emulator: Emulator, app: str, commit: str) -> bool:
    return any(j["metadata"]["labels"].get("wakeproxy.io/app-name") == app
               and j["metadata"]["annotations"].get("wakeproxy.io/commit") == commit
               and not (j.get("status") or {}).get("conditions")
               for j in emulator.store.items(r.JOBS))


def generation(emulator: Emulator, app: str) -> int:
    dep = deployment(emulator, app)
    assert dep is not None
    return int(dep["metadata"]["generation"])  # type: ignore[index]


def build_of(c: KubernetesControllers, app: str, commit: str) -> Build:
    [build] = [b for b in c.builder.list(app) if b.commit == commit]
    return build


async def restart_while_building(
    api: Api, emulator: Emulator, gate: Path,
    start_builds: Callable[[KubernetesControllers], Awaitable[None]], *running: tuple[str, str],
) -> None:
    """A wakeproxy that starts builds (`start_builds(controllers)`) and stops (a rollout)
    while their Jobs run: the Jobs are left running."""
    before = replica(api, gate)
    await before.start()
    await start_builds(before)
    for app, commit in running:
        await until(lambda a=app, s=commit: job_running(emulator, a, s), 15)
    await before.close()
    for app, commit in running:
        assert job_running(emulator, app, commit)


@contextlib.asynccontextmanager
async def restarted(api: Api, gate: Path, count: int = 1,
                    ) -> AsyncIterator[list[KubernetesControllers]]:
    """`count` replicas started after the restart (each reads the builds back)."""
    replicas = [replica(api, gate) for _ in range(count)]
    try:
        for c in replicas:
            await c.start()
        yield replicas
    finally:
        for c in replicas:
            await c.close()


async def test_a_push_built_across_a_restart_is_served_once_it_succeeds(
    k8s_emulator: Emulator, tmp_path: Path,
) -> None:
    gate = tmp_path / "gate"
    gate.mkdir()
    (tmp_path / "secret").write_bytes(SECRET)
    config: dict[str, Any] = review_config(k8s_emulator, TOKEN, gated(gate))
    wp = Wakeproxy(tmp_path, config)
    await start(wp)
    try:
        async with aiohttp.ClientSession() as s:
            await deliver(s, wp, "opened", FIRST)
            await until(lambda: job_running(k8s_emulator, APP, FIRST), 15)
    finally:
        await asyncio.to_thread(wp.terminate)  # SIGTERM, as a rollout does

    wp = Wakeproxy(tmp_path, config)
    await start(wp)
    try:
        async with aiohttp.ClientSession() as s:
            status, text, retry = await until(lambda: visit(s, wp, HOST, unless=404), 15)
            assert status == 503 and retry is not None and "no release deployed yet" in text
            finish(gate, FIRST)
            status, text, _ = await until(lambda: visit(s, wp, HOST, unless=503), 30)
            assert status == 200, text
            assert deployed_commit(k8s_emulator, APP) == FIRST
            async with s.get(wp.admin + "/api/v1/builds",
                             headers={"Authorization": f"Bearer {TOKEN}"}) as resp:
                [build] = await resp.json()
            assert (build["app"], build["commit"], build["state"]) == (APP, FIRST, "succeeded")
            assert build["deployed_at"], build
    finally:
        await asyncio.to_thread(wp.terminate)


async def test_every_replica_that_read_the_build_back_deploys_it_in_one_rollout(
    k8s_emulator: Emulator, api: Api, tmp_path: Path,
) -> None:
    await restart_while_building(api, k8s_emulator, tmp_path, opened, (APP, FIRST))
    assert marked(k8s_emulator, APP) is True
    reserved = generation(k8s_emulator, APP)
    async with restarted(api, tmp_path, 2) as replicas:
        finish(tmp_path, FIRST)
        await until(lambda: marked(k8s_emulator, APP) is False, 20)
        await asyncio.gather(*(c.idle() for c in replicas))
        assert deployed_commit(k8s_emulator, APP) == FIRST
        for c in replicas:  # both deployed it: the same release, applied twice ...
            assert build_of(c, APP, FIRST).deployed_at is not None
        assert generation(k8s_emulator, APP) == reserved + 1  # ... rolled out once


async def test_a_newer_push_to_another_replica_wins_over_the_build_read_back(
    k8s_emulator: Emulator, api: Api, tmp_path: Path,
) -> None:
    await restart_while_building(api, k8s_emulator, tmp_path, opened, (APP, FIRST))
    async with restarted(api, tmp_path, 2) as replicas:
        push(replicas[1], "synchronize", SECOND)  # the other replica never sees it
        await until(lambda: job_running(k8s_emulator, APP, SECOND), 15)
        finish(tmp_path, SECOND)
        await until(lambda: marked(k8s_emulator, APP) is False, 20)
        assert deployed_commit(k8s_emulator, APP) == SECOND
        deployed = generation(k8s_emulator, APP)
        finish(tmp_path, FIRST)  # the older push ends last: it must not roll back
        for c in replicas:
            older = await c.builder.wait(build_of(c, APP, FIRST))
            assert older.state.value == "succeeded"
        await asyncio.gather(*(c.idle() for c in replicas))
        assert deployed_commit(k8s_emulator, APP) == SECOND
        assert generation(k8s_emulator, APP) == deployed
        assert all(build_of(c, APP, FIRST).deployed_at is None for c in replicas)


async def test_a_build_read_back_that_fails_leaves_the_previous_release(
    k8s_emulator: Emulator, api: Api, tmp_path: Path,
) -> None:
    finish(tmp_path, FIRST)

    async def opened_then_pushed(c: KubernetesControllers) -> None:
        push(c, "opened", FIRST)
        await until(lambda: marked(k8s_emulator, APP) is False, 20)
        push(c, "synchronize", SECOND)

    await restart_while_building(api, k8s_emulator, tmp_path, opened_then_pushed,
                                 (APP, SECOND))
    assert deployed_commit(k8s_emulator, APP) == FIRST
    deployed = generation(k8s_emulator, APP)
    async with restarted(api, tmp_path) as [after]:
        finish(tmp_path, SECOND, code=3)
        failed = await after.builder.wait(build_of(after, APP, SECOND))
        await after.idle()
        assert (failed.state.value, failed.exit_code) == ("failed", 3)
        assert failed.deployed_at is None
        assert deployed_commit(k8s_emulator, APP) == FIRST
        assert generation(k8s_emulator, APP) == deployed


async def test_only_a_build_asked_to_deploy_is_deployed_after_a_restart(
    k8s_emulator: Emulator, api: Api, tmp_path: Path,
) -> None:
    ids: dict[str, str] = {}

    async def builds(c: KubernetesControllers) -> None:
        # `wakeproxy build shop --deploy`, then a plain `wakeproxy build shop` (newer).
        ids["deploy"] = c.build("shop", FIRST, deploy=True).id
        ids["plain"] = c.build("shop", SECOND).id

    await restart_while_building(api, k8s_emulator, tmp_path, builds,
                                 ("shop", FIRST), ("shop", SECOND))
    async with restarted(api, tmp_path) as [after]:
        finish(tmp_path, FIRST)
        await until(lambda: marked(k8s_emulator, "shop") is False, 20)
        assert deployed_commit(k8s_emulator, "shop") == FIRST
        finish(tmp_path, SECOND)
        plain = await after.builder.wait(after.get_build(ids["plain"]))
        await after.idle()
        assert plain.state.value == "succeeded" and plain.deployed_at is None
        assert after.get_build(ids["deploy"]).deployed_at is not None
        assert deployed_commit(k8s_emulator, "shop") == FIRST  # the plain build is not deployed
