"""`wakeproxy build --deploy` and `wakeproxy builds` as a user runs them on the local
platform: the command returns once the build is deployed (saying so, with its commit) or
exits 1 saying why it was not; the list shows the build each app runs now (LIVE) and
which builds can still be deployed (RELEASE kept) or no longer (gone)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp

from tests.controllers.gitrepo import Repo
from tests.e2e.test_review_apps import cli, config, get


def rows(listing: str) -> dict[str, dict[str, str]]:
    """`wakeproxy builds` output as {build id: {column: value}}."""
    header, *lines = listing.splitlines()
    names = header.split()
    return {cells[0]: dict(zip(names, cells, strict=True))
            for cells in (line.split() for line in lines)}


async def test_build_deploy_waits_for_the_deploy_and_builds_shows_what_is_live(
    tmp_path: Path, start_wakeproxy: Any,
) -> None:
    repo = Repo(tmp_path / "git")
    pids = tmp_path / "pids"
    pids.mkdir()
    wp = start_wakeproxy(config(tmp_path, repo, pids))
    async with aiohttp.ClientSession() as s:
        ids = []
        for content in ("one", "two", "three"):
            sha = repo.commit(content)
            done = await asyncio.to_thread(cli, wp, "build", "shop", "--ref", "main",
                                           "--deploy")
            assert done.returncode == 0, done.stdout + done.stderr
            build_id = done.stdout.split()[1]
            ids.append(build_id)
            # Deployed when the command returns: the next request gets the new release.
            assert f"deployed build {build_id} of shop (commit {sha[:7]})" in done.stdout
            assert await get(s, wp, "shop.localhost") == (200, content)

        listed = rows((await asyncio.to_thread(cli, wp, "builds")).stdout)
        assert [listed[b]["LIVE"] for b in ids] == ["-", "-", "shop"]
        # The live release and the one before it are kept; older ones are removed.
        assert [listed[b]["RELEASE"] for b in ids] == ["gone", "kept", "kept"]

        # A release that does not start while the app is awake: not deployed, exit 1,
        # the previous release keeps serving and stays live.
        repo.commit("broken", build="echo no content.txt made\n")
        failed = await asyncio.to_thread(cli, wp, "build", "shop", "--ref", "main",
                                         "--deploy")
        assert failed.returncode == 1
        broken_id = failed.stdout.split()[1]
        assert f"build {broken_id} of shop (commit " in failed.stderr
        assert "was not deployed: the new release of shop did not answer" in failed.stderr
        assert await get(s, wp, "shop.localhost") == (200, "three")
        listed = rows((await asyncio.to_thread(cli, wp, "builds")).stdout)
        assert listed[ids[-1]]["LIVE"] == "shop" and listed[broken_id]["LIVE"] == "-"
