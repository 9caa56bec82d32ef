from typing import Any

from tests.soak.support import print_figures, start_lean

__all__ = ["start_lean"]


def pytest_terminal_summary(terminalreporter: Any) -> None:
    print_figures(terminalreporter, "soak")
