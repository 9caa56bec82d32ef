"""Scheduled wakes on a running wakeproxy: an app inside a window of its awake_schedule is
woken with no request at all (and stays awake past its idle_after), one outside stays
asleep, and `wakeproxy status` says when each is next woken."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable

from tests.e2e.harness import Wakeproxy, echo_command


def test_an_app_in_its_window_is_woken_before_anyone_asks(
        start_wakeproxy: Callable[..., Wakeproxy]) -> None:
    wp = start_wakeproxy({"apps": [
        {"name": "staging", "hosts": ["staging.localhost"], "command": echo_command("staging"),
         "idle_after": "300ms",
         "awake_schedule": {"time_zone": "UTC",
                            "windows": [{"cron": "* * * * *", "for": "10m"}]}},
        {"name": "nightly", "hosts": ["nightly.localhost"], "command": echo_command("nightly"),
         "awake_schedule": {"time_zone": "Europe/Berlin",
                            "windows": [{"cron": "0 3 29 2 *", "for": "1h"}]}},
    ]})
    wp.wait_state("staging", "awake")  # no request was sent
    time.sleep(1.0)  # over three times its idle_after, ten sweeps
    assert wp.app_state("staging") == "awake"
    status = subprocess.run([sys.executable, "-m", "wakeproxy", "status", "--admin", wp.admin],
                            capture_output=True, text=True, timeout=30, check=True).stdout
    lines = status.splitlines()
    [staging] = [line for line in lines if line.startswith("staging: ")]
    assert "kept awake until" in staging and "UTC; next scheduled wake" in staging
    [nightly] = [line for line in lines if line.startswith("nightly: ")]
    assert nightly.startswith("nightly: next scheduled wake ") and "-02-29 03:00 CET" in nightly
    assert wp.app_state("nightly") == "asleep"
