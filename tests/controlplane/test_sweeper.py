"""The sweeper's idle rule on a fake clock, and its sleeps on real processes."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

from tests.controlplane.conftest import MakeWorld
from tests.controlplane.world import World, build_world, phase_is, phase_of, until
from tests.platforms.procs import alive, local_app, read_pid, server_command
from wakeproxy.controlplane.sweeper import Sweeper
from wakeproxy.model.activity import ActivityLedger, AppActivity
from wakeproxy.model.apps import AppPolicy, Endpoint
from wakeproxy.model.board import AppState, Phase, ReadinessBoard
from wakeproxy.model.clock import FakeClock
from wakeproxy.platforms.local import LocalPlatform
from wakeproxy.settings import LocalApp

LOOPBACK = (Endpoint("127.0.0.1", 9),)


def sweeper(world: World, interval: float = 1.0) -> Sweeper:
    return Sweeper(board=world.board, ledger=world.ledger, lifecycle=world.lifecycle,
                   clock=world.clock, interval=interval)


def idle_app(name: str, idle_after: float = 300.0) -> LocalApp:
    return local_app(name, server_command(), idle_after=idle_after)


def mark_awake(world: World, app: str) -> None:
    """What a finished wake leaves on the board, for rules that only read the board."""
    world.board.mark_waking(app)
    world.board.mark_ready(app, LOOPBACK)


async def test_an_idle_app_is_swept_after_idle_after_and_not_before(
    make_world: MakeWorld,
) -> None:
    clock = FakeClock()
    world = await make_world(idle_app("web", idle_after=60), clock=clock)
    mark_awake(world, "web")
    world.ledger.begin("web")
    clock.advance(5)
    world.ledger.end("web")  # idle from here
    clock.advance(59.9)
    assert sweeper(world).due() == []
    clock.advance(0.1)
    assert sweeper(world).due() == ["web"]


async def test_a_busy_app_is_never_swept(make_world: MakeWorld) -> None:
    clock = FakeClock()
    world = await make_world(idle_app("req", 60), idle_app("ws", 60), clock=clock)
    mark_awake(world, "req")
    mark_awake(world, "ws")
    world.ledger.begin("req")  # a long download still in flight
    world.ledger.tunnel_opened("ws")  # a WebSocket still open
    clock.advance(10_000)
    assert sweeper(world).due() == []
    world.ledger.end("req")
    world.ledger.tunnel_closed("ws")
    clock.advance(60)
    assert sorted(sweeper(world).due()) == ["req", "ws"]


async def test_a_newly_woken_app_gets_a_full_idle_after(make_world: MakeWorld) -> None:
    clock = FakeClock()
    world = await make_world(idle_app("web", 60), clock=clock)
    world.ledger.begin("web")
    world.ledger.end("web")  # last used long before this wake
    clock.advance(3600)
    mark_awake(world, "web")
    clock.advance(59)
    assert sweeper(world).due() == []
    clock.advance(1)
    assert sweeper(world).due() == ["web"]


async def test_an_app_awake_but_never_requested_is_swept_after_idle_after_from_its_wake(
    make_world: MakeWorld,
) -> None:
    clock = FakeClock()
    world = await make_world(idle_app("web", 60), clock=clock)
    mark_awake(world, "web")
    assert world.ledger.peek("web") is None
    clock.advance(59)
    assert sweeper(world).due() == []
    clock.advance(1)
    assert sweeper(world).due() == ["web"]


async def test_each_app_keeps_its_own_idle_after(make_world: MakeWorld) -> None:
    clock = FakeClock()
    world = await make_world(idle_app("quick", 10), idle_app("patient", 100), clock=clock)
    mark_awake(world, "quick")
    mark_awake(world, "patient")
    clock.advance(10)
    assert sweeper(world).due() == ["quick"]
    clock.advance(90)
    assert sorted(sweeper(world).due()) == ["patient", "quick"]


async def test_only_awake_apps_are_swept(make_world: MakeWorld) -> None:
    clock = FakeClock()
    world = await make_world(idle_app("waking", 1), idle_app("stopping", 1), clock=clock)
    world.board.mark_waking("waking")
    mark_awake(world, "stopping")
    world.board.mark_stopping("stopping")
    clock.advance(1000)
    assert sweeper(world).due() == []


class _UnwalkableBoard(ReadinessBoard):
    """A board that refuses a walk over every configured app."""

    def __iter__(self) -> Iterator[AppState]:
        raise AssertionError("a sweep must not walk every configured app")


class _CountingLedger(ActivityLedger):
    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock)
        self.looked_up: list[str] = []

    def peek(self, app: str) -> AppActivity | None:
        self.looked_up.append(app)
        return super().peek(app)


async def test_a_sweep_looks_only_at_awake_apps_among_ten_thousand(tmp_path: Path) -> None:
    clock = FakeClock()
    board = _UnwalkableBoard(clock)
    ledger = _CountingLedger(clock)
    for i in range(10_000):
        board.put(AppPolicy(name=f"app-{i}", hosts=(f"app-{i}.example.com",), idle_after=60))
        ledger.begin(f"app-{i}")
        ledger.end(f"app-{i}")
    awake = [f"app-{i}" for i in range(0, 10_000, 1000)]
    for name in awake:
        board.mark_waking(name)
        board.mark_ready(name, LOOPBACK)
    world = await build_world((), clock, run=False)
    try:
        sweep = Sweeper(board=board, ledger=ledger, lifecycle=world.lifecycle, clock=clock,
                        interval=1.0)
        clock.advance(60)
        assert sorted(sweep.due()) == sorted(awake)
        assert sorted(ledger.looked_up) == sorted(awake)
    finally:
        await world.close()


async def test_tick_puts_idle_apps_to_sleep_for_real(
    make_world: MakeWorld, tmp_path: Path,
) -> None:
    clock = FakeClock()
    a, b = tmp_path / "a", tmp_path / "b"
    world = await make_world(
        local_app("idle", server_command("--pidfile", str(a)), idle_after=60),
        local_app("used", server_command("--pidfile", str(b)), idle_after=60),
        clock=clock,
    )
    await asyncio.gather(world.lifecycle.wake("idle"), world.lifecycle.wake("used"))
    clock.advance(30)
    world.ledger.begin("used")
    world.ledger.end("used")
    clock.advance(30)
    assert await sweeper(world).tick() == ["idle"]
    assert world.state("idle").phase is Phase.ASLEEP
    assert not alive(read_pid(a))
    assert world.state("used").phase is Phase.AWAKE
    assert alive(read_pid(b))
    assert world.stats.sleeps == {"idle": 1}


async def test_the_decision_and_stopping_happen_in_one_step(make_world: MakeWorld) -> None:
    clock = FakeClock()
    world = await make_world(idle_app("web", 60), clock=clock)
    await world.lifecycle.wake("web")
    clock.advance(60)
    done = sweeper(world).sweep()
    # No await since the decision: a request arriving now already sees STOPPING and no
    # endpoint, so the data plane holds it and asks for a wake instead.
    state = world.state("web")
    assert state.phase is Phase.STOPPING
    assert state.pick() is None
    await done["web"]
    assert phase_of(state) is Phase.ASLEEP


class _StopFailsPlatform(LocalPlatform):
    async def sleep(self, app: str, *, held: bool = False) -> None:
        await super().sleep(app, held=held)
        raise OSError("stop went wrong")


async def test_a_failing_stop_never_breaks_the_sweep(make_world: MakeWorld) -> None:
    clock = FakeClock()
    world = await make_world(idle_app("web", 60), clock=clock, platform_factory=_StopFailsPlatform)
    await world.lifecycle.wake("web")
    clock.advance(60)
    assert await sweeper(world).tick() == ["web"]
    assert world.state("web").phase is Phase.ASLEEP
    assert await sweeper(world).tick() == []


async def test_run_sweeps_every_interval(make_world: MakeWorld) -> None:
    clock = FakeClock()
    world = await make_world(idle_app("web", 60), clock=clock)
    await world.lifecycle.wake("web")
    running = asyncio.create_task(sweeper(world, interval=0.01).run())
    try:
        await asyncio.sleep(0.05)
        assert world.state("web").phase is Phase.AWAKE
        clock.advance(60)
        await until(world.state("web"), phase_is(Phase.ASLEEP), within=5)
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
