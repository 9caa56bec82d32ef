"""A real stack for controller tests: LocalPlatform, Lifecycle, board and routes, a real
git repository, and the local controllers on top; everything stopped at teardown."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from tests.controllers.gitrepo import Repo, app_command
from wakeproxy.controllers.local import LocalControllers
from wakeproxy.controlplane.apps import install_apps
from wakeproxy.controlplane.lifecycle import Lifecycle
from wakeproxy.model.apps import AppPolicy
from wakeproxy.model.board import ReadinessBoard
from wakeproxy.model.clock import SystemClock
from wakeproxy.model.demand import WakeDemand
from wakeproxy.model.routes import Routes
from wakeproxy.model.stats import WakeStats
from wakeproxy.platforms.local.platform import LocalPlatform
from wakeproxy.settings import LocalApp, ReviewApps

SECRET = b"controller-test-secret"


@dataclass
class Stack:
    repo: Repo
    pids: Path
    builds_dir: Path
    board: ReadinessBoard
    routes: Routes
    lifecycle: Lifecycle
    platform: LocalPlatform
    controllers: LocalControllers

    async def fetch(self, app: str) -> str:
        """GET / of the app's ready endpoint (what the data plane would forward to)."""
        state = self.board.get(app)
        assert state is not None and state.endpoints, f"{app} has no endpoint"
        ep = state.endpoints[0]
        async with aiohttp.ClientSession() as s, s.get(f"http://{ep}/") as r:
            return await r.text()


def shop(repo: Repo, pids: Path, **policy: object) -> LocalApp:
    return LocalApp(
        policy=AppPolicy(name="shop", hosts=("shop.localhost",), **policy),  # type: ignore[arg-type]
        command=app_command(), env={"PID_DIR": str(pids)}, stop_grace=2.0,
        repo=repo.url, github_repo="acme/shop", build="sh build.sh",
    )


@contextlib.asynccontextmanager
async def running_stack(tmp_path: Path, repo: Repo, pids: Path) -> AsyncIterator[Stack]:
    """One run of the controllers on `tmp_path / "builds"`; a second run on the same
    directory is what a restart of wakeproxy looks like to them."""
    app = shop(repo, pids)
    board, routes = ReadinessBoard(SystemClock()), Routes()
    install_apps([app.policy], board, routes)
    platform = LocalPlatform([app])
    await platform.start()
    lifecycle = Lifecycle(board=board, demand=WakeDemand(), platform=platform,
                          stats=WakeStats(), clock=SystemClock(), routes=routes)
    running = asyncio.create_task(lifecycle.run())
    controllers = LocalControllers(
        apps=[app], review=ReviewApps(domain="review.localhost", webhook_secret=SECRET),
        builds_dir=tmp_path / "builds", platform=platform, lifecycle=lifecycle, board=board,
        environ={"PATH": "/usr/bin:/bin"}, drain=0.2, build_timeout=20.0,
        config_file="cluster.yaml")
    try:
        await controllers.start()
        yield Stack(repo, pids, tmp_path / "builds", board, routes, lifecycle, platform,
                    controllers)
    finally:
        await controllers.close()
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
        await lifecycle.close()


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    repo = Repo(tmp_path / "git")
    pids = tmp_path / "pids"
    pids.mkdir()
    async with running_stack(tmp_path, repo, pids) as s:
        yield s
