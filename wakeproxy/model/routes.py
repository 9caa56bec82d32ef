"""Host → app routing: an immutable table swapped whole by the control plane.

Readers (the data plane) call `RouteTable.resolve` per request; it is O(labels in the
host), independent of how many apps are configured.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from wakeproxy.model.changes import Changes


class HostConflict(ValueError):
    """Two apps claim the same host or wildcard."""


def normalize_host(raw: str) -> str:
    """`Host` header value → routing key: port stripped, case folded, trailing dot dropped.

    Bracketed IPv6 literals keep their brackets and lose only the port.
    """
    host = raw.strip()
    if host.startswith("["):
        end = host.find("]")
        host = host[: end + 1] if end != -1 else host
    else:
        colon = host.rfind(":")
        if colon != -1:
            host = host[:colon]
    host = host.lower()
    if host.endswith("."):
        host = host[:-1]
    return host


def normalize_pattern(pattern: str) -> str:
    """A configured host or `*.domain` pattern → its canonical form (no port allowed)."""
    p = pattern.strip().lower()
    if p.endswith("."):
        p = p[:-1]
    return p


class RouteTable:
    """Exact hosts first, then the most specific `*.suffix` wildcard (any depth)."""

    __slots__ = ("_exact", "_wildcard")

    def __init__(self, exact: Mapping[str, str], wildcard: Mapping[str, str]) -> None:
        self._exact = dict(exact)
        self._wildcard = dict(wildcard)  # suffix without "*." → app

    @classmethod
    def build(cls, apps: Iterable[tuple[str, Iterable[str]]]) -> RouteTable:
        """From (app name, host patterns) pairs; raises HostConflict on a shared pattern."""
        exact: dict[str, str] = {}
        wildcard: dict[str, str] = {}
        for app, patterns in apps:
            for pattern in patterns:
                p = normalize_pattern(pattern)
                target, key = (wildcard, p[2:]) if p.startswith("*.") else (exact, p)
                owner = target.get(key)
                if owner is not None and owner != app:
                    raise HostConflict(f"host {p!r} is claimed by both {owner!r} and {app!r}")
                target[key] = app
        return cls(exact, wildcard)

    @classmethod
    def empty(cls) -> RouteTable:
        return cls({}, {})

    def resolve(self, host: str) -> str | None:
        """The app serving an already-normalized host, or None."""
        app = self._exact.get(host)
        if app is not None:
            return app
        wildcard = self._wildcard
        if not wildcard:
            return None
        dot = host.find(".")
        while dot != -1:
            suffix = host[dot + 1 :]
            app = wildcard.get(suffix)
            if app is not None:
                return app
            dot = host.find(".", dot + 1)
        return None

    def __len__(self) -> int:
        return len(self._exact) + len(self._wildcard)


class Routes:
    """Holder of the current table. One writer (the control plane) swaps `table` whole;
    readers caching what it resolves to are told (`changes`)."""

    __slots__ = ("_table", "changes")

    def __init__(self, table: RouteTable | None = None) -> None:
        self._table = table if table is not None else RouteTable.empty()
        self.changes = Changes()

    @property
    def table(self) -> RouteTable:
        return self._table

    @table.setter
    def table(self, table: RouteTable) -> None:
        self._table = table
        self.changes.changed()
