"""/metrics as Prometheus sees it: valid for promtool, and the values users graph."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from tests.obs.conftest import MakeAdmin
from tests.obs.world import START, WALL_OFFSET, make_world
from wakeproxy.model.board import Phase
from wakeproxy.model.stats import PlatformStats
from wakeproxy.obs.metrics import FAMILIES, build_registry, status_class
from wakeproxy.settings import Savings

ALLOWED_LABELS = {
    "app", "code", "state", "result", "resource", "currency", "version", "cluster", "le",
    "cap",  # one of the fixed caps' config keys
}


def promtool() -> str:
    found = shutil.which("promtool") or (
        "/usr/bin/promtool" if Path("/usr/bin/promtool").exists() else None)
    if found is None:
        pytest.fail("promtool is required to check /metrics: install Debian's prometheus "
                    "package (apt-get install prometheus)")
    return found


async def promtool_check(text: str) -> tuple[int, str]:
    """`promtool check metrics` on the text; returns its exit code and everything it said."""
    proc = await asyncio.create_subprocess_exec(
        promtool(), "check", "metrics", stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(text.encode()), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def scrape(admin_client: object, accept: str | None = None) -> tuple[str, str]:
    headers = {"Accept": accept} if accept else {}
    async with admin_client.get("/metrics", headers=headers) as resp:  # type: ignore[attr-defined]
        assert resp.status == 200
        return await resp.text(), resp.headers["Content-Type"]


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str,
          **labels: str) -> float:
    return found[(name, frozenset(labels.items()))]


async def test_metrics_pass_promtool(make_admin: MakeAdmin) -> None:
    admin = await make_admin()
    text, content_type = await scrape(admin.client)
    assert content_type.startswith("text/plain; version=0.0.4")
    code, output = await promtool_check(text)
    assert code == 0, output
    assert output.strip() == ""


async def test_values_users_care_about(make_admin: MakeAdmin) -> None:
    admin = await make_admin()
    found = samples((await scrape(admin.client))[0])

    assert value(found, "wakeproxy_wakes_total", app="api", result="ready") == 1
    assert value(found, "wakeproxy_wakes_total", app="docs", result="failed") == 1
    assert value(found, "wakeproxy_wake_duration_seconds_count", app="api") == 1
    assert value(found, "wakeproxy_wake_duration_seconds_sum", app="api") == 1.5
    assert value(found, "wakeproxy_wake_duration_seconds_bucket", app="api", le="1.0") == 0
    assert value(found, "wakeproxy_wake_duration_seconds_bucket", app="api", le="2.5") == 1

    assert value(found, "wakeproxy_apps", state="asleep") == 2
    assert value(found, "wakeproxy_apps", state="awake") == 1
    assert value(found, "wakeproxy_apps", state="waking") == 0
    assert value(found, "wakeproxy_apps", state="stopping") == 0
    assert value(found, "wakeproxy_app_up", app="api") == 1
    assert value(found, "wakeproxy_app_up", app="hello") == 0
    assert value(found, "wakeproxy_app_asleep_seconds_total", app="hello") == pytest.approx(130)
    assert value(found, "wakeproxy_app_asleep_seconds_total", app="api") == pytest.approx(120)

    assert value(found, "wakeproxy_requests_total", app="api", code="2xx") == 3
    assert value(found, "wakeproxy_requests_total", app="api", code="5xx") == 1
    assert value(found, "wakeproxy_requests_total", app="(unknown)", code="4xx") == 1
    assert value(found, "wakeproxy_request_duration_seconds_count", app="api") == 4
    assert value(found, "wakeproxy_request_duration_seconds_bucket", app="api", le="0.005") == 1
    assert value(found, "wakeproxy_request_duration_seconds_bucket", app="api", le="0.025") == 3
    assert value(found, "wakeproxy_request_duration_seconds_bucket", app="api", le="+Inf") == 4
    assert value(found, "wakeproxy_request_duration_seconds_sum", app="api") == pytest.approx(0.334)

    assert value(found, "wakeproxy_held_requests", app="hello") == 2
    assert value(found, "wakeproxy_hold_rejected_total", app="hello") == 1
    assert value(found, "wakeproxy_held_duration_seconds_count", app="hello") == 1

    assert value(found, "wakeproxy_in_flight_requests", app="api") == 1
    assert value(found, "wakeproxy_open_tunnels", app="api") == 1
    assert value(found, "wakeproxy_in_flight_requests", app="hello") == 0
    last = value(found, "wakeproxy_app_last_access_timestamp_seconds", app="api")
    assert last == pytest.approx(WALL_OFFSET + START + 121.5)
    assert ("wakeproxy_app_last_access_timestamp_seconds",
            frozenset({("app", "hello")})) not in found  # never accessed: no sample

    assert value(found, "wakeproxy_app_awake_replicas", app="api") == 1
    assert value(found, "wakeproxy_app_max_held_requests", app="hello") == 1000
    assert value(found, "wakeproxy_savings_cost_per_replica_hour", currency="USD") == 0
    assert value(found, "wakeproxy_leader") == 1  # no peers: it always leads
    assert value(found, "wakeproxy_build_info", version="9.9.9", cluster="test") == 1
    assert any(name == "process_resident_memory_bytes" for name, _ in found)


async def test_every_phase_is_always_exported(make_admin: MakeAdmin) -> None:
    from tests.obs.world import World

    admin = await make_admin(world=World())  # no apps at all
    found = samples((await scrape(admin.client))[0])
    for phase in Phase:
        assert value(found, "wakeproxy_apps", state=phase.value) == 0


async def test_values_are_read_at_scrape_time(make_admin: MakeAdmin) -> None:
    admin = await make_admin()
    w = admin.world
    w.board.mark_stopping("api")
    w.board.mark_asleep("api")
    w.wakes.slept("api")
    w.clock.advance(60)
    found = samples((await scrape(admin.client))[0])
    assert value(found, "wakeproxy_apps", state="asleep") == 3
    assert value(found, "wakeproxy_app_up", app="api") == 0
    assert value(found, "wakeproxy_sleeps_total", app="api") == 1
    assert value(found, "wakeproxy_app_asleep_seconds_total", app="api") == pytest.approx(180)


async def test_labels_are_bounded_and_every_family_has_help(make_admin: MakeAdmin) -> None:
    admin = await make_admin()
    text = (await scrape(admin.client))[0]
    helps = {line.split()[2] for line in text.splitlines() if line.startswith("# HELP ")}
    for family in text_string_to_metric_families(text):
        if not family.name.startswith("wakeproxy_"):
            continue
        assert family.documentation, family.name
        for s in family.samples:
            assert set(s.labels) <= ALLOWED_LABELS, (s.name, s.labels)
    for f in FAMILIES:
        base = f.name.removesuffix("_total") if f.kind == "counter" else f.name
        assert base in helps or f.name in helps, f.name


async def test_openmetrics_is_served_when_asked(make_admin: MakeAdmin) -> None:
    admin = await make_admin()
    text, content_type = await scrape(admin.client, accept="application/openmetrics-text")
    assert content_type.startswith("application/openmetrics-text")
    assert text.rstrip().endswith("# EOF")


def test_registry_is_dedicated() -> None:
    registry = make_world().registry()
    assert registry is not REGISTRY
    global_names = {m.name for m in REGISTRY.collect()}
    assert not any(n.startswith("wakeproxy_") for n in global_names)
    assert registry.get_sample_value("wakeproxy_apps", {"state": "awake"}) == 1


async def test_status_codes_are_counted_by_class_so_the_label_stays_bounded(
    make_admin: MakeAdmin,
) -> None:
    admin = await make_admin()
    for status in (101, 201, 204, 301, 404, 499, 503, 504, 999, 42):
        admin.world.requests.record("api", status, 0.001)
    found = samples((await scrape(admin.client))[0])
    codes = {dict(labels)["code"]: v for (name, labels), v in found.items()
             if name == "wakeproxy_requests_total" and ("app", "api") in labels}
    assert codes == {"1xx": 1, "2xx": 5, "3xx": 1, "4xx": 2, "5xx": 3, "other": 2}


def test_status_class() -> None:
    assert [status_class(c) for c in (100, 200, 299, 404, 499, 599, 600, 0)] == [
        "1xx", "2xx", "2xx", "4xx", "4xx", "5xx", "other", "other"]


def test_platform_figures_are_exported_as_the_kubernetes_platform_writes_them() -> None:
    from tests.obs.world import World

    world = World()
    platform = PlatformStats(leader=False)
    registry = build_registry(
        board=world.board, ledger=world.ledger, request_stats=world.requests,
        wake_stats=world.wakes, clock=world.clock, cluster="test", version="1",
        platform_stats=platform, savings=Savings(cost_per_replica_hour=0.05, currency="EUR"),
    )
    platform.watch_event("deployments", world.clock.monotonic())
    world.clock.advance(30)
    platform.watch_restarted("endpointslices")
    platform.api_error(409)
    platform.api_error(409)
    platform.api_error(500)
    platform.scale_called("ok")
    get = registry.get_sample_value
    assert get("wakeproxy_leader") == 0
    assert get("wakeproxy_watch_last_event_timestamp_seconds",
               {"resource": "deployments"}) == pytest.approx(WALL_OFFSET + START)
    assert get("wakeproxy_watch_restarts_total", {"resource": "endpointslices"}) == 1
    assert get("wakeproxy_api_errors_total", {"code": "409"}) == 2
    assert get("wakeproxy_api_errors_total", {"code": "500"}) == 1
    assert get("wakeproxy_scale_calls_total", {"result": "ok"}) == 1
    assert get("wakeproxy_savings_cost_per_replica_hour", {"currency": "EUR"}) == 0.05
    platform.leader = True
    assert get("wakeproxy_leader") == 1
    assert get("wakeproxy_app_refused", {"app": "apps.copycat"}) is None
    platform.apps_refused = {"apps.copycat": "host shop.example.com is taken by apps.shop"}
    assert get("wakeproxy_app_refused", {"app": "apps.copycat"}) == 1


async def test_families_without_samples_still_pass_promtool(make_admin: MakeAdmin) -> None:
    from tests.obs.world import World

    admin = await make_admin(world=World())  # no apps, no requests, no watches
    text = (await scrape(admin.client))[0]
    assert "# TYPE wakeproxy_watch_restarts_total counter" in text
    code, output = await promtool_check(text)
    assert code == 0, output


def test_alerting_counters_start_at_zero_for_every_app() -> None:
    """increase() cannot see a counter's first step, so an app's first failed wake or first
    turned-away request must move a series that already exists at 0."""
    from tests.obs.world import World
    from wakeproxy.model.apps import AppPolicy

    world = World()
    world.board.put(AppPolicy("fresh", ("fresh.localhost",)))
    get = world.registry().get_sample_value
    for result in ("ready", "failed", "timeout"):
        assert get("wakeproxy_wakes_total", {"app": "fresh", "result": result}) == 0
    assert get("wakeproxy_hold_rejected_total", {"app": "fresh"}) == 0
    world.wakes.wake_finished("fresh", "failed", 0.1)
    assert get("wakeproxy_wakes_total", {"app": "fresh", "result": "failed"}) == 1
