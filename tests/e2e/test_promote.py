"""`wakeproxy promote` on the local platform, as a user runs it: the release staging runs
— the very build directory, never a rebuild — goes to production with the same swap as a
deploy (no failed request), the CLI says what it promoted from which commit, and the
production release survives staging's later deploys and a restart of wakeproxy."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp

from tests.controllers.gitrepo import Repo
from tests.e2e.harness import Wakeproxy
from tests.e2e.test_build_deploy import rows
from tests.e2e.test_review_apps import cli, config, get
from tests.e2e.traffic import steady_requests


def pipeline(tmp_path: Path, repo: Repo, pids: Path) -> dict[str, Any]:
    doc = config(tmp_path, repo, pids)
    [shop] = doc["apps"]
    doc["apps"] = [
        {**shop, "promote_to": "shop-production"},
        {**shop, "name": "shop-production", "hosts": ["shop.example.localhost"],
         "github_repo": None, "idle_after": "never"},
    ]
    return doc


async def build_deployed(wp: Wakeproxy, repo: Repo, content: str) -> str:
    repo.commit(content)
    done = await asyncio.to_thread(cli, wp, "build", "shop", "--ref", "main", "--deploy")
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.split()[1]


async def test_promote_moves_stagings_exact_release_to_production(
    tmp_path: Path, start_wakeproxy: Any,
) -> None:
    repo = Repo(tmp_path / "git")
    pids = tmp_path / "pids"
    pids.mkdir()
    doc = pipeline(tmp_path, repo, pids)
    wp = start_wakeproxy(doc)
    prod = "shop.example.localhost"
    async with aiohttp.ClientSession() as s:
        nothing = await asyncio.to_thread(cli, wp, "promote", "shop")
        assert nothing.returncode == 1 and "shop has no release deployed to promote" \
            in nothing.stderr
        first = await build_deployed(wp, repo, "v1")
        sha = repo.commit("v1 again")  # main moves on: a promote must not build it
        done = await asyncio.to_thread(cli, wp, "promote", "shop")
        assert done.returncode == 0, done.stderr
        listed = rows((await asyncio.to_thread(cli, wp, "builds")).stdout)
        commit = listed[first]["COMMIT"][:7]
        assert done.stdout.startswith(
            f"promoted build {first} (commit {commit}) from shop to shop-production: ")
        assert commit != sha[:7]
        assert await get(s, wp, prod) == (200, "v1")
        assert list(listed) == [first]  # nothing was built
        assert listed[first]["LIVE"] == "shop,shop-production"

        # Production awake and under load while v2 is promoted: no failed request.
        await build_deployed(wp, repo, "v2")
        async with steady_requests(lambda: get(s, wp, prod)) as traffic:
            await asyncio.sleep(0.2)
            done = await asyncio.to_thread(cli, wp, "promote", "shop")
            assert done.returncode == 0, done.stderr
            assert "switched with no downtime" in done.stdout
            await asyncio.sleep(0.2)
        assert traffic.statuses and traffic.failures == []
        assert traffic.bodies[0] == "v1" and traffic.bodies[-1] == "v2"

        # Staging moves on twice: its own older releases go, production's stays on disk.
        await build_deployed(wp, repo, "v3")
        await build_deployed(wp, repo, "v4")
        assert (await asyncio.to_thread(cli, wp, "sleep", "shop-production")).returncode == 0
        assert await get(s, wp, prod) == (200, "v2")  # woken from v2's directory
        assert await get(s, wp, "shop.localhost") == (200, "v4")

    # A restart keeps each stage's release.
    assert wp.terminate() == 0
    again = start_wakeproxy(doc)
    async with aiohttp.ClientSession() as s:
        assert await get(s, again, prod) == (200, "v2")
        assert await get(s, again, "shop.localhost") == (200, "v4")
        refused = await asyncio.to_thread(cli, again, "promote", "shop-production")
        assert refused.returncode == 1
        assert "shop-production has no next stage to promote to: give it promote_to" \
            in refused.stderr
