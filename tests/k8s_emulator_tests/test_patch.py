"""The three patch types through the real client, and their rules on plain objects."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client import ApiClient
from kubernetes_asyncio.client.exceptions import ApiException

from tests.k8s_emulator.errors import BadRequest, Invalid, UnsupportedMediaType
from tests.k8s_emulator.manifests import config_map, deployment
from tests.k8s_emulator.patch import apply_patch, json_patch, merge_patch
from tests.k8s_emulator.strategic import strategic_merge

from .helpers import expect_status

MERGE = "application/merge-patch+json"


def two_containers() -> dict[str, Any]:
    dep = deployment("web", replicas=0)
    pod = dep["spec"]["template"]["spec"]
    pod["containers"].append({"name": "sidecar", "image": "emulated/sidecar:1",
                              "command": ["sleep", "1000"],
                              "env": [{"name": "A", "value": "1"}]})
    return dep


async def test_strategic_merge_is_the_default_and_merges_containers_by_name(
    k8s_api: ApiClient,
) -> None:
    apps: Any = client.AppsV1Api(k8s_api)
    await apps.create_namespaced_deployment("default", two_containers())
    patch = {"spec": {"template": {"spec": {"containers": [
        {"name": "sidecar", "image": "emulated/sidecar:2", "env": [{"name": "B", "value": "2"}]},
    ]}}}}
    patched = await apps.patch_namespaced_deployment("web", "default", patch)
    containers = {c.name: c for c in patched.spec.template.spec.containers}
    assert set(containers) == {"app", "sidecar"}
    assert containers["sidecar"].image == "emulated/sidecar:2"
    assert [(e.name, e.value) for e in containers["sidecar"].env] == [("A", "1"), ("B", "2")]
    assert patched.metadata.generation == 2


async def test_merge_patch_replaces_lists(k8s_api: ApiClient) -> None:
    apps: Any = client.AppsV1Api(k8s_api)
    await apps.create_namespaced_deployment("default", two_containers())
    patch = {"metadata": {"labels": {"app": None, "tier": "front"}},
             "spec": {"template": {"spec": {"containers": [
                 {"name": "only", "image": "emulated/only:1", "command": ["true"]}]}}}}
    patched = await apps.patch_namespaced_deployment("web", "default", patch,
                                                     _content_type=MERGE)
    assert [c.name for c in patched.spec.template.spec.containers] == ["only"]
    assert patched.metadata.labels == {"tier": "front"}


async def test_json_patch_and_its_test_operation(k8s_api: ApiClient) -> None:
    core: Any = client.CoreV1Api(k8s_api)
    await core.create_namespaced_config_map("default", config_map("cm", {"a": "1"}))
    ops = [{"op": "test", "path": "/data/a", "value": "1"},
           {"op": "add", "path": "/data/b", "value": "2"},
           {"op": "remove", "path": "/data/a"}]
    patched = await core.patch_namespaced_config_map("cm", "default", ops)
    assert patched.data == {"b": "2"}
    with pytest.raises(ApiException) as exc:
        await core.patch_namespaced_config_map(
            "cm", "default", [{"op": "test", "path": "/data/b", "value": "nope"}])
    expect_status(exc, 422, "Invalid")


async def test_patch_carrying_a_stale_resource_version_conflicts(k8s_api: ApiClient) -> None:
    core: Any = client.CoreV1Api(k8s_api)
    made = await core.create_namespaced_config_map("default", config_map("cm", {"a": "1"}))
    await core.patch_namespaced_config_map("cm", "default", {"data": {"a": "2"}})
    stale = {"metadata": {"resourceVersion": made.metadata.resource_version},
             "data": {"a": "3"}}
    with pytest.raises(ApiException) as exc:
        await core.patch_namespaced_config_map("cm", "default", stale, _content_type=MERGE)
    expect_status(exc, 409, "Conflict")
    current = await core.read_namespaced_config_map("cm", "default")
    assert current.data == {"a": "2"}


async def test_unsupported_patch_type_is_415(k8s_api: ApiClient) -> None:
    core: Any = client.CoreV1Api(k8s_api)
    await core.create_namespaced_config_map("default", config_map("cm", {}))
    with pytest.raises(ApiException) as exc:
        await core.patch_namespaced_config_map("cm", "default", {"data": {"a": "1"}},
                                               _content_type="application/json-seq+json")
    expect_status(exc, 415, "UnsupportedMediaType")


async def test_server_side_apply_needs_a_field_manager_creates_then_merges(
    k8s_api: ApiClient,
) -> None:
    core: Any = client.CoreV1Api(k8s_api)
    apply = "application/apply-patch+yaml"
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"},
            "data": {"a": "1"}}
    with pytest.raises(ApiException) as exc:
        await core.patch_namespaced_config_map("cm", "default", body, _content_type=apply)
    assert exc.value.status == 400
    created = await core.patch_namespaced_config_map(
        "cm", "default", body, field_manager="t", force=True, _content_type=apply)
    assert created.data == {"a": "1"}
    body["data"] = {"b": "2"}
    merged = await core.patch_namespaced_config_map(
        "cm", "default", body, field_manager="t", _content_type=apply)
    assert merged.data == {"a": "1", "b": "2"}  # no managedFields: nothing is removed


async def test_patch_of_a_missing_object_is_404(k8s_api: ApiClient) -> None:
    core: Any = client.CoreV1Api(k8s_api)
    with pytest.raises(ApiException) as exc:
        await core.patch_namespaced_config_map("ghost", "default", {"data": {}})
    expect_status(exc, 404, "NotFound")


def test_merge_patch_rules() -> None:
    assert merge_patch({"a": {"b": 1, "c": 2}}, {"a": {"b": None, "d": 3}}) == {
        "a": {"c": 2, "d": 3}}
    assert merge_patch({"a": [1, 2]}, {"a": [3]}) == {"a": [3]}


def test_strategic_merge_keys_directives_and_primitive_lists() -> None:
    original = {
        "metadata": {"finalizers": ["a"]},
        "spec": {
            "containers": [{"name": "x", "ports": [{"containerPort": 80, "name": "http"}]}],
            "ports": [{"port": 80, "name": "web"}],
            "tolerations": [{"key": "k"}],
        },
    }
    patch = {
        "metadata": {"finalizers": ["b"]},
        "spec": {
            "containers": [{"name": "x", "ports": [{"containerPort": 81, "name": "alt"}]},
                           {"name": "y", "$patch": "delete"}],
            "ports": [{"port": 80, "protocol": "TCP"}],
            "tolerations": [{"key": "other"}],
        },
    }
    result = strategic_merge(original, patch)
    assert result["metadata"]["finalizers"] == ["a", "b"]
    assert [p["containerPort"] for p in result["spec"]["containers"][0]["ports"]] == [80, 81]
    assert result["spec"]["ports"] == [{"port": 80, "name": "web", "protocol": "TCP"}]
    assert result["spec"]["tolerations"] == [{"key": "other"}]  # no merge key: replaced
    deleted = strategic_merge(original, {"spec": {"containers": [
        {"name": "x", "$patch": "delete"}]}})
    assert deleted["spec"]["containers"] == []
    replaced = strategic_merge(original, {"spec": {"$patch": "replace", "ports": []}})
    assert replaced["spec"] == {"ports": []}


def test_json_patch_operations() -> None:
    doc = {"a": [1, 2], "b": {"c": 1}}
    out = json_patch(doc, [
        {"op": "add", "path": "/a/-", "value": 3},
        {"op": "replace", "path": "/a/0", "value": 0},
        {"op": "move", "from": "/b/c", "path": "/d"},
        {"op": "copy", "from": "/d", "path": "/e~1f"},
    ])
    assert out == {"a": [0, 2, 3], "b": {}, "d": 1, "e/f": 1}
    assert doc == {"a": [1, 2], "b": {"c": 1}}  # the input is left alone
    with pytest.raises(Invalid):
        json_patch(doc, [{"op": "remove", "path": "/missing"}])
    with pytest.raises(BadRequest):
        json_patch(doc, [{"op": "jump", "path": "/a"}])
    with pytest.raises(UnsupportedMediaType):
        apply_patch("text/plain", doc, {})
