"""Review apps survive a wakeproxy restart on Kubernetes: a real `wakeproxy serve` on the
emulator opens a pull request's review app, is restarted (a new process), and then
`wakeproxy build pr-<n>-<app>` and `wakeproxy deploy` know it, `closed` deletes its
Deployment, Service and Jobs, and `synchronize` builds and deploys the new commit; a
Deployment that only looks like a review app is not taken for one."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.controllers_k8s.layout import APPS_NS, LEASE_NS
from tests.controllers_k8s.test_review_apps import deployment, marked, review_config, visit
from tests.e2e.harness import Wakeproxy
from tests.e2e_k8s.cluster import start, until
from tests.k8s_emulator import Emulator
from tests.k8s_emulator import resources as r
from wakeproxy.controllers.cluster import KubernetesControllers
from wakeproxy.controllers.errors import UnknownApp
from wakeproxy.model.apps import AppPolicy
from wakeproxy.platforms.kubernetes.api import Api
from wakeproxy.settings import KubernetesBuilds, LocalApp
from wakeproxy.settings import ReviewApps as ReviewSettings

SECRET = b"review-restart-secret-for-tests"
TOKEN = "admin-token-for-tests-0123"
FIRST, SECOND = "a" * 40, "b" * 40
HOST = "pr-7-shop.review.localhost"


def config(emulator: Emulator) -> dict[str, Any]:
    return review_config(emulator, TOKEN, "echo building $WAKEPROXY_REF")


async def deliver(s: aiohttp.ClientSession, wp: Wakeproxy, action: str, sha: str) -> None:
    body = json.dumps({"action": action, "number": 7,
                       "pull_request": {"number": 7, "head": {
                           "sha": sha, "repo": {"full_name": "acme/shop"}}},
                       "repository": {"full_name": "acme/shop"}}).encode()
    headers = {"X-GitHub-Event": "pull_request", "X-GitHub-Delivery": str(uuid.uuid4()),
               "X-Hub-Signature-256":
                   "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest(),
               "Content-Type": "application/json"}
    async with s.post(wp.admin + "/hooks/github", data=body, headers=headers) as resp:
        assert resp.status == 202, await resp.text()
        assert (await resp.json())["review_apps"] == ["pr-7-shop"]


async def cli(*args: str, admin: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "wakeproxy", *args, "--admin", admin,
                         "--token", TOKEN], capture_output=True, text=True, timeout=60)


def image(emulator: Emulator, name: str) -> str:
    dep = deployment(emulator, name)
    assert dep is not None
    [c] = dep["spec"]["template"]["spec"]["containers"]  # type: ignore[index]
    return str(c["image"])


def deployed_commit(emulator: Emulator, name: str) -> str | None:
    """The commit the app's Deployment runs a build of (its image is pinned by digest)."""
    dep = deployment(emulator, name)
    assert dep is not None
    assert image(emulator, name).startswith("localhost:30500/"), image(emulator, name)
    return dep["metadata"]["annotations"].get("wakeproxy.io/commit")  # type: ignore[index,no-any-return]


def objects(emulator: Emulator, kind: Any, name: str) -> list[str]:
    return [o["metadata"]["name"] for o in emulator.store.items(kind)
            if o["metadata"].get("labels", {}).get("wakeproxy.io/app-name") == name]


async def open_and_deploy(emulator: Emulator, tmp_path: Path) -> None:
    """A `wakeproxy serve` that opens PR 7 at FIRST, deploys it and is then stopped."""
    (tmp_path / "secret").write_bytes(SECRET)
    wp = Wakeproxy(tmp_path, config(emulator))
    await start(wp)
    try:
        async with aiohttp.ClientSession() as s:
            await deliver(s, wp, "opened", FIRST)
            await until(lambda: marked(emulator, "pr-7-shop") is False, 20)
            assert deployed_commit(emulator, "pr-7-shop") == FIRST
            status, text, _ = await until(lambda: visit(s, wp, HOST, unless=503), 30)
            assert status == 200, text
    finally:
        await asyncio.to_thread(wp.terminate)


@contextlib.asynccontextmanager
async def restarted(emulator: Emulator, tmp_path: Path) -> AsyncIterator[Wakeproxy]:
    """PR 7 opened and deployed by one `wakeproxy serve`, then a new one started."""
    await open_and_deploy(emulator, tmp_path)
    wp = Wakeproxy(tmp_path, config(emulator))
    await start(wp)
    try:
        yield wp
    finally:
        await asyncio.to_thread(wp.terminate)


async def test_after_a_restart_closed_deletes_the_review_app_and_build_knows_it(
    k8s_emulator: Emulator, tmp_path: Path,
) -> None:
    async with restarted(k8s_emulator, tmp_path) as wp:
        built = await cli("build", "pr-7-shop", "--ref", SECOND, admin=wp.admin)
        assert built.returncode == 0, built.stdout + built.stderr
        assert "succeeded" in built.stdout, built.stdout
        build_id = built.stdout.split()[1]  # "build <id> of pr-7-shop at <ref>: queued"
        assert f"deploy it with: wakeproxy deploy pr-7-shop {build_id}" in built.stdout
        deployed = await cli("deploy", "pr-7-shop", build_id, admin=wp.admin)
        assert deployed.returncode == 0, deployed.stdout + deployed.stderr
        assert deployed_commit(k8s_emulator, "pr-7-shop") == SECOND
        async with aiohttp.ClientSession() as s:
            status, text, _ = await visit(s, wp, HOST) or (0, "", None)
            assert status == 200, text  # still served across the restart
            await deliver(s, wp, "closed", FIRST)
            await until(lambda: deployment(k8s_emulator, "pr-7-shop") is None, 15)
            await until(lambda: not objects(k8s_emulator, r.SERVICES, "pr-7-shop"), 5)
            await until(lambda: not objects(k8s_emulator, r.JOBS, "pr-7-shop"), 5)
            assert deployment(k8s_emulator, "shop") is not None  # the base app stays
            status, _, _ = await until(lambda: visit(s, wp, HOST, unless=200), 15)
            assert status == 404


async def test_after_a_restart_synchronize_builds_and_deploys_the_new_commit(
    k8s_emulator: Emulator, tmp_path: Path,
) -> None:
    async with restarted(k8s_emulator, tmp_path) as wp, aiohttp.ClientSession() as s:
        await deliver(s, wp, "synchronize", SECOND)
        await until(lambda: deployed_commit(k8s_emulator, "pr-7-shop") == SECOND, 20)
        dep = deployment(k8s_emulator, "pr-7-shop")
        assert dep is not None
        assert dep["metadata"]["annotations"]["wakeproxy.io/commit"] == SECOND  # type: ignore[index]
        async with s.get(wp.admin + "/api/v1/builds",
                         headers={"Authorization": f"Bearer {TOKEN}"}) as resp:
            builds = await resp.json()
        newest = builds[0]
        assert (newest["app"], newest["commit"]) == ("pr-7-shop", SECOND)
        assert newest["state"] == "succeeded" and newest["deployed_at"], newest
        status, text, _ = await visit(s, wp, HOST) or (0, "", None)
        assert status == 200, text


async def test_only_deployments_made_for_a_review_app_are_reopened(
    k8s_emulator: Emulator, api: Api,
) -> None:
    def made(name: str, labels: dict[str, str]) -> None:
        k8s_emulator.store.create(r.DEPLOYMENTS, {
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "labels": labels,
                         "annotations": {"wakeproxy.io/hosts": f"{name}.review.localhost",
                                         "wakeproxy.io/commit": FIRST}},
            "spec": {"replicas": 0, "selector": {"matchLabels": {"x": name}},
                     "template": {"metadata": {"labels": {"x": name}},
                                  "spec": {"containers": [{"name": "app", "image": "i"}]}}}},
            APPS_NS)

    ours = {"app.kubernetes.io/managed-by": "wakeproxy"}
    made("pr-3-shop", {**ours, "wakeproxy.io/app-name": "pr-3-shop",
                       "wakeproxy.io/review-app": "pr-3-shop",
                       "wakeproxy.io/pull-request": "3"})
    # A user's Deployment with the label but not made by wakeproxy, one whose pull
    # request does not match its name, and one of an app without review apps.
    made("pr-4-shop", {"wakeproxy.io/app-name": "pr-4-shop",
                       "wakeproxy.io/review-app": "pr-4-shop", "wakeproxy.io/pull-request": "4"})
    made("pr-5-shop", {**ours, "wakeproxy.io/app-name": "pr-5-shop",
                       "wakeproxy.io/review-app": "pr-5-shop", "wakeproxy.io/pull-request": "6"})
    made("pr-8-blog", {**ours, "wakeproxy.io/app-name": "pr-8-blog",
                       "wakeproxy.io/review-app": "pr-8-blog", "wakeproxy.io/pull-request": "8"})
    shop = LocalApp(policy=AppPolicy(name="shop", hosts=("shop.localhost",)), command="",
                    repo="https://git.example/shop.git", github_repo="acme/shop")
    controllers = KubernetesControllers(
        apps=[shop], review=ReviewSettings(domain="review.localhost", webhook_secret=SECRET),
        settings=KubernetesBuilds(), api=lambda: api,
        lease_namespace=LEASE_NS, lease_name="wakeproxy")
    await controllers.start()
    try:
        assert controllers.reviews is not None
        [record] = controllers.reviews.records()
        assert (record.name, record.number, record.base, record.head_sha, record.host) == (
            "pr-3-shop", 3, "shop", FIRST, "pr-3-shop.review.localhost")
        assert controllers.source("pr-3-shop").repo == "https://git.example/shop.git"
        for name in ("pr-4-shop", "pr-5-shop", "pr-8-blog"):
            with pytest.raises(UnknownApp):
                controllers.source(name)
        # Read back, not reserved again: only the configured app's Deployment is created.
        creates = k8s_emulator.recorder.matching(verb="create", resource="deployments")
        assert len(creates) == 1, creates
    finally:
        await controllers.close()
