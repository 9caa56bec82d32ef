"""The lifecycle driving real local processes: single-flight wakes, failures, sleeps, exits."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from tests.controlplane.conftest import MakeWorld
from tests.controlplane.world import phase_is, phase_of, until
from tests.platforms.procs import (
    alive,
    http_get,
    local_app,
    read_pid,
    server_command,
    starts,
    wait_file,
)
from wakeproxy.controlplane.errors import UnknownApp, WakeError, WakeTimedOut
from wakeproxy.model.board import FailureKind, Phase


async def test_demand_wakes_the_app_and_its_endpoint_serves(
    make_world: MakeWorld, tmp_path: Path,
) -> None:
    world = await make_world(local_app("web", server_command(count=tmp_path / "starts")))
    state = world.state("web")
    world.demand.request("web")
    await until(state, phase_is(Phase.AWAKE))
    endpoint = state.pick()
    assert endpoint is not None
    status, body = await http_get(endpoint)
    assert status == 200 and body.startswith("hello from")
    assert world.stats.wakes == {("web", "ready"): 1}
    assert starts(tmp_path / "starts") == 1


async def test_fifty_demands_at_once_start_one_process(
    make_world: MakeWorld, tmp_path: Path,
) -> None:
    count = tmp_path / "starts"
    world = await make_world(local_app("web", server_command(count=count)))
    for _ in range(50):
        world.demand.request("web")
    await asyncio.gather(*(world.lifecycle.wake("web") for _ in range(50)))
    state = world.state("web")
    assert state.phase is Phase.AWAKE
    assert state.attempts == 1
    assert starts(count) == 1
    assert world.stats.wakes == {("web", "ready"): 1}


async def test_a_command_that_exits_at_once_fails_the_wake_with_its_reason(
    make_world: MakeWorld,
) -> None:
    world = await make_world(local_app("boom", "echo boom >&2; exit 3"))
    state = world.state("boom")
    world.demand.request("boom")
    await until(state, lambda s: s.failure is not None)
    assert state.phase is Phase.ASLEEP
    assert state.failure is not None
    assert state.failure.attempt == 1
    assert "code 3" in state.failure.reason and "boom" in state.failure.reason
    assert world.stats.wakes == {("boom", "failed"): 1}
    with pytest.raises(WakeError, match="code 3 while waking: boom"):
        await world.lifecycle.wake("boom")


async def test_an_app_that_never_listens_times_out_and_leaves_no_process(
    make_world: MakeWorld, tmp_path: Path,
) -> None:
    world = await make_world(
        local_app("mute", f"echo $$ > {tmp_path}/pid; exec sleep 30", wake_timeout=0.3))
    state = world.state("mute")
    with pytest.raises(WakeTimedOut) as timed_out:
        await world.lifecycle.wake("mute")
    assert isinstance(timed_out.value, TimeoutError)
    assert state.phase is Phase.ASLEEP
    assert state.failure is not None and state.failure.reason == "not ready within 0.3s"
    assert world.stats.wakes == {("mute", "timeout"): 1}
    assert not alive(read_pid(tmp_path / "pid"))


async def test_sleep_stops_the_whole_process_group(make_world: MakeWorld, tmp_path: Path) -> None:
    pidfile, childfile = tmp_path / "pid", tmp_path / "child"
    world = await make_world(
        local_app("web", server_command("--pidfile", str(pidfile), "--child", str(childfile))))
    await world.lifecycle.wake("web")
    server, child = read_pid(pidfile), read_pid(childfile)
    assert alive(server) and alive(child)
    await world.lifecycle.sleep("web")
    assert world.state("web").phase is Phase.ASLEEP
    assert not alive(server) and not alive(child)
    assert world.stats.sleeps == {"web": 1}
    await world.lifecycle.sleep("web")  # asleep already: nothing to do
    assert world.stats.sleeps == {"web": 1}


async def test_an_app_killed_while_awake_goes_asleep_and_wakes_on_the_next_demand(
    make_world: MakeWorld, tmp_path: Path,
) -> None:
    pidfile, count = tmp_path / "pid", tmp_path / "starts"
    world = await make_world(
        local_app("web", server_command("--pidfile", str(pidfile), count=count)))
    state = world.state("web")
    await world.lifecycle.wake("web")
    os.kill(read_pid(pidfile), signal.SIGKILL)
    await until(state, phase_is(Phase.ASLEEP))
    assert state.failure is None  # not a failed wake: the next request just wakes it
    world.demand.request("web")
    await until(state, phase_is(Phase.AWAKE))
    endpoint = state.pick()
    assert endpoint is not None
    assert (await http_get(endpoint))[0] == 200
    assert starts(count) == 2


async def test_close_stops_every_app_and_fails_wakes_under_way(
    make_world: MakeWorld, tmp_path: Path,
) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    world = await make_world(
        local_app("a", server_command("--pidfile", str(a))),
        local_app("b", server_command("--pidfile", str(b))),
        local_app("mute", f"echo $$ > {tmp_path}/mute; exec sleep 30"),
    )
    await asyncio.gather(world.lifecycle.wake("a"), world.lifecycle.wake("b"))
    world.demand.request("mute")
    await wait_file(tmp_path / "mute")
    await world.lifecycle.close()
    for pid in (read_pid(a), read_pid(b), read_pid(tmp_path / "mute")):
        assert not alive(pid)
    mute = world.state("mute")
    assert mute.phase is Phase.ASLEEP
    assert mute.failure is not None and "shutting down" in mute.failure.reason


async def test_demand_while_stopping_wakes_the_app_right_after_the_stop(
    make_world: MakeWorld, tmp_path: Path,
) -> None:
    pidfile, count = tmp_path / "pid", tmp_path / "starts"
    world = await make_world(local_app(
        "web", server_command("--pidfile", str(pidfile), "--term-delay", "0.3", count=count)))
    state = world.state("web")
    await world.lifecycle.wake("web")
    old = read_pid(pidfile)
    stopped = world.lifecycle.begin_sleep("web")
    assert state.phase is Phase.STOPPING
    assert state.pick() is None  # out of rotation before the process is signalled
    world.demand.request("web")
    seen: list[Phase] = []
    async with asyncio.timeout(10):
        while phase_of(state) is not Phase.AWAKE:
            await state.changed().wait()
            seen.append(phase_of(state))
            if phase_of(state) is Phase.WAKING:
                assert not alive(old)  # never woken while the old process still runs
    assert seen[0] is Phase.ASLEEP or seen[0] is Phase.WAKING
    await stopped
    assert starts(count) == 2
    endpoint = state.pick()
    assert endpoint is not None
    assert (await http_get(endpoint))[0] == 200


async def test_sleep_during_a_wake_waits_for_the_wake_then_stops(
    make_world: MakeWorld, tmp_path: Path,
) -> None:
    pidfile, count = tmp_path / "pid", tmp_path / "starts"
    world = await make_world(
        local_app("web", server_command("--pidfile", str(pidfile), count=count)))
    waking = asyncio.create_task(world.lifecycle.wake("web"))
    await asyncio.sleep(0)
    assert world.state("web").phase is Phase.WAKING
    await world.lifecycle.sleep("web")
    await waking
    assert world.state("web").phase is Phase.ASLEEP
    assert not alive(read_pid(pidfile))
    assert starts(count) == 1


async def test_commands_reject_unknown_apps(make_world: MakeWorld) -> None:
    world = await make_world(local_app("web", server_command()))
    with pytest.raises(UnknownApp) as unknown:
        await world.lifecycle.wake("nope")
    assert isinstance(unknown.value, LookupError)
    with pytest.raises(UnknownApp):
        await world.lifecycle.sleep("nope")
    world.demand.request("nope")  # logged and dropped; the loop keeps serving
    world.demand.request("web")
    await until(world.state("web"), phase_is(Phase.AWAKE))


async def test_an_app_not_deployed_yet_fails_its_wake_as_unavailable_without_starting(
    make_world: MakeWorld, tmp_path: Path,
) -> None:
    count = tmp_path / "starts"
    world = await make_world(local_app("web", server_command(count=count),
                                       unavailable="no release deployed yet"))
    with pytest.raises(WakeError, match="no release deployed yet"):
        await world.lifecycle.wake("web")
    state = world.state("web")
    assert state.failure is not None and state.failure.kind is FailureKind.UNAVAILABLE
    assert starts(count) == 0  # the platform was never asked
    # Counted apart from failures: nothing was tried, and no alert should fire for it.
    assert world.stats.wakes == {("web", "not_deployed"): 1}
