"""Loads apps into the readiness board and the route table.

Validates the whole set before touching anything, so a host conflict leaves the current
board and routes as they were. The route table is rebuilt whole and swapped in one step.
Never stops or starts an app.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from wakeproxy.model.apps import AppPolicy
from wakeproxy.model.board import ReadinessBoard
from wakeproxy.model.routes import Routes, RouteTable


@dataclass(frozen=True, slots=True)
class AppsDiff:
    added: tuple[str, ...]
    changed: tuple[str, ...]
    removed: tuple[str, ...]

    def __bool__(self) -> bool:
        return bool(self.added or self.changed or self.removed)


def install_apps(policies: Iterable[AppPolicy], board: ReadinessBoard, routes: Routes) -> None:
    """Put every policy on the board (new apps start asleep) and swap in their routes.

    Raises HostConflict (from RouteTable.build) when two apps claim one host.
    """
    policies = tuple(policies)
    table = RouteTable.build((p.name, p.hosts) for p in policies)
    for policy in policies:
        board.put(policy)
    routes.table = table


def replace_apps(
    policies: Iterable[AppPolicy], board: ReadinessBoard, routes: Routes,
) -> AppsDiff:
    """Make `policies` the whole set: install them and remove every other app.

    Live state (phase, endpoints) of apps that stay is kept. Raises HostConflict, having
    changed nothing, when two apps claim one host.
    """
    policies = tuple(policies)
    table = RouteTable.build((p.name, p.hosts) for p in policies)
    wanted = {p.name for p in policies}
    added, changed = [], []
    for policy in policies:
        current = board.get(policy.name)
        if current is None:
            added.append(policy.name)
        elif current.policy != policy:
            changed.append(policy.name)
        board.put(policy)
    # Routes go before the board entries: no route may name an app the board lacks.
    routes.table = table
    removed = [state.name for state in board if state.name not in wanted]
    for name in removed:
        board.remove(name)
    return AppsDiff(tuple(added), tuple(changed), tuple(removed))
