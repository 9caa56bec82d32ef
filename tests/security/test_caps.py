"""Outsiders cannot exhaust memory or the machine through a running `wakeproxy serve`:
review apps per repository, builds waiting and build log bytes are capped, each refusal
a clear 429 naming its cap and counted in wakeproxy_cap_refusals_total."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp

from tests.controllers.gitrepo import Repo, app_command
from tests.e2e.harness import Wakeproxy

TOKEN = "security-admin-token-0123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SECRET = b"webhook-secret-for-tests"


def config(tmp: Path, repo: Repo, **extra: Any) -> dict[str, Any]:
    (tmp / "secret").write_bytes(SECRET)
    return {"admin_token": TOKEN, "builds_dir": str(tmp / "builds"),
            "review_apps": {"domain": "review.localhost", "webhook_secret_file": "secret",
                            "max_per_repo": 2},
            "apps": [{"name": "shop", "hosts": ["shop.localhost"], "repo": repo.url,
                      "github_repo": "acme/shop", "build": "sh build.sh",
                      "command": app_command()}],
            **extra}


async def hook(s: aiohttp.ClientSession, wp: Wakeproxy, action: str, number: int, sha: str,
               delivery: str | None = None) -> tuple[int, dict[str, Any]]:
    body = json.dumps({"action": action, "number": number,
                       "repository": {"full_name": "acme/shop"},
                       "pull_request": {"number": number, "head": {
                           "sha": sha, "repo": {"full_name": "acme/shop"}}}}).encode()
    headers = {"X-GitHub-Event": "pull_request", "Content-Type": "application/json",
               "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
               "X-Hub-Signature-256": "sha256=" + hmac.new(SECRET, body,
                                                           hashlib.sha256).hexdigest()}
    async with s.post(wp.admin + "/hooks/github", data=body, headers=headers) as r:
        return r.status, await r.json()


async def metric(s: aiohttp.ClientSession, wp: Wakeproxy, sample: str) -> float:
    async with s.get(wp.admin + "/metrics") as r:
        for line in (await r.text()).splitlines():
            if line.startswith(sample + " "):
                return float(line.split()[-1])
    raise AssertionError(f"no {sample}")


async def test_review_apps_per_repository_are_capped(tmp_path: Path, start_wakeproxy: Any) -> None:
    repo = Repo(tmp_path / "git")
    sha = repo.commit("hello", branch="feature")
    wp = start_wakeproxy(config(tmp_path, repo))
    refusals = 'wakeproxy_cap_refusals_total{cap="review_apps.max_per_repo"}'
    async with aiohttp.ClientSession() as s:
        assert await metric(s, wp, refusals) == 0
        for n in (1, 2):
            assert (await hook(s, wp, "opened", n, sha))[0] == 202
        status, body = await hook(s, wp, "opened", 3, sha, delivery="d-third")
        assert status == 429
        assert "review_apps.max_per_repo (2)" in body["error"]
        assert await metric(s, wp, refusals) == 1
        # A push to an open one is not a new review app: it builds.
        status, body = await hook(s, wp, "synchronize", 2, sha)
        assert status == 202 and body["review_apps"] == ["pr-2-shop"]
        # Once one closes, GitHub's "Redeliver" of the refused delivery goes through.
        assert (await hook(s, wp, "closed", 1, sha))[0] == 202
        deadline = time.monotonic() + 10
        while True:
            status, body = await hook(s, wp, "opened", 3, sha, delivery="d-third")
            if status == 202 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        assert status == 202 and body["review_apps"] == ["pr-3-shop"], body


async def test_builds_waiting_are_capped(tmp_path: Path, start_wakeproxy: Any) -> None:
    repo = Repo(tmp_path / "git")
    repo.commit("slow", build="sleep 20\n")
    wp = start_wakeproxy(config(tmp_path, repo,
                                build_limits={"concurrency": 1, "max_queued": 2}))
    async with aiohttp.ClientSession() as s:
        states = []
        for _ in range(3):  # one runs, two wait
            async with s.post(wp.admin + "/api/v1/apps/shop/builds", json={"ref": "main"},
                              headers=AUTH) as r:
                assert r.status == 202
                states.append((await r.json())["id"])
        async with s.post(wp.admin + "/api/v1/apps/shop/builds", json={"ref": "main"},
                          headers=AUTH) as r:
            assert r.status == 429
            assert "build_limits.max_queued" in (await r.json())["error"]
        async with s.get(wp.admin + "/api/v1/builds", headers=AUTH) as r:
            listed = {b["state"] for b in await r.json()}
        assert listed == {"running", "queued"}
        sample = 'wakeproxy_cap_refusals_total{cap="build_limits.max_queued"}'
        assert await metric(s, wp, sample) == 1


async def test_build_logs_kept_in_memory_are_capped_per_build_and_in_total(
    tmp_path: Path, start_wakeproxy: Any,
) -> None:
    repo = Repo(tmp_path / "git")
    # 64 KiB of numbered lines: far over the per-build cap.
    repo.commit("chatty", build="seq -w 1 10000 | sed 's/$/ of a long build log/'\n")
    wp = start_wakeproxy(config(tmp_path, repo, build_limits={
        "log_bytes": 8192, "log_bytes_total": 20000}))
    async with aiohttp.ClientSession() as s:
        ids = []
        for _ in range(4):
            async with s.post(wp.admin + "/api/v1/apps/shop/builds", json={"ref": "main"},
                              headers=AUTH) as r:
                ids.append((await r.json())["id"])
            deadline = time.monotonic() + 20
            while True:
                async with s.get(wp.admin + f"/api/v1/builds/{ids[-1]}", headers=AUTH) as r:
                    if (await r.json())["state"] == "succeeded":
                        break
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
        for build_id in ids:  # the oldest left memory, and are read back from disk
            async with s.get(wp.admin + f"/api/v1/builds/{build_id}/log", headers=AUTH) as r:
                text = await r.text()
            assert text.startswith("==> ") and "bytes of older output were dropped" in text
            assert "build_limits.log_bytes" in text.splitlines()[0]
            assert "10000 of a long build log" in text and "00001 of a long" not in text
            assert len(text) < 8192 + 200
        per_build = await metric(
            s, wp, 'wakeproxy_build_log_bytes_dropped_total{cap="build_limits.log_bytes"}')
        total = await metric(
            s, wp, 'wakeproxy_build_log_bytes_dropped_total{cap="build_limits.log_bytes_total"}')
        assert per_build > 4 * 50_000 and total >= 8192
