"""The operator's view of a running wakeproxy: check-config, status, wake/sleep, /metrics."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import urllib.request

import aiohttp

from tests.e2e.harness import echo_command


def scrape(admin: str) -> str:
    with urllib.request.urlopen(admin + "/metrics", timeout=10) as resp:
        return str(resp.read().decode())


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wakeproxy", *args], capture_output=True, text=True, timeout=60,
    )


def test_check_config_names_file_key_and_expectation(tmp_path):
    bad = tmp_path / "cluster.yaml"
    bad.write_text("apps:\n  - name: shop\n    hosts: [shop.localhost]\n"
                   "    command: run\n    idle_after: five\n")
    r = cli("check-config", str(bad))
    assert r.returncode == 1
    assert f"{bad}: apps[0].idle_after: expected a duration" in r.stderr
    assert "'five'" in r.stderr


def test_serve_refuses_a_broken_config_with_the_same_message(tmp_path):
    bad = tmp_path / "cluster.yaml"
    bad.write_text("listen: everywhere\n")
    r = cli("serve", "--config", str(bad))
    assert r.returncode != 0
    assert f"{bad}: listen: expected an address" in r.stderr


def test_shipped_configs_are_valid():
    for path in ("config/local.yaml", "config/cluster.example.yaml"):
        r = cli("check-config", path)
        assert r.returncode == 0, r.stderr


async def test_status_wake_sleep_and_metrics_on_a_running_wakeproxy(tmp_path, start_wakeproxy):
    wp = start_wakeproxy({
        "admin_token": "s3cret-token-for-tests",
        "apps": [{"name": "ops", "hosts": ["ops.localhost"], "command": echo_command("ops")}],
    })
    admin = ["--admin", wp.admin]
    r = cli("wake", "ops", *admin)
    assert r.returncode != 0  # no token
    r = cli("wake", "ops", *admin, "--token", "s3cret-token-for-tests")
    assert r.returncode == 0, r.stderr
    assert wp.app_state("ops") == "awake"
    r = cli("status", *admin)
    assert r.returncode == 0
    assert "ops" in r.stdout and "awake" in r.stdout

    async with aiohttp.ClientSession() as s:
        for _ in range(3):
            async with s.get(wp.url + "/", headers={"Host": "ops.localhost"}) as resp:
                assert resp.status == 200
        async with s.get(wp.url + "/", headers={"Host": "nope.localhost"}) as resp:
            assert resp.status == 404

    r = cli("sleep", "ops", *admin, "--token", "s3cret-token-for-tests")
    assert r.returncode == 0, r.stderr
    assert wp.app_state("ops") == "asleep"

    text = await asyncio.to_thread(scrape, wp.admin)
    check = await asyncio.to_thread(
        subprocess.run, ["promtool", "check", "metrics"], input=text, capture_output=True,
        text=True, timeout=30)
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout + check.stderr == ""  # not even a lint warning
    assert 'wakeproxy_requests_total{app="ops",code="2xx"} 3.0' in text
    assert 'wakeproxy_requests_total{app="(unknown)",code="4xx"} 1.0' in text
    assert 'wakeproxy_sleeps_total{app="ops"} 1.0' in text
