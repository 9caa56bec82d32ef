"""Create, read, list, replace and delete through the real kubernetes_asyncio client."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client import ApiClient
from kubernetes_asyncio.client.exceptions import ApiException

from tests.k8s_emulator import Emulator
from tests.k8s_emulator.manifests import config_map, deployment, service
from tests.k8s_emulator.resources import DEPLOYMENTS, NAMESPACES

from .helpers import expect_status


def idle(name: str) -> dict[str, Any]:
    """A Deployment with no replicas: nothing runs, only the API is exercised."""
    return deployment(name, replicas=0)


async def test_create_sets_server_fields_and_defaults(k8s_api: ApiClient) -> None:
    apps: Any = client.AppsV1Api(k8s_api)
    body = idle("web")
    del body["spec"]["replicas"]
    created = await apps.create_namespaced_deployment("default", body)
    assert created.metadata.uid
    assert created.metadata.resource_version.isdigit()
    assert created.metadata.creation_timestamp is not None
    assert created.metadata.generation == 1
    assert created.spec.replicas == 1  # defaulted by the server
    assert created.spec.strategy.type == "RollingUpdate"
    assert created.spec.template.spec.containers[0].image_pull_policy == "IfNotPresent"
    fetched = await apps.read_namespaced_deployment("web", "default")
    assert fetched.metadata.uid == created.metadata.uid
    await apps.patch_namespaced_deployment_scale("web", "default", {"spec": {"replicas": 0}})


async def test_already_exists_and_generate_name(k8s_api: ApiClient) -> None:
    core: Any = client.CoreV1Api(k8s_api)
    await core.create_namespaced_config_map("default", config_map("settings", {"a": "1"}))
    with pytest.raises(ApiException) as exc:
        await core.create_namespaced_config_map("default", config_map("settings", {"a": "2"}))
    expect_status(exc, 409, "AlreadyExists")
    generated = await core.create_namespaced_config_map(
        "default", {"metadata": {"generateName": "settings-"}, "data": {}})
    assert generated.metadata.name.startswith("settings-")
    assert len(generated.metadata.name) == len("settings-") + 5


async def test_missing_objects_and_namespaces_are_404(k8s_api: ApiClient) -> None:
    core: Any = client.CoreV1Api(k8s_api)
    with pytest.raises(ApiException) as exc:
        await core.read_namespaced_config_map("nope", "default")
    expect_status(exc, 404, "NotFound")
    with pytest.raises(ApiException) as exc:
        await core.create_namespaced_config_map("nowhere",
                                               config_map("x", {}, namespace="nowhere"))
    expect_status(exc, 404, "NotFound")
    await core.create_namespace({"metadata": {"name": "elsewhere"}})
    made = await core.create_namespaced_config_map("elsewhere",
                                                   config_map("x", {}, namespace="elsewhere"))
    assert made.metadata.namespace == "elsewhere"


async def test_list_namespaced_and_across_namespaces(k8s_api: ApiClient) -> None:
    core: Any = client.CoreV1Api(k8s_api)
    await core.create_namespace({"metadata": {"name": "team"}})
    await core.create_namespaced_config_map("default", config_map("one", {}))
    await core.create_namespaced_config_map("team", config_map("two", {}, namespace="team"))
    in_default = await core.list_namespaced_config_map("default")
    assert [c.metadata.name for c in in_default.items] == ["one"]
    everywhere = await core.list_config_map_for_all_namespaces()
    assert {c.metadata.name for c in everywhere.items} == {"one", "two"}
    assert int(everywhere.metadata.resource_version) >= int(
        in_default.metadata.resource_version)


async def test_list_pages_with_limit_and_continue(k8s_api: ApiClient) -> None:
    core: Any = client.CoreV1Api(k8s_api)
    for i in range(5):
        await core.create_namespaced_config_map("default", config_map(f"cm-{i}", {}))
    first = await core.list_namespaced_config_map("default", limit=2)
    assert len(first.items) == 2 and first.metadata._continue
    assert first.metadata.remaining_item_count == 3
    rest = await core.list_namespaced_config_map("default", limit=10,
                                                 _continue=first.metadata._continue)
    names = [c.metadata.name for c in first.items + rest.items]
    assert names == [f"cm-{i}" for i in range(5)]


async def test_replace_checks_resource_version_and_bumps_generation(
    k8s_emulator: Emulator, k8s_api: ApiClient
) -> None:
    apps: Any = client.AppsV1Api(k8s_api)
    await apps.create_namespaced_deployment("default", idle("web"))
    # The controller writes status right after creation (a new resourceVersion): read after it.
    await settled(k8s_emulator, "web")
    current = await apps.read_namespaced_deployment("web", "default")
    stale = current.metadata.resource_version
    current.metadata.labels["tier"] = "front"
    relabelled = await apps.replace_namespaced_deployment("web", "default", current)
    assert relabelled.metadata.generation == 1  # metadata is not spec
    assert int(relabelled.metadata.resource_version) > int(stale)
    current.metadata.resource_version = stale
    with pytest.raises(ApiException) as exc:
        await apps.replace_namespaced_deployment("web", "default", current)
    expect_status(exc, 409, "Conflict")
    relabelled.spec.template.spec.containers[0].image = "emulated/app:2"
    changed = await apps.replace_namespaced_deployment("web", "default", relabelled)
    assert changed.metadata.generation == 2


async def settled(emulator: Emulator, name: str) -> None:
    def observed() -> bool:
        dep = emulator.store.find(DEPLOYMENTS, "default", name)
        return bool(dep and (dep.get("status") or {}).get("observedGeneration") ==
                    dep["metadata"]["generation"])

    await emulator.store.wait_until(observed, 5)


async def test_unchanged_update_keeps_resource_version(k8s_api: ApiClient) -> None:
    core: Any = client.CoreV1Api(k8s_api)
    made = await core.create_namespaced_config_map("default", config_map("same", {"k": "v"}))
    again = await core.replace_namespaced_config_map("same", "default", made)
    assert again.metadata.resource_version == made.metadata.resource_version


async def test_resource_version_is_one_global_counter(k8s_api: ApiClient) -> None:
    core: Any = client.CoreV1Api(k8s_api)
    apps: Any = client.AppsV1Api(k8s_api)
    versions = [
        (await core.create_namespaced_config_map("default", config_map("a", {}))),
        (await apps.create_namespaced_deployment("default", idle("b"))),
        (await core.create_namespaced_config_map("default", config_map("c", {}))),
    ]
    numbers = [int(v.metadata.resource_version) for v in versions]
    assert numbers == sorted(numbers) and len(set(numbers)) == 3


async def test_delete_answers_status_and_object_is_gone(k8s_api: ApiClient) -> None:
    apps: Any = client.AppsV1Api(k8s_api)
    made = await apps.create_namespaced_deployment("default", idle("web"))
    result = await apps.delete_namespaced_deployment("web", "default")
    assert result.status == "Success"
    assert result.details.name == "web" and result.details.uid == made.metadata.uid
    with pytest.raises(ApiException) as exc:
        await apps.read_namespaced_deployment("web", "default")
    expect_status(exc, 404, "NotFound")
    with pytest.raises(ApiException) as exc:
        await apps.delete_namespaced_deployment("web", "default")
    expect_status(exc, 404, "NotFound")


async def test_delete_precondition_on_resource_version(k8s_api: ApiClient) -> None:
    core: Any = client.CoreV1Api(k8s_api)
    made = await core.create_namespaced_config_map("default", config_map("cm", {}))
    await core.patch_namespaced_config_map("cm", "default", {"data": {"x": "1"}})
    options = client.V1DeleteOptions(
        preconditions=client.V1Preconditions(resource_version=made.metadata.resource_version))
    with pytest.raises(ApiException) as exc:
        await core.delete_namespaced_config_map("cm", "default", body=options)
    expect_status(exc, 409, "Conflict")


async def test_service_gets_cluster_ip_and_port_defaults(k8s_api: ApiClient) -> None:
    core: Any = client.CoreV1Api(k8s_api)
    svc = await core.create_namespaced_service(
        "default", service("web", selector={"app": "web"}, target_port=8080))
    assert svc.spec.cluster_ip.startswith("10.96.")
    assert svc.spec.type == "ClusterIP"
    assert svc.spec.ports[0].protocol == "TCP"


async def test_namespace_deletion_removes_its_content(
    k8s_emulator: Emulator, k8s_api: ApiClient
) -> None:
    core: Any = client.CoreV1Api(k8s_api)
    await core.create_namespace({"metadata": {"name": "temp"}})
    await core.create_namespaced_config_map("temp", config_map("x", {}, namespace="temp"))
    await core.delete_namespace("temp")
    with pytest.raises(ApiException) as exc:
        await core.create_namespaced_config_map("temp", config_map("y", {}, namespace="temp"))
    assert exc.value.status in (403, 404)  # terminating, or already gone
    await k8s_emulator.store.wait_until(
        lambda: not any(n["metadata"]["name"] == "temp"
                        for n in k8s_emulator.store.items(NAMESPACES)), 5)
    with pytest.raises(ApiException) as exc:
        await core.read_namespaced_config_map("x", "temp")
    expect_status(exc, 404, "NotFound")


async def test_delete_collection_with_a_label_selector(k8s_api: ApiClient) -> None:
    core: Any = client.CoreV1Api(k8s_api)
    for name, team in (("a", "x"), ("b", "x"), ("c", "y")):
        body = config_map(name, {})
        body["metadata"]["labels"] = {"team": team}
        await core.create_namespaced_config_map("default", body)
    await core.delete_collection_namespaced_config_map("default", label_selector="team=x")
    left = await core.list_namespaced_config_map("default")
    assert [c.metadata.name for c in left.items] == ["c"]


async def test_status_subresource_changes_only_status(k8s_api: ApiClient) -> None:
    core: Any = client.CoreV1Api(k8s_api)
    await core.create_namespaced_service("default", service("web", selector={"app": "web"}))
    lb = {"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}]}}
    patched = await core.patch_namespaced_service_status(
        "web", "default", {"status": lb, "spec": {"sessionAffinity": "ClientIP"}})
    assert patched.status.load_balancer.ingress[0].ip == "192.0.2.10"
    assert patched.spec.session_affinity == "None"  # spec is not writable through status
    main = await core.patch_namespaced_service(
        "web", "default", {"status": {"loadBalancer": {}}, "spec": {"sessionAffinity": "ClientIP"}})
    assert main.spec.session_affinity == "ClientIP"
    assert main.status.load_balancer.ingress[0].ip == "192.0.2.10"  # status is not writable here
