import asyncio
from collections.abc import Callable
from typing import Any

from tests.dataplane.conftest import (
    make_proxy,
    proxy,
    raw_upstream,
    upstream,
)
from tests.dataplane.conftest import (
    pytest_asyncio_loop_factories as _dataplane_loops,
)
from tests.k8s_emulator.fixtures import make_k8s_emulator
from tests.soak.support import print_figures, start_lean

__all__ = [
    "make_k8s_emulator",
    "make_proxy",
    "proxy",
    "raw_upstream",
    "start_lean",
    "upstream",
]


def pytest_terminal_summary(terminalreporter: Any) -> None:
    print_figures(terminalreporter, "faults")


def pytest_asyncio_loop_factories(config: Any, item: Any) -> dict[str, Callable[[], Any]]:
    # The Kubernetes API emulator runs in the test's loop and needs the standard one.
    if item.path.name == "test_k8s_faults.py":
        return {"asyncio": asyncio.new_event_loop}
    return _dataplane_loops(config, item)
