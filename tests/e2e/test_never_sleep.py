"""`idle_after: never` on a running wakeproxy: the app is up before its first request and
after its process died, stays awake while an app beside it is swept, and `wakeproxy
status` says `never`; `wakeproxy sleep` keeps it asleep until its next request."""

from __future__ import annotations

import os
import signal
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


def status_lines(wp: Wakeproxy) -> list[str]:
    return subprocess.run([sys.executable, "-m", "wakeproxy", "status", "--admin", wp.admin],
                          capture_output=True, text=True, timeout=30, check=True
                          ).stdout.splitlines()


def test_a_never_sleep_app_is_up_before_its_first_request_and_an_operator_is_not_fought(
        start_wakeproxy: Callable[..., Wakeproxy]) -> None:
    wp = start_wakeproxy({"apps": [
        {"name": "prod", "hosts": ["prod.localhost"], "command": echo_command("prod"),
         "idle_after": "never"},
        {"name": "web", "hosts": ["web.localhost"], "command": echo_command("web")},
    ]})
    wp.wait_state("prod", "awake")  # no request sent
    assert wp.app_state("web") == "asleep"
    assert "prod: never sleeps" in status_lines(wp)
    done = subprocess.run([sys.executable, "-m", "wakeproxy", "sleep", "prod", "--admin",
                           wp.admin], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    time.sleep(1.5)  # over a second of keeper ticks (every 100ms here)
    assert wp.app_state("prod") == "asleep"
    assert ("prod: never sleeps, but put to sleep with wakeproxy sleep: asleep until a request "
            "or wakeproxy wake wakes it") in status_lines(wp)
    assert get(wp, "prod.localhost") == 200  # its next request wakes it, and it stays up
    assert "prod: never sleeps" in status_lines(wp)
    started = [e for e in wp.events("app process started") if e.get("app") == "prod"]
    os.kill(int(started[-1]["pid"]), signal.SIGKILL)  # it crashes: up again, unasked
    wp.wait_log(lambda e: e.get("event") == "app process started" and e.get("app") == "prod"
                and e.get("pid") != started[-1]["pid"])
    wp.wait_state("prod", "awake")
