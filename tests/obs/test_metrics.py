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
from wakeproxy.obs.metrics import FAMILIES

ALLOWED_LABELS = {"app", "code", "state", "result", "version", "cluster", "le"}


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

    assert value(found, "wakeproxy_requests_total", app="api", code="200") == 3
    assert value(found, "wakeproxy_requests_total", app="api", code="502") == 1
    assert value(found, "wakeproxy_requests_total", app="(unknown)", code="404") == 1
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
