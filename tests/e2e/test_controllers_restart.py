"""Restarting a real `wakeproxy serve` (SIGTERM, then a new one on the same config) changes
nothing a user sees: deployed apps and review apps answer with the same content (waking),
the builds list and logs are still there, and `closed` still deletes everything."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import aiohttp

from tests.controllers.gitrepo import Repo
from tests.e2e.harness import pids_alive
from tests.e2e.test_review_apps import builds, cli, config, get, hook, payload, wait_build


async def test_a_restart_keeps_deployed_apps_review_apps_and_build_history(
    tmp_path: Path, start_wakeproxy: Any,
) -> None:
    repo = Repo(tmp_path / "git")
    pids = tmp_path / "pids"
    pids.mkdir()
    main = repo.commit("main one")
    pr = repo.commit("pr one", branch="feature")
    cfg = config(tmp_path, repo, pids)
    wp = start_wakeproxy(cfg)
    async with aiohttp.ClientSession() as s:
        done = await asyncio.to_thread(cli, wp, "build", "shop", "--ref", "main", "--deploy")
        assert done.returncode == 0, done.stderr
        await wait_build(s, wp, main, deployed=True)
        status, _ = await hook(s, wp, payload("opened", pr))
        assert status == 202
        review_build = await wait_build(s, wp, pr, deployed=True)
        assert await get(s, wp, "shop.localhost") == (200, "main one")
        assert await get(s, wp) == (200, "pr one")
        before = await builds(s, wp)
    assert wp.terminate() == 0
    first_run = [int(p.name) for p in pids.iterdir()]
    assert len(first_run) == 2 and pids_alive(first_run) == []

    wp = start_wakeproxy(cfg)
    async with aiohttp.ClientSession() as s:
        assert wp.app_state("shop") == "asleep"
        assert wp.app_state("pr-1-shop") == "asleep"
        assert await get(s, wp) == (200, "pr one")  # woken by this request
        assert await get(s, wp, "shop.localhost") == (200, "main one")
        assert await builds(s, wp) == before

        listed = await asyncio.to_thread(cli, wp, "builds")
        assert listed.returncode == 0, listed.stderr
        for b in before:
            assert b["id"] in listed.stdout
        logs = await asyncio.to_thread(cli, wp, "logs", review_build["id"])
        assert f"building {pr}" in logs.stdout and "build succeeded" in logs.stdout

        # Closed after the restart: the host is gone, its process and releases too.
        await hook(s, wp, payload("closed", pr))
        deadline = time.monotonic() + 10
        while (await get(s, wp))[0] != 404 and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        assert (await get(s, wp))[0] == 404
        releases = tmp_path / "builds" / "pr-1-shop"
        all_pids = [int(p.name) for p in pids.iterdir()]
        deadline = time.monotonic() + 5
        while (releases.exists() or len(pids_alive(all_pids)) > 1) and (  # noqa: ASYNC110
                time.monotonic() < deadline):
            await asyncio.sleep(0.05)
        assert not releases.exists()
        assert len(pids_alive(all_pids)) == 1  # shop's own process, and nothing else
        assert await get(s, wp, "shop.localhost") == (200, "main one")


async def test_a_corrupt_state_file_gives_a_warning_and_a_clean_start(
    tmp_path: Path, start_wakeproxy: Any,
) -> None:
    repo = Repo(tmp_path / "git")
    repo.commit("main one")
    state_file = tmp_path / "builds" / "state.json"
    state_file.parent.mkdir()
    state_file.write_text('{"version": 1, "builds": [{"id": "shop-abc')  # cut short
    wp = start_wakeproxy(config(tmp_path, repo, tmp_path))
    warning = wp.wait_log(lambda e: "corrupt" in str(e.get("event")))
    assert warning["level"] == "warning" and warning["file"] == str(state_file)
    async with aiohttp.ClientSession() as s:
        assert await builds(s, wp) == []
        status, text = await get(s, wp, "shop.localhost")
        assert status == 503 and "no release deployed yet" in text
        # It goes on as usual, and saves a good file again.
        done = await asyncio.to_thread(cli, wp, "build", "shop", "--ref", "main")
        assert done.returncode == 0, done.stderr
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        doc = json.loads(state_file.read_text()) if state_file.exists() else {}
        if any(b["state"] == "succeeded" for b in doc.get("builds", [])):
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError(f"no saved build in {state_file}")


async def test_a_redelivery_after_a_restart_builds_nothing(
    tmp_path: Path, start_wakeproxy: Any,
) -> None:
    repo = Repo(tmp_path / "git")
    pids = tmp_path / "pids"
    pids.mkdir()
    pr = repo.commit("pr one", branch="feature")
    cfg = config(tmp_path, repo, pids)
    wp = start_wakeproxy(cfg)
    async with aiohttp.ClientSession() as s:
        status, body = await hook(s, wp, payload("opened", pr), delivery="delivery-1")
        assert status == 202 and body["review_apps"] == ["pr-1-shop"]
        await wait_build(s, wp, pr, deployed=True)
    assert wp.terminate() == 0
    saved = json.loads((tmp_path / "builds" / "state.json").read_text())
    ids = list(saved["webhook_deliveries"])
    assert ids[0] == "delivery-1" and [i[:5] for i in ids[1:]] == ["body-"]  # and its body

    wp = start_wakeproxy(cfg)
    async with aiohttp.ClientSession() as s:
        before = await builds(s, wp)
        assert len(before) == 1
        # GitHub's "Redeliver" sends the same id again: already handled before the restart.
        status, body = await hook(s, wp, payload("opened", pr), delivery="delivery-1")
        assert (status, body) == (202, {"delivery": "delivery-1", "ignored": "already received"})
        # The same body under a new id is a replay (the signature does not cover the id).
        status, body = await hook(s, wp, payload("opened", pr), delivery="delivery-2")
        assert (status, body) == (202, {"delivery": "delivery-2", "ignored": "already received"})
        # A new event is a new delivery: it is built again.
        status, body = await hook(s, wp, payload("reopened", pr), delivery="delivery-3")
        assert status == 202 and body["review_apps"] == ["pr-1-shop"]
        deadline = time.monotonic() + 15
        while len(after := await builds(s, wp)) < 2 or after[0]["state"] != "succeeded":
            assert time.monotonic() < deadline, after
            await asyncio.sleep(0.05)
        assert len(after) == 2  # one build per new delivery, none for the redelivery or replay
