"""Preemption: a pod that fits no node evicts pods of lower priority, as kube-scheduler's
default preemption does — the placeholder pattern (low-priority pause pods holding room)
works as on a real cluster, and `preemptionPolicy: Never` waits instead."""

from __future__ import annotations

import asyncio
from typing import Any

from kubernetes_asyncio import client, watch

from tests.k8s_emulator import Emulator
from tests.k8s_emulator import resources as r
from tests.k8s_emulator.fixtures import EmulatorFactory
from tests.k8s_emulator.meta import JSON, condition
from tests.k8s_emulator.nodes import NodeSpec
from tests.platforms.kubernetes.support import until

from .helpers import api_for, asking, placed, scheduled, unschedulable

PAUSE = "registry.k8s.io/pause:3.9"


def priority_class(name: str, value: int, policy: str = "PreemptLowerPriority") -> JSON:
    return {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
            "metadata": {"name": name}, "value": value, "preemptionPolicy": policy}


def placeholders(name: str, *, replicas: int, cpu: str, node: str | None = None) -> JSON:
    """A Deployment of pause pods in the lowest class, each holding `cpu`."""
    dep = asking(name, replicas=replicas, image=PAUSE, requests={"cpu": cpu})
    spec = dep["spec"]["template"]["spec"]
    container = spec["containers"][0]
    del container["command"], container["ports"]
    spec["priorityClassName"] = "headroom"
    if node is not None:
        spec["nodeSelector"] = {"kubernetes.io/hostname": node}
    return dep


def app(name: str, *, cpu: str, priority_class_name: str | None = None,
        node: str | None = None) -> JSON:
    dep = asking(name, requests={"cpu": cpu})
    spec = dep["spec"]["template"]["spec"]
    if priority_class_name:
        spec["priorityClassName"] = priority_class_name
    if node is not None:
        spec["nodeSelector"] = {"kubernetes.io/hostname": node}
    return dep


def events(emulator: Emulator, reason: str) -> list[JSON]:
    return [e for e in emulator.store.items(r.EVENTS) if e["reason"] == reason]


async def _states_of(emulator: Emulator, app_name: str, into: list[dict[str, Any]]) -> None:
    """Every state the app's pods go through, as a client watching them sees it."""
    async with api_for(emulator) as api, watch.Watch() as w:
        async for ev in w.stream(client.CoreV1Api(api).list_namespaced_pod, "default",
                                 label_selector=f"app={app_name}", timeout_seconds=20):
            pod = ev["object"]
            into.append({"nominated": pod.status.nominated_node_name,
                         "node": pod.spec.node_name})


async def test_a_higher_priority_pod_evicts_a_placeholder_which_comes_back_pending(
    make_k8s_emulator: EmulatorFactory,
) -> None:
    emulator = await make_k8s_emulator(nodes=[NodeSpec("only", cpu="2", memory="4Gi")])
    emulator.create(priority_class("headroom", -10, "Never"))
    emulator.create(placeholders("hold", replicas=1, cpu="1"))
    [held] = await until(lambda: [p for p in emulator.pods(app="hold")
                                  if (c := condition(p["status"], "Ready"))
                                  and c["status"] == "True"])
    seen: list[dict[str, Any]] = []
    watching = asyncio.create_task(_states_of(emulator, "web", seen))
    await asyncio.sleep(0.2)
    # An app wakes: 1.5 cpu does not fit next to the placeholder's 1 on a 2-cpu node.
    emulator.create(app("web", cpu="1500m"))
    await until(lambda: len(emulator.ready_ports("web")) == 1, 10)
    [woken] = emulator.pods(app="web")
    assert woken["spec"]["nodeName"] == "only" and woken["spec"]["priority"] == 0
    # It was nominated to the node while the placeholder made way, then bound there.
    await until(lambda: any(s["node"] == "only" for s in seen))
    watching.cancel()
    first_bound = next(i for i, s in enumerate(seen) if s["node"])
    assert any(s["nominated"] == "only" for s in seen[:first_bound])
    # The placeholder was told why, and went.
    [preempted] = events(emulator, "Preempted")
    assert preempted["involvedObject"]["name"] == held["metadata"]["name"]
    assert preempted["type"] == "Normal" and preempted["source"]["component"] == \
        "default-scheduler"
    assert preempted["message"] == f"Preempted by pod {woken['metadata']['uid']} on node only"
    failed = [e for e in events(emulator, "FailedScheduling")
              if e["involvedObject"]["name"] == woken["metadata"]["name"]]
    assert failed and failed[0]["message"] == "0/1 nodes are available: 1 Insufficient cpu."
    # Its Deployment made a new one, which waits for a node: it may not preempt anything.
    [again] = await until(lambda: unschedulable(emulator, "hold"))
    assert again["metadata"]["name"] != held["metadata"]["name"]
    assert scheduled(again)["message"] == (  # type: ignore[index]
        "0/1 nodes are available: 1 Insufficient cpu. preemption: not eligible due to "
        "preemptionPolicy=Never.")
    # The cluster autoscaler adds a node: the headroom is back.
    emulator.add_node("added", cpu="2", memory="4Gi")
    await until(lambda: list(placed(emulator, "hold").values()) == ["added"])


async def test_the_victim_is_told_before_it_goes(make_k8s_emulator: EmulatorFactory) -> None:
    emulator = await make_k8s_emulator(nodes=[NodeSpec("only", cpu="1")])
    emulator.create(priority_class("headroom", -10, "Never"))
    hold = placeholders("hold", replicas=1, cpu="1")
    hold["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 1
    # A placeholder that takes its grace period to stop (it ignores SIGTERM), so its last
    # state can be read; one process (exec), so SIGKILL leaves no orphan behind.
    container = hold["spec"]["template"]["spec"]["containers"][0]
    container["image"], container["command"] = "emulated/slow:1", [
        "/bin/sh", "-c", "trap '' TERM; exec sleep 60"]
    emulator.create(hold)
    [held] = await until(lambda: [p for p in emulator.pods(app="hold")
                                  if p["status"]["phase"] == "Running"])
    emulator.create(app("web", cpu="1"))
    terminating = await until(lambda: [p for p in emulator.pods(app="hold")
                                       if p["metadata"]["name"] == held["metadata"]["name"]
                                       and p["metadata"].get("deletionTimestamp")])
    target = condition(terminating[0]["status"], "DisruptionTarget")
    assert target is not None and (target["status"], target["reason"], target["message"]) == (
        "True", "PreemptionByScheduler",
        "default-scheduler: preempting to accommodate a higher priority pod")
    # While it terminates the preemptor waits on its nominated node, then takes it.
    [waiting] = emulator.pods(app="web")
    assert waiting["status"].get("nominatedNodeName") == "only"
    assert not waiting["spec"].get("nodeName")
    await until(lambda: placed(emulator, "web"), 10)


async def test_preemption_policy_never_waits_and_equal_priority_is_never_evicted(
    make_k8s_emulator: EmulatorFactory,
) -> None:
    emulator = await make_k8s_emulator(nodes=[NodeSpec("only", cpu="2")])
    emulator.create(priority_class("headroom", -10, "Never"))
    emulator.create(priority_class("batch", 100, "Never"))
    emulator.create(placeholders("hold", replicas=1, cpu="1"))
    await until(lambda: placed(emulator, "hold"))
    emulator.create(app("polite", cpu="1500m", priority_class_name="batch"))
    [polite] = await until(lambda: unschedulable(emulator, "polite"))
    assert scheduled(polite)["message"] == (  # type: ignore[index]
        "0/1 nodes are available: 1 Insufficient cpu. preemption: not eligible due to "
        "preemptionPolicy=Never.")
    # A pod of the same priority as the placeholder's neighbours evicts nothing either.
    emulator.store.delete(r.DEPLOYMENTS, "default", "polite")
    emulator.create(app("first", cpu="1"))  # priority 0: evicts nothing, there is room
    await until(lambda: placed(emulator, "first"))
    emulator.create(app("second", cpu="1"))  # priority 0 too: only the placeholder is lower
    await until(lambda: placed(emulator, "second"), 10)
    emulator.create(app("third", cpu="1"))
    [third] = await until(lambda: unschedulable(emulator, "third"))
    assert scheduled(third)["message"].endswith(  # type: ignore[index]
        "preemption: 0/1 nodes are available: 1 No preemption victims found for incoming "
        "pod.")
    assert sorted(placed(emulator, "first").values()) == ["only"]
    assert not events(emulator, "Preempted") or all(
        e["involvedObject"]["name"].startswith("hold-") for e in events(emulator, "Preempted"))


async def test_the_node_with_the_least_important_victims_is_chosen(
    make_k8s_emulator: EmulatorFactory,
) -> None:
    emulator = await make_k8s_emulator(nodes=[NodeSpec("a", cpu="2"), NodeSpec("b", cpu="2")])
    emulator.create(priority_class("headroom", -10, "Never"))
    emulator.create(priority_class("urgent", 1000))
    # Node a: one ordinary app pod (priority 0). Node b: two placeholders (-10).
    emulator.create(app("ordinary", cpu="1500m", node="a"))
    emulator.create(placeholders("hold", replicas=2, cpu="1", node="b"))
    await until(lambda: placed(emulator, "ordinary") and len(placed(emulator, "hold")) == 2)
    held = set(placed(emulator, "hold"))
    emulator.create(app("urgent", cpu="1500m", priority_class_name="urgent"))
    await until(lambda: list(placed(emulator, "urgent").values()) == ["b"], 10)
    # Both placeholders had to go (one is not enough); the ordinary pod stayed.
    assert {e["involvedObject"]["name"] for e in events(emulator, "Preempted")} == held
    [ordinary] = emulator.pods(app="ordinary")
    assert not ordinary["metadata"].get("deletionTimestamp")


async def test_only_as_many_victims_as_needed_the_least_important_first(
    make_k8s_emulator: EmulatorFactory,
) -> None:
    emulator = await make_k8s_emulator(nodes=[NodeSpec("only", cpu="3")])
    emulator.create(priority_class("headroom", -10, "Never"))
    emulator.create(priority_class("spare", -5, "Never"))
    emulator.create(placeholders("hold", replicas=2, cpu="1"))
    spare = placeholders("spare", replicas=1, cpu="1")
    spare["spec"]["template"]["spec"]["priorityClassName"] = "spare"
    emulator.create(spare)
    await until(lambda: len(placed(emulator, "hold")) == 2 and placed(emulator, "spare"))
    emulator.create(app("web", cpu="1"))  # one cpu: one victim, of the lowest priority
    await until(lambda: placed(emulator, "web"), 10)
    [victim] = events(emulator, "Preempted")
    assert victim["involvedObject"]["name"].startswith("hold-")
    [spare_pod] = emulator.pods(app="spare")
    assert not spare_pod["metadata"].get("deletionTimestamp")


async def test_a_higher_priority_preemptor_takes_the_room_a_lower_one_was_nominated_for(
    make_k8s_emulator: EmulatorFactory,
) -> None:
    emulator = await make_k8s_emulator(nodes=[NodeSpec("only", cpu="2")])
    emulator.create(priority_class("headroom", -10, "Never"))
    emulator.create(priority_class("urgent", 100))
    hold = placeholders("hold", replicas=2, cpu="1")
    spec = hold["spec"]["template"]["spec"]
    spec["terminationGracePeriodSeconds"] = 2  # they take their time to go
    spec["containers"][0].update(image="emulated/slow:1", command=[
        "/bin/sh", "-c", "trap '' TERM; exec sleep 60"])
    emulator.create(hold)
    await until(lambda: len(placed(emulator, "hold")) == 2)
    emulator.create(app("mid", cpu="1"))  # evicts one placeholder, nominated meanwhile
    await until(lambda: [p for p in emulator.pods(app="mid")
                         if p["status"].get("nominatedNodeName") == "only"])
    emulator.create(app("urgent", cpu="2", priority_class_name="urgent"))
    # The urgent pod needs the whole node: both placeholders go, and at once (while they
    # still terminate) the room mid was nominated for is no longer promised to it.
    await until(lambda: [p for p in emulator.pods(app="urgent")
                         if p["status"].get("nominatedNodeName") == "only"])
    [mid] = emulator.pods(app="mid")
    assert not mid["status"].get("nominatedNodeName") and not mid["spec"].get("nodeName")
    assert [p for p in emulator.pods(app="hold") if p["metadata"].get("deletionTimestamp")]
    await until(lambda: list(placed(emulator, "urgent").values()) == ["only"], 10)
    [mid] = unschedulable(emulator, "mid")
    assert not mid["spec"].get("nodeName")
    assert len(events(emulator, "Preempted")) == 2
