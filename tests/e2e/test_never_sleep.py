"""`idle_after: never` on a running wakeproxy: the app stays awake while an app beside it
is swept, and `wakeproxy status` says `never`."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable

from tests.e2e.harness import Wakeproxy, echo_command


def get(wp: Wakeproxy, host: str) -> int:
    req = urllib.request.Request(wp.url + "/", headers={"Host": host})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(req, timeout=20) as resp:
        return int(resp.status)


def test_an_app_that_never_sleeps_outlives_the_sweeps(
        start_wakeproxy: Callable[..., Wakeproxy]) -> None:
    wp = start_wakeproxy({"apps": [
        {"name": "prod", "hosts": ["prod.localhost"], "command": echo_command("prod"),
         "idle_after": "never"},
        {"name": "staging", "hosts": ["staging.localhost"], "command": echo_command("staging"),
         "idle_after": "300ms"},
    ]})
    assert get(wp, "prod.localhost") == 200 and get(wp, "staging.localhost") == 200
    wp.wait_state("staging", "asleep")
    time.sleep(1.0)  # ten more sweeps (sweep_interval 100ms)
    assert wp.app_state("prod") == "awake"
    status = subprocess.run([sys.executable, "-m", "wakeproxy", "status", "--admin", wp.admin],
                            capture_output=True, text=True, timeout=30, check=True).stdout
    [prod] = [line.split() for line in status.splitlines() if line.startswith("prod ")]
    assert prod[1] == "awake" and prod[-1] == "never"
