"""The savings report over a period, with a fake clock: what it covers, what each app saved,
money when a cost is set, and the admin endpoint that serves it."""

from __future__ import annotations

import pytest

from tests.obs.conftest import MakeAdmin
from tests.obs.world import START, WALL_OFFSET, World, make_world
from wakeproxy.model.apps import AppPolicy, Endpoint
from wakeproxy.obs.savings import BadPeriod, parse_period, savings_report
from wakeproxy.obs.views import iso_utc
from wakeproxy.settings import Savings

HOUR = 3600.0
EP = (Endpoint("127.0.0.1", 40000),)


def by_name(report: dict[str, object]) -> dict[str, dict[str, object]]:
    apps = report["apps"]
    assert isinstance(apps, list)
    return {a["name"]: a for a in apps}


def test_a_period_longer_than_uptime_covers_only_the_uptime() -> None:
    w = make_world()  # 130 s old: hello and docs asleep throughout, api asleep 120 s
    report = savings_report(w.board, w.clock, 24 * HOUR, Savings())
    assert report["period_seconds"] == 24 * HOUR
    assert report["covered_seconds"] == pytest.approx(130)
    assert report["from"] == iso_utc(WALL_OFFSET + START)
    assert report["to"] == iso_utc(WALL_OFFSET + START + 130)
    apps = by_name(report)
    assert apps["hello"]["asleep_seconds"] == pytest.approx(130)
    assert apps["hello"]["asleep_ratio"] == 1.0
    assert apps["api"]["asleep_seconds"] == pytest.approx(120)
    assert apps["api"]["state"] == "awake"
    assert apps["docs"]["asleep_seconds"] == pytest.approx(130)  # its wake failed at once
    assert [a["name"] for a in report["apps"]] == ["docs", "hello", "api"]  # most saved first
    total = report["total"]
    assert total["apps"] == 3
    assert total["asleep_seconds"] == pytest.approx(380)
    assert total["replica_hours_saved"] == pytest.approx(380 / HOUR, abs=1e-4)
    assert total["cost_saved"] is None and report["currency"] is None


def test_a_period_counts_only_the_sleep_inside_it() -> None:
    w = World()
    w.board.put(AppPolicy("shop", ("shop.localhost",)))
    w.board.put(AppPolicy("blog", ("blog.localhost",)))
    c, b = w.clock, w.board
    c.advance(10 * HOUR)  # both asleep 10 h
    b.mark_waking("shop")
    b.mark_ready("shop", EP)
    c.advance(2 * HOUR)  # shop awake 2 h
    b.mark_stopping("shop")
    b.mark_asleep("shop")
    c.advance(1 * HOUR)  # shop asleep again for the last hour
    apps = by_name(savings_report(b, c, 4 * HOUR, Savings()))
    assert apps["shop"]["covered_seconds"] == 4 * HOUR
    assert apps["shop"]["asleep_seconds"] == pytest.approx(2 * HOUR)  # 1 h before, 1 h after
    assert apps["shop"]["asleep_ratio"] == 0.5
    assert apps["blog"]["asleep_seconds"] == pytest.approx(4 * HOUR)
    apps = by_name(savings_report(b, c, 90 * 60, Savings()))
    assert apps["shop"]["asleep_seconds"] == pytest.approx(HOUR)


def test_an_app_added_later_is_covered_from_then_on() -> None:
    w = World()
    w.board.put(AppPolicy("old", ("old.localhost",)))
    w.clock.advance(5 * HOUR)
    w.board.put(AppPolicy("new", ("new.localhost",)))
    w.clock.advance(HOUR)
    report = savings_report(w.board, w.clock, 24 * HOUR, Savings())
    assert report["covered_seconds"] == pytest.approx(6 * HOUR)
    apps = by_name(report)
    assert apps["new"]["covered_seconds"] == pytest.approx(HOUR)
    assert apps["new"]["asleep_seconds"] == pytest.approx(HOUR)
    assert apps["new"]["asleep_ratio"] == 1.0


def test_replicas_and_cost_turn_sleep_into_replica_hours_and_money() -> None:
    w = World()
    w.board.put(AppPolicy("big", ("big.localhost",), awake_replicas=3))
    w.board.put(AppPolicy("small", ("small.localhost",)))
    w.clock.advance(2 * HOUR)
    report = savings_report(w.board, w.clock, 24 * HOUR, Savings(0.25, "EUR"))
    apps = by_name(report)
    assert apps["big"]["replica_hours_saved"] == pytest.approx(6)
    assert apps["big"]["cost_saved"] == pytest.approx(1.5)
    assert apps["small"]["replica_hours_saved"] == pytest.approx(2)
    assert report["total"]["replica_hours_saved"] == pytest.approx(8)
    assert report["total"]["cost_saved"] == pytest.approx(2)
    assert (report["cost_per_replica_hour"], report["currency"]) == (0.25, "EUR")


@pytest.mark.parametrize(("text", "seconds"), [
    (None, 24 * HOUR), ("24h", 24 * HOUR), ("90m", 5400.0), ("3600", 3600.0),
    ("168h", 168 * HOUR),
])
def test_parse_period(text: str | None, seconds: float) -> None:
    assert parse_period(text) == seconds


@pytest.mark.parametrize("text", ["", "yesterday", "0", "500ms", "169h", "-1h"])
def test_parse_period_refuses(text: str) -> None:
    with pytest.raises(BadPeriod, match="period: expected a duration from 1s to 168h"):
        parse_period(text)


async def test_admin_serves_the_report(make_admin: MakeAdmin) -> None:
    admin = await make_admin(savings=Savings(1.0, "USD"))
    status, report = await admin.json("GET", "/api/v1/savings?period=1m")
    assert status == 200
    assert report["period_seconds"] == 60
    assert report["covered_seconds"] == 60
    assert by_name(report)["hello"]["asleep_seconds"] == pytest.approx(60)
    # api slept until 120 s and has been awake (or waking) since: 50 s of the last minute.
    assert by_name(report)["api"]["asleep_seconds"] == pytest.approx(50)
    assert report["currency"] == "USD"
    status, report = await admin.json("GET", "/api/v1/savings")
    assert status == 200 and report["period_seconds"] == 24 * HOUR


async def test_admin_explains_a_bad_period(make_admin: MakeAdmin) -> None:
    admin = await make_admin()
    status, body = await admin.json("GET", "/api/v1/savings?period=forever")
    assert status == 400
    assert body == {"error": "period: expected a duration from 1s to 168h like 24h or 90m, "
                             "got 'forever'"}
