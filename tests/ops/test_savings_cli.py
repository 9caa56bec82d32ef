"""`wakeproxy status --savings` against a running wakeproxy, and how the report reads."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import aiohttp
import pytest

from tests.e2e.harness import echo_command
from wakeproxy.cli import format_savings


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "wakeproxy", *args], capture_output=True,
                          text=True, timeout=60)


async def test_status_savings_on_a_running_wakeproxy(start_wakeproxy):
    wp = start_wakeproxy({
        "savings": {"cost_per_replica_hour": 3.6, "currency": "EUR"},
        "apps": [
            {"name": "idle", "hosts": ["idle.localhost"], "command": echo_command("idle")},
            {"name": "busy", "hosts": ["busy.localhost"], "command": echo_command("busy")},
        ],
    })
    async with aiohttp.ClientSession() as s, s.get(
        wp.url + "/", headers={"Host": "busy.localhost"},
    ) as resp:
        assert resp.status == 200
    await asyncio.sleep(1.2)  # idle has now slept over a second of real time

    r = cli("status", "--savings", "--period", "1h", "--json", "--admin", wp.admin)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["period_seconds"] == 3600
    assert 1.0 <= report["covered_seconds"] < 60  # wakeproxy is younger than the period
    apps = {a["name"]: a for a in report["apps"]}
    assert set(apps) == {"idle", "busy"}
    idle, busy = apps["idle"], apps["busy"]
    assert idle["state"] == "asleep" and busy["state"] == "awake"
    assert idle["asleep_seconds"] >= 1.0
    assert idle["asleep_ratio"] > 0.9
    assert busy["asleep_seconds"] < idle["asleep_seconds"]
    assert idle["awake_replicas"] == 1
    hours = idle["asleep_seconds"] / 3600
    assert idle["replica_hours_saved"] == pytest.approx(hours, abs=1e-4)
    assert idle["cost_saved"] == pytest.approx(hours * 3.6, abs=1e-4)
    assert report["currency"] == "EUR"
    assert report["total"]["apps"] == 2
    assert report["total"]["asleep_seconds"] >= idle["asleep_seconds"]

    r = cli("status", "--savings", "--admin", wp.admin)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("Savings over the last 1d (covers ")
    assert lines[1].split() == ["APP", "STATE", "ASLEEP", "OF", "TIME", "REPLICA-HOURS",
                                "SAVED", "SAVED", "(EUR)"]
    assert lines[2].split()[:2] == ["idle", "asleep"]  # most saved first
    assert lines[-1].startswith("TOTAL")


def test_a_bad_period_is_refused_before_any_request():
    r = cli("status", "--savings", "--period", "soon", "--admin", "http://127.0.0.1:9")
    assert r.returncode == 2
    assert "expected a duration like 24h or 90m, got 'soon'" in r.stderr


def test_the_server_limit_on_the_period_is_reported(start_wakeproxy):
    wp = start_wakeproxy({"apps": []})
    r = cli("status", "--savings", "--period", "200h", "--admin", wp.admin)
    assert r.returncode == 1
    assert "period: expected a duration from 1s to 168h" in r.stderr
    assert "HTTP 400" in r.stderr


def test_the_table_without_money_and_with_a_period_fully_covered():
    report = {
        "period_seconds": 3600, "covered_seconds": 3600, "currency": None,
        "apps": [
            {"name": "docs", "state": "asleep", "asleep_seconds": 3600, "asleep_ratio": 1.0,
             "replica_hours_saved": 1.0, "cost_saved": None},
            {"name": "api", "state": "awake", "asleep_seconds": 900, "asleep_ratio": 0.25,
             "replica_hours_saved": 0.25, "cost_saved": None},
        ],
        "total": {"apps": 2, "asleep_seconds": 4500, "replica_hours_saved": 1.25,
                  "cost_saved": None},
    }
    assert format_savings(report).splitlines() == [
        "Savings over the last 1h",
        "APP    STATE   ASLEEP  OF TIME  REPLICA-HOURS SAVED",
        "docs   asleep  1h      100%     1.00",
        "api    awake   15m     25%      0.25",
        "TOTAL  2 apps  1h15m            1.25",
    ]
