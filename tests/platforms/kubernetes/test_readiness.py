"""Which probe a wake runs against a starting pod: the one its readinessProbe names."""

from __future__ import annotations

import dataclasses
from typing import Any

from wakeproxy.model.apps import AppPolicy
from wakeproxy.platforms.kubernetes.annotations import AppSpec
from wakeproxy.platforms.kubernetes.readiness import ProbePlan, probe_plan

POLICY = AppPolicy(name="apps.shop", hosts=("shop.example.com",))
SPEC = AppSpec("apps", "shop", "shop", "http", POLICY, "")


def deployment(*containers: dict[str, Any]) -> dict[str, Any]:
    return {"spec": {"template": {"spec": {"containers": list(containers)}}}}


def app(probe: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    c: dict[str, Any] = {"name": "app", "ports": [{"name": "http", "containerPort": 8080},
                                                  {"name": "health", "containerPort": 9000}]}
    if probe is not None:
        c["readinessProbe"] = probe
    return {**c, **extra}


def test_an_http_readiness_probe_is_run_as_the_kubelet_runs_it() -> None:
    plan = probe_plan(SPEC, deployment(app({"httpGet": {
        "path": "/ready", "port": "http", "scheme": "HTTPS",
        "httpHeaders": [{"name": "Host", "value": "shop.internal"}]}})))
    assert plan == ProbePlan("http", port=None, path="/ready", tls=True,
                             headers=(("Host", "shop.internal"),), ok=range(200, 400))


def test_a_probe_on_another_port_is_sent_to_that_port() -> None:
    plan = probe_plan(SPEC, deployment(app({"httpGet": {"path": "/h", "port": "health"}})))
    assert plan.port == 9000
    # The serving port by number is the serving port: probed where requests go.
    assert probe_plan(SPEC, deployment(app({"tcpSocket": {"port": 8080}}))) == ProbePlan("tcp")


def test_exec_probes_are_left_to_the_kubelet_and_no_probe_means_tcp() -> None:
    assert probe_plan(SPEC, deployment(app({"exec": {"command": ["check"]}}))).kind == "slice"
    assert probe_plan(SPEC, deployment(app())) == ProbePlan("tcp")
    assert probe_plan(SPEC, None) == ProbePlan("tcp")


def test_the_serving_container_is_the_one_with_the_port() -> None:
    sidecar = {"name": "proxy", "ports": [{"name": "admin", "containerPort": 15000}],
               "readinessProbe": {"exec": {"command": ["x"]}}}
    plan = probe_plan(SPEC, deployment(sidecar, app({"httpGet": {"path": "/ok",
                                                                 "port": "http"}})))
    assert plan.kind == "http" and plan.path == "/ok"


def test_the_readiness_path_annotation_wins() -> None:
    spec = dataclasses.replace(SPEC, policy=dataclasses.replace(POLICY, readiness_path="/up"))
    plan = probe_plan(spec, deployment(app({"exec": {"command": ["check"]}})))
    assert (plan.kind, plan.path, plan.ok) == ("http", "/up", range(100, 500))
