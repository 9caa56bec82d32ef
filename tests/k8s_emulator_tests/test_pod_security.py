"""Pod Security admission: pods are checked against their namespace's enforced level when
they are created — a Deployment or Job is accepted and its controller's pods are refused,
reported as a real cluster reports it (ReplicaFailure/FailedCreate and a FailedCreate
Event; a Job without pods, and the Event)."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client import ApiClient
from kubernetes_asyncio.client.exceptions import ApiException

from tests.k8s_emulator import Emulator
from tests.k8s_emulator import resources as r
from tests.k8s_emulator.manifests import deployment, job
from tests.k8s_emulator.pod_security import violations
from tests.k8s_emulator_tests.helpers import status_of

RESTRICTED_CONTAINER = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
RESTRICTED_POD = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}


def namespace(emulator: Emulator, name: str, level: str) -> None:
    emulator.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {
        "name": name, "labels": {"pod-security.kubernetes.io/enforce": level}}})


def failed_creates(emulator: Emulator, namespace: str) -> list[dict[str, Any]]:
    return [e for e in emulator.store.items(r.EVENTS)
            if e["metadata"]["namespace"] == namespace and e["reason"] == "FailedCreate"]


def pod(name: str, *, pod_sc: Any = None, container_sc: Any = None) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "app", "image": "emulated/app:1",
                                 "command": ["sleep", "30"]}
    if container_sc is not None:
        container["securityContext"] = container_sc
    spec: dict[str, Any] = {"containers": [container], "terminationGracePeriodSeconds": 0}
    if pod_sc is not None:
        spec["securityContext"] = pod_sc
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


async def test_a_pod_breaking_restricted_is_refused_naming_every_check(
    k8s_emulator: Emulator, k8s_api: ApiClient,
) -> None:
    namespace(k8s_emulator, "locked", "restricted")
    core = client.CoreV1Api(k8s_api)
    with pytest.raises(ApiException) as exc:
        await core.create_namespaced_pod("locked", pod("plain"))
    assert exc.value.status == 403
    status = status_of(exc.value)
    assert status["reason"] == "Forbidden"
    assert status["message"] == (
        'pods "plain" is forbidden: violates PodSecurity "restricted:latest": '
        'allowPrivilegeEscalation != false (container "app" must set '
        "securityContext.allowPrivilegeEscalation=false), unrestricted capabilities "
        '(container "app" must set securityContext.capabilities.drop=["ALL"]), '
        'runAsNonRoot != true (pod or container "app" must set '
        "securityContext.runAsNonRoot=true), seccompProfile (pod or container \"app\" must "
        'set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")')
    await core.create_namespaced_pod("locked", pod(
        "compliant", pod_sc=RESTRICTED_POD, container_sc=RESTRICTED_CONTAINER))
    # No label: privileged, anything goes.
    await core.create_namespaced_pod("default", pod("plain"))


def test_baseline_refuses_unconfined_profiles_and_privileges_but_not_a_plain_pod() -> None:
    plain = pod("p")
    assert violations("baseline", plain) == []
    assert violations("privileged", pod("p", container_sc={"privileged": True})) == []
    unconfined = pod("b", container_sc={"seccompProfile": {"type": "Unconfined"},
                                        "appArmorProfile": {"type": "Unconfined"}})
    found = violations("baseline", unconfined)
    assert [v.split(" (")[0] for v in found] == ["forbidden AppArmor profile", "seccompProfile"]
    annotated = pod("a")
    annotated["metadata"]["annotations"] = {
        "container.apparmor.security.beta.kubernetes.io/app": "unconfined"}
    assert [v.split(" (")[0] for v in violations("baseline", annotated)] == [
        "forbidden AppArmor profile"]
    privileged = pod("x", container_sc={"privileged": True,
                                        "capabilities": {"add": ["SYS_ADMIN"]}})
    privileged["spec"]["hostNetwork"] = True
    privileged["spec"]["volumes"] = [{"name": "root", "hostPath": {"path": "/"}}]
    assert [v.split(" (")[0] for v in violations("baseline", privileged)] == [
        "host namespaces", "privileged", "non-default capabilities", "hostPath volumes"]
    # Container settings override the pod's; runAsUser 0 is refused under restricted.
    mixed = pod("m", pod_sc=RESTRICTED_POD,
                container_sc={**RESTRICTED_CONTAINER, "runAsNonRoot": False, "runAsUser": 0})
    assert [v.split(" (")[0] for v in violations("restricted", mixed)] == [
        "runAsNonRoot != true", "runAsUser=0"]


async def test_a_deployment_is_accepted_and_its_refused_pods_are_reported_failed_create(
    k8s_emulator: Emulator,
) -> None:
    namespace(k8s_emulator, "locked", "restricted")
    k8s_emulator.create(deployment("web", namespace="locked"))

    def failure() -> dict[str, Any] | None:
        dep = k8s_emulator.store.get(r.DEPLOYMENTS, "locked", "web")
        return next((c for c in (dep.get("status") or {}).get("conditions") or []
                     if c["type"] == "ReplicaFailure"), None)

    condition = await k8s_emulator.store.wait_until(failure, 5)
    assert (condition["status"], condition["reason"]) == ("True", "FailedCreate")
    assert 'violates PodSecurity "restricted:latest"' in condition["message"]
    assert not k8s_emulator.pods("locked")
    [event] = failed_creates(k8s_emulator, "locked")
    assert event["involvedObject"]["name"] == "web" and event["type"] == "Warning"
    assert event["message"] == "Error creating: " + condition["message"]
    assert event["source"] == {"component": "replicaset-controller"}
    # Fixed template: the pods come, the failure goes.
    def comply(dep: dict[str, Any]) -> None:
        spec = dep["spec"]["template"]["spec"]
        spec["securityContext"] = RESTRICTED_POD
        spec["containers"][0]["securityContext"] = RESTRICTED_CONTAINER

    k8s_emulator.store.mutate(r.DEPLOYMENTS, "locked", "web", comply)
    await k8s_emulator.store.wait_until(lambda: k8s_emulator.pods("locked") and not failure(), 5)


async def test_a_job_whose_pod_is_refused_stays_without_pods(k8s_emulator: Emulator) -> None:
    namespace(k8s_emulator, "builds", "baseline")
    manifest = job("build", command=["true"], namespace="builds")
    manifest["spec"]["template"]["spec"]["containers"][0]["securityContext"] = {
        "seccompProfile": {"type": "Unconfined"}}
    k8s_emulator.create(manifest)
    k8s_emulator.create({**manifest, "metadata": {"name": "build", "namespace": "default"}})
    await k8s_emulator.store.wait_until(lambda: k8s_emulator.pods("default"), 5)
    assert not k8s_emulator.pods("builds")
    job_status = k8s_emulator.store.get(r.JOBS, "builds", "build").get("status") or {}
    assert not job_status.get("active") and not job_status.get("conditions")
    [event] = await k8s_emulator.store.wait_until(lambda: failed_creates(k8s_emulator, "builds"))
    assert (event["involvedObject"]["kind"], event["involvedObject"]["name"]) == ("Job", "build")
    assert 'violates PodSecurity "baseline:latest": seccompProfile' in event["message"]


async def test_a_refused_jobs_events_are_listed_by_field_selector(
    k8s_emulator: Emulator, k8s_api: ApiClient,
) -> None:
    # As a client asks for the events of one object (kubectl describe does the same).
    namespace(k8s_emulator, "builds", "restricted")
    k8s_emulator.create(job("build", command=["true"], namespace="builds"))
    k8s_emulator.create(job("other", command=["true"], namespace="builds"))
    await k8s_emulator.store.wait_until(lambda: {
        e["involvedObject"]["name"] for e in failed_creates(k8s_emulator, "builds")} == {
        "build", "other"})
    core = client.CoreV1Api(k8s_api)
    found = await core.list_namespaced_event("builds", field_selector=(
        "involvedObject.kind=Job,involvedObject.name=build,reason=FailedCreate,type=Warning"))
    assert found.items  # one per attempt: each names the pod it tried
    for event in found.items:
        assert event.involved_object.name == "build"
        assert event.source.component == "job-controller"
        assert 'violates PodSecurity "restricted:latest"' in event.message
    none = await core.list_namespaced_event("builds", field_selector="involvedObject.name!=build,"
                                            "involvedObject.name!=other")
    assert none.items == []
