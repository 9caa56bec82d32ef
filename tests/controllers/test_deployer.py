"""Deploys on the local platform, through the real lifecycle: an asleep app stays asleep,
an awake one switches release with no gap, a broken release never replaces a good one."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from tests.controllers.conftest import Stack
from tests.platforms.procs import alive
from wakeproxy.controllers.builds import BuildState
from wakeproxy.controllers.errors import (
    DeclaredInConfig,
    DeployFailed,
    NotDeployable,
    UnknownApp,
)
from wakeproxy.controlplane.errors import WakeError


async def built(stack: Stack, content: str, build: str | None = None) -> str:
    kw = {} if build is None else {"build": build}
    stack.repo.commit(content, **kw)
    b = stack.controllers.build("shop", "main")
    await stack.controllers.builder.wait(b)
    assert b.state is BuildState.SUCCEEDED, b.log.tail()
    return b.id


async def test_an_app_without_a_release_is_unavailable_until_deployed(stack: Stack) -> None:
    # The message names the command that deploys, not a plain build (which does not).
    with pytest.raises(WakeError, match=r"no release deployed yet \(build and deploy one: "
                                        r"wakeproxy build shop --deploy\)"):
        await stack.lifecycle.wake("shop")
    state = stack.board.get("shop")
    assert state is not None and state.failure is not None
    assert state.failure.kind == "unavailable"

    _, outcome = await stack.controllers.deploy("shop", await built(stack, "one"))
    assert outcome.startswith("asleep")
    assert state.phase == "asleep"  # a deploy does not wake it
    await stack.lifecycle.wake("shop")
    assert await stack.fetch("shop") == "one"


async def test_deploying_to_an_awake_app_switches_without_a_gap(stack: Stack) -> None:
    await stack.controllers.deploy("shop", await built(stack, "one"))
    await stack.lifecycle.wake("shop")
    state = stack.board.get("shop")
    assert state is not None
    old_endpoint = state.endpoints[0]
    old_pid = stack.platform.pid("shop")

    failures: list[str] = []
    stop = asyncio.Event()

    async def poll() -> None:
        # What the data plane does per request: the current endpoint, then a request.
        async with aiohttp.ClientSession() as s:
            while not stop.is_set():
                ep = state.pick()
                if ep is None:
                    failures.append("no endpoint")
                    await asyncio.sleep(0.001)
                    continue
                try:
                    async with s.get(f"http://{ep}/") as r:
                        await r.read()
                        if r.status != 200:
                            failures.append(str(r.status))
                except aiohttp.ClientError as e:
                    failures.append(repr(e))

    poller = asyncio.create_task(poll())
    _, outcome = await stack.controllers.deploy("shop", await built(stack, "two"))
    stop.set()
    await poller
    assert outcome == "switched with no downtime"
    assert failures == []
    assert state.phase == "awake" and state.endpoints[0] != old_endpoint
    assert await stack.fetch("shop") == "two"
    assert old_pid is not None and not alive(old_pid)


async def test_a_release_that_does_not_start_leaves_the_old_one_serving(stack: Stack) -> None:
    await stack.controllers.deploy("shop", await built(stack, "one"))
    await stack.lifecycle.wake("shop")
    # A build that succeeds but whose app cannot start: its app.py is gone.
    broken = await built(stack, "broken", build="rm app.py\n")
    with pytest.raises(DeployFailed, match="did not answer"):
        await stack.controllers.deploy("shop", broken)
    assert await stack.fetch("shop") == "one"
    # After a sleep, the next wake runs the release that kept serving, not the broken one.
    await stack.lifecycle.sleep("shop")
    await stack.lifecycle.wake("shop")
    assert await stack.fetch("shop") == "one"


async def test_only_a_succeeded_build_of_the_app_deploys(stack: Stack) -> None:
    stack.repo.commit("x", build="exit 1\n")
    failed = stack.controllers.build("shop", "main")
    await stack.controllers.builder.wait(failed)
    with pytest.raises(NotDeployable, match="failed"):
        await stack.controllers.deploy("shop", failed.id)
    with pytest.raises(UnknownApp):
        stack.controllers.build("nope", "main")


async def test_delete_unroutes_stops_and_removes_releases(stack: Stack) -> None:
    # What deleting a review app does (ReviewApps and `wakeproxy delete` call this).
    await stack.controllers.deploy("shop", await built(stack, "one"))
    await stack.lifecycle.wake("shop")
    pid = stack.platform.pid("shop")
    await stack.controllers.deployer.delete("shop")
    assert stack.board.get("shop") is None
    assert stack.routes.table.resolve("shop.localhost") is None
    assert pid is not None and not alive(pid)
    assert not (stack.builds_dir / "shop").exists()
    with pytest.raises(UnknownApp):
        await stack.controllers.deployer.delete("shop")


async def test_an_app_of_the_config_file_is_not_deleted_at_run_time(stack: Stack) -> None:
    # It would come back at the next restart: refused, with what to do instead.
    await stack.controllers.deploy("shop", await built(stack, "one"))
    with pytest.raises(DeclaredInConfig, match=r"shop is declared in cluster\.yaml: remove "
                                               r"it from apps: there and restart wakeproxy"):
        await stack.controllers.delete("shop")
    await stack.lifecycle.wake("shop")
    assert await stack.fetch("shop") == "one"
    with pytest.raises(UnknownApp):
        await stack.controllers.delete("nope")
