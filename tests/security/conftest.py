"""Attacks tried against a real `wakeproxy serve` on 127.0.0.1 with real git repositories.

Reuses the end-to-end harness (the process, its log lines, stopped by PID at teardown).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import Wakeproxy


@pytest.fixture
def start_wakeproxy(tmp_path: Path) -> Iterator[Callable[..., Wakeproxy]]:
    started: list[Wakeproxy] = []

    def start(config: dict[str, Any]) -> Wakeproxy:
        wp = Wakeproxy(tmp_path, config).start()
        started.append(wp)
        return wp

    yield start
    for wp in started:
        wp.terminate()
