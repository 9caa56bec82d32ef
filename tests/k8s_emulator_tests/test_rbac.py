"""RBAC as the API server enforces it: wakeproxy's ServiceAccount token may do what the
install's Roles grant and nothing else, with verbs derived from the request as the real
authorizer derives them; the admin token may do anything."""

from __future__ import annotations

import contextlib
import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client import ApiClient
from kubernetes_asyncio.client.exceptions import ApiException
from kubernetes_asyncio.config import new_client_from_config

from tests.k8s_emulator import Emulator
from tests.k8s_emulator.fixtures import EmulatorFactory
from tests.k8s_emulator.manifests import deployment
from tests.k8s_emulator_tests.helpers import api_for, status_of

USER = "system:serviceaccount:proxy:runner"

INSTALL = """
apiVersion: v1
kind: Namespace
metadata: {name: proxy}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: runner, namespace: proxy}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: wakeproxy, namespace: proxy}
spec:
  selector: {matchLabels: {app: wakeproxy}}
  template:
    metadata: {labels: {app: wakeproxy}}
    spec:
      serviceAccountName: runner
      containers: [{name: wakeproxy, image: wakeproxy:1}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: scaler}
rules:
  - {apiGroups: [apps], resources: [deployments], verbs: [list, watch]}
  - {apiGroups: [apps], resources: [deployments/scale], verbs: [get, update]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: scaler}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: scaler}
subjects: [{kind: ServiceAccount, name: runner, namespace: proxy}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: services, namespace: proxy}
rules:
  - {apiGroups: [""], resources: [services], verbs: [patch, delete]}
  - {apiGroups: [""], resources: [configmaps], verbs: [get], resourceNames: [settings]}
  - {apiGroups: [""], resources: [pods/log], verbs: [get]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: services, namespace: proxy}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: services}
subjects: [{kind: ServiceAccount, name: runner, namespace: proxy}]
"""


def service(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"ports": [{"port": 80}]}}


@pytest.fixture
async def emulator(make_k8s_emulator: EmulatorFactory, tmp_path: Path) -> Emulator:
    directory = tmp_path / "install"
    directory.mkdir()
    (directory / "all.yaml").write_text(textwrap.dedent(INSTALL))
    (directory / "kustomization.yaml").write_text("resources: [all.yaml]\n")
    return await make_k8s_emulator(install_dir=directory)


def as_runner(emulator: Emulator) -> contextlib.AbstractAsyncContextManager[ApiClient]:
    return api_for(emulator, emulator.wakeproxy_kubeconfig)


async def forbidden(call: Any) -> str:
    with pytest.raises(ApiException) as exc:
        await call
    assert exc.value.status == 403, exc.value.body
    status = status_of(exc.value)
    assert status["reason"] == "Forbidden"
    return str(status["message"])


async def test_the_service_account_may_do_only_what_its_roles_grant(emulator: Emulator) -> None:
    emulator.create(deployment("web"))
    async with as_runner(emulator) as api:
        apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
        await apps.list_deployment_for_all_namespaces()  # the ClusterRoleBinding: everywhere
        await apps.list_namespaced_deployment("default")
        scale = await apps.read_namespaced_deployment_scale("web", "default")
        assert scale.spec.replicas == 1
        message = await forbidden(apps.read_namespaced_deployment("web", "default"))
        assert message == (
            f'deployments.apps "web" is forbidden: User "{USER}" cannot get resource '
            '"deployments" in API group "apps" in the namespace "default"')
        message = await forbidden(apps.patch_namespaced_deployment_scale(
            "web", "default", {"spec": {"replicas": 2}}))
        assert 'cannot patch resource "deployments/scale" in API group "apps"' in message
        message = await forbidden(core.list_namespace())
        assert message == (f'namespaces is forbidden: User "{USER}" cannot list resource '
                           '"namespaces" in API group "" at the cluster scope')
        # A Role binds in its own namespace only.
        await forbidden(core.delete_namespaced_service("web", "default"))
        message = await forbidden(core.create_namespaced_service("proxy", service("shop")))
        assert message == (f'services is forbidden: User "{USER}" cannot create resource '
                           '"services" in API group "" in the namespace "proxy"')
    status = emulator.recorder.requests[-1].status
    assert status == 403


async def test_a_watch_is_its_own_verb(emulator: Emulator) -> None:
    async with as_runner(emulator) as api:
        core = client.CoreV1Api(api)
        await forbidden(core.list_namespaced_service("proxy", watch=True, timeout_seconds=1))
        await forbidden(core.list_namespaced_service("proxy"))
        apps = client.AppsV1Api(api)
        listed = await apps.list_namespaced_deployment("default", watch=False)
        assert listed.items == []


async def test_an_apply_that_creates_is_a_create_too(emulator: Emulator) -> None:
    """Granted patch but not create: the apply of a new Service is refused as a create;
    the apply of an existing one is a patch and goes through."""
    body = service("shop")
    async with as_runner(emulator) as api:
        core = client.CoreV1Api(api)
        message = await forbidden(core.patch_namespaced_service(
            "shop", "proxy", body, field_manager="t", _content_type="application/apply-patch+yaml"))
        assert message == (f'services "shop" is forbidden: User "{USER}" cannot create resource '
                           '"services" in API group "" in the namespace "proxy"')
        emulator.create(body, "proxy")
        body["metadata"]["labels"] = {"applied": "yes"}
        await core.patch_namespaced_service(
            "shop", "proxy", body, field_manager="t", _content_type="application/apply-patch+yaml")
        await core.delete_namespaced_service("shop", "proxy")
    applies = emulator.recorder.matching(verb="patch", resource="services")
    assert [a.verbs for a in applies] == [["patch", "create"], ["patch"]]
    assert ("", "services", "create") in emulator.recorder.rbac_rules()


async def test_resource_names_and_subresources(emulator: Emulator) -> None:
    emulator.create({"apiVersion": "v1", "kind": "ConfigMap",
                     "metadata": {"name": "settings"}, "data": {}}, "proxy")
    emulator.create({"apiVersion": "v1", "kind": "ConfigMap",
                     "metadata": {"name": "other"}, "data": {}}, "proxy")
    async with as_runner(emulator) as api:
        core = client.CoreV1Api(api)
        await core.read_namespaced_config_map("settings", "proxy")
        await forbidden(core.read_namespaced_config_map("other", "proxy"))
        # resourceNames never match a request without a name.
        await forbidden(core.list_namespaced_config_map("proxy"))
        # pods/log is granted, pods is not.
        await forbidden(core.read_namespaced_pod("nope", "proxy"))
        with pytest.raises(ApiException) as exc:
            await core.read_namespaced_pod_log("nope", "proxy")
        assert exc.value.status == 404  # authorized, then not found


async def test_the_admin_may_do_anything_and_unknown_tokens_are_401(emulator: Emulator) -> None:
    api = await new_client_from_config(config_file=str(emulator.kubeconfig))
    try:
        await client.CoreV1Api(api).create_namespaced_service("default", service("any"))
        await client.CoreV1Api(api).list_namespace()
    finally:
        await api.close()
    text = emulator.wakeproxy_kubeconfig.read_text().replace(emulator.wakeproxy_token, "nope")
    wrong = emulator.wakeproxy_kubeconfig.with_name("wrong.yaml")
    wrong.write_text(text)
    api = await new_client_from_config(config_file=str(wrong))
    try:
        with pytest.raises(ApiException) as exc:
            await client.CoreV1Api(api).list_namespace()
        assert exc.value.status == 401
        assert json.loads(exc.value.body)["reason"] == "Unauthorized"
    finally:
        await api.close()
