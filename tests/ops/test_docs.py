"""docs/OPERATIONS.md stays true to what wakeproxy exports and alerts on."""

from __future__ import annotations

import re

from tests.ops.monitoring import ROOT, alert_rules, load_yaml
from wakeproxy.obs.families import FAMILIES
from wakeproxy.settings.apps import APP_KEYS

DOC = (ROOT / "docs" / "OPERATIONS.md").read_text()


def test_every_metric_family_is_documented_with_its_labels() -> None:
    rows = {m.group(1): m.group(2) for m in re.finditer(
        r"^\| `(wakeproxy_\w+)` \| \w+ \| ([^|]*) \|", DOC, re.MULTILINE)}
    for family in FAMILIES:
        assert family.name in rows, f"{family.name} missing from the metric table"
        documented = {x.strip() for x in rows[family.name].split(",") if x.strip() != "—"}
        assert documented == set(family.labels), family.name
    assert set(rows) == {f.name for f in FAMILIES}, "the table lists a metric that is gone"


def test_every_alert_is_explained() -> None:
    for rule in alert_rules():
        assert f"| `{rule['alert']}` | {rule['labels']['severity']} |" in DOC, rule["alert"]


def test_the_savings_keys_are_documented_where_the_config_keys_live() -> None:
    example = load_yaml(ROOT / "config" / "cluster.example.yaml")
    assert set(example["savings"]) == {"cost_per_replica_hour", "currency"}
    assert "cost_per_replica_hour:" in DOC and "wakeproxy status --savings" in DOC


def test_every_key_of_an_app_is_in_the_example_config() -> None:
    # The example "lists every key with its default": each key an app entry (or the
    # defaults:) takes appears there, as a line of its own, set or commented out.
    text = (ROOT / "config" / "cluster.example.yaml").read_text()
    missing = [key for key in sorted(APP_KEYS)
               if not re.search(rf"^\s*#?\s*(- )?{key}:", text, re.MULTILINE)]
    assert missing == []
