"""Nodes and the scheduler: pods are placed by their requests on nodes with room, left
Unschedulable with the real scheduler's message when none has room, and placed as soon as
room appears (a pod gone, a node added), as on a real cluster."""

from __future__ import annotations

import asyncio
import subprocess
from typing import Any

import pytest
from kubernetes_asyncio import client, watch
from kubernetes_asyncio.client.exceptions import ApiException

from tests.k8s_emulator import Emulator
from tests.k8s_emulator import resources as r
from tests.k8s_emulator.fixtures import EmulatorFactory
from tests.k8s_emulator.meta import JSON, condition
from tests.k8s_emulator.nodes import NodeSpec
from tests.platforms.kubernetes.support import until

from .helpers import api_for, asking, expect_status, placed, scheduled, unschedulable

NO_VICTIMS = "No preemption victims found for incoming pod"


def failed_scheduling(emulator: Emulator, pod: str) -> list[JSON]:
    return [e for e in emulator.store.items(r.EVENTS) if e["involvedObject"]["name"] == pod
            and e["reason"] == "FailedScheduling"]


async def test_pods_go_to_a_node_whose_room_fits_their_requests(
    make_k8s_emulator: EmulatorFactory,
) -> None:
    emulator = await make_k8s_emulator(nodes=[NodeSpec("small", cpu="1", memory="1Gi"),
                                              NodeSpec("large", cpu="4", memory="8Gi")])
    emulator.create(asking("web", replicas=3, requests={"cpu": "1500m", "memory": "64Mi"}))
    # Two fit on the large node (3 of its 4 cpu); none fits the small one; the third waits.
    [waiting] = await until(lambda: unschedulable(emulator, "web"))
    assert sorted(placed(emulator, "web").values()) == ["large", "large"]
    message = scheduled(waiting)["message"]  # type: ignore[index]
    assert message == ("0/2 nodes are available: 2 Insufficient cpu. preemption: 0/2 nodes are "
                       f"available: 2 {NO_VICTIMS}.")
    assert waiting["status"]["phase"] == "Pending" and "podIP" not in waiting["status"]
    [event] = await until(lambda: failed_scheduling(emulator, waiting["metadata"]["name"]))
    assert (event["type"], event["source"]["component"], event["message"]) == (
        "Warning", "default-scheduler", message)
    # The bound ones run, and say where they were scheduled.
    await until(lambda: len(emulator.ready_ports("web")) == 2, 10)
    for pod in emulator.pods(app="web"):
        if pod["spec"].get("nodeName"):
            assert scheduled(pod)["status"] == "True"  # type: ignore[index]


@pytest.mark.parametrize(("node", "exact", "over", "short_of"), [
    # cpu: millicores, fractions and whole cores; limits alone count as requests.
    ({"cpu": "0.5"}, {"requests": {"cpu": "500m"}}, {"requests": {"cpu": "501m"}}, "cpu"),
    ({"cpu": "2"}, {"limits": {"cpu": "2"}}, {"limits": {"cpu": "2001m"}}, "cpu"),
    # memory: decimal and binary suffixes, exponents, plain bytes.
    ({"memory": "1G"}, {"requests": {"memory": "1000000000"}},
     {"requests": {"memory": "1000001k"}}, "memory"),
    ({"memory": "1Gi"}, {"limits": {"memory": "1024Mi"}}, {"limits": {"memory": "1073741825"}},
     "memory"),
    ({"memory": "2e3"}, {"requests": {"memory": "2k"}}, {"requests": {"memory": "2001"}},
     "memory"),
    # an init container counts as the most it asks for (it runs before the others), not
    # as a sum with them.
    ({"cpu": "2"}, {"requests": {"cpu": "500m"}, "init": {"cpu": "2"}},
     {"requests": {"cpu": "500m"}, "init": {"cpu": "2001m"}}, "cpu"),
])
async def test_a_pod_asking_for_a_whole_node_fits_and_one_unit_more_does_not(
    make_k8s_emulator: EmulatorFactory, node: dict[str, str], exact: dict[str, Any],
    over: dict[str, Any], short_of: str,
) -> None:
    emulator = await make_k8s_emulator(nodes=[NodeSpec("a", **node),  # type: ignore[arg-type]
                                              NodeSpec("b", **node)])  # type: ignore[arg-type]
    emulator.create(asking("over", **over))
    [waiting] = await until(lambda: unschedulable(emulator, "over"))
    assert scheduled(waiting)["message"].startswith(  # type: ignore[index]
        f"0/2 nodes are available: 2 Insufficient {short_of}. preemption:")
    emulator.create(asking("exact", **exact))
    await until(lambda: placed(emulator, "exact"))


async def test_a_pod_count_full_node_says_too_many_pods(
    make_k8s_emulator: EmulatorFactory,
) -> None:
    emulator = await make_k8s_emulator(nodes=[NodeSpec("tiny", pods=2)])
    emulator.create(asking("web", replicas=3))
    [waiting] = await until(lambda: unschedulable(emulator, "web"))
    assert scheduled(waiting)["message"].startswith(  # type: ignore[index]
        "0/1 nodes are available: 1 Too many pods. preemption:")


async def test_an_added_node_places_the_pending_pods_and_a_freed_one_too(
    make_k8s_emulator: EmulatorFactory,
) -> None:
    emulator = await make_k8s_emulator(nodes=[NodeSpec("first", cpu="1")])
    emulator.create(asking("web", replicas=3, requests={"cpu": "1"}))
    await until(lambda: len(unschedulable(emulator, "web")) == 2)
    # The cluster autoscaler adds a node: one more pod fits, and runs.
    emulator.add_node("second", cpu="1")
    await until(lambda: sorted(placed(emulator, "web").values()) == ["first", "second"])
    await until(lambda: len(emulator.ready_ports("web")) == 2, 10)
    # Scaling another app down frees room: the last pending pod goes there.
    emulator.create(asking("other", requests={"cpu": "100m"}))
    [left] = unschedulable(emulator, "web")
    assert "0/2 nodes are available: 2 Insufficient cpu." in scheduled(left)["message"]  # type: ignore[index]
    first = next(n for n, node in placed(emulator, "web").items() if node == "first")
    emulator.store.delete(r.DEPLOYMENTS, "default", "web")
    await until(lambda: not emulator.pods(app="web"), 10)
    await until(lambda: placed(emulator, "other"))
    assert first not in placed(emulator, "other")


async def test_nodes_are_served_read_and_watched_by_the_real_client(
    make_k8s_emulator: EmulatorFactory,
) -> None:
    emulator = await make_k8s_emulator(nodes=[NodeSpec("a", cpu="2", memory="4Gi", pods=20)])
    async with api_for(emulator) as api:
        core = client.CoreV1Api(api)
        listed = await core.list_node()
        [node] = listed.items
        assert node.metadata.name == "a" and node.status.allocatable == {
            "cpu": "2", "memory": "4Gi", "pods": "20", "ephemeral-storage": "100Gi"}
        assert node.status.capacity == node.status.allocatable
        assert [c.status for c in node.status.conditions if c.type == "Ready"] == ["True"]
        seen: list[str] = []

        async def follow() -> None:
            async with watch.Watch() as w:
                async for ev in w.stream(core.list_node,
                                         resource_version=listed.metadata.resource_version,
                                         timeout_seconds=5):
                    seen.append(f"{ev['type']} {ev['object'].metadata.name}")
                    return

        following = asyncio.create_task(follow())
        await asyncio.sleep(0.2)
        emulator.add_node("b")
        await asyncio.wait_for(following, 5)
        assert seen == ["ADDED b"]
        assert (await core.read_node("b")).status.allocatable["cpu"] == "8"
        with pytest.raises(ApiException) as missing:
            await core.read_node("c")
        expect_status(missing, 404, "NotFound")


async def test_a_cordoned_node_takes_no_new_pods(make_k8s_emulator: EmulatorFactory) -> None:
    emulator = await make_k8s_emulator()
    async with api_for(emulator) as api:
        await client.CoreV1Api(api).patch_node("emulator-node", {"spec": {"unschedulable": True}})
    emulator.create(asking("web"))
    [waiting] = await until(lambda: unschedulable(emulator, "web"))
    assert scheduled(waiting)["message"] == (  # type: ignore[index]
        "0/1 nodes are available: 1 node(s) were unschedulable. preemption: 0/1 nodes are "
        "available: 1 Preemption is not helpful for scheduling.")


async def test_a_pod_bound_to_a_node_that_does_not_exist_never_runs_until_it_does(
    k8s_emulator: Emulator,
) -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "pinned", "labels": {
        "app": "pinned"}}, "spec": {"nodeName": "later", "containers": [{
            "name": "app", "image": "registry.k8s.io/pause:3.9"}]}}
    k8s_emulator.create(pod)
    await asyncio.sleep(0.3)
    [waiting] = k8s_emulator.pods(app="pinned")
    assert waiting["status"]["phase"] == "Pending" and not k8s_emulator.kubelet.processes
    k8s_emulator.add_node("later")
    await until(lambda: k8s_emulator.pods(app="pinned")[0]["status"]["phase"] == "Running")


async def test_the_pause_image_runs_until_killed_and_is_ready(k8s_emulator: Emulator) -> None:
    placeholder = asking("hold", image="registry.k8s.io/pause:3.9",
                         requests={"cpu": "250m", "memory": "64Mi"})
    container = placeholder["spec"]["template"]["spec"]["containers"][0]
    del container["command"], container["ports"]
    k8s_emulator.create(placeholder)
    [pod] = await until(lambda: [p for p in k8s_emulator.pods(app="hold")
                                 if condition(p["status"], "Ready")
                                 and condition(p["status"], "Ready")["status"] == "True"])  # type: ignore[index]
    assert pod["status"]["qosClass"] == "Burstable"
    assert k8s_emulator.kubelet.live_process_groups()
    k8s_emulator.store.delete(r.DEPLOYMENTS, "default", "hold")
    await until(lambda: not k8s_emulator.pods(app="hold"), 10)
    assert not k8s_emulator.kubelet.live_process_groups()


async def test_a_quantity_the_server_cannot_read_is_refused(k8s_api: client.ApiClient) -> None:
    apps = client.AppsV1Api(k8s_api)
    with pytest.raises(ApiException) as bad:
        await apps.create_namespaced_deployment("default", asking("web", requests={"cpu": "1x"}))
    expect_status(bad, 400, "BadRequest")
    with pytest.raises(ApiException) as above:
        await apps.create_namespaced_deployment("default", asking(
            "web", requests={"cpu": "2"}, limits={"cpu": "1"}))
    expect_status(above, 422, "Invalid")
    assert "must be less than or equal to cpu limit of 1" in above.value.body


async def test_kubectl_lists_nodes_and_where_pods_run(
    make_k8s_emulator: EmulatorFactory,
) -> None:
    emulator = await make_k8s_emulator(tls=True, nodes=[NodeSpec("n1", cpu="1"),
                                                        NodeSpec("n2", cpu="1")])
    emulator.create(asking("web", replicas=2, requests={"cpu": "600m"}))
    await until(lambda: len(placed(emulator, "web")) == 2)

    def kubectl(*args: str) -> str:
        done = subprocess.run(["kubectl", "--kubeconfig", str(emulator.kubeconfig), *args],
                              capture_output=True, text=True, timeout=30, check=True)
        return done.stdout

    nodes = await asyncio.to_thread(kubectl, "get", "nodes", "-o",
                                    "jsonpath={.items[*].metadata.name}")
    assert nodes.split() == ["n1", "n2"]
    where = await asyncio.to_thread(kubectl, "get", "pods", "-l", "app=web", "-o",
                                    "jsonpath={.items[*].spec.nodeName}")
    assert sorted(where.split()) == ["n1", "n2"]  # 600m each: one per node
    # The columns the server prints (a Table), as kubectl shows them.
    emulator.create(asking("big", requests={"cpu": "2"}))
    await until(lambda: unschedulable(emulator, "big"))
    table = await asyncio.to_thread(kubectl, "get", "pods", "-o", "wide")
    rows = {line.split()[0].split("-")[0]: line.split() for line in table.splitlines()[1:]}
    assert table.split()[:9] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE",
                                 "NOMINATED", "NODE"]
    assert rows["big"][2] == "Pending" and rows["big"][6] == "<none>"
    assert rows["web"][6] in ("n1", "n2")
    nodes_table = await asyncio.to_thread(kubectl, "get", "nodes")
    assert [line.split()[:2] for line in nodes_table.splitlines()] == [
        ["NAME", "STATUS"], ["n1", "Ready"], ["n2", "Ready"]]
    classes = await asyncio.to_thread(kubectl, "get", "pc", "system-node-critical")
    assert classes.splitlines()[1].split()[:3] == ["system-node-critical", "2000001000", "false"]


async def test_scaling_down_removes_the_pod_still_waiting_for_a_node_first(
    make_k8s_emulator: EmulatorFactory,
) -> None:
    emulator = await make_k8s_emulator(nodes=[NodeSpec("only", cpu="2")])
    emulator.create(asking("web", replicas=3, requests={"cpu": "1"}))
    await until(lambda: len(unschedulable(emulator, "web")) == 1)
    running = set(placed(emulator, "web"))

    def scale(dep: JSON) -> None:
        dep["spec"]["replicas"] = 2

    emulator.store.mutate(r.DEPLOYMENTS, "default", "web", scale)
    await until(lambda: not unschedulable(emulator, "web"))
    assert {p["metadata"]["name"] for p in emulator.pods(app="web")} == running


async def test_the_pods_of_a_removed_node_are_replaced_elsewhere(
    make_k8s_emulator: EmulatorFactory,
) -> None:
    emulator = await make_k8s_emulator(nodes=[NodeSpec("a", cpu="1"), NodeSpec("b", cpu="1")])
    emulator.create(asking("web", replicas=2, requests={"cpu": "1"}))
    await until(lambda: sorted(placed(emulator, "web").values()) == ["a", "b"])
    await until(lambda: len(emulator.kubelet.live_process_groups()) == 2, 10)
    [gone] = [name for name, node in placed(emulator, "web").items() if node == "b"]
    async with api_for(emulator) as api:
        await client.CoreV1Api(api).delete_node("b")  # the autoscaler scales the cluster down
    # Its pod is deleted at once and its process stopped; the new one waits for room.
    await until(lambda: gone not in {p["metadata"]["name"] for p in emulator.pods(app="web")})
    await until(lambda: len(emulator.kubelet.live_process_groups()) == 1, 10)
    [waiting] = await until(lambda: unschedulable(emulator, "web"))
    assert scheduled(waiting)["message"].startswith(  # type: ignore[index]
        "0/1 nodes are available: 1 Insufficient cpu.")
    emulator.add_node("c", cpu="1")
    await until(lambda: sorted(placed(emulator, "web").values()) == ["a", "c"])


async def test_a_tainted_node_takes_only_pods_that_tolerate_it(
    make_k8s_emulator: EmulatorFactory,
) -> None:
    emulator = await make_k8s_emulator(nodes=[NodeSpec("gpu")])
    async with api_for(emulator) as api:
        await client.CoreV1Api(api).patch_node("gpu", {"spec": {"taints": [
            {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]}})
    emulator.create(asking("plain"))
    [waiting] = await until(lambda: unschedulable(emulator, "plain"))
    assert scheduled(waiting)["message"] == (  # type: ignore[index]
        "0/1 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}. "
        "preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.")
    tolerant = asking("tolerant")
    tolerant["spec"]["template"]["spec"]["tolerations"] = [
        {"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}]
    emulator.create(tolerant)
    await until(lambda: placed(emulator, "tolerant"))


async def test_the_kubelet_rejects_a_pod_placed_on_a_full_node_past_the_scheduler(
    make_k8s_emulator: EmulatorFactory,
) -> None:
    emulator = await make_k8s_emulator(nodes=[NodeSpec("only", cpu="1")])
    emulator.create(asking("web", requests={"cpu": "750m"}))
    await until(lambda: len(emulator.kubelet.live_process_groups()) == 1, 10)
    pinned = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "pinned"}, "spec": {
        "nodeName": "only", "containers": [{"name": "app", "image": "registry.k8s.io/pause:3.9",
                                            "resources": {"requests": {"cpu": "500m"}}}]}}
    emulator.create(pinned)
    rejected = await until(lambda: [p for p in emulator.store.items(r.PODS)
                                    if p["metadata"]["name"] == "pinned"
                                    and p["status"]["phase"] == "Failed"])
    assert (rejected[0]["status"]["reason"], rejected[0]["status"]["message"]) == (
        "OutOfcpu", "Pod was rejected: Node didn't have enough resource: cpu, requested: 500, "
        "used: 750, capacity: 1000")
    assert len(emulator.kubelet.live_process_groups()) == 1  # it never ran
