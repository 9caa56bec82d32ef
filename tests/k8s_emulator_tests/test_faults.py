"""Fault switches: injected errors, stalls, resets, the API going down and coming back,
and the request recorder."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client import ApiClient
from kubernetes_asyncio.client.exceptions import ApiException

from tests.k8s_emulator import Emulator
from tests.k8s_emulator.manifests import config_map, deployment

from .helpers import expect_status


async def test_next_request_fails_then_succeeds(k8s_emulator: Emulator, k8s_api: ApiClient) -> None:
    apps: Any = client.AppsV1Api(k8s_api)
    await apps.create_namespaced_deployment("default", deployment("web", replicas=0))
    k8s_emulator.faults.fail(500, verb="patch", resource="deployments", subresource="scale")
    with pytest.raises(ApiException) as exc:
        await apps.patch_namespaced_deployment_scale("web", "default", {"spec": {"replicas": 1}})
    expect_status(exc, 500, "InternalError")
    # Other verbs were never affected, and the rule is spent after one use.
    await apps.read_namespaced_deployment_scale("web", "default")
    scaled = await apps.patch_namespaced_deployment_scale("web", "default",
                                                          {"spec": {"replicas": 0}})
    assert scaled.spec.replicas == 0


async def test_429_carries_retry_after(k8s_emulator: Emulator, k8s_api: ApiClient) -> None:
    core: Any = client.CoreV1Api(k8s_api)
    k8s_emulator.faults.fail(429, retry_after=3, times=2, resource="configmaps")
    for _ in range(2):
        with pytest.raises(ApiException) as exc:
            await core.list_namespaced_config_map("default")
        expect_status(exc, 429, "TooManyRequests")
        assert exc.value.headers is not None and exc.value.headers["Retry-After"] == "3"
    await core.list_namespaced_config_map("default")


async def test_injected_conflict(k8s_emulator: Emulator, k8s_api: ApiClient) -> None:
    core: Any = client.CoreV1Api(k8s_api)
    await core.create_namespaced_config_map("default", config_map("cm", {}))
    k8s_emulator.faults.fail(409, verb="update", name="cm")
    made = await core.read_namespaced_config_map("cm", "default")
    with pytest.raises(ApiException) as exc:
        await core.replace_namespaced_config_map("cm", "default", made)
    expect_status(exc, 409, "Conflict")


async def test_stall_trips_the_client_timeout(k8s_emulator: Emulator, k8s_api: ApiClient) -> None:
    core: Any = client.CoreV1Api(k8s_api)
    k8s_emulator.faults.stall(2.0, verb="list")
    with pytest.raises(asyncio.TimeoutError):
        await core.list_namespaced_config_map("default", _request_timeout=0.3)
    listed = await core.list_namespaced_config_map("default", _request_timeout=2)
    assert listed.kind == "ConfigMapList"


async def test_reset_aborts_the_connection(k8s_emulator: Emulator, k8s_api: ApiClient) -> None:
    core: Any = client.CoreV1Api(k8s_api)
    # aiohttp retries an idempotent request once when a reused connection drops, so the
    # rule stays until removed.
    rule = k8s_emulator.faults.reset(verb="list", resource="configmaps", times=None)
    with pytest.raises(aiohttp.ClientError):
        await core.list_namespaced_config_map("default")
    k8s_emulator.faults.remove(rule)
    await core.list_namespaced_config_map("default")


async def test_api_down_refuses_connections_then_comes_back(
    k8s_emulator: Emulator, k8s_api: ApiClient
) -> None:
    core: Any = client.CoreV1Api(k8s_api)
    await core.create_namespaced_config_map("default", config_map("kept", {}))
    port = k8s_emulator.port
    await k8s_emulator.down()
    with pytest.raises(aiohttp.ClientConnectionError):
        await core.read_namespaced_config_map("kept", "default", _request_timeout=2)
    await k8s_emulator.up()
    assert k8s_emulator.port == port
    kept = await core.read_namespaced_config_map("kept", "default", _request_timeout=2)
    assert kept.metadata.name == "kept"  # state survives an outage


async def test_api_down_breaks_open_watches(k8s_emulator: Emulator, k8s_api: ApiClient) -> None:
    core: Any = client.CoreV1Api(k8s_api)
    resp = await core.list_namespaced_config_map("default", watch=True, timeout_seconds=30,
                                                 _preload_content=False)
    await asyncio.sleep(0.1)
    await k8s_emulator.down()
    with pytest.raises(aiohttp.ClientError):
        async with asyncio.timeout(5):
            while await resp.content.readline():
                pass
            raise aiohttp.ClientPayloadError("stream ended")
    resp.release()
    await k8s_emulator.up()


async def test_recorder_lists_what_was_asked_in_rbac_terms(
    k8s_emulator: Emulator, k8s_api: ApiClient
) -> None:
    apps: Any = client.AppsV1Api(k8s_api)
    coordination: Any = client.CoordinationV1Api(k8s_api)
    await apps.create_namespaced_deployment("default", deployment("web", replicas=0))
    await apps.read_namespaced_deployment_scale("web", "default")
    await apps.patch_namespaced_deployment_scale("web", "default", {"spec": {"replicas": 0}})
    await apps.list_deployment_for_all_namespaces()
    await coordination.list_namespaced_lease("default")
    assert k8s_emulator.recorder.rbac_rules() == {
        ("apps", "deployments", "create"),
        ("apps", "deployments/scale", "get"),
        ("apps", "deployments/scale", "patch"),
        ("apps", "deployments", "list"),
        ("coordination.k8s.io", "leases", "list"),
    }
    scale_calls = k8s_emulator.recorder.matching(verb="patch", subresource="scale")
    assert [(r.namespace, r.name, r.status) for r in scale_calls] == [("default", "web", 200)]
