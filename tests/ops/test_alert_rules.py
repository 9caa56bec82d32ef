"""The alert rules in k8s/monitoring/: valid for promtool, each one unit-tested both ways,
reading only series wakeproxy exports, and shipped identically for the Prometheus Operator."""

from __future__ import annotations

import pytest

from tests.ops.monitoring import (
    MONITORING,
    PROMETHEUS_RULE,
    RULES,
    RULES_TEST,
    alert_rules,
    exported_names,
    load_yaml,
    metric_names,
    prometheus_rule_text,
)
from tests.ops.tools import promtool

# Series Prometheus makes itself for every target; not exported by wakeproxy.
SCRAPE_SERIES = {"up"}
# What the issue asks alerts for, and the rule that covers each.
REQUIRED = {
    "wake failures": "WakeproxyWakeFailing",
    "slow wakes": "WakeproxySlowWakes",
    "held-request queue saturation": "WakeproxyHoldQueueFilling",
    "requests turned away": "WakeproxyHoldQueueRejecting",
    "no leader (sweeper not running)": "WakeproxyNoLeader",
    "watch stale": "WakeproxyWatchStale",
    "Kubernetes API errors": "WakeproxyKubernetesApiErrors",
}


def test_promtool_accepts_the_rules_without_warnings() -> None:
    r = promtool("check", "rules", str(RULES))
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in r.stdout
    assert "WARNING" not in (r.stdout + r.stderr).upper()


def test_promtool_unit_tests_pass() -> None:
    r = promtool("test", "rules", RULES_TEST.name, cwd=MONITORING)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout


def test_every_alert_is_tested_firing_and_quiet() -> None:
    fires: set[str] = set()
    quiet: set[str] = set()
    for case in load_yaml(RULES_TEST)["tests"]:
        for check in case.get("alert_rule_test", []):
            (fires if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {r["alert"] for r in alert_rules()}
    assert names - fires == set(), "alerts never shown to fire"
    assert names - quiet == set(), "alerts never shown to stay quiet"
    assert set(REQUIRED.values()) <= names


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda r: r["alert"])
def test_each_alert_reads_exported_series_and_tells_the_reader_what_happened(
    rule: dict[str, object],
) -> None:
    exported = exported_names() | SCRAPE_SERIES
    used = metric_names(str(rule["expr"]))
    assert used, rule["expr"]
    assert used <= exported, f"not exported by wakeproxy: {sorted(used - exported)}"
    labels = rule.get("labels")
    assert isinstance(labels, dict) and labels.get("severity") in ("warning", "critical")
    annotations = rule.get("annotations")
    assert isinstance(annotations, dict)
    assert annotations.get("summary") and annotations.get("description")


def test_the_prometheus_operator_gets_the_same_rules() -> None:
    assert PROMETHEUS_RULE.read_text() == prometheus_rule_text(), (
        "k8s/monitoring/prometheusrule.yaml is out of date: run `python -m tests.ops.monitoring`")
    doc = load_yaml(PROMETHEUS_RULE)
    assert doc["apiVersion"] == "monitoring.coreos.com/v1" and doc["kind"] == "PrometheusRule"
    assert doc["spec"] == load_yaml(RULES)
