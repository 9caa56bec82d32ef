"""Sizing the headroom: quantities, an app's pod requests, the placeholders wanted, and the
`kubernetes.headroom` config section with its mistakes named."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.k8s_emulator.pod_security import violations
from wakeproxy.model.quantity import cpu_millis, format_cpu, format_memory, memory_bytes
from wakeproxy.platforms.kubernetes.headroom_plan import (
    Shape,
    Sleeper,
    Slots,
    manifest,
    plan,
    pod_shape,
)
from wakeproxy.settings import ConfigError, Headroom, parse_settings
from wakeproxy.settings.headroom import KEYS as HEADROOM_KEYS

MI = 2**20
ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize(("text", "millis"), [
    ("500m", 500), ("0.5", 500), (2, 2000), (0.25, 250), ("1.5", 1500), ("100u", 1),
    ("2k", 2_000_000),
])
def test_cpu_quantities_become_millicores_rounded_up(text: object, millis: int) -> None:
    assert cpu_millis(text) == millis


@pytest.mark.parametrize(("text", "size"), [
    ("512Mi", 512 * MI), ("1Gi", 2**30), ("1G", 10**9), (1000, 1000), ("1e3", 1000),
    ("128974848", 128974848), ("0.5Ki", 512),
])
def test_memory_quantities_become_bytes(text: object, size: int) -> None:
    assert memory_bytes(text) == size


@pytest.mark.parametrize("text", ["", "five", "1.2.3", "-1", "1mi", "Mi", True, None, [1]])
def test_what_kubernetes_refuses_as_a_quantity_is_refused(text: object) -> None:
    with pytest.raises(ValueError):
        cpu_millis(text)


def test_quantities_are_written_as_a_manifest_would() -> None:
    assert [format_cpu(m) for m in (2000, 1500, 250)] == ["2", "1500m", "250m"]
    assert [format_memory(b) for b in (2**30, 768 * MI, 1000)] == ["1Gi", "768Mi", "1000"]


def _dep(containers: list[dict[str, Any]], init: list[dict[str, Any]] | None = None,
         ) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": containers}
    if init:
        spec["initContainers"] = init
    return {"spec": {"template": {"spec": spec}}}


def _c(requests: dict[str, str] | None = None, limits: dict[str, str] | None = None,
       ) -> dict[str, Any]:
    resources: dict[str, Any] = {}
    if requests:
        resources["requests"] = requests
    if limits:
        resources["limits"] = limits
    return {"name": "c", "image": "x", "resources": resources}


def test_a_pod_asks_for_its_containers_sum_limits_standing_in_for_missing_requests() -> None:
    dep = _dep([_c({"cpu": "250m", "memory": "128Mi"}),
                _c(limits={"cpu": "1", "memory": "64Mi"}),  # requests default to limits
                _c({"cpu": "50m"}, {"memory": "32Mi"})])
    assert pod_shape(dep) == Shape(1300, 224 * MI)
    # A larger init container runs alone first: the pod needs its room too.
    assert pod_shape(_dep([_c({"cpu": "100m"})], init=[_c({"cpu": "2", "memory": "1Mi"})])) \
        == Shape(2000, MI)
    assert pod_shape(_dep([_c()])) == Shape()
    assert pod_shape(None) == Shape()


def test_room_is_held_for_the_largest_sleeping_apps_each_with_its_wake_replicas() -> None:
    sleepers = [
        Sleeper("a.small", Shape(100, 64 * MI), 1),
        Sleeper("a.big", Shape(1000, 256 * MI), 2),
        Sleeper("a.mid", Shape(500, 512 * MI), 1),
        Sleeper("a.none", Shape(), 1),  # no requests: the scheduler needs no room for it
    ]
    # Largest by CPU then memory; one shape for all, the largest of each.
    assert plan(Headroom(apps=2), sleepers) == Slots(3, Shape(1000, 512 * MI),
                                                     ("a.big", "a.mid"))
    assert plan(Headroom(apps=1), sleepers) == Slots(2, Shape(1000, 256 * MI), ("a.big",))
    assert plan(Headroom(apps=9), sleepers).pods == 4
    assert plan(Headroom(), []) == Slots(0, Shape())
    assert plan(Headroom(), [Sleeper("a.none", Shape(), 3)]) == Slots(0, Shape())


def test_fixed_totals_are_split_into_equal_placeholders_whatever_sleeps() -> None:
    fixed = Headroom(cpu_millis=3000, memory_bytes=2**30, pods=4)
    assert plan(fixed, []) == Slots(4, Shape(750, 2**28))
    assert plan(Headroom(cpu_millis=1000), []) == Slots(1, Shape(1000, 0))


def test_placeholders_are_lowest_priority_pause_pods_restricted_compliant() -> None:
    doc = manifest(Headroom(), "wakeproxy", 3, Shape(500, 256 * MI))
    kubernetes_validate.validate(doc, "1.29", strict=True)
    kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)
    pod = doc["spec"]["template"]["spec"]
    assert doc["spec"]["replicas"] == 3
    assert pod["priorityClassName"] == "wakeproxy-headroom"
    assert pod["terminationGracePeriodSeconds"] == 0  # evicted at once
    assert pod["automountServiceAccountToken"] is False
    [container] = pod["containers"]
    assert container["image"] == "registry.k8s.io/pause:3.9"
    assert container["resources"] == {"requests": {"cpu": "500m", "memory": "256Mi"},
                                      "limits": {"cpu": "500m", "memory": "256Mi"}}
    assert violations("restricted", {"metadata": {"name": "p"}, "spec": pod}) == []
    labels = doc["spec"]["template"]["metadata"]["labels"]
    assert labels["wakeproxy.io/headroom"] == "true"
    assert labels["app.kubernetes.io/component"] == "headroom"  # never the proxy's selector
    # The digest changes with what is applied, and only with it.
    again = manifest(Headroom(), "wakeproxy", 3, Shape(500, 256 * MI))
    other = manifest(Headroom(), "wakeproxy", 3, Shape(600, 256 * MI))
    notes = [d["metadata"]["annotations"]["wakeproxy.io/headroom-spec"]
             for d in (doc, again, other)]
    assert notes[0] == notes[1] != notes[2]


def test_headroom_config_is_parsed_with_defaults() -> None:
    k = parse_settings("platform: kubernetes\n", "cluster.yaml").kubernetes
    assert k is not None and k.headroom == Headroom()
    assert (k.headroom.enabled, k.headroom.apps, k.headroom.fixed) == (True, 2, False)
    k = parse_settings(
        "platform: kubernetes\nkubernetes:\n  headroom:\n    cpu: 4\n    memory: 8Gi\n"
        "    pods: 4\n    image: example.com/pause:1\n    priority_class: spare\n",
        "cluster.yaml").kubernetes
    assert k is not None
    assert k.headroom == Headroom(cpu_millis=4000, memory_bytes=8 * 2**30, pods=4,
                                  image="example.com/pause:1", priority_class="spare")
    off = parse_settings("platform: kubernetes\nkubernetes: {headroom: {enabled: false}}\n",
                         "cluster.yaml").kubernetes
    assert off is not None and not off.headroom.enabled


@pytest.mark.parametrize(("section", "problem"), [
    ("{apps: 0}", "kubernetes.headroom.apps: expected a whole number of apps above 0, got 0"),
    ("{cpu: lots}", "kubernetes.headroom.cpu: expected a CPU quantity like 500m, 0.5 or 2, "
                    "got 'lots'"),
    ("{memory: 1GB}", "kubernetes.headroom.memory: expected a memory quantity like 512Mi, "
                      "1Gi or 1G, got '1GB'"),
    ("{cpu: 0}", "kubernetes.headroom.cpu: expected a quantity above zero (or memory above "
                 "zero), got 0"),
    ("{cpu: 2, apps: 3}", "kubernetes.headroom.apps: expected no apps: with fixed cpu/memory "
                          "totals (one or the other), got 3"),
    ("{pods: 2}", "kubernetes.headroom.pods: expected no pods without cpu or memory"),
    ("{enabled: no-thanks}", "kubernetes.headroom.enabled: expected true or false"),
    ("{priority_class: Low}", "kubernetes.headroom.priority_class: expected a PriorityClass "
                              "name like wakeproxy-headroom, got 'Low'"),
    ("{size: 2}", "kubernetes.headroom.size: expected one of: apps, cpu, enabled, image, "
                  "memory, pods, priority_class, got 'unknown key size'"),
    ("[2]", "kubernetes.headroom: expected a mapping of keys to values, got [2]"),
])
def test_headroom_mistakes_name_the_file_the_key_and_what_was_expected(
        section: str, problem: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_settings(f"platform: kubernetes\nkubernetes:\n  headroom: {section}\n",
                       "config/cluster.yaml")
    assert f"config/cluster.yaml: {problem}" in str(e.value)


def test_the_example_config_lists_every_headroom_key_with_its_default() -> None:
    text = (ROOT / "config" / "cluster.example.yaml").read_text()
    block = text.split("#   headroom:", 1)[1].split("\n#   builds:", 1)[0]
    lines = [line.split("#", 2)[1] for line in block.splitlines()[1:]
             if line.startswith("#     ")]
    section = yaml.safe_load("\n".join(lines))
    assert set(section) == HEADROOM_KEYS
    k = parse_settings(yaml.safe_dump({"platform": "kubernetes",
                                       "kubernetes": {"headroom": section}}), "x").kubernetes
    assert k is not None and k.headroom == Headroom()
    # The shipped ConfigMap sets it as documented.
    shipped = yaml.safe_load(yaml.safe_load((ROOT / "k8s" / "configmap.yaml").read_text())[
        "data"]["cluster.yaml"])
    assert shipped["kubernetes"]["headroom"] == {"apps": 2}
