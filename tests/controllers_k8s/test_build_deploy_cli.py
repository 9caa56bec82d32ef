"""`wakeproxy build --deploy` and `wakeproxy builds` on Kubernetes, through the CLI against
a real `wakeproxy serve` on the emulator: the command returns once the Deployment runs the
build (saying so, with its commit), and the list marks as LIVE the build the Deployment
runs now — read from the cluster, the record on this platform."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.controllers_k8s.test_review_apps import deployment, review_config
from tests.controllers_k8s.test_review_restart import TOKEN, cli
from tests.e2e.harness import Wakeproxy
from tests.e2e.test_build_deploy import rows
from tests.e2e_k8s.cluster import start
from tests.k8s_emulator import Emulator

FIRST, SECOND = "a" * 40, "b" * 40


def live_build(emulator: Emulator, app: str) -> str | None:
    dep = deployment(emulator, app)
    return None if dep is None else dep["metadata"]["annotations"].get(  # type: ignore[index]
        "wakeproxy.io/build")


async def test_build_deploy_returns_once_deployed_and_builds_shows_the_live_build(
    k8s_emulator: Emulator, tmp_path: Path,
) -> None:
    (tmp_path / "secret").write_bytes(b"unused")
    wp = Wakeproxy(tmp_path, review_config(k8s_emulator, TOKEN, "echo building $WAKEPROXY_REF"))
    await start(wp)
    try:
        ids = []
        for commit in (FIRST, SECOND):
            done = await cli("build", "shop", "--ref", commit, "--deploy", admin=wp.admin)
            assert done.returncode == 0, done.stdout + done.stderr
            build_id = done.stdout.split()[1]
            ids.append(build_id)
            assert f"deployed build {build_id} of shop (commit {commit[:7]})" in done.stdout
            assert live_build(k8s_emulator, "shop") == build_id  # before the command ended
        listed = rows((await cli("builds", admin=wp.admin)).stdout)
        assert [listed[b]["LIVE"] for b in ids] == ["-", "shop"]
        assert [listed[b]["RELEASE"] for b in ids] == ["kept", "kept"]
    finally:
        await asyncio.to_thread(wp.terminate)
