"""Review apps end to end: a real `wakeproxy serve`, a real bare git repository, signed
GitHub webhooks, and the review app's host answering what each commit says."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp

from tests.controllers.gitrepo import BAD_BUILD, Repo, app_command
from tests.e2e.harness import Wakeproxy, pids_alive
from tests.e2e.traffic import steady_requests

SECRET = b"review-secret-for-tests"
TOKEN = "admin-token-for-tests-0123"
HOST = "pr-1-shop.review.localhost"


def config(tmp: Path, repo: Repo, pids: Path) -> dict[str, Any]:
    (tmp / "secret").write_bytes(SECRET + b"\n")
    return {
        "admin_token": TOKEN,
        "builds_dir": str(tmp / "builds"),
        "review_apps": {"domain": "review.localhost", "webhook_secret_file": "secret"},
        "apps": [{
            "name": "shop", "hosts": ["shop.localhost"], "repo": repo.url,
            "github_repo": "acme/shop", "build": "sh build.sh", "command": app_command(),
            "env": {"PID_DIR": str(pids)}, "review_env": {"PID_DIR": str(pids)},
            "stop_grace": "2s",
        }],
    }


def payload(action: str, sha: str, number: int = 1) -> bytes:
    return json.dumps({
        "action": action, "number": number,
        "pull_request": {"number": number, "head": {
            "sha": sha, "repo": {"full_name": "acme/shop"}}},
        "repository": {"full_name": "acme/shop"},
    }).encode()


async def hook(
    s: aiohttp.ClientSession, wp: Wakeproxy, body: bytes, *, delivery: str | None = None,
    secret: bytes = SECRET, event: str = "pull_request",
) -> tuple[int, Any]:
    signature = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
    headers = {"X-GitHub-Event": event, "X-Hub-Signature-256": signature,
               "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
               "Content-Type": "application/json"}
    async with s.post(wp.admin + "/hooks/github", data=body, headers=headers) as r:
        return r.status, await r.json()


async def builds(s: aiohttp.ClientSession, wp: Wakeproxy) -> list[dict[str, Any]]:
    async with s.get(wp.admin + "/api/v1/builds", headers=wp.admin_headers) as r:
        assert r.status == 200
        result: list[dict[str, Any]] = await r.json()
        return result


async def wait_build(
    s: aiohttp.ClientSession, wp: Wakeproxy, commit: str, *, deployed: bool = False,
    within: float = 15.0,
) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        for b in await builds(s, wp):
            finished = b["state"] in ("succeeded", "failed", "cancelled")
            if b["commit"] == commit and finished and (b["deployed_at"] or not deployed):
                async with s.get(wp.admin + f"/api/v1/builds/{b['id']}",
                                 headers=wp.admin_headers) as r:
                    full: dict[str, Any] = await r.json()
                    return full
        await asyncio.sleep(0.05)
    raise AssertionError(f"no finished build of {commit}: {await builds(s, wp)}\n{wp.output()}")


async def get(s: aiohttp.ClientSession, wp: Wakeproxy, host: str = HOST) -> tuple[int, str]:
    async with s.get(wp.url + "/", headers={"Host": host}) as r:
        return r.status, await r.text()


async def test_pull_request_lifecycle_builds_deploys_switches_and_deletes_its_review_app(
    tmp_path: Path, start_wakeproxy: Any,
) -> None:
    repo = Repo(tmp_path / "git")
    pids = tmp_path / "pids"
    pids.mkdir()
    v1 = repo.commit("version one", branch="feature")
    wp = start_wakeproxy(config(tmp_path, repo, pids))

    async with aiohttp.ClientSession() as s:
        # A bad signature is refused and builds nothing.
        status, _ = await hook(s, wp, payload("opened", v1), secret=b"wrong")
        assert status == 401
        assert await builds(s, wp) == []

        # Opened: its commit is built and deployed; the host wakes it on the first request.
        status, body = await hook(s, wp, payload("opened", v1), delivery="d-1")
        assert status == 202 and body["review_apps"] == ["pr-1-shop"]
        status, body = await hook(s, wp, payload("opened", v1), delivery="d-1")
        assert status == 202 and body["ignored"] == "already received"
        built = await wait_build(s, wp, v1, deployed=True)
        assert built["state"] == "succeeded"
        assert len(await builds(s, wp)) == 1  # the redelivery built nothing
        assert wp.app_state("pr-1-shop") == "asleep"  # a deploy does not wake it
        assert await get(s, wp) == (200, "version one")
        assert wp.app_state("pr-1-shop") == "awake"
        first_pids = [int(p.name) for p in pids.iterdir()]

        # Synchronize: the new commit replaces the old with no failed request between.
        async with steady_requests(lambda: get(s, wp)) as traffic:
            v2 = repo.commit("version two", branch="feature")
            status, _ = await hook(s, wp, payload("synchronize", v2))
            assert status == 202
            await wait_build(s, wp, v2, deployed=True)
            await asyncio.sleep(0.3)
        assert traffic.statuses and traffic.failures == []
        assert traffic.bodies[-1] == "version two" and "version one" in traffic.bodies
        assert pids_alive(first_pids) == []  # the old release was stopped

        # A failing build keeps the previous release serving and says why.
        v3 = repo.commit("version three", build=BAD_BUILD, branch="feature")
        await hook(s, wp, payload("synchronize", v3))
        failed = await wait_build(s, wp, v3)
        assert failed["state"] == "failed" and failed["exit_code"] == 3
        assert "build command exited with code 3" in failed["reason"]
        assert any("boom: missing dependency" in line for line in failed["log_tail"])
        assert await get(s, wp) == (200, "version two")

        # Closed: the host is gone, no process is left, nor any release directory.
        await hook(s, wp, payload("closed", v3))
        deadline = time.monotonic() + 10
        while (await get(s, wp))[0] != 404 and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        assert (await get(s, wp))[0] == 404
        deadline = time.monotonic() + 5
        all_pids = [int(p.name) for p in pids.iterdir()]
        while pids_alive(all_pids) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        assert pids_alive(all_pids) == []
        async with s.get(wp.admin + "/api/v1/apps/pr-1-shop") as r:
            assert r.status == 404
        # The host is unrouted first; processes, then release directories, go after it.
        releases = tmp_path / "builds" / "pr-1-shop"
        deadline = time.monotonic() + 5
        while releases.exists() and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        assert not releases.exists()


async def test_unsigned_or_unknown_deliveries_change_nothing(
    tmp_path: Path, start_wakeproxy: Any,
) -> None:
    repo = Repo(tmp_path / "git")
    sha = repo.commit("v1")
    wp = start_wakeproxy(config(tmp_path, repo, tmp_path))
    async with aiohttp.ClientSession() as s:
        body = payload("opened", sha)
        async with s.post(wp.admin + "/hooks/github", data=body,
                          headers={"X-GitHub-Event": "pull_request",
                                   "X-GitHub-Delivery": "x"}) as r:
            assert r.status == 401
            assert "signature" in (await r.json())["error"]
        status, _ = await hook(s, wp, json.dumps({"zen": "hi"}).encode(), event="ping")
        assert status == 202  # a signed ping is acknowledged but does nothing
        status, _ = await hook(s, wp, payload("labeled", sha))
        assert status == 202
        assert await builds(s, wp) == []
        assert (await get(s, wp))[0] == 404


def cli(wp: Wakeproxy, *args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wakeproxy", *args, "--admin", wp.admin, "--token", TOKEN],
        capture_output=True, text=True, timeout=timeout,
        env={**os.environ, "NO_PROXY": "127.0.0.1"},
    )


async def test_cli_builds_follows_the_log_deploys_and_deletes_an_app(
    tmp_path: Path, start_wakeproxy: Any,
) -> None:
    repo = Repo(tmp_path / "git")
    pids = tmp_path / "pids"
    pids.mkdir()
    repo.commit("main one")
    wp = start_wakeproxy(config(tmp_path, repo, pids))
    async with aiohttp.ClientSession() as s:
        # Built from source but never deployed: a clear 503, not a crash or a 502.
        status, text = await get(s, wp, "shop.localhost")
        assert status == 503 and "no release deployed yet" in text
        assert "wakeproxy build shop --deploy" in text
        async with s.get(wp.admin + "/metrics") as resp:
            metrics = await resp.text()
        assert 'wakeproxy_wakes_total{app="shop",result="not_deployed"} 1.0' in metrics

        done = await asyncio.to_thread(cli, wp, "build", "shop", "--ref", "main", "--follow")
        assert done.returncode == 0, done.stderr
        assert "==> git fetch" in done.stdout and "built\n" in done.stdout
        build_id = done.stdout.split()[1]
        assert f"build {build_id} of shop: succeeded" in done.stdout

        listed = await asyncio.to_thread(cli, wp, "builds")
        assert build_id in listed.stdout and "succeeded" in listed.stdout
        logs = await asyncio.to_thread(cli, wp, "logs", build_id)
        assert "building " in logs.stdout

        deployed = await asyncio.to_thread(cli, wp, "deploy", "shop", build_id)
        assert deployed.returncode == 0, deployed.stderr
        assert "asleep" in deployed.stdout
        assert await get(s, wp, "shop.localhost") == (200, "main one")

        bad = await asyncio.to_thread(cli, wp, "build", "shop", "--ref", "no-such-branch")
        assert bad.returncode == 1
        assert "failed" in bad.stdout and "git fetch exited with code 128" in bad.stdout

        unauthorized = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "wakeproxy", "delete", "shop", "--admin", wp.admin],
            capture_output=True, text=True, timeout=30)
        assert unauthorized.returncode == 1 and "HTTP 401" in unauthorized.stderr

        # An app of the config file would come back at the next restart: refused, saying
        # where to remove it; it keeps serving.
        kept = await asyncio.to_thread(cli, wp, "delete", "shop")
        assert kept.returncode == 1
        assert f"shop is declared in {wp.config_path}: remove it from apps: there" \
            in kept.stderr
        assert await get(s, wp, "shop.localhost") == (200, "main one")

        # A review app, made at run time, is deleted: process, releases and route.
        v2 = repo.commit("review one", branch="feature")
        shop_pids = set(pids.iterdir())
        await hook(s, wp, payload("opened", v2))
        await wait_build(s, wp, v2, deployed=True)
        assert await get(s, wp) == (200, "review one")
        gone = await asyncio.to_thread(cli, wp, "delete", "pr-1-shop")
        assert gone.returncode == 0 and "pr-1-shop: deleted" in gone.stdout
        assert (await get(s, wp))[0] == 404
        assert (await get(s, wp, "shop.localhost"))[0] == 200
        deadline = time.monotonic() + 5
        started = [int(p.name) for p in set(pids.iterdir()) - shop_pids]
        while pids_alive(started) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        assert started and pids_alive(started) == []
