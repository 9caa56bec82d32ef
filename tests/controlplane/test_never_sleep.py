"""`idle_after: never` (production apps): accepted by the config file and the Kubernetes
annotation alike, never picked by the sweeper however long the app idles, woken without a
request whenever found asleep (unless an operator put it to sleep), and shown as `never`
and "never sleeps" by the admin API and `wakeproxy status`."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import yaml

from tests.controlplane.conftest import MakeWorld
from tests.controlplane.test_sweeper import idle_app, mark_awake, sweeper
from tests.controlplane.world import World, phase_is, until
from tests.platforms.procs import local_app, server_command
from wakeproxy.cli import main
from wakeproxy.console import format_table
from wakeproxy.controlplane.always_awake import AlwaysAwake
from wakeproxy.model.activity import ActivityLedger
from wakeproxy.model.apps import AppPolicy
from wakeproxy.model.board import Phase, ReadinessBoard
from wakeproxy.model.clock import FakeClock
from wakeproxy.obs.views import Now, app_view
from wakeproxy.platforms.kubernetes.annotations import AppSpec, parse_deployment
from wakeproxy.settings import ConfigError, parse_settings

DAY = 86400.0


def settings_of(apps: list[dict[str, object]], **top: object) -> list[AppPolicy]:
    doc = {"apps": apps, **top}
    return list(parse_settings(yaml.safe_dump(doc), "cluster.yaml").policies)


def test_the_config_file_accepts_never_per_app_and_as_the_default() -> None:
    shop, api = settings_of(
        [{"name": "shop", "hosts": ["shop.localhost"], "command": "x", "idle_after": "never"},
         {"name": "api", "hosts": ["api.localhost"], "command": "x"}],
        defaults={"idle_after": "Never"})
    assert math.isinf(shop.idle_after) and shop.never_sleeps
    assert api.never_sleeps  # from the defaults
    (web,) = settings_of(
        [{"name": "web", "hosts": ["web.localhost"], "command": "x", "idle_after": "5m"}],
        defaults={"idle_after": "never"})
    assert web.idle_after == 300.0 and not web.never_sleeps


@pytest.mark.parametrize("bad", ["nevermore", "0", "-1m", True])
def test_anything_else_is_refused_naming_never_as_an_option(bad: object) -> None:
    with pytest.raises(ConfigError) as e:
        settings_of([{"name": "shop", "hosts": ["s.localhost"], "command": "x",
                      "idle_after": bad}])
    assert e.value.problems == [
        f"cluster.yaml: apps[0].idle_after: expected a duration above zero like 30s or 5m, "
        f"or never, got {bad!r}"]


def test_check_config_accepts_never(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "cluster.yaml"
    path.write_text("apps:\n  - {name: shop, hosts: [shop.localhost], command: x, "
                    "idle_after: never}\n")
    assert main(["check-config", str(path)]) == 0
    assert "ok (1 app)" in capsys.readouterr().out


def test_the_annotation_accepts_never() -> None:
    obj = {"metadata": {"name": "shop", "namespace": "prod", "annotations": {
        "wakeproxy.io/hosts": "shop.example.com", "wakeproxy.io/port": "http",
        "wakeproxy.io/idle-after": "never"}}}
    parsed = parse_deployment(obj, AppPolicy(name="-", hosts=()))
    assert isinstance(parsed, AppSpec), parsed
    assert parsed.policy.never_sleeps


async def test_the_sweeper_never_picks_an_app_that_never_sleeps(make_world: MakeWorld) -> None:
    clock = FakeClock()
    world = await make_world(idle_app("prod", idle_after=math.inf), idle_app("staging", 60),
                             clock=clock)
    mark_awake(world, "prod")
    mark_awake(world, "staging")
    clock.advance(365 * DAY)
    assert sweeper(world).due() == ["staging"]


def test_status_shows_never() -> None:
    clock = FakeClock()
    board = ReadinessBoard(clock)
    states = [board.put(AppPolicy(name="prod", hosts=("p.localhost",), idle_after=math.inf)),
              board.put(AppPolicy(name="staging", hosts=("s.localhost",), idle_after=90.0))]
    views = [app_view(s, ActivityLedger(clock), Now(clock)) for s in states]
    assert [v["idle_after"] for v in views] == ["never", 90.0]
    table = format_table(views).splitlines()
    assert table[1].split()[-1] == "never" and table[2].split()[-1] == "1m30s"


# -- kept up: woken without a request --------------------------------------------------------


def always_awake(world: World) -> AlwaysAwake:
    return AlwaysAwake(board=world.board, wake=world.lifecycle.wake,
                       held=world.platform.held_asleep, clock=world.clock)


async def test_a_never_sleep_app_is_woken_without_a_request_and_after_its_process_died(
    make_world: MakeWorld,
) -> None:
    clock = FakeClock()
    world = await make_world(local_app("prod", server_command(), idle_after=math.inf),
                             local_app("web", server_command()), clock=clock)
    keeper = always_awake(world)
    assert keeper.tick() == ["prod"]  # start-up: every app starts asleep; web stays so
    prod = world.state("prod")
    await keeper.settled("prod")
    assert prod.phase is Phase.AWAKE and world.state("web").phase is Phase.ASLEEP
    assert keeper.tick() == []
    world.board.mark_asleep("prod")  # what the lifecycle does when its process exits
    assert keeper.tick() == ["prod"]
    await until(prod, phase_is(Phase.AWAKE))


async def test_an_operators_sleep_holds_it_asleep_until_its_next_wake(
    make_world: MakeWorld,
) -> None:
    clock = FakeClock()
    world = await make_world(local_app("prod", server_command(), idle_after=math.inf),
                             clock=clock)
    keeper = always_awake(world)
    keeper.tick()
    prod = world.state("prod")
    await keeper.settled("prod")
    await world.lifecycle.sleep("prod")  # `wakeproxy sleep prod`
    assert prod.phase is Phase.ASLEEP and world.platform.held_asleep("prod")
    clock.advance(DAY)
    assert keeper.tick() == []
    await world.lifecycle.wake("prod")  # a request, or `wakeproxy wake prod`
    assert not world.platform.held_asleep("prod")
    world.board.mark_asleep("prod")  # its process died later: kept up again
    assert keeper.tick() == ["prod"]
    await until(prod, phase_is(Phase.AWAKE))


async def test_a_failing_wake_is_retried_after_a_growing_back_off(
    make_world: MakeWorld,
) -> None:
    clock = FakeClock()
    world = await make_world(local_app("prod", "exit 3", idle_after=math.inf), clock=clock)
    keeper = always_awake(world)
    assert keeper.tick() == ["prod"]
    waits = []
    for _ in range(3):
        await keeper.settled("prod")
        assert world.state("prod").failure is not None
        waited = 0.0
        while keeper.tick() == []:
            clock.advance(1.0)
            waited += 1.0
        waits.append(waited)
    assert waits == [5.0, 10.0, 20.0]


async def test_a_replica_that_lost_the_lead_keeps_no_back_off_of_an_app_removed_meanwhile(
    make_world: MakeWorld,
) -> None:
    """A review app deleted and made again under its name is kept up at once by the
    leader, not after the back-off its predecessor's failed wakes earned."""
    clock = FakeClock()
    world = await make_world(local_app("prod", "exit 3", idle_after=math.inf), clock=clock)
    leading = [True]
    keeper = AlwaysAwake(board=world.board, wake=world.lifecycle.wake,
                         held=world.platform.held_asleep, clock=clock,
                         leader=lambda: leading[0])
    assert keeper.tick() == ["prod"]
    await keeper.settled("prod")
    assert keeper.tick() == []  # backing off
    leading[0] = False
    assert keeper.tick() == []
    policy = world.state("prod").policy
    world.board.remove("prod")  # removed while another replica leads, and made again
    world.board.put(policy)
    leading[0] = True
    assert keeper.tick() == ["prod"]
    await keeper.settled("prod")


async def test_only_the_leader_keeps_apps_up_and_not_before_a_release_is_deployed(
    make_world: MakeWorld,
) -> None:
    clock = FakeClock()
    world = await make_world(local_app("prod", server_command(), idle_after=math.inf),
                             clock=clock)
    follower = AlwaysAwake(board=world.board, wake=world.lifecycle.wake,
                           held=world.platform.held_asleep, clock=clock, leader=lambda: False)
    assert follower.tick() == []
    world.board.put(dataclasses.replace(world.state("prod").policy, unavailable="no release"))
    assert always_awake(world).tick() == []
