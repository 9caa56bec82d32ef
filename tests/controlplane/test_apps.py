"""Installing the configured apps into the board and the route table."""

from __future__ import annotations

import pytest

from wakeproxy.controlplane.apps import install_apps
from wakeproxy.model.apps import AppPolicy, Endpoint
from wakeproxy.model.board import Phase, ReadinessBoard
from wakeproxy.model.clock import FakeClock
from wakeproxy.model.routes import HostConflict, Routes


def test_apps_start_asleep_and_their_hosts_route_to_them() -> None:
    board, routes = ReadinessBoard(FakeClock()), Routes()
    install_apps([
        AppPolicy(name="hello", hosts=("hello.localhost", "*.hello.localhost")),
        AppPolicy(name="api", hosts=("api.example.com",), idle_after=30),
    ], board, routes)
    assert sorted(s.name for s in board) == ["api", "hello"]
    assert all(s.phase is Phase.ASLEEP for s in board)
    assert routes.table.resolve("pr-1.hello.localhost") == "hello"
    assert routes.table.resolve("api.example.com") == "api"
    api = board.get("api")
    assert api is not None and api.policy.idle_after == 30


def test_a_host_conflict_changes_nothing() -> None:
    board, routes = ReadinessBoard(FakeClock()), Routes()
    install_apps([AppPolicy(name="a", hosts=("a.example.com",))], board, routes)
    before = routes.table
    with pytest.raises(HostConflict):
        install_apps([
            AppPolicy(name="b", hosts=("same.example.com",)),
            AppPolicy(name="c", hosts=("same.example.com",)),
        ], board, routes)
    assert routes.table is before
    assert [s.name for s in board] == ["a"]


def test_reinstalling_keeps_live_state_and_takes_the_new_policy() -> None:
    board, routes = ReadinessBoard(FakeClock()), Routes()
    install_apps([AppPolicy(name="a", hosts=("a.example.com",))], board, routes)
    board.mark_waking("a")
    board.mark_ready("a", (Endpoint("127.0.0.1", 9),))
    install_apps([AppPolicy(name="a", hosts=("a.example.org",), idle_after=5)], board, routes)
    state = board.get("a")
    assert state is not None and state.phase is Phase.AWAKE and state.policy.idle_after == 5
    assert routes.table.resolve("a.example.org") == "a"
    assert routes.table.resolve("a.example.com") is None
