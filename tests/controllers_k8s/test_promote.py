"""`wakeproxy promote` on Kubernetes, through the CLI against a real `wakeproxy serve` on
the emulator: the next stage's Deployment gets exactly the image digest (and build and commit)
the stage's Deployment runs, by the same apply as a deploy, and no build Job is made."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp

from tests.controllers_k8s.layout import APPS_NS
from tests.controllers_k8s.test_review_apps import deployment, review_config
from tests.controllers_k8s.test_review_restart import TOKEN, cli, image
from tests.e2e.harness import Wakeproxy
from tests.e2e_k8s.cluster import start
from tests.k8s_emulator import Emulator
from tests.k8s_emulator import resources as r

COMMIT = "c" * 40


def notes(emulator: Emulator, app: str) -> dict[str, str]:
    dep = deployment(emulator, app)
    assert dep is not None
    return dict(dep["metadata"]["annotations"])  # type: ignore[index]


async def test_promote_applies_the_stages_exact_image_to_the_next_stage(
    k8s_emulator: Emulator, tmp_path: Path,
) -> None:
    (tmp_path / "secret").write_bytes(b"unused")
    config: dict[str, Any] = review_config(k8s_emulator, TOKEN, "echo building $WAKEPROXY_REF")
    [shop] = config["apps"]
    config["apps"] = [{**shop, "promote_to": "shop-production"},
                      {**shop, "name": "shop-production", "hosts": ["shop.example.localhost"],
                       "github_repo": None}]
    wp = Wakeproxy(tmp_path, config)
    await start(wp)
    try:
        nothing = await cli("promote", "shop", admin=wp.admin)
        assert nothing.returncode == 1
        assert "shop has no release deployed to promote" in nothing.stderr
        built = await cli("build", "shop", "--ref", COMMIT, "--deploy", admin=wp.admin)
        assert built.returncode == 0, built.stdout + built.stderr
        build_id = built.stdout.split()[1]
        jobs = len(k8s_emulator.store.items(r.JOBS))

        done = await cli("promote", "shop", admin=wp.admin)
        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stdout.startswith(
            f"promoted build {build_id} (commit {COMMIT[:7]}) from shop to shop-production: ")
        assert f"image {image(k8s_emulator, 'shop')}" in done.stdout
        assert image(k8s_emulator, "shop-production") == image(k8s_emulator, "shop")
        assert "@sha256:" in image(k8s_emulator, "shop-production")  # the very digest
        prod = notes(k8s_emulator, "shop-production")
        assert prod["wakeproxy.io/build"] == build_id
        assert prod["wakeproxy.io/commit"] == COMMIT
        assert "wakeproxy.io/not-deployed" not in prod
        assert len(k8s_emulator.store.items(r.JOBS)) == jobs  # never a rebuild
    finally:
        await asyncio.to_thread(wp.terminate)


async def test_a_deployment_someone_else_deploys_is_refused_promotion_clearly(
    k8s_emulator: Emulator, tmp_path: Path,
) -> None:
    """`wakeproxy.io/promote-to` on a Deployment wakeproxy does not deploy: the app is
    routed as ever, the annotation is ignored with a warning naming it, and `wakeproxy
    promote` answers 409 saying why, instead of 404 "no app" for an app status lists."""
    (tmp_path / "secret").write_bytes(b"unused")
    config: dict[str, Any] = review_config(k8s_emulator, TOKEN, "echo building $WAKEPROXY_REF")
    [shop] = config["apps"]
    config["apps"] = [{**shop, "name": "shop-production", "hosts": ["shop.example.localhost"],
                       "github_repo": None}]
    k8s_emulator.store.create(r.DEPLOYMENTS, {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "theirs", "labels": {"wakeproxy.io/enabled": "true"},
                     "annotations": {"wakeproxy.io/hosts": "theirs.localhost",
                                     "wakeproxy.io/port": "http",
                                     "wakeproxy.io/promote-to": "shop-production"}},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "theirs"}},
                 "template": {"metadata": {"labels": {"app": "theirs"}}, "spec": {
                     "containers": [{"name": "app", "image": "registry.example/theirs:1",
                                     "ports": [{"name": "http", "containerPort": 8080}]}]}}},
    }, APPS_NS)
    theirs = f"{APPS_NS}.theirs"
    wp = Wakeproxy(tmp_path, config)
    await start(wp)
    try:
        status = await cli("status", admin=wp.admin)
        assert theirs in status.stdout, status.stdout + status.stderr  # routed as ever
        warned = wp.wait_log(lambda e: e.get("event") == "deployment annotation ignored")
        assert warned["app"] == theirs
        assert warned["reason"].startswith(
            f"wakeproxy.io/promote-to ignored: {APPS_NS}/theirs is not deployed by wakeproxy")
        assert wp.api(f"/api/v1/apps/{theirs}")["promote_to"] is None

        refused = await cli("promote", theirs, admin=wp.admin)
        assert refused.returncode == 1
        assert (f"{theirs} is a Deployment wakeproxy does not deploy (an app declared by its "
                "annotations): wakeproxy promotes only apps it deploys") in refused.stderr
        async with aiohttp.ClientSession() as session, session.post(
                f"{wp.admin}/api/v1/apps/{theirs}/promote", json={},
                headers={"Authorization": f"Bearer {TOKEN}"}) as resp:
            assert resp.status == 409
        unknown = await cli("promote", "nothing-here", admin=wp.admin)
        assert "no app named 'nothing-here'" in unknown.stderr
    finally:
        await asyncio.to_thread(wp.terminate)
