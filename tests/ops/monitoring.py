"""The monitoring files under k8s/monitoring/ and how they relate, for the ops tests.

`prometheusrule.yaml` is generated from `wakeproxy.rules.yaml` (the one place alerts are
written); after editing the rules, regenerate it with `python -m tests.ops.monitoring`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "k8s" / "monitoring"
RULES = MONITORING / "wakeproxy.rules.yaml"
RULES_TEST = MONITORING / "wakeproxy.rules.test.yaml"
PROMETHEUS_RULE = MONITORING / "prometheusrule.yaml"
SERVICE_MONITOR = MONITORING / "servicemonitor.yaml"
DASHBOARD = MONITORING / "dashboard.json"

_HEADER = """\
# The alerts of wakeproxy.rules.yaml for the Prometheus Operator. Generated: edit
# wakeproxy.rules.yaml, then run `python -m tests.ops.monitoring` to rewrite this file.
"""


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def prometheus_rule_text() -> str:
    """What prometheusrule.yaml must contain for the current rules file."""
    doc = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": "wakeproxy",
            "labels": {"app.kubernetes.io/name": "wakeproxy",
                       "app.kubernetes.io/component": "monitoring"},
        },
        "spec": load_yaml(RULES),
    }
    return _HEADER + yaml.safe_dump(doc, sort_keys=False, width=100)


def alert_rules() -> list[dict[str, Any]]:
    return [r for g in load_yaml(RULES)["groups"] for r in g["rules"] if "alert" in r]


# PromQL words that look like identifiers but name no series.
_KEYWORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
    "bool", "offset", "inf", "nan", "le",
}


def metric_names(expr: str) -> set[str]:
    """The series names a PromQL expression reads (functions and label names left out)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # range and subquery selectors
    text = re.sub(
        r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    text = re.sub(r"\$\{?\w+\}?", "1", text)  # Grafana variables
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        word = m.group(0)
        after = text[m.end():].lstrip()
        if after.startswith("(") or word.lower() in _KEYWORDS:
            continue
        if m.start() > 0 and (text[m.start() - 1].isdigit() or text[m.start() - 1] == "."):
            continue  # a unit or exponent inside a number like 1e3 or 5m
        names.add(word)
    return names


if __name__ == "__main__":
    PROMETHEUS_RULE.write_text(prometheus_rule_text())
    print(f"wrote {PROMETHEUS_RULE.relative_to(ROOT)}")


def exported_names() -> set[str]:
    """Every series name a running wakeproxy exposes, read from a real registry."""
    from wakeproxy.model.activity import ActivityLedger
    from wakeproxy.model.board import ReadinessBoard
    from wakeproxy.model.clock import SystemClock
    from wakeproxy.model.stats import RequestStats, WakeStats
    from wakeproxy.obs.metrics import build_registry

    clock = SystemClock()
    registry = build_registry(
        board=ReadinessBoard(clock), ledger=ActivityLedger(clock),
        request_stats=RequestStats(), wake_stats=WakeStats(), clock=clock, cluster="test",
        version="0",
    )
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}
    names = set()
    for family in registry.collect():
        for suffix in suffixes.get(family.type, ("",)):
            names.add(family.name + suffix)
    return names
