from typing import Any

from tests.dataplane.conftest import (
    make_proxy,
    proxy,
    pytest_asyncio_loop_factories,
    raw_upstream,
    upstream,
)
from tests.soak.support import print_figures, start_lean

__all__ = [
    "make_proxy",
    "proxy",
    "pytest_asyncio_loop_factories",
    "raw_upstream",
    "start_lean",
    "upstream",
]


def pytest_terminal_summary(terminalreporter: Any) -> None:
    print_figures(terminalreporter, "faults")
