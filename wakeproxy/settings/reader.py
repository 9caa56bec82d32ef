"""Walking a parsed config document while collecting every problem, so all are reported at once.

Owns ConfigError and the Reader. It never reads files and never knows which keys exist:
the section modules say that.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

T = TypeVar("T")


class ConfigError(Exception):
    """One or more problems in a config file; `str()` lists them one per line."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class Reader:
    """Collects problems while walking the YAML tree, so all are reported at once."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[str] = []

    def fail(self, path: str, expected: str, got: object = ...) -> None:
        tail = "" if got is ... else f", got {got!r}"
        self.problems.append(f"{self.source}: {path}: expected {expected}{tail}")

    def mapping(self, value: object, path: str) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.fail(path, "a mapping of keys to values", value)
            return {}
        return value

    def unknown_keys(self, m: Mapping[str, Any], allowed: set[str], path: str) -> None:
        for key in m:
            if key not in allowed:
                where = f"{path}.{key}" if path else str(key)
                self.fail(where, "one of: " + ", ".join(sorted(allowed)), f"unknown key {key}")

    def get(
        self, m: Mapping[str, Any], key: str, path: str, conv: Callable[[object], T],
        expected: str, default: T,
    ) -> T:
        if key not in m or m[key] is None:
            return default
        try:
            return conv(m[key])
        except (ValueError, TypeError):
            self.fail(f"{path}{key}", expected, m[key])
            return default
