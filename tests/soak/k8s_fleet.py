"""Two `wakeproxy serve` replicas on the Kubernetes emulator, for the churn soak and faults.

Owns: Deployments whose pods run the fast app (`python -S -E`, each start logged to a
file, so app starts are counted from the pods themselves), and starting a replica as a
`LeanWakeproxy` without blocking the loop the emulator runs on. Never stops the emulator:
the emulator fixture does, and the replicas are stopped by PID in the caller's fixture.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from tests.e2e_k8s.cluster import Cluster, start
from tests.k8s_emulator import Emulator
from tests.platforms.kubernetes.support import is_scale_write
from tests.soak.support import FAST_APP, LeanWakeproxy

# Short intervals: wakes and sleeps measured in tens of milliseconds, not seconds.
EMULATOR = {
    "bookmark_interval": 0.5,
    "probe_interval": 0.01,
    "endpoint_publish_delay": 0.0,
    "max_grace_seconds": 0.5,
}


async def create_fast_app(cluster: Cluster, name: str, start_log: Path, **notes: str) -> None:
    """A Deployment at `<name>.localhost`, asleep, whose pods run the fast app."""
    annotations = {"wakeproxy.io/hosts": f"{name}.localhost", "wakeproxy.io/port": "http"}
    annotations.update({f"wakeproxy.io/{k.replace('_', '-')}": v for k, v in notes.items()})
    env = [{"name": "APP_NAME", "value": name}, {"name": "START_LOG", "value": str(start_log)}]
    container = {"name": "app", "image": "emulated/fast:1",
                 "command": [sys.executable, "-S", "-E", str(FAST_APP)], "env": env,
                 "ports": [{"name": "http", "containerPort": 8080}]}
    body = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": cluster.namespace,
                     "labels": {"app": name, "wakeproxy.io/enabled": "true"},
                     "annotations": annotations},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [container],
                                       "terminationGracePeriodSeconds": 1}}},
    }
    await cluster.apps.create_namespaced_deployment(cluster.namespace, body)


def replica_config(cluster: Cluster, identity: str, **over: Any) -> dict[str, Any]:
    kubernetes = {"identity": identity, "activity_interval": "100ms",
                  **over.pop("kubernetes", {})}
    config = cluster.wakeproxy_config(**kubernetes)
    config["sweep_interval"] = "50ms"
    config["limits"] = {"response_header_timeout": "20s"}
    config["defaults"] = {"idle_after": "5m", "wake_timeout": "20s"}
    for key, value in over.items():
        config[key] = {**config[key], **value} if isinstance(value, dict) else value
    return config


async def start_replica(tmp: Path, config: dict[str, Any],
                        ready_within: float = 20.0) -> LeanWakeproxy:
    """Start a replica (the caller stops it) and wait until /readyz answers 200."""
    directory = tmp / str(config["kubernetes"]["identity"])
    directory.mkdir(exist_ok=True)
    wp = LeanWakeproxy(directory, config)
    await start(wp, ready_within=ready_within)
    return wp


def scale_writes(emulator: Emulator) -> int:
    """Replica count writes the API answered (any status), from the recorder."""
    return sum(1 for r in emulator.recorder.requests if is_scale_write(r))


def stop(wp: LeanWakeproxy) -> int | None:
    """SIGTERM a replica still running and wait; its exit code (None if already gone)."""
    if wp.proc is None or wp.proc.poll() is not None:
        return None
    return wp.terminate()
