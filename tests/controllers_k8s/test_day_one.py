"""Day one on the shipped manifests: `wakeproxy deploy APP --image IMAGE` and `wakeproxy
build APP --deploy`, through the CLI against a real `wakeproxy serve` acting as its
ServiceAccount on the emulator — with the RBAC of k8s/, the Pod Security level of each
namespace and image pulls resolved as a node does — end with the app answering 200."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp

from tests.controllers_k8s.layout import BUILDS_NS, app_pods
from tests.controllers_k8s.test_review_apps import review_config, visit
from tests.controllers_k8s.test_review_restart import TOKEN, cli, image
from tests.e2e.harness import Wakeproxy
from tests.e2e_k8s.cluster import start, until
from tests.k8s_emulator import Emulator

DIGEST = "sha256:" + "5e" * 32
COMMIT = "d" * 40


async def test_deploy_an_image_and_build_deploy_then_the_app_answers(
    k8s_emulator: Emulator, tmp_path: Path,
) -> None:
    (tmp_path / "secret").write_bytes(b"unused")
    wp = Wakeproxy(tmp_path, review_config(k8s_emulator, TOKEN, "echo building $WAKEPROXY_REF"))
    await start(wp)
    try:
        async with aiohttp.ClientSession() as s:
            # An image named by the registry setting (the builds' push address).
            done = await cli("deploy", "shop", "--image",
                             f"wakeproxy-registry.wakeproxy.svc:5000/shop@{DIGEST}",
                             admin=wp.admin)
            assert done.returncode == 0, done.stdout + done.stderr
            assert image(k8s_emulator, "shop") == f"localhost:30500/shop@{DIGEST}"
            await until(lambda: visit(s, wp, "shop.localhost", unless=503), 20)
            status, text, _ = await visit(s, wp, "shop.localhost") or (0, "", None)
            assert status == 200, text

            built = await cli("build", "shop", "--ref", COMMIT, "--deploy", admin=wp.admin)
            assert built.returncode == 0, built.stdout + built.stderr
            assert image(k8s_emulator, "shop").startswith("localhost:30500/shop@sha256:")
            status, text, _ = await visit(s, wp, "shop.localhost") or (0, "", None)
            assert status == 200, text
        assert app_pods(k8s_emulator, "shop")  # admitted in the restricted namespace
        assert k8s_emulator.pods(BUILDS_NS)  # the build ran in its own namespace
        refused = [f"{r.method} {r.path} {r.status}" for r in k8s_emulator.recorder.requests
                   if r.status == 403]
        assert refused == []
    finally:
        await asyncio.to_thread(wp.terminate)
