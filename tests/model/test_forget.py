"""A removed app's records go from each owner that keeps them by name (request stats,
wake stats, the activity ledger): nothing of it is left to export, a record still held by
a request in flight can be written without bringing it back, and an app of the same name
added later counts from zero. Other apps' records are untouched."""

from __future__ import annotations

from tests.model.test_changes import Reader
from wakeproxy.model.activity import ActivityLedger
from wakeproxy.model.clock import FakeClock
from wakeproxy.model.stats import RequestStats, WakeStats


def test_request_stats_forget_an_app_and_a_held_record_stays_detached() -> None:
    stats = RequestStats()
    stats.record("shop", 200, 0.01)
    stats.record("blog", 500, 0.02)
    held = stats.app("shop")  # what a request in flight holds (its route's record)
    held.held += 1
    stats.forget("shop")
    assert list(stats.apps) == ["blog"]
    assert stats.apps["blog"].by_code == {500: 1}
    held.held -= 1  # the request ends after the removal: counted on the orphan
    held.by_code[200] += 1
    assert "shop" not in stats.apps
    stats.record("shop", 404, 0.01)  # an app of that name again: from zero
    assert stats.apps["shop"].by_code == {404: 1} and stats.apps["shop"].held == 0
    stats.forget("nothing")  # an app never seen: nothing to do


def test_wake_stats_forget_every_result_duration_and_sleep_of_the_app() -> None:
    stats = WakeStats()
    for result in ("ready", "failed", "timeout", "not_deployed"):
        stats.wake_finished("shop", result, 1.0)
    stats.slept("shop")
    stats.wake_finished("blog", "ready", 2.0)
    stats.slept("blog")
    stats.forget("shop")
    assert stats.wakes == {("blog", "ready"): 1}
    assert list(stats.wake_duration) == ["blog"]
    assert stats.sleeps == {"blog": 1}
    stats.wake_finished("shop", "ready", 0.5)
    assert stats.wakes[("shop", "ready")] == 1
    assert stats.wake_duration["shop"].counts[-1] == 0 and stats.wake_duration["shop"].sum == 0.5


def test_the_ledger_forgets_an_app_and_tells_the_readers_that_cache_its_record() -> None:
    clock = FakeClock()
    ledger = ActivityLedger(clock)
    reader = Reader()
    ledger.changes.watch(reader.changed)
    held = ledger.begin("shop")  # a request in flight holds the record
    ledger.tunnel_opened("shop")
    ledger.begin("blog")
    ledger.forget("shop")
    assert ledger.peek("shop") is None and reader.told == 1
    assert ledger.peek("blog") is not None
    held.in_flight -= 1  # it ends on the orphan record, as the data plane does
    held.tunnel_closed(clock.monotonic())
    assert ledger.peek("shop") is None
    ledger.forget("shop")  # nothing left: no reader is troubled
    assert reader.told == 1
    again = ledger.get("shop")
    assert (again.in_flight, again.tunnels, again.requests, again.last_access) == (
        0, 0, 0, None)
