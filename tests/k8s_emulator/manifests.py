"""Builders for the manifests tests create most: Deployments whose pods run a real command,
Services, Jobs, Leases, ConfigMaps. Plain dicts, valid as the real API expects them.

Owns nothing but shapes; the emulator (or a real cluster) does the rest.
"""

from __future__ import annotations

import sys
from typing import Any

JSON = dict[str, Any]


def http_server_command(delay: float = 0.0) -> list[str]:
    """A container command serving HTTP on $PORT (optionally only after `delay` seconds)."""
    wait = f"sleep {delay}; " if delay else ""
    return ["/bin/sh", "-c",
            f"{wait}exec {sys.executable} -m http.server --bind 127.0.0.1 $PORT"]


def deployment(
    name: str, *, command: list[str] | None = None, replicas: int = 1,
    namespace: str = "default", labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None, port_name: str = "http",
    container_port: int = 8080, readiness_path: str | None = None,
    env: dict[str, str] | None = None, grace_seconds: int | None = None,
) -> JSON:
    selector = {"app": name}
    container: JSON = {
        "name": "app", "image": "emulated/app:1",
        "command": command or http_server_command(),
        "ports": [{"name": port_name, "containerPort": container_port}],
    }
    if env:
        container["env"] = [{"name": k, "value": v} for k, v in env.items()]
    if readiness_path:
        container["readinessProbe"] = {"httpGet": {"path": readiness_path, "port": port_name},
                                       "periodSeconds": 1}
    pod_spec: JSON = {"containers": [container]}
    if grace_seconds is not None:
        pod_spec["terminationGracePeriodSeconds"] = grace_seconds
    metadata: JSON = {"name": name, "namespace": namespace,
                      "labels": {**selector, **(labels or {})}}
    if annotations:
        metadata["annotations"] = dict(annotations)
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata,
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": dict(selector)},
            "template": {"metadata": {"labels": dict(selector)}, "spec": pod_spec},
        },
    }


def service(name: str, *, selector: dict[str, str], namespace: str = "default",
            port_name: str = "http", port: int = 80, target_port: str | int = "http") -> JSON:
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"selector": dict(selector),
                 "ports": [{"name": port_name, "port": port, "targetPort": target_port}]},
    }


def job(name: str, *, command: list[str], namespace: str = "default",
        backoff_limit: int = 0) -> JSON:
    return {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "backoffLimit": backoff_limit,
            "template": {"spec": {"restartPolicy": "Never",
                                  "containers": [{"name": "job", "image": "emulated/job:1",
                                                  "command": command}]}},
        },
    }


def config_map(name: str, data: dict[str, str], *, namespace: str = "default") -> JSON:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": namespace}, "data": dict(data)}
