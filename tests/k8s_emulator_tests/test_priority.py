"""PriorityClasses and Priority admission: classes validated as the real server validates
them, pods given the priority of their class at creation (or refused), and pending pods
scheduled in priority order."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from tests.k8s_emulator import Emulator
from tests.k8s_emulator import resources as r
from tests.k8s_emulator.fixtures import EmulatorFactory
from tests.k8s_emulator.install import K8S_DIR
from tests.k8s_emulator.meta import JSON, condition
from tests.k8s_emulator.nodes import NodeSpec
from tests.platforms.kubernetes.support import until

from .helpers import api_for, asking, expect_status, placed, status_of, unschedulable


def priority_class(name: str, value: Any, **extra: Any) -> JSON:
    return {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
            "metadata": {"name": name}, "value": value, **extra}


def pod(name: str, **spec: Any) -> JSON:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "app", "image": "registry.k8s.io/pause:3.9"}],
                     **spec}}


async def test_the_built_in_classes_are_served_and_cannot_be_deleted(
    k8s_api: client.ApiClient,
) -> None:
    scheduling = client.SchedulingV1Api(k8s_api)
    listed = {pc.metadata.name: pc for pc in (await scheduling.list_priority_class()).items}
    assert listed["system-cluster-critical"].value == 2000000000
    assert listed["system-node-critical"].value == 2000001000
    assert listed["system-node-critical"].preemption_policy == "PreemptLowerPriority"
    with pytest.raises(ApiException) as refused:
        await scheduling.delete_priority_class("system-node-critical")
    expect_status(refused, 403, "Forbidden")
    assert "this is a system priority class and cannot be deleted" in status_of(
        refused.value)["message"]
    assert (await scheduling.read_priority_class("system-node-critical")).value == 2000001000


@pytest.mark.parametrize(("body", "code", "says"), [
    (priority_class("huge", 1000000001), 422,
     "value: Forbidden: maximum allowed value of a user defined priority is 1000000000"),
    (priority_class("system-mine", 5), 422,
     "priority class names with 'system-' prefix are reserved for system use only. error: "
     "system-mine is not a known system priority class"),
    (priority_class("odd", 5, preemptionPolicy="Sometimes"), 422, "preemptionPolicy"),
    ({**priority_class("novalue", 0), "value": None}, 422, "value"),
    (priority_class("wide", 3000000000), 400, "of type int32"),
    (priority_class("extra", 1, weight=2), 422, "weight"),
])
async def test_a_class_the_real_server_refuses_is_refused(
    k8s_api: client.ApiClient, body: JSON, code: int, says: str,
) -> None:
    if body.get("value") is None:
        del body["value"]
    with pytest.raises(ApiException) as refused:
        await client.SchedulingV1Api(k8s_api).create_priority_class(body)
    expect_status(refused, code, "Invalid" if code == 422 else "BadRequest")
    assert says in status_of(refused.value)["message"]


async def test_one_global_default_and_an_immutable_value(k8s_emulator: Emulator,
                                                         k8s_api: client.ApiClient) -> None:
    scheduling = client.SchedulingV1Api(k8s_api)
    await scheduling.create_priority_class(priority_class("apps", 100, globalDefault=True))
    with pytest.raises(ApiException) as second:
        await scheduling.create_priority_class(priority_class("more", 50, globalDefault=True))
    expect_status(second, 403, "Forbidden")
    assert "PriorityClass apps is already marked as default. Only one default can exist" in \
        status_of(second.value)["message"]
    with pytest.raises(ApiException) as changed:
        await scheduling.patch_priority_class("apps", {"value": 101})
    expect_status(changed, 422, "Invalid")
    assert "value: Forbidden: may not be changed in an update." in status_of(
        changed.value)["message"]
    # The description may change; the class keeps its value.
    await scheduling.patch_priority_class("apps", {"description": "every app"})
    assert (await scheduling.read_priority_class("apps")).value == 100
    # A pod naming no class gets the default one's name and value.
    created = await client.CoreV1Api(k8s_api).create_namespaced_pod("default", pod("p"))
    assert (created.spec.priority_class_name, created.spec.priority) == ("apps", 100)


async def test_a_pod_takes_the_priority_and_policy_of_its_class(
    k8s_api: client.ApiClient,
) -> None:
    await client.SchedulingV1Api(k8s_api).create_priority_class(
        priority_class("placeholders", -10, preemptionPolicy="Never"))
    core = client.CoreV1Api(k8s_api)
    low = await core.create_namespaced_pod("default", pod("low",
                                                          priorityClassName="placeholders"))
    assert (low.spec.priority, low.spec.preemption_policy) == (-10, "Never")
    plain = await core.create_namespaced_pod("default", pod("plain"))
    assert (plain.spec.priority, plain.spec.preemption_policy) == (0, "PreemptLowerPriority")
    assert plain.spec.priority_class_name is None
    critical = await core.create_namespaced_pod(
        "default", pod("critical", priorityClassName="system-cluster-critical"))
    assert critical.spec.priority == 2000000000
    # The same value given again is accepted; another is refused, as is another policy.
    same = await core.create_namespaced_pod("default", pod(
        "same", priorityClassName="placeholders", priority=-10))
    assert same.spec.priority == -10
    for name, spec, says in [
        ("own", {"priority": 5}, "the integer value of priority (5) must not be provided in "
         "pod spec; priority admission controller computed 0 from the given PriorityClass name"),
        ("policy", {"priorityClassName": "placeholders", "preemptionPolicy":
                    "PreemptLowerPriority"}, "the string value of PreemptionPolicy"),
        ("missing", {"priorityClassName": "nope"},
         'pods "missing" is forbidden: no PriorityClass with name nope was found'),
    ]:
        with pytest.raises(ApiException) as refused:
            await core.create_namespaced_pod("default", pod(name, **spec))
        expect_status(refused, 403, "Forbidden")
        assert says in status_of(refused.value)["message"]


async def test_a_deployment_naming_a_missing_class_fails_to_create_its_pods(
    k8s_emulator: Emulator,
) -> None:
    dep = asking("web")
    dep["spec"]["template"]["spec"]["priorityClassName"] = "later"
    k8s_emulator.create(dep)  # the Deployment itself is accepted
    failure = await until(lambda: condition(k8s_emulator.store.get(
        r.DEPLOYMENTS, "default", "web").get("status") or {}, "ReplicaFailure"))
    assert failure["reason"] == "FailedCreate"
    assert "no PriorityClass with name later was found" in failure["message"]
    events = [e for e in k8s_emulator.store.items(r.EVENTS) if e["reason"] == "FailedCreate"]
    assert events and events[0]["involvedObject"]["name"] == "web"
    assert not k8s_emulator.pods(app="web")
    # Once the class exists, the retried creation passes.
    k8s_emulator.create(priority_class("later", 7))
    [created] = await until(lambda: k8s_emulator.pods(app="web"))
    assert created["spec"]["priority"] == 7


async def test_pending_pods_are_placed_higher_priority_first(
    make_k8s_emulator: EmulatorFactory,
) -> None:
    emulator = await make_k8s_emulator(nodes=[NodeSpec("only", cpu="1")])
    for name, value in (("top", 1000), ("high", 20), ("low", 10)):
        emulator.create(priority_class(name, value, preemptionPolicy="Never"))
    blocker = asking("blocker", requests={"cpu": "1"})
    blocker["spec"]["template"]["spec"]["priorityClassName"] = "top"
    emulator.create(blocker)
    await until(lambda: placed(emulator, "blocker"))
    for app in ("low", "high"):  # the lower one waits longer
        dep = asking(app, requests={"cpu": "1"})
        dep["spec"]["template"]["spec"]["priorityClassName"] = app
        emulator.create(dep)
        await until(lambda app=app: unschedulable(emulator, app))  # type: ignore[misc]
    [low] = unschedulable(emulator, "low")
    assert condition(low["status"], "PodScheduled")["message"] == (  # type: ignore[index]
        "0/1 nodes are available: 1 Insufficient cpu. preemption: not eligible due to "
        "preemptionPolicy=Never.")
    emulator.store.delete(r.DEPLOYMENTS, "default", "blocker")
    await until(lambda: placed(emulator, "high"), 10)
    await asyncio.sleep(0.3)
    assert not placed(emulator, "low") and unschedulable(emulator, "low")


async def test_a_class_shipped_with_the_manifests_exists_and_kubectl_applies_another(
    make_k8s_emulator: EmulatorFactory, tmp_path: Path,
) -> None:
    install = tmp_path / "k8s"
    shutil.copytree(K8S_DIR, install)
    (install / "shipped-class.yaml").write_text(yaml.safe_dump(
        priority_class("shipped-low", -5, preemptionPolicy="Never")))
    kustomization = yaml.safe_load((install / "kustomization.yaml").read_text())
    kustomization["resources"].append("shipped-class.yaml")
    (install / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    emulator = await make_k8s_emulator(tls=True, install_dir=install)
    async with api_for(emulator) as api:
        shipped = await client.SchedulingV1Api(api).read_priority_class("shipped-low")
        assert (shipped.value, shipped.preemption_policy) == (-5, "Never")
    manifest = tmp_path / "apps.yaml"
    manifest.write_text(yaml.safe_dump(priority_class("apps", 1000, description="apps")))

    def kubectl(*args: str) -> str:
        done = subprocess.run(["kubectl", "--kubeconfig", str(emulator.kubeconfig), *args],
                              capture_output=True, text=True, timeout=30, check=False)
        assert done.returncode == 0, done.stderr
        return done.stdout

    # kubectl's own validation needs /openapi, which the emulator does not serve; the
    # emulator validates every object against the strict schema itself.
    await asyncio.to_thread(kubectl, "apply", "--validate=false", "-f", str(manifest))
    value = await asyncio.to_thread(kubectl, "get", "priorityclass", "apps", "-o",
                                    "jsonpath={.value}")
    assert value == "1000"
    names = await asyncio.to_thread(kubectl, "get", "pc", "-o",
                                    "jsonpath={.items[*].metadata.name}")
    assert set(names.split()) >= {"apps", "shipped-low", "system-cluster-critical",
                                  "system-node-critical"}
