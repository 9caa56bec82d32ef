"""Where the end-to-end tests run: the API emulator, or a real cluster on request.

`Cluster` hides the difference: apps are created, annotated, scaled and deleted through
the real API client either way. On the emulator the app's pods run the echo app as local
processes; on a real cluster they run an image (the test host must reach pod IPs, as on
a kind or k3s node). Only the emulator has fault switches (`Cluster.emulator`).
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
from kubernetes_asyncio import client
from kubernetes_asyncio.client import ApiClient
from kubernetes_asyncio.config import new_client_from_config

from tests.e2e.harness import ECHO_APP, Wakeproxy
from tests.k8s_emulator import Emulator

REAL_CLUSTER_ENV = "WAKEPROXY_TEST_KUBECONFIG"
REAL_IMAGE = "python:3.12-alpine"


class Cluster:
    def __init__(self, kubeconfig: Path, namespace: str, emulator: Emulator | None) -> None:
        self.kubeconfig = kubeconfig
        self.namespace = namespace
        self.emulator = emulator
        self.api: ApiClient | None = None

    async def open(self) -> Cluster:
        self.api = await new_client_from_config(config_file=str(self.kubeconfig),
                                                persist_config=False)
        if self.emulator is None:
            body = {"metadata": {"name": self.namespace}}
            await client.CoreV1Api(self.api).create_namespace(body)
        return self

    async def close(self) -> None:
        if self.api is None:
            return
        if self.emulator is None:
            await client.CoreV1Api(self.api).delete_namespace(self.namespace)
        await self.api.close()

    @property
    def apps(self) -> client.AppsV1Api:
        assert self.api is not None
        return client.AppsV1Api(self.api)

    def app_name(self, deployment: str) -> str:
        return f"{self.namespace}.{deployment}"

    def _container(self, name: str) -> dict[str, Any]:
        if self.emulator is not None:
            return {"name": "app", "image": "emulated/echo:1",
                    "command": [sys.executable, str(ECHO_APP)],
                    "env": [{"name": "APP_NAME", "value": name}],
                    "ports": [{"name": "http", "containerPort": 8080}]}
        return {"name": "app", "image": REAL_IMAGE,
                "command": ["python3", "-m", "http.server", "8080"],
                "ports": [{"name": "http", "containerPort": 8080}],
                "readinessProbe": {"tcpSocket": {"port": "http"}, "periodSeconds": 1}}

    async def create_app(self, name: str, *, hosts: str, replicas: int = 0,
                         requests: dict[str, str] | None = None, **annotations: str) -> None:
        notes = {"wakeproxy.io/hosts": hosts, "wakeproxy.io/port": "http"}
        notes.update({f"wakeproxy.io/{k.replace('_', '-')}": v for k, v in annotations.items()})
        body: dict[str, Any] = {
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": self.namespace,
                         "labels": {"app": name, "wakeproxy.io/enabled": "true"},
                         "annotations": notes},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [self._container(name)],
                                           "terminationGracePeriodSeconds": 1}}},
        }
        if requests:
            container = body["spec"]["template"]["spec"]["containers"][0]
            container["resources"] = {"requests": dict(requests)}
        await self.apps.create_namespaced_deployment(self.namespace, body)

    async def annotate(self, name: str, **annotations: str) -> None:
        notes = {f"wakeproxy.io/{k.replace('_', '-')}": v for k, v in annotations.items()}
        await self.apps.patch_namespaced_deployment(
            name, self.namespace, {"metadata": {"annotations": notes}})

    async def delete_app(self, name: str) -> None:
        await self.apps.delete_namespaced_deployment(name, self.namespace)

    async def replicas(self, name: str) -> int:
        scale = await self.apps.read_namespaced_deployment_scale(name, self.namespace)
        return int(scale.spec.replicas or 0)

    async def running_pods(self, name: str) -> int:
        assert self.api is not None
        pods = await client.CoreV1Api(self.api).list_namespaced_pod(
            self.namespace, label_selector=f"app={name}")
        return sum(1 for p in pods.items if p.metadata.deletion_timestamp is None)

    def wakeproxy_config(self, **kubernetes: Any) -> dict[str, Any]:
        """The config of a wakeproxy replica for this cluster, with short intervals.

        On the emulator wakeproxy acts as its ServiceAccount, with the RBAC of k8s/ (its
        Leases in its own namespace); on a real cluster, as the test's kubeconfig.
        """
        if self.emulator is not None:
            kubeconfig = self.emulator.wakeproxy_kubeconfig
            leases = self.emulator.wakeproxy_namespace
        else:
            kubeconfig, leases = self.kubeconfig, self.namespace
        return {
            "platform": "kubernetes",
            "defaults": {"idle_after": "5m", "wake_timeout": "20s"},
            "kubernetes": {
                "kubeconfig": str(kubeconfig), "namespaces": [self.namespace],
                "lease_namespace": leases, "lease_duration": "1s",
                "activity_interval": "200ms", "request_timeout": "2s",
                "watch_timeout": "30s", "watch_idle_timeout": "5s", **kubernetes,
            },
        }


def new_namespace() -> str:
    return f"wakeproxy-e2e-{secrets.token_hex(3)}"


async def start(wp: Wakeproxy, *, ready_within: float = 20.0) -> Wakeproxy:
    """Start `wakeproxy serve` without blocking the loop the emulator runs on; wait ready."""
    await asyncio.to_thread(wp.start)
    deadline = time.monotonic() + ready_within
    async with aiohttp.ClientSession() as session:
        while True:
            try:
                async with session.get(wp.admin + "/readyz") as resp:
                    if resp.status == 200:
                        return wp
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"wakeproxy not ready:\n{wp.output()}")
            await asyncio.sleep(0.05)


async def metrics(wp: Wakeproxy) -> dict[str, float]:
    """`/metrics` as {'name{labels}': value}."""
    async with aiohttp.ClientSession() as session, session.get(wp.admin + "/metrics") as resp:
        text = await resp.text()
    out: dict[str, float] = {}
    for line in text.splitlines():
        m = re.match(r"^([a-z_:]+(?:\{[^}]*\})?) (\S+)$", line)
        if m:
            out[m.group(1)] = float(m.group(2))
    return out


async def get(session: aiohttp.ClientSession, wp: Wakeproxy, host: str,
              path: str = "/") -> tuple[int, str, dict[str, str]]:
    async with session.get(wp.url + path, headers={"Host": host},
                           timeout=aiohttp.ClientTimeout(total=60)) as resp:
        return resp.status, await resp.text(), dict(resp.headers)


async def app_state(wp: Wakeproxy, app: str) -> str:
    async with aiohttp.ClientSession() as session, session.get(
            f"{wp.admin}/api/v1/apps/{app}") as resp:
        if resp.status == 404:
            return "absent"
        return str(json.loads(await resp.text())["state"])


async def cli(*args: str) -> tuple[int, str]:
    """Run the `wakeproxy` command (a client command: status, sleep, ...); exit code, output."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "wakeproxy", *args, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode()


async def until(check: Any, within: float = 10.0, every: float = 0.05) -> Any:
    async with asyncio.timeout(within):
        while True:
            value = check()
            if asyncio.iscoroutine(value):
                value = await value
            if value:
                return value
            await asyncio.sleep(every)
