"""The Deployment `scale` subresource through the real client."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client import ApiClient
from kubernetes_asyncio.client.exceptions import ApiException

from tests.k8s_emulator import Emulator
from tests.k8s_emulator.manifests import deployment
from tests.k8s_emulator.resources import DEPLOYMENTS

from .helpers import expect_status

# A command that never becomes ready, so scaling is observed without waiting on processes.
SLEEPER = ["sleep", "30"]


async def test_read_scale(k8s_api: ApiClient) -> None:
    apps: Any = client.AppsV1Api(k8s_api)
    made = await apps.create_namespaced_deployment("default", deployment("web", replicas=0))
    scale = await apps.read_namespaced_deployment_scale("web", "default")
    assert scale.kind == "Scale" and scale.api_version == "autoscaling/v1"
    assert scale.spec.replicas == 0
    assert scale.status.selector == "app=web"
    assert scale.metadata.uid == made.metadata.uid


async def test_patch_scale_with_both_patch_types(
    k8s_emulator: Emulator, k8s_api: ApiClient
) -> None:
    apps: Any = client.AppsV1Api(k8s_api)
    await apps.create_namespaced_deployment(
        "default", deployment("web", replicas=0, command=SLEEPER))
    scaled = await apps.patch_namespaced_deployment_scale("web", "default",
                                                          {"spec": {"replicas": 2}})
    assert scaled.spec.replicas == 2
    await k8s_emulator.store.wait_until(lambda: len(k8s_emulator.pods(app="web")) == 2, 5)
    scaled = await apps.patch_namespaced_deployment_scale(
        "web", "default", {"spec": {"replicas": 0}},
        _content_type="application/merge-patch+json")
    assert scaled.spec.replicas == 0
    scaled = await apps.patch_namespaced_deployment_scale(
        "web", "default", [{"op": "replace", "path": "/spec/replicas", "value": 1}])
    assert scaled.spec.replicas == 1
    dep = await apps.read_namespaced_deployment("web", "default")
    assert dep.spec.replicas == 1
    assert dep.metadata.generation == 4


async def test_scale_with_stale_resource_version_is_409(
    k8s_emulator: Emulator, k8s_api: ApiClient
) -> None:
    apps: Any = client.AppsV1Api(k8s_api)
    await apps.create_namespaced_deployment("default", deployment("web", replicas=0))
    await k8s_emulator.store.wait_until(
        lambda: (k8s_emulator.store.get(DEPLOYMENTS, "default", "web").get("status") or {})
        .get("observedGeneration") == 1, 5)
    scale = await apps.read_namespaced_deployment_scale("web", "default")
    # Another writer (a person, an HPA) changes the Deployment in between.
    await apps.patch_namespaced_deployment("web", "default", {"metadata": {"labels": {"x": "y"}}})
    scale.spec.replicas = 1
    with pytest.raises(ApiException) as exc:
        await apps.replace_namespaced_deployment_scale("web", "default", scale)
    expect_status(exc, 409, "Conflict")
    with pytest.raises(ApiException) as exc:
        await apps.patch_namespaced_deployment_scale(
            "web", "default",
            {"metadata": {"resourceVersion": scale.metadata.resource_version},
             "spec": {"replicas": 1}})
    expect_status(exc, 409, "Conflict")
    fresh = await apps.read_namespaced_deployment_scale("web", "default")
    fresh.spec.replicas = 0
    kept = await apps.replace_namespaced_deployment_scale("web", "default", fresh)
    assert kept.spec.replicas == 0


async def test_negative_replicas_are_invalid(k8s_api: ApiClient) -> None:
    apps: Any = client.AppsV1Api(k8s_api)
    await apps.create_namespaced_deployment("default", deployment("web", replicas=0))
    with pytest.raises(ApiException) as exc:
        await apps.patch_namespaced_deployment_scale("web", "default", {"spec": {"replicas": -1}})
    expect_status(exc, 422, "Invalid")


async def test_scale_of_a_missing_deployment_is_404(k8s_api: ApiClient) -> None:
    apps: Any = client.AppsV1Api(k8s_api)
    with pytest.raises(ApiException) as exc:
        await apps.read_namespaced_deployment_scale("ghost", "default")
    expect_status(exc, 404, "NotFound")
