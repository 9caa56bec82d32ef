"""The Grafana dashboard: valid JSON, the panels the on-call person needs, and every query
names only series that wakeproxy exports (read from a real registry)."""

from __future__ import annotations

import json
from typing import Any

from tests.ops.monitoring import DASHBOARD, exported_names, metric_names


def dashboard() -> dict[str, Any]:
    doc = json.loads(DASHBOARD.read_text())
    assert isinstance(doc, dict)
    return doc


def graph_panels() -> list[dict[str, Any]]:
    return [p for p in dashboard()["panels"] if p["type"] != "row"]


def test_every_panel_has_queries_on_exported_series() -> None:
    exported = exported_names()
    panels = graph_panels()
    assert panels
    for panel in panels:
        targets = panel.get("targets")
        assert targets, f"panel {panel['title']!r} has no query"
        for target in targets:
            used = metric_names(target["expr"])
            assert used, (panel["title"], target["expr"])
            assert used <= exported, (panel["title"], sorted(used - exported))
            assert target["datasource"]["uid"] == "${datasource}"


def test_the_panels_answer_what_on_call_asks() -> None:
    by_series: dict[str, list[str]] = {}
    for panel in graph_panels():
        for target in panel["targets"]:
            for name in metric_names(target["expr"]):
                by_series.setdefault(name, []).append(panel["title"])
    assert "Apps by state" in by_series["wakeproxy_apps"]
    assert "Wake latency" in by_series["wakeproxy_wake_duration_seconds_bucket"]
    assert "Held requests" in by_series["wakeproxy_held_requests"]
    assert "Request rate by app" in by_series["wakeproxy_requests_total"]
    assert "Errors by app" in by_series["wakeproxy_requests_total"]
    assert "Pod-hours saved" in by_series["wakeproxy_app_asleep_seconds_total"]
    assert "Sleep proposals" in by_series["wakeproxy_sleep_proposals_total"]
    latency = next(p for p in graph_panels() if p["title"] == "Wake latency")
    assert [t["legendFormat"] for t in latency["targets"]] == ["p50", "p90", "p99"]


def test_ids_are_unique_and_panels_do_not_overlap() -> None:
    doc = dashboard()
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids))
    taken: set[tuple[int, int]] = set()
    for p in doc["panels"]:
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24
        cells = {(x, y) for x in range(g["x"], g["x"] + g["w"])
                 for y in range(g["y"], g["y"] + g["h"])}
        assert not cells & taken, p["title"]
        taken |= cells
    variables = {v["name"] for v in doc["templating"]["list"]}
    assert variables == {"datasource", "app"}
    assert doc["uid"] == "wakeproxy"
