"""Scheduled wakes on a fake clock: a staging app kept awake during its windows (weekdays
08:00-20:00 in a time zone, or a cron expression plus a length), woken at the window's
start before anyone asks, never swept inside a window and swept by `idle_after` outside
it; `wakeproxy status` shows the next scheduled wake. Windows are reckoned in the zone's
local time, daylight-saving changes included."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import yaml

from tests.controlplane.conftest import MakeWorld
from tests.controlplane.world import phase_is, until
from tests.platforms.procs import local_app, server_command
from wakeproxy.console import format_table
from wakeproxy.controlplane.schedule import ScheduledWakes, plan
from wakeproxy.controlplane.sweeper import Sweeper
from wakeproxy.model.activity import ActivityLedger
from wakeproxy.model.apps import AppPolicy, AwakeSchedule, AwakeWindow
from wakeproxy.model.board import Phase, ReadinessBoard
from wakeproxy.model.clock import FakeClock
from wakeproxy.obs.views import Now, app_view
from wakeproxy.platforms.kubernetes.annotations import AppSpec, parse_deployment
from wakeproxy.settings import ConfigError, parse_settings

BERLIN = ZoneInfo("Europe/Berlin")
WORKING_DAY = AwakeSchedule("Europe/Berlin", (AwakeWindow("0 8 * * mon-fri", 12 * 3600.0),))


def at(*when: int, tz: ZoneInfo = BERLIN) -> float:
    return datetime(*when, tzinfo=tz).timestamp()  # type: ignore[misc]


def clock_at(wall: float) -> FakeClock:
    return FakeClock(start=1000.0, wall_offset=wall - 1000.0)


# -- the config file and the annotation -----------------------------------------------------


def schedule_of(schedule: object) -> AwakeSchedule | None:
    doc = {"apps": [{"name": "shop", "hosts": ["shop.localhost"], "command": "x",
                     "awake_schedule": schedule}]}
    (policy,) = parse_settings(yaml.safe_dump(doc), "cluster.yaml").policies
    return policy.awake_schedule


def test_both_forms_of_window_are_read() -> None:
    s = schedule_of({"time_zone": "Europe/Berlin", "windows": [
        {"days": "mon-fri", "from": "08:00", "to": "20:00"},
        {"days": "weekdays", "from": "22:30", "to": "06:00"},  # past midnight
        {"cron": "0 6 * * sat", "for": "2h"},
    ]})
    assert s == AwakeSchedule("Europe/Berlin", (
        AwakeWindow("0 8 * * mon-fri", 12 * 3600.0),
        AwakeWindow("30 22 * * mon-fri", 7.5 * 3600),
        AwakeWindow("0 6 * * sat", 2 * 3600.0)))
    assert schedule_of({"windows": [{"cron": "*/30 * * * *", "for": "5m"}]}) == \
        AwakeSchedule("UTC", (AwakeWindow("*/30 * * * *", 300.0),))


@pytest.mark.parametrize("bad", [
    {"time_zone": "Mars/Olympus", "windows": [{"cron": "0 8 * * *", "for": "1h"}]},
    {"windows": [{"cron": "0 25 * * *", "for": "1h"}]},  # no hour 25
    {"windows": [{"cron": "0 8 * *", "for": "1h"}]},  # four fields
    {"windows": [{"cron": "0 8 * * *"}]},  # no length
    {"windows": [{"days": "mon-fri", "from": 480, "to": "20:00"}]},  # unquoted 08:00
    {"windows": [{"days": "someday", "from": "08:00", "to": "20:00"}]},
    {"windows": []},
    "weekdays",
])
def test_a_bad_schedule_is_refused_with_an_example(bad: object) -> None:
    with pytest.raises(ConfigError) as e:
        schedule_of(bad)
    [problem] = e.value.problems
    assert problem.startswith("cluster.yaml: apps[0].awake_schedule: expected an awake "
                              "schedule like {time_zone: Europe/Berlin, windows: [")


def test_the_annotation_takes_the_same_schedule_in_yaml_flow_style() -> None:
    obj = {"metadata": {"name": "shop", "namespace": "staging", "annotations": {
        "wakeproxy.io/hosts": "shop.staging.example.com", "wakeproxy.io/port": "http",
        "wakeproxy.io/awake-schedule":
            '{time_zone: Europe/Berlin, windows: [{days: mon-fri, from: "08:00", to: "20:00"}]}',
    }}}
    parsed = parse_deployment(obj, AppPolicy(name="-", hosts=()))
    assert isinstance(parsed, AppSpec), parsed
    assert parsed.policy.awake_schedule == WORKING_DAY


# -- the windows ------------------------------------------------------------------------------


def test_a_working_day_window_in_its_time_zone() -> None:
    before = plan(WORKING_DAY, at(2026, 12, 7, 7, 59))  # a Monday
    assert before.window_start is None and before.next_wake == at(2026, 12, 7, 8, 0)
    opened = plan(WORKING_DAY, at(2026, 12, 7, 8, 0))
    assert (opened.window_start, opened.awake_until) == (at(2026, 12, 7, 8), at(2026, 12, 7, 20))
    assert opened.next_wake == at(2026, 12, 8, 8, 0)
    friday_night = plan(WORKING_DAY, at(2026, 12, 11, 20, 0))
    assert friday_night.window_start is None
    assert friday_night.next_wake == at(2026, 12, 14, 8, 0)  # Monday, not Saturday


def test_windows_follow_daylight_saving_time() -> None:
    # Europe/Berlin moves to summer time on Sunday 29 March 2026: 08:00 is then 06:00 UTC.
    friday = plan(WORKING_DAY, at(2026, 3, 27, 9, 0)).awake_until
    monday = plan(WORKING_DAY, at(2026, 3, 28, 12, 0)).next_wake
    utc = ZoneInfo("UTC")
    assert friday == at(2026, 3, 27, 19, 0, tz=utc)
    assert monday == at(2026, 3, 30, 6, 0, tz=utc)


# -- waking and sweeping ----------------------------------------------------------------------


async def test_woken_at_the_windows_start_kept_inside_and_swept_outside(
    make_world: MakeWorld,
) -> None:
    clock = clock_at(at(2026, 12, 7, 7, 59))  # Monday, a minute before the window
    world = await make_world(local_app("staging", server_command(), idle_after=60.0,
                                       awake_schedule=WORKING_DAY), clock=clock)
    wakes = ScheduledWakes(board=world.board, wake=world.lifecycle.wake, clock=clock)
    sweeps = Sweeper(board=world.board, ledger=world.ledger, lifecycle=world.lifecycle,
                     clock=clock, interval=1.0, kept_awake=wakes.kept_awake)
    state = world.state("staging")
    assert wakes.tick() == []
    clock.advance(60)  # 08:00: nobody asked, it is woken
    assert wakes.tick() == ["staging"]
    await until(state, phase_is(Phase.AWAKE))
    assert wakes.tick() == []  # once per window
    clock.advance(11 * 3600)  # 19:00, no request all day: kept awake
    wakes.tick()
    assert sweeps.due() == []
    clock.advance(3600)  # 20:00: the window closed, and it has been idle for hours
    wakes.tick()
    assert sweeps.due() == ["staging"]
    await sweeps.tick()
    assert state.phase is Phase.ASLEEP
    clock.advance(12 * 3600)  # Tuesday 08:00: woken again
    assert wakes.tick() == ["staging"]
    await until(state, phase_is(Phase.AWAKE))


async def test_a_follower_replica_does_not_wake(make_world: MakeWorld) -> None:
    clock = clock_at(at(2026, 12, 7, 9, 0))  # inside the window already
    world = await make_world(local_app("staging", server_command(),
                                       awake_schedule=WORKING_DAY), clock=clock)
    follower = ScheduledWakes(board=world.board, wake=world.lifecycle.wake, clock=clock,
                              leader=lambda: False)
    assert follower.tick() == []
    assert follower.kept_awake("staging")
    leader = ScheduledWakes(board=world.board, wake=world.lifecycle.wake, clock=clock)
    assert leader.tick() == ["staging"]  # start-up inside a window wakes it
    await until(world.state("staging"), phase_is(Phase.AWAKE))


def test_status_shows_the_next_scheduled_wake() -> None:
    clock = clock_at(at(2026, 12, 11, 21, 0))  # Friday night
    board = ReadinessBoard(clock)
    state = board.put(AppPolicy(name="staging", hosts=("s.localhost",),
                                awake_schedule=WORKING_DAY))
    view = app_view(state, ActivityLedger(clock), Now(clock))
    assert view["schedule"] == {"time_zone": "Europe/Berlin",
                                "next_wake": "2026-12-14T07:00:00.000Z", "awake_until": None}
    assert "staging: next scheduled wake Mon 2026-12-14 08:00 CET" in format_table([view])
    clock.advance(2.5 * 86400)  # Monday 09:00
    view = app_view(state, ActivityLedger(clock), Now(clock))
    assert ("staging: kept awake until Mon 2026-12-14 20:00 CET; next scheduled wake "
            "Tue 2026-12-15 08:00 CET") in format_table([view])


def test_the_readmes_schedule_example_is_read_as_documented() -> None:
    from pathlib import Path
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    example = readme.split("awake_schedule` (on Kubernetes", 1)[1].split("```yaml\n", 1)[1]
    doc = yaml.safe_load(example.split("```", 1)[0])
    assert schedule_of(doc["awake_schedule"]) == AwakeSchedule("Europe/Berlin", (
        WORKING_DAY.windows[0], AwakeWindow("0 6 * * sat", 2 * 3600.0)))
