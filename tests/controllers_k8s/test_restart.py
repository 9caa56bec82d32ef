"""A real `wakeproxy serve` on the emulator: an app with a repo answers 503 "no release
deployed yet" until its first deploy, a build of a branch records and builds its commit,
and the builds list (with the log) is still there after wakeproxy restarts."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp

from tests.controllers.gitrepo import Repo
from tests.controllers_k8s.layout import APPS_NS, LEASE_NS, app_pods, pushing
from tests.controllers_k8s.test_review_apps import marked, visit
from tests.e2e.harness import ECHO_APP, Wakeproxy
from tests.e2e_k8s.cluster import start, until
from tests.k8s_emulator import Emulator

TOKEN = "admin-token-for-tests-0123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def config(emulator: Emulator, repo: Repo) -> dict[str, Any]:
    return {
        "platform": "kubernetes", "admin_token": TOKEN,
        "defaults": {"wake_timeout": "20s"},
        "apps": [{"name": "shop", "hosts": ["shop.localhost"], "repo": f"file://{repo.url}"}],
        "kubernetes": {
            "kubeconfig": str(emulator.wakeproxy_kubeconfig), "namespaces": [APPS_NS],
            "lease_namespace": LEASE_NS, "request_timeout": "2s",
            "builds": {"builder_command": list(pushing(
                "echo building $WAKEPROXY_REF at $WAKEPROXY_COMMIT")),
                       "app_command": [sys.executable, str(ECHO_APP)]},
        },
    }


async def build_state(s: aiohttp.ClientSession, wp: Wakeproxy, build_id: str) -> dict[str, Any]:
    async with s.get(wp.admin + f"/api/v1/builds/{build_id}", headers=AUTH) as resp:
        assert resp.status == 200
        doc: dict[str, Any] = await resp.json()
        return doc


async def test_an_app_is_routed_before_its_first_deploy_and_builds_survive_a_restart(
    k8s_emulator: Emulator, tmp_path: Path,
) -> None:
    repo = Repo(tmp_path / "git")
    sha = repo.commit("one")
    wp = Wakeproxy(tmp_path, config(k8s_emulator, repo))
    await start(wp)
    try:
        async with aiohttp.ClientSession() as s:
            status, text, retry = await until(
                lambda: visit(s, wp, "shop.localhost", unless=404), 15)
            assert status == 503 and retry is not None and "no release deployed yet" in text
            assert not app_pods(k8s_emulator, "shop")  # a visit never builds or wakes

            async with s.post(wp.admin + "/api/v1/apps/shop/builds", headers=AUTH,
                              json={"ref": "main", "deploy": True}) as resp:
                assert resp.status == 202
                build_id = (await resp.json())["id"]
            built = await until(lambda: _finished(s, wp, build_id), 20)
            assert built["state"] == "succeeded", built
            assert (built["ref"], built["commit"]) == ("main", sha)
            await until(lambda: marked(k8s_emulator, "shop") is False, 10)
            status, text, _ = await until(lambda: visit(s, wp, "shop.localhost", unless=503), 30)
            assert status == 200, text
    finally:
        await asyncio.to_thread(wp.terminate)

    wp = Wakeproxy(tmp_path, config(k8s_emulator, repo))
    await start(wp)
    try:
        async with aiohttp.ClientSession() as s:
            async with s.get(wp.admin + "/api/v1/builds", headers=AUTH) as resp:
                [again] = await resp.json()
            for key in ("id", "app", "ref", "commit", "state"):
                assert again[key] == built[key], key
            assert abs(again["created_at"] - built["created_at"]) < 1e-3
            assert abs(again["finished_at"] - built["finished_at"]) <= 1.5
            async with s.get(wp.admin + f"/api/v1/builds/{build_id}/log", headers=AUTH) as resp:
                assert resp.status == 200
                assert f"building main at {sha}" in await resp.text()
            listed = await asyncio.to_thread(
                subprocess.run, [sys.executable, "-m", "wakeproxy", "builds", "--admin",
                                 wp.admin, "--token", TOKEN],
                capture_output=True, text=True, timeout=30)
            assert build_id in listed.stdout and "succeeded" in listed.stdout, listed.stderr
            # Still the deployed app, still routed: the restart changed nothing for it.
            status, text, _ = await visit(s, wp, "shop.localhost") or (0, "", None)
            assert status == 200, text
    finally:
        await asyncio.to_thread(wp.terminate)


async def _finished(s: aiohttp.ClientSession, wp: Wakeproxy,
                    build_id: str) -> dict[str, Any] | None:
    doc = await build_state(s, wp, build_id)
    return doc if doc["state"] in ("succeeded", "failed", "cancelled") else None
