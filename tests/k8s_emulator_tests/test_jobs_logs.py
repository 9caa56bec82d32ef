"""Jobs run to completion as processes; pod logs are served, followed and filtered."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client import ApiClient
from kubernetes_asyncio.client.exceptions import ApiException

from tests.k8s_emulator import Emulator
from tests.k8s_emulator.manifests import config_map, deployment, job
from tests.k8s_emulator.resources import JOBS


def job_conditions(emulator: Emulator, name: str) -> set[str]:
    found = emulator.store.find(JOBS, "default", name)
    conditions = ((found or {}).get("status") or {}).get("conditions") or []
    return {c["type"] for c in conditions if c["status"] == "True"}


async def test_a_job_completes_and_keeps_its_logs(
    k8s_emulator: Emulator, k8s_api: ApiClient
) -> None:
    batch: Any = client.BatchV1Api(k8s_api)
    core: Any = client.CoreV1Api(k8s_api)
    await batch.create_namespaced_job(
        "default", job("hello", command=["sh", "-c", "echo hello; echo from-job >&2"]))
    await k8s_emulator.store.wait_until(lambda: "Complete" in job_conditions(k8s_emulator,
                                                                              "hello"), 10)
    done = await batch.read_namespaced_job("hello", "default")
    assert done.status.succeeded == 1 and done.status.completion_time is not None
    assert not done.status.active
    pods = await core.list_namespaced_pod("default", label_selector="job-name=hello")
    assert [p.status.phase for p in pods.items] == ["Succeeded"]
    log = await core.read_namespaced_pod_log(pods.items[0].metadata.name, "default")
    assert log == "hello\nfrom-job\n"
    tail = await core.read_namespaced_pod_log(pods.items[0].metadata.name, "default",
                                              tail_lines=1)
    assert tail == "from-job\n"


async def test_a_failing_job_fails_after_its_backoff_limit(
    k8s_emulator: Emulator, k8s_api: ApiClient
) -> None:
    batch: Any = client.BatchV1Api(k8s_api)
    await batch.create_namespaced_job(
        "default", job("broken", command=["sh", "-c", "exit 2"], backoff_limit=1))
    await k8s_emulator.store.wait_until(lambda: "Failed" in job_conditions(k8s_emulator,
                                                                            "broken"), 10)
    failed = await batch.read_namespaced_job("broken", "default")
    assert failed.status.failed == 2
    reasons = {c.reason for c in failed.status.conditions}
    assert reasons == {"BackoffLimitExceeded"}


async def test_follow_streams_lines_as_they_are_written(
    k8s_emulator: Emulator, k8s_api: ApiClient
) -> None:
    script = "import time\nfor i in range(3):\n    print(f'tick {i}', flush=True)\n" \
             "    time.sleep(0.3)\n"
    batch: Any = client.BatchV1Api(k8s_api)
    await batch.create_namespaced_job(
        "default", job("ticker", command=[sys.executable, "-c", script]))
    core: Any = client.CoreV1Api(k8s_api)
    pod = (await k8s_emulator.store.wait_until(
        lambda: [p for p in k8s_emulator.pods() if p["status"].get("containerStatuses")], 10)
    )[0]["metadata"]["name"]
    resp = await core.read_namespaced_pod_log(pod, "default", follow=True,
                                              _preload_content=False)
    lines: list[tuple[float, str]] = []
    loop = asyncio.get_running_loop()
    while line := await resp.content.readline():
        lines.append((loop.time(), line.decode()))
    resp.release()
    assert [text for _, text in lines] == ["tick 0\n", "tick 1\n", "tick 2\n"]
    assert lines[-1][0] - lines[0][0] >= 0.4  # streamed, not delivered at the end


async def test_env_from_downward_api_and_config_map(
    k8s_emulator: Emulator, k8s_api: ApiClient
) -> None:
    core: Any = client.CoreV1Api(k8s_api)
    await core.create_namespaced_config_map("default", config_map("settings", {"mode": "fast"}))
    body = deployment("envy", replicas=1,
                      command=["sh", "-c", "echo $POD_NAME $MODE $GREETING; exec sleep 30"])
    container = body["spec"]["template"]["spec"]["containers"][0]
    container["env"] = [
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}},
        {"name": "WHO", "value": "world"},
        {"name": "GREETING", "value": "hello-$(WHO)"},
    ]
    apps: Any = client.AppsV1Api(k8s_api)
    await apps.create_namespaced_deployment("default", body)

    def logged() -> str:
        pods = k8s_emulator.pods(app="envy")
        if not pods:
            return ""
        name = pods[0]["metadata"]["name"]
        buffer = k8s_emulator.kubelet.log_buffer("default", name, "app")
        return f"{name} fast hello-world\n" if buffer and buffer.text() == \
            f"{name} fast hello-world\n" else ""

    assert await k8s_emulator.store.wait_until(logged, 10)


async def test_a_bare_pod_runs_and_a_waiting_one_has_no_logs_yet(
    k8s_emulator: Emulator, k8s_api: ApiClient
) -> None:
    core: Any = client.CoreV1Api(k8s_api)
    pod = {"metadata": {"name": "solo"},
           "spec": {"restartPolicy": "Never",
                    "containers": [{"name": "c", "image": "emulated/x:1",
                                    "command": ["sh", "-c", "echo solo"]}]}}
    await core.create_namespaced_pod("default", pod)
    await k8s_emulator.store.wait_until(
        lambda: k8s_emulator.pods()[0]["status"]["phase"] == "Succeeded", 10)
    assert await core.read_namespaced_pod_log("solo", "default") == "solo\n"
    imageless = {"metadata": {"name": "imageless"},
                 "spec": {"containers": [{"name": "c", "image": "emulated/x:1"}]}}
    await core.create_namespaced_pod("default", imageless)
    waiting = await k8s_emulator.store.wait_until(
        lambda: [p for p in k8s_emulator.pods() if p["metadata"]["name"] == "imageless"
                 and p["status"].get("containerStatuses")], 5)
    state = waiting[0]["status"]["containerStatuses"][0]["state"]
    assert state["waiting"]["reason"] == "CreateContainerError"
    with pytest.raises(ApiException) as exc:
        await core.read_namespaced_pod_log("imageless", "default")
    assert exc.value.status == 400
