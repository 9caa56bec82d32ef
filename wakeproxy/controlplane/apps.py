"""Loads the configured apps into the readiness board and the route table.

Validates the whole set before touching anything, so a host conflict leaves the current
board and routes as they were. Never stops or starts an app.
"""

from __future__ import annotations

from collections.abc import Iterable

from wakeproxy.model.apps import AppPolicy
from wakeproxy.model.board import ReadinessBoard
from wakeproxy.model.routes import Routes, RouteTable


def install_apps(policies: Iterable[AppPolicy], board: ReadinessBoard, routes: Routes) -> None:
    """Put every policy on the board (new apps start asleep) and swap in their routes.

    Raises HostConflict (from RouteTable.build) when two apps claim one host.
    """
    policies = tuple(policies)
    table = RouteTable.build((p.name, p.hosts) for p in policies)
    for policy in policies:
        board.put(policy)
    routes.table = table
