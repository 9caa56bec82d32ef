from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import Nginx, Wakeproxy, pids_alive


@pytest.fixture
def start_wakeproxy(tmp_path: Path) -> Iterator[Callable[..., Wakeproxy]]:
    """Start `wakeproxy serve` with a config; stopped (SIGTERM) and checked at teardown."""
    started: list[Wakeproxy] = []

    def start(config: dict[str, Any]) -> Wakeproxy:
        wp = Wakeproxy(tmp_path, config).start()
        started.append(wp)
        return wp

    yield start
    for wp in started:
        wp.terminate()


@pytest.fixture
def start_ingress(tmp_path: Path) -> Iterator[Callable[[Wakeproxy], Nginx]]:
    ingresses: list[Nginx] = []

    def start(wp: Wakeproxy) -> Nginx:
        ng = Nginx(tmp_path, wp.port).start()
        ingresses.append(ng)
        return ng

    yield start
    for ng in ingresses:
        ng.stop()


def started_pids(start_log: Path) -> list[int]:
    if not start_log.exists():
        return []
    return [int(x) for x in start_log.read_text().split()]


def assert_no_app_process(start_log: Path) -> None:
    assert pids_alive(started_pids(start_log)) == [], "an app process outlived wakeproxy"
