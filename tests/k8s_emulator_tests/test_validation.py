"""Objects are validated against the real schemas (kubernetes-validate) and semantic rules."""

from __future__ import annotations

import time
from typing import Any

import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client import ApiClient
from kubernetes_asyncio.client.exceptions import ApiException

from tests.k8s_emulator import Emulator
from tests.k8s_emulator.errors import Invalid
from tests.k8s_emulator.manifests import deployment, job, service
from tests.k8s_emulator.resources import ALL
from tests.k8s_emulator.schema import SchemaValidator, reference_validate

from .helpers import expect_status, status_of


def broken(change: str) -> dict[str, Any]:
    body = deployment("web", replicas=0)
    spec = body["spec"]
    if change == "unknown-field":
        spec["replica"] = 2
    elif change == "wrong-type":
        spec["replicas"] = "two"
    elif change == "no-containers":
        del spec["template"]["spec"]["containers"]
    elif change == "selector-mismatch":
        spec["selector"] = {"matchLabels": {"app": "other"}}
    elif change == "bad-name":
        body["metadata"]["name"] = "Web_Server"
    elif change == "bad-label":
        body["metadata"]["labels"] = {"bad key!": "x"}
    return body


@pytest.mark.parametrize("change", ["unknown-field", "wrong-type", "no-containers",
                                    "selector-mismatch", "bad-name", "bad-label"])
async def test_invalid_deployments_are_422(k8s_api: ApiClient, change: str) -> None:
    apps: Any = client.AppsV1Api(k8s_api)
    with pytest.raises(ApiException) as exc:
        await apps.create_namespaced_deployment("default", broken(change))
    expect_status(exc, 422, "Invalid")
    details = status_of(exc.value)["details"]
    assert details["kind"] == "Deployment" and details["causes"]


async def test_an_invalid_patch_result_is_rejected_and_nothing_changes(
    k8s_api: ApiClient,
) -> None:
    apps: Any = client.AppsV1Api(k8s_api)
    made = await apps.create_namespaced_deployment("default", deployment("web", replicas=0))
    with pytest.raises(ApiException) as exc:
        await apps.patch_namespaced_deployment("web", "default", {"spec": {"paused": "yes"}})
    expect_status(exc, 422, "Invalid")
    with pytest.raises(ApiException) as exc:
        await apps.patch_namespaced_deployment(
            "web", "default", {"spec": {"selector": {"matchLabels": {"app": "web", "x": "y"}}}})
    expect_status(exc, 422, "Invalid")  # the selector is immutable
    current = await apps.read_namespaced_deployment("web", "default")
    assert current.metadata.generation == made.metadata.generation


async def test_job_restart_policy_and_service_names(k8s_api: ApiClient) -> None:
    bad_job = job("once", command=["true"])
    bad_job["spec"]["template"]["spec"]["restartPolicy"] = "Always"
    with pytest.raises(ApiException) as exc:
        batch: Any = client.BatchV1Api(k8s_api)
        await batch.create_namespaced_job("default", bad_job)
    expect_status(exc, 422, "Invalid")
    with pytest.raises(ApiException) as exc:
        core: Any = client.CoreV1Api(k8s_api)
        await core.create_namespaced_service(
            "default", service("1web", selector={"app": "web"}))
    expect_status(exc, 422, "Invalid")


async def test_objects_the_emulator_writes_itself_are_valid(k8s_emulator: Emulator) -> None:
    """Pods, statuses and slices made by the controllers pass the library's own check."""
    k8s_emulator.create(deployment("web", replicas=1))
    await k8s_emulator.store.wait_until(lambda: k8s_emulator.ready_ports("web"), 10)
    version = k8s_emulator.config.kube_version
    assert version is not None
    checked = 0
    for rt in ALL:
        for obj in k8s_emulator.store.items(rt):
            reference_validate(obj, version)
            checked += 1
    assert checked >= 6


def test_cached_validation_is_much_cheaper_than_the_library_call() -> None:
    validator = SchemaValidator("1.36")
    body = deployment("web")
    validator.validate(body, "apps")  # warm the cache
    start = time.perf_counter()
    for _ in range(50):
        validator.validate(body, "apps")
    cached = (time.perf_counter() - start) / 50
    start = time.perf_counter()
    for _ in range(5):
        reference_validate(body, "1.36")
    library = (time.perf_counter() - start) / 5
    assert cached < library
    with pytest.raises(Invalid):
        validator.validate(broken("unknown-field"), "apps")


async def test_what_the_oldest_supported_version_would_drop_is_refused(
    k8s_emulator: Emulator, k8s_api: ApiClient,
) -> None:
    """Validated against 1.29 as well as the current version: a 1.30+ field a 1.29 API
    server would drop is refused, unless its 1.29 fallback comes with it."""
    assert k8s_emulator.config.oldest_kube_version == "1.29"
    batch, apps = client.BatchV1Api(k8s_api), client.AppsV1Api(k8s_api)
    unconfined = job("build", command=["true"])
    template = unconfined["spec"]["template"]
    template["spec"]["containers"][0]["securityContext"] = {
        "appArmorProfile": {"type": "Unconfined"}}
    with pytest.raises(ApiException) as exc:
        await batch.create_namespaced_job("default", unconfined)
    expect_status(exc, 422, "Invalid")
    assert ("spec.template.spec.containers[0].securityContext: appArmorProfile: not a field of "
            "Kubernetes 1.29") in status_of(exc.value)["message"]
    template["metadata"] = {"annotations": {
        "container.apparmor.security.beta.kubernetes.io/job": "runtime/default"}}
    with pytest.raises(ApiException):  # the annotation must say the same
        await batch.create_namespaced_job("default", unconfined)
    template["metadata"]["annotations"][
        "container.apparmor.security.beta.kubernetes.io/job"] = "unconfined"
    await batch.create_namespaced_job("default", unconfined)

    pause = deployment("web", replicas=0)
    pause["spec"]["template"]["spec"]["containers"][0]["lifecycle"] = {
        "preStop": {"sleep": {"seconds": 5}}}
    with pytest.raises(ApiException) as exc:
        await apps.create_namespaced_deployment("default", pause)
    expect_status(exc, 422, "Invalid")
    assert "lifecycle.preStop.sleep: dropped by a Kubernetes 1.29 API server" in status_of(
        exc.value)["message"]
    pause["spec"]["template"]["spec"]["containers"][0]["lifecycle"] = {
        "preStop": {"exec": {"command": ["sleep", "5"]}}}
    await apps.create_namespaced_deployment("default", pause)
