"""Attacks tried against a real `wakeproxy serve` on 127.0.0.1 with real git repositories:
the end-to-end harness's fixture (the process, its log lines, stopped by PID)."""

from __future__ import annotations

from tests.e2e.conftest import start_wakeproxy

__all__ = ["start_wakeproxy"]
