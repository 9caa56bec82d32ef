"""`wakeproxy promote` on Kubernetes, through the CLI against a real `wakeproxy serve` on
the emulator: the next stage's Deployment gets exactly the image digest (and build and commit)
the stage's Deployment runs, by the same apply as a deploy, and no build Job is made."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

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
