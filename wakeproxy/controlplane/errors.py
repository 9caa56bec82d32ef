"""Errors of the control plane's commands, as types the admin API maps to statuses.

They also derive from the builtin a caller would expect (an unknown app is a
LookupError, a wake that ran out of time is a TimeoutError), and `str()` is the reason
alone, ready to show. Never raised on the data plane's hot path: the data plane learns
outcomes from the board.
"""

from __future__ import annotations


class ControlError(Exception):
    """Base of every error a control-plane command raises on purpose."""


class UnknownApp(ControlError, LookupError):
    def __init__(self, app: str) -> None:
        super().__init__(f"no app named {app!r}")
        self.app = app


class WakeError(ControlError):
    """The wake ran and failed; `reason` says why (also on the board as a WakeFailure)."""

    def __init__(self, app: str, reason: str) -> None:
        super().__init__(reason)
        self.app = app
        self.reason = reason


class WakeTimedOut(WakeError, TimeoutError):
    """The app did not become ready within its wake_timeout."""


class ShuttingDown(ControlError):
    def __init__(self) -> None:
        super().__init__("wakeproxy is shutting down")
