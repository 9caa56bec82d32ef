from __future__ import annotations

import asyncio

from wakeproxy.model.activity import ActivityLedger
from wakeproxy.model.apps import AppPolicy, Endpoint
from wakeproxy.model.board import Phase, ReadinessBoard
from wakeproxy.model.clock import FakeClock
from wakeproxy.model.demand import WakeDemand

EP = (Endpoint("127.0.0.1", 1), Endpoint("127.0.0.1", 2))


def board() -> tuple[ReadinessBoard, FakeClock]:
    clock = FakeClock()
    b = ReadinessBoard(clock)
    b.put(AppPolicy(name="a", hosts=("a.test",)))
    return b, clock


async def test_waiters_see_every_transition():
    b, _ = board()
    state = b.get("a")
    assert state is not None and state.phase is Phase.ASLEEP and state.pick() is None
    ev = state.changed()
    waiter = asyncio.ensure_future(ev.wait())
    b.mark_waking("a")
    await asyncio.wait_for(waiter, 1)
    ev2 = state.changed()
    assert ev2 is not ev and not ev2.is_set()
    b.mark_ready("a", EP)
    assert ev2.is_set()
    assert state.phase is Phase.AWAKE


async def test_pick_round_robins_over_ready_endpoints():
    b, _ = board()
    b.mark_waking("a")
    b.mark_ready("a", EP)
    state = b.get("a")
    assert state is not None
    assert {state.pick(), state.pick()} == set(EP)


async def test_failure_is_tied_to_its_attempt_and_cleared_by_a_later_success():
    b, _ = board()
    attempt = b.mark_waking("a")
    b.mark_wake_failed("a", "exit 3")
    state = b.get("a")
    assert state is not None and state.failure is not None
    assert state.failure.attempt == attempt and state.phase is Phase.ASLEEP
    b.mark_waking("a")
    b.mark_ready("a", EP[:1])
    assert state.failure is None


async def test_time_asleep_is_counted_per_sleep():
    b, clock = board()
    state = b.get("a")
    assert state is not None
    clock.advance(100)
    b.mark_waking("a")
    clock.advance(1)
    b.mark_ready("a", EP[:1])
    clock.advance(50)
    b.mark_stopping("a")
    b.mark_asleep("a")
    clock.advance(30)
    assert state.total_asleep(clock.monotonic()) == 130


async def test_only_apps_not_asleep_are_listed_for_a_sweep():
    clock = FakeClock()
    b = ReadinessBoard(clock)
    for i in range(1000):
        b.put(AppPolicy(name=f"a{i}", hosts=(f"a{i}.test",)))
    b.mark_waking("a5")
    b.mark_ready("a5", EP[:1])
    assert [s.name for s in b.not_asleep()] == ["a5"]
    b.mark_stopping("a5")
    assert [s.name for s in b.not_asleep()] == ["a5"]
    b.mark_asleep("a5")
    assert b.not_asleep() == []


async def test_demand_is_deduplicated_and_nothing_is_lost():
    d = WakeDemand()
    for _ in range(100):
        d.request("a")
    d.request("b")
    assert await d.take() == ["a", "b"]
    taker = asyncio.ensure_future(d.take())
    await asyncio.sleep(0)
    assert not taker.done()
    d.request("c")
    assert await asyncio.wait_for(taker, 1) == ["c"]


def test_activity_counts_in_flight_and_last_access():
    clock = FakeClock()
    ledger = ActivityLedger(clock)
    ledger.begin("a")
    clock.advance(5)
    a = ledger.get("a")
    assert a.busy and a.in_flight == 1
    ledger.end("a")
    assert not a.busy and a.last_access == clock.monotonic()
    ledger.tunnel_opened("a")
    assert a.busy
    ledger.tunnel_closed("a")
    assert not a.busy
