"""A real Prometheus scrapes a running wakeproxy: what the on-call person will query.

Traffic is driven through wakeproxy's data plane (a held wake, an unknown host, a wake
that fails), then Prometheus's HTTP API is asked for wakes, held requests and request
rates; the alert rules are loaded into the same Prometheus, and every dashboard query is
run against it, so exposition, rules and dashboard are proven readable by the real thing.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.harness import echo_command
from tests.ops.monitoring import DASHBOARD, RULES
from tests.ops.tools import NO_PROXY, Prometheus, promtool

BOUNDED_LABELS = {
    "app", "code", "state", "result", "resource", "currency", "version", "cluster", "le",
    "cap",  # one of the fixed caps' config keys
}
# What Grafana puts in place of its variables when it sends a dashboard's queries.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__range": "5m", "$app": ".*"}


def scrape(admin: str) -> str:
    with NO_PROXY.open(admin + "/metrics", timeout=10) as resp:
        return str(resp.read().decode())


def dashboard_queries() -> list[tuple[str, str]]:
    doc = json.loads(DASHBOARD.read_text())
    out = []
    for panel in doc["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for var, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(var, value)
            out.append((panel["title"], expr))
    return out


async def get(session: aiohttp.ClientSession, url: str, host: str) -> int:
    async with session.get(url, headers={"Host": host}) as resp:
        await resp.read()
        return resp.status


def firing(prom: Prometheus, alertname: str, app: str, timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    alerts: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        alerts = prom.api("alerts")["alerts"]
        for alert in alerts:
            labels = alert["labels"]
            if (labels.get("alertname") == alertname and labels.get("app") == app
                    and alert["state"] == "firing"):
                return alert
        time.sleep(0.1)
    raise AssertionError(f"{alertname} for {app} not firing within {timeout}s: {alerts}")


async def test_prometheus_sees_wakes_holds_request_rates_and_fires_on_a_failed_wake(
    tmp_path, start_wakeproxy,
):
    wp = start_wakeproxy({
        "savings": {"cost_per_replica_hour": 0.5, "currency": "EUR"},
        "apps": [
            {"name": "shop", "hosts": ["shop.localhost"],
             "command": echo_command("shop", START_DELAY="0.3")},
            {"name": "broken", "hosts": ["broken.localhost"], "command": "exit 3"},
        ],
    })
    prom = Prometheus(tmp_path, [f"127.0.0.1:{wp.admin_port}"], [RULES]).start()
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:
            # Five requests reach shop while it sleeps: all are held through one wake.
            statuses = await asyncio.gather(
                *(get(s, wp.url + "/", "shop.localhost") for _ in range(5)))
            assert statuses == [200] * 5
            assert await get(s, wp.url + "/", "nobody.localhost") == 404

            await asyncio.to_thread(
                prom.wait_value, 'sum(wakeproxy_held_duration_seconds_count{app="shop"})', 5)
            assert prom.value('sum(wakeproxy_wakes_total{app="shop", result="ready"})') == 1
            assert prom.value(
                'sum(wakeproxy_wake_duration_seconds_count{app="shop"})') == 1
            await asyncio.to_thread(
                prom.wait_value,
                'sum(wakeproxy_requests_total{app="(unknown)", code="4xx"})', 1)
            assert prom.value('sum(wakeproxy_requests_total{app="shop", code="2xx"})') == 5

            # More traffic once Prometheus has seen the first: rate() needs two samples.
            for _ in range(20):
                assert await get(s, wp.url + "/", "shop.localhost") == 200
            rate = await asyncio.to_thread(
                prom.wait_value,
                'sum(rate(wakeproxy_requests_total{app="shop", code="2xx"}[1m]))', 0.001)
            assert rate > 0

            # A wake that fails: its held request gets a 502 and an alert fires.
            assert await get(s, wp.url + "/", "broken.localhost") == 502
        await asyncio.to_thread(
            prom.wait_value, 'sum(wakeproxy_wakes_total{app="broken", result="failed"})', 1)
        alert = await asyncio.to_thread(firing, prom, "WakeproxyWakeFailing", "broken")
        assert alert["labels"]["severity"] == "warning"
        assert prom.value('sum(increase(wakeproxy_wakes_total{app="shop", '
                          'result!="ready"}[10m]))') == 0

        # Every rule loaded and evaluates cleanly against real data.
        groups = prom.api("rules")["groups"]
        rules = [r for g in groups for r in g["rules"]]
        assert len(rules) >= 8
        assert all(r["health"] == "ok" for r in rules), [
            (r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"]
        assert prom.value("max(wakeproxy_leader)") == 1

        # Every dashboard query runs; the at-a-glance ones show what happened.
        for title, expr in dashboard_queries():
            try:
                prom.query(expr)
            except AssertionError as e:
                raise AssertionError(f"dashboard panel {title!r}: {e}") from None
        states = {r["metric"]["state"]: float(r["value"][1])
                  for r in prom.query("max by (state) (wakeproxy_apps)")}
        assert states == {"asleep": 1, "awake": 1, "waking": 0, "stopping": 0}
        await asyncio.to_thread(
            prom.wait_value,
            "sum(max by (app) (increase(wakeproxy_app_asleep_seconds_total[5m])))", 1.0)
        money = prom.query(
            "sum(max by (app) (increase(wakeproxy_app_asleep_seconds_total[5m])) "
            "* on (app) max by (app) (wakeproxy_app_awake_replicas)) / 3600 "
            "* on () group_left (currency) "
            "max by (currency) (wakeproxy_savings_cost_per_replica_hour)")
        assert [r["metric"] for r in money] == [{"currency": "EUR"}]
        assert float(money[0]["value"][1]) > 0

        # The exposition after all that traffic: clean for promtool, labels bounded.
        text = await asyncio.to_thread(scrape, wp.admin)
        check = promtool("check", "metrics", stdin=text)
        assert (check.returncode, check.stdout + check.stderr) == (0, "")
        for family in text_string_to_metric_families(text):
            if family.name.startswith("wakeproxy_"):
                assert family.documentation, family.name
                for sample in family.samples:
                    assert set(sample.labels) <= BOUNDED_LABELS, (sample.name, sample.labels)
    finally:
        prom.stop()
    assert prom.proc is not None and prom.proc.returncode is not None
