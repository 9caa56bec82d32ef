"""Sleep history for savings reports: exact for recent sleeps, bounded in memory, and the
board feeds it on every wake with a fake clock (no sleeping)."""

from __future__ import annotations

import pytest

from wakeproxy.model.apps import AppPolicy, Endpoint
from wakeproxy.model.board import ReadinessBoard
from wakeproxy.model.clock import FakeClock
from wakeproxy.model.sleeplog import MAX_RECORDS, RETENTION, SleepLog

EP = (Endpoint("127.0.0.1", 1),)
HOUR = 3600.0


def test_asleep_between_counts_only_the_part_inside_the_window() -> None:
    log = SleepLog()
    log.add(100, 200)
    log.add(300, 400)
    assert log.asleep_between(0, 1000) == 200
    assert log.asleep_between(150, 350) == 50 + 50
    assert log.asleep_between(200, 300) == 0
    assert log.asleep_between(400, 100) == 0  # an empty window
    assert SleepLog().asleep_between(0, 1000) == 0


def test_sleeps_older_than_the_retention_are_dropped() -> None:
    log = SleepLog()
    log.add(0, 10)
    log.add(20, 30)
    log.add(RETENTION + 15, RETENTION + 20)  # the first ended more than RETENTION before
    assert len(log) == 2
    assert log.asleep_between(0, RETENTION + 100) == 10 + 5


def test_memory_is_bounded_and_the_recent_sleeps_stay_exact() -> None:
    log = SleepLog()
    # One 50 s sleep every 100 s: many more than MAX_RECORDS.
    n = MAX_RECORDS * 4
    for i in range(n):
        log.add(i * 100.0, i * 100.0 + 50)
    assert len(log) == MAX_RECORDS
    end = n * 100.0
    # The total is kept exactly, and the recent half-hour is exact.
    assert log.asleep_between(0, end) == pytest.approx(n * 50)
    assert log.asleep_between(end - 1800, end) == pytest.approx(18 * 50)
    # Deep in the merged past, a window gets its share pro rata: here about half asleep.
    assert log.asleep_between(1000, 3000) == pytest.approx(1000, rel=0.05)


def test_zero_length_sleeps_take_no_room() -> None:
    log = SleepLog()
    log.add(5, 5)
    assert len(log) == 0


def test_the_board_records_each_sleep_when_the_app_wakes() -> None:
    clock = FakeClock(start=0.0)
    board = ReadinessBoard(clock)
    state = board.put(AppPolicy(name="a", hosts=("a.test",)))
    clock.advance(2 * HOUR)  # asleep since it was added
    board.mark_waking("a")
    clock.advance(10)
    board.mark_ready("a", EP)
    clock.advance(HOUR)
    board.mark_stopping("a")
    board.mark_asleep("a")
    clock.advance(HOUR)  # asleep now, for an hour
    now = clock.monotonic()
    assert len(state.sleeps) == 1
    assert state.asleep_within(now - HOUR, now) == HOUR
    assert state.asleep_within(now - 2 * HOUR, now) == pytest.approx(HOUR)
    assert state.asleep_within(now - 3 * HOUR, now) == pytest.approx(2 * HOUR - 10)
    # Before the app was added nothing counts: a period longer than its life.
    assert state.asleep_within(now - 24 * HOUR, now) == pytest.approx(3 * HOUR)
    assert state.asleep_within(now - 24 * HOUR, now) == pytest.approx(state.total_asleep(now))


def test_a_failed_wake_counts_its_sleep_once() -> None:
    clock = FakeClock(start=0.0)
    board = ReadinessBoard(clock)
    state = board.put(AppPolicy(name="a", hosts=("a.test",)))
    clock.advance(100)
    board.mark_waking("a")
    clock.advance(5)
    board.mark_wake_failed("a", "exit 3")  # asleep again
    clock.advance(100)
    now = clock.monotonic()
    assert state.asleep_within(0, now) == pytest.approx(200)
    assert state.total_asleep(now) == pytest.approx(200)
