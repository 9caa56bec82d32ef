"""A signed delivery captured once and resent under a new X-GitHub-Delivery id (which the
signature does not cover), against a running `wakeproxy serve`, also after a restart."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import aiohttp

from tests.controllers.gitrepo import Repo, app_command
from tests.e2e.harness import Wakeproxy

TOKEN = "security-admin-token-0123"
SECRET = b"webhook-secret-for-tests"
HOST = "pr-1-shop.review.localhost"


def event(action: str, sha: str) -> bytes:
    return json.dumps({"action": action, "number": 1, "repository": {"full_name": "acme/shop"},
                       "pull_request": {"number": 1, "head": {
                           "sha": sha, "repo": {"full_name": "acme/shop"}}}}).encode()


async def send(s: aiohttp.ClientSession, wp: Wakeproxy, body: bytes,
               delivery: str) -> dict[str, Any]:
    headers = {"X-GitHub-Event": "pull_request", "X-GitHub-Delivery": delivery,
               "Content-Type": "application/json",
               "X-Hub-Signature-256": "sha256=" + hmac.new(SECRET, body,
                                                           hashlib.sha256).hexdigest()}
    async with s.post(wp.admin + "/hooks/github", data=body, headers=headers) as r:
        assert r.status == 202
        answer: dict[str, Any] = await r.json()
        return answer


async def answers(s: aiohttp.ClientSession, wp: Wakeproxy, text: str,
                  within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        async with s.get(wp.url + "/", headers={"Host": HOST}) as r:
            if r.status == 200 and await r.text() == text:
                return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{HOST} never answered {text!r}\n{wp.output()}")


async def builds(s: aiohttp.ClientSession, wp: Wakeproxy) -> list[dict[str, Any]]:
    async with s.get(wp.admin + "/api/v1/builds",
                     headers={"Authorization": f"Bearer {TOKEN}"}) as r:
        listed: list[dict[str, Any]] = await r.json()
        return listed


async def test_a_replayed_body_under_a_new_delivery_id_changes_nothing(
    tmp_path: Path, start_wakeproxy: Any,
) -> None:
    repo = Repo(tmp_path / "git")
    v1 = repo.commit("version one", branch="feature")
    (tmp_path / "secret").write_bytes(SECRET)
    config = {"admin_token": TOKEN, "builds_dir": str(tmp_path / "builds"),
              "review_apps": {"domain": "review.localhost", "webhook_secret_file": "secret"},
              "apps": [{"name": "shop", "hosts": ["shop.localhost"], "repo": repo.url,
                        "github_repo": "acme/shop", "build": "sh build.sh",
                        "command": app_command()}]}
    wp = start_wakeproxy(config)
    async with aiohttp.ClientSession() as s:
        opened = event("opened", v1)
        assert (await send(s, wp, opened, "d-1"))["review_apps"] == ["pr-1-shop"]
        await answers(s, wp, "version one")
        v2 = repo.commit("version two", branch="feature")
        assert (await send(s, wp, event("synchronize", v2), "d-2"))["review_apps"]
        await answers(s, wp, "version two")
        # The old `opened` resent as a new delivery would roll the app back to v1.
        replay = await send(s, wp, opened, "d-replayed")
        assert replay == {"delivery": "d-replayed", "ignored": "already received"}
        await asyncio.sleep(0.5)
        await answers(s, wp, "version two")
        assert len(await builds(s, wp)) == 2
    wp.terminate()

    wp = start_wakeproxy(config)  # the digests survive a restart, as the ids do
    async with aiohttp.ClientSession() as s:
        replay = await send(s, wp, opened, "d-replayed-after-restart")
        assert replay["ignored"] == "already received"
        await answers(s, wp, "version two")
        assert len(await builds(s, wp)) == 2
