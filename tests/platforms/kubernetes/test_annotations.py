"""Deployments → apps: the annotation contract, refusals, and host conflicts."""

from __future__ import annotations

from typing import Any

from wakeproxy.model.apps import AppPolicy
from wakeproxy.platforms.kubernetes.annotations import AppSpec, parse_deployment
from wakeproxy.platforms.kubernetes.catalog import build_catalog

DEFAULTS = AppPolicy(name="-", hosts=(), idle_after=300.0, wake_timeout=60.0)


def dep(name: str, created: str = "2026-01-01T00:00:00Z", namespace: str = "apps",
        **annotations: str) -> dict[str, Any]:
    notes = {f"wakeproxy.io/{k.replace('_', '-')}": v for k, v in annotations.items()}
    return {"metadata": {"name": name, "namespace": namespace, "annotations": notes,
                         "creationTimestamp": created}}


def spec(obj: dict[str, Any]) -> AppSpec:
    parsed = parse_deployment(obj, DEFAULTS)
    assert isinstance(parsed, AppSpec), parsed
    return parsed


def test_every_annotation_of_the_contract_is_read() -> None:
    s = spec(dep("shop", hosts="Shop.Example.com, *.shop.example.com", port="8080",
                 service="shop-svc", idle_after="10m", wake_timeout="90s", awake_replicas="3"))
    assert s.name == "apps.shop"
    assert s.policy.hosts == ("shop.example.com", "*.shop.example.com")
    assert (s.port, s.service) == (8080, "shop-svc")
    assert (s.policy.idle_after, s.policy.wake_timeout, s.policy.awake_replicas) == (600, 90, 3)


def test_defaults_fill_what_is_not_annotated() -> None:
    s = spec(dep("shop", hosts="shop.example.com", port="http"))
    assert (s.port, s.service) == ("http", "shop")
    assert (s.policy.idle_after, s.policy.wake_timeout, s.policy.awake_replicas) == (300, 60, 1)


def test_bad_annotations_are_refused_naming_each_one() -> None:
    reason = parse_deployment(
        dep("shop", hosts="bad host!", port="99999", idle_after="soon", awake_replicas="0"),
        DEFAULTS)
    assert isinstance(reason, str)
    for key in ("wakeproxy.io/hosts", "wakeproxy.io/port", "wakeproxy.io/idle-after",
                "wakeproxy.io/awake-replicas"):
        assert key in reason
    missing = parse_deployment(dep("shop"), DEFAULTS)
    assert isinstance(missing, str) and "wakeproxy.io/hosts" in missing


def test_the_older_deployment_keeps_a_contested_host_and_others_are_unaffected() -> None:
    first = spec(dep("a", hosts="shop.example.com", port="http", created="2026-01-01T00:00:00Z"))
    later = spec(dep("b", hosts="x.example.com, SHOP.example.com.", port="http",
                     created="2026-01-02T00:00:00Z"))
    other = spec(dep("c", hosts="*.example.com", port="http", created="2026-01-03T00:00:00Z"))
    catalog = build_catalog([later, other, first], {"apps.d": "wakeproxy.io/port: bad"})
    assert sorted(catalog.apps) == ["apps.a", "apps.c"]
    assert "shop.example.com" in catalog.refused["apps.b"]
    assert "apps.a" in catalog.refused["apps.b"]
    assert catalog.refused["apps.d"] == "wakeproxy.io/port: bad"
    # The same set in any order gives the same answer on every replica.
    assert build_catalog([first, other, later], {}).apps.keys() == catalog.apps.keys()


def test_an_app_marked_not_deployed_yet_is_routed_but_unavailable_with_the_reason() -> None:
    s = spec(dep("shop", hosts="shop.example.com", port="http",
                 not_deployed="no release deployed yet (build and deploy one)"))
    assert s.policy.hosts == ("shop.example.com",)
    assert s.policy.unavailable == "no release deployed yet (build and deploy one)"
    assert spec(dep("shop", hosts="shop.example.com", port="http")).policy.unavailable is None


def test_the_config_files_per_app_settings_are_annotations_of_the_same_name() -> None:
    s = spec(dep("shop", hosts="shop.example.com", port="http", readiness_path="/ready",
                 ignored_paths="/healthz, /ping", waiting_page="true", max_held_requests="50",
                 release_concurrency="4", probe_interval="20ms"))
    p = s.policy
    assert p.readiness_path == "/ready"
    assert p.ignored_paths == ("/healthz", "/ping")
    assert p.waiting_page is True and p.max_held_requests == 50
    assert (p.release_concurrency, p.probe_interval) == (4, 0.02)


def test_bad_per_app_settings_are_refused_with_what_the_config_file_expects() -> None:
    reason = parse_deployment(
        dep("shop", hosts="shop.example.com", port="http", readiness_path="ready",
            ignored_paths="/ok, nope", waiting_page="maybe", max_held_requests="-1",
            stop_grace="5s"), DEFAULTS)
    assert isinstance(reason, str)
    assert "wakeproxy.io/readiness-path: expected a path starting with /" in reason
    assert "wakeproxy.io/ignored-paths: expected a list of paths starting with /" in reason
    assert "wakeproxy.io/waiting-page: expected true or false" in reason
    assert "wakeproxy.io/max-held-requests: expected a whole number above 0" in reason
    assert "stop-grace" not in reason  # not an annotation: the pod's grace period rules


def test_a_wake_restores_the_count_recorded_at_the_last_sleep() -> None:
    recorded = spec(dep("shop", hosts="shop.example.com", port="http", awake_replicas="2",
                        replicas_before_sleep="5"))
    assert recorded.policy.awake_replicas == 5
    declared = spec(dep("shop", hosts="shop.example.com", port="http", awake_replicas="2"))
    assert declared.policy.awake_replicas == 2
    bad = parse_deployment(dep("shop", hosts="shop.example.com", port="http",
                               replicas_before_sleep="0"), DEFAULTS)
    assert isinstance(bad, str) and "wakeproxy.io/replicas-before-sleep" in bad


def test_promote_to_is_read_only_on_deployments_wakeproxy_deploys() -> None:
    ours = dep("shop", hosts="shop.example.com", port="http", promote_to="shop-production")
    ours["metadata"]["labels"] = {"app.kubernetes.io/managed-by": "wakeproxy"}
    assert spec(ours).policy.promote_to == "shop-production" and spec(ours).ignored == ()
    # Someone else's Deployment: still an app, the annotation (even a malformed one) ignored.
    for target in ("shop-production", "team.shop-production"):
        theirs = spec(dep("shop", hosts="shop.example.com", port="http", promote_to=target))
        assert theirs.policy.promote_to is None
        assert theirs.ignored == (
            "wakeproxy.io/promote-to ignored: apps/shop is not deployed by wakeproxy, and "
            "wakeproxy promotes only onto and from apps it deploys (apps of its config file "
            "built from a repo, with promote_to there); promote it with the tool that "
            "deploys it",)
