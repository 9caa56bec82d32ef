"""The simulated kubelet: replicas become real processes, published once they answer."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp
from kubernetes_asyncio import client, watch
from kubernetes_asyncio.client import ApiClient

from tests.k8s_emulator import Emulator
from tests.k8s_emulator.fixtures import EmulatorFactory
from tests.k8s_emulator.manifests import deployment, http_server_command, service
from tests.k8s_emulator.resources import DEPLOYMENTS

from .helpers import api_for


async def http_get(port: int, path: str = "/") -> int:
    async with aiohttp.ClientSession() as session, session.get(
        f"http://127.0.0.1:{port}{path}", timeout=aiohttp.ClientTimeout(total=5)
    ) as resp:
        return resp.status


async def refuses(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return True
    writer.close()
    return False


def endpoint_conditions(emulator: Emulator, service_name: str) -> list[dict[str, Any]]:
    return [e["conditions"] for s in emulator.endpoint_slices(service_name)
            for e in s["endpoints"]]


async def test_scale_up_runs_a_process_published_ready_only_once_it_answers(
    k8s_emulator: Emulator, k8s_api: ApiClient
) -> None:
    apps: Any = client.AppsV1Api(k8s_api)
    await apps.create_namespaced_deployment(
        "default", deployment("web", replicas=0, command=http_server_command(delay=0.8)))
    await apps.patch_namespaced_deployment_scale("web", "default", {"spec": {"replicas": 1}})
    store = k8s_emulator.store
    # The pod is published as soon as it has an address, not ready while it does not answer.
    await store.wait_until(lambda: endpoint_conditions(k8s_emulator, "web"), 5)
    assert endpoint_conditions(k8s_emulator, "web")[0]["ready"] is False
    port = k8s_emulator.endpoint_slices("web")[0]["ports"][0]["port"]
    assert await refuses(port)
    ports = await store.wait_until(lambda: k8s_emulator.ready_ports("web"), 10)
    assert ports == [port]
    assert await http_get(port) == 200
    slice_ = k8s_emulator.endpoint_slices("web")[0]
    assert slice_["ports"][0]["name"] == "http"
    assert slice_["endpoints"][0]["addresses"] == ["127.0.0.1"]
    assert slice_["endpoints"][0]["targetRef"]["kind"] == "Pod"
    await store.wait_until(
        lambda: (store.get(DEPLOYMENTS, "default", "web").get("status") or {})
        .get("readyReplicas") == 1, 5)
    dep = await apps.read_namespaced_deployment("web", "default")
    assert dep.status.available_replicas == 1 and dep.status.observed_generation == 2
    core: Any = client.CoreV1Api(k8s_api)
    pods = await core.list_namespaced_pod("default", label_selector="app=web")
    assert [p.status.pod_ip for p in pods.items] == ["127.0.0.1"]
    assert pods.items[0].status.container_statuses[0].ready is True


async def test_scale_to_zero_terminates_endpoint_then_kills_the_process(
    k8s_emulator: Emulator, k8s_api: ApiClient
) -> None:
    apps: Any = client.AppsV1Api(k8s_api)
    discovery: Any = client.DiscoveryV1Api(k8s_api)
    await apps.create_namespaced_deployment("default", deployment("web", replicas=1))
    port = (await k8s_emulator.store.wait_until(lambda: k8s_emulator.ready_ports("web"), 10))[0]
    listed = await discovery.list_namespaced_endpoint_slice(
        "default", label_selector="kubernetes.io/service-name=web")
    events: list[dict[str, Any]] = []

    async def follow() -> None:
        async with watch.Watch() as w:
            async for event in w.stream(
                discovery.list_namespaced_endpoint_slice, "default", timeout_seconds=10,
                label_selector="kubernetes.io/service-name=web",
                resource_version=listed.metadata.resource_version,
            ):
                events.append(event)
                if event["type"] == "DELETED":
                    return

    watcher = asyncio.create_task(follow())
    await asyncio.sleep(0.1)
    await apps.patch_namespaced_deployment_scale("web", "default", {"spec": {"replicas": 0}})
    await asyncio.wait_for(watcher, 10)
    conditions = [e["raw_object"]["endpoints"][0]["conditions"] for e in events
                  if e["type"] == "MODIFIED"]
    assert {"ready": False, "serving": True, "terminating": True} in conditions
    assert events[-1]["type"] == "DELETED"
    await k8s_emulator.store.wait_until(lambda: not k8s_emulator.pods(app="web"), 5)
    assert await refuses(port)
    assert k8s_emulator.kubelet.live_process_groups() == []


async def test_deleting_a_deployment_stops_its_processes(
    k8s_emulator: Emulator, k8s_api: ApiClient
) -> None:
    apps: Any = client.AppsV1Api(k8s_api)
    await apps.create_namespaced_deployment("default", deployment("web", replicas=2))
    ports = await k8s_emulator.store.wait_until(
        lambda: len(k8s_emulator.ready_ports("web")) == 2 and k8s_emulator.ready_ports("web"), 10)
    assert len(set(ports)) == 2  # every pod has its own port on 127.0.0.1
    await apps.delete_namespaced_deployment("web", "default")
    await k8s_emulator.store.wait_until(
        lambda: not k8s_emulator.pods(app="web") and not k8s_emulator.endpoint_slices("web"), 10)
    assert all([await refuses(p) for p in ports])
    assert k8s_emulator.kubelet.live_process_groups() == []


async def test_http_readiness_probe_gates_readiness(
    k8s_emulator: Emulator, k8s_api: ApiClient, tmp_path: Path
) -> None:
    body = deployment("web", replicas=1, readiness_path="/ready")
    body["spec"]["template"]["spec"]["containers"][0]["workingDir"] = str(tmp_path)
    apps: Any = client.AppsV1Api(k8s_api)
    await apps.create_namespaced_deployment("default", body)
    store = k8s_emulator.store
    await store.wait_until(lambda: endpoint_conditions(k8s_emulator, "web"), 5)
    port = k8s_emulator.endpoint_slices("web")[0]["ports"][0]["port"]
    await store.wait_until(lambda: _answers(port), 5)
    await asyncio.sleep(0.3)  # several probe periods: /ready is still 404
    assert endpoint_conditions(k8s_emulator, "web")[0]["ready"] is False
    (tmp_path / "ready").write_text("ok")
    assert await store.wait_until(lambda: k8s_emulator.ready_ports("web"), 5) == [port]


def _answers(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


async def test_publication_lags_readiness_by_the_configured_delay(
    make_k8s_emulator: EmulatorFactory,
) -> None:
    emulator = await make_k8s_emulator(endpoint_publish_delay=0.6)
    emulator.create(deployment("web", replicas=1))
    store = emulator.store
    await store.wait_until(lambda: any(_ready(p) for p in emulator.pods(app="web")), 10)
    ready_at = time.monotonic()
    await store.wait_until(lambda: emulator.ready_ports("web"), 10)
    assert time.monotonic() - ready_at >= 0.4


def _ready(pod: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


async def test_service_names_the_slice_and_its_ports(k8s_emulator: Emulator) -> None:
    k8s_emulator.create(service("frontend", selector={"app": "web"}, port_name="web"))
    k8s_emulator.create(deployment("web", replicas=1))
    ports = await k8s_emulator.store.wait_until(lambda: k8s_emulator.ready_ports("frontend"), 10)
    slice_ = k8s_emulator.endpoint_slices("frontend")[0]
    assert slice_["ports"] == [{"name": "web", "port": ports[0], "protocol": "TCP"}]
    assert slice_["metadata"]["ownerReferences"][0]["kind"] == "Service"
    assert k8s_emulator.endpoint_slices("web") == []  # a selecting Service takes precedence
    assert await http_get(ports[0]) == 200


async def test_a_crashing_container_is_restarted(make_k8s_emulator: EmulatorFactory) -> None:
    emulator = await make_k8s_emulator(restart_backoff=0.05)
    emulator.create(deployment("crash", replicas=1, command=["sh", "-c", "echo boom; exit 3"]))

    def restarts() -> int:
        pods = emulator.pods(app="crash")
        statuses = (pods[0].get("status") or {}).get("containerStatuses") if pods else None
        return int(statuses[0]["restartCount"]) if statuses else 0

    await emulator.store.wait_until(lambda: restarts() >= 2, 10)
    assert emulator.ready_ports("crash") == []
    async with api_for(emulator) as api:
        pod = emulator.pods(app="crash")[0]["metadata"]["name"]
        log = await client.CoreV1Api(api).read_namespaced_pod_log(pod, "default")
    assert log.count("boom") >= 2


async def test_a_deleted_pod_is_replaced_and_its_process_stopped(
    k8s_emulator: Emulator, k8s_api: ApiClient
) -> None:
    core: Any = client.CoreV1Api(k8s_api)
    k8s_emulator.create(deployment("web", replicas=1))
    first_port = (await k8s_emulator.store.wait_until(
        lambda: k8s_emulator.ready_ports("web"), 10))[0]
    first = k8s_emulator.pods(app="web")[0]["metadata"]["name"]
    await core.delete_namespaced_pod(first, "default")
    ports = await k8s_emulator.store.wait_until(
        lambda: [p for p in k8s_emulator.ready_ports("web") if p != first_port], 10)
    assert [p["metadata"]["name"] for p in k8s_emulator.pods(app="web")] != [first]
    await k8s_emulator.store.wait_until(lambda: len(k8s_emulator.ready_ports("web")) == 1, 10)
    assert await refuses(first_port)
    assert await http_get(ports[0]) == 200
