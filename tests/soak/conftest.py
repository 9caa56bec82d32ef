from typing import Any

from tests.k8s_emulator.fixtures import make_k8s_emulator
from tests.soak.support import print_figures, start_lean

__all__ = ["make_k8s_emulator", "start_lean"]


def pytest_terminal_summary(terminalreporter: Any) -> None:
    print_figures(terminalreporter, "soak")
