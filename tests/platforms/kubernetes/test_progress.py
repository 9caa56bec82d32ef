"""Pods of a scale-up → still starting, or failing for good: slow is not broken."""

from __future__ import annotations

from typing import Any

from wakeproxy.platforms.kubernetes.progress import NodeWait, Watchful, node_wait


def pod(name: str = "web-1", phase: str = "Pending", waiting: str | None = None,
        restarts: int = 0, unschedulable: bool = False, message: str = "") -> dict[str, Any]:
    status: dict[str, Any] = {"phase": phase, "conditions": []}
    if unschedulable:
        status["conditions"].append({"type": "PodScheduled", "status": "False",
                                     "reason": "Unschedulable",
                                     "message": "0/3 nodes are available: 3 Insufficient cpu"})
    if waiting is not None:
        status["containerStatuses"] = [{"name": "app", "restartCount": restarts, "state": {
            "waiting": {"reason": waiting, "message": message}}}]
    return {"metadata": {"name": name}, "status": status}


def test_pulling_and_starting_pods_are_progress_however_long() -> None:
    w = Watchful(pull_grace=60, unschedulable_grace=300, refused_grace=10)
    for now in (0.0, 100.0, 10_000.0):
        verdict = w.assess([pod(waiting="ContainerCreating"),
                            pod("web-2", phase="Running")], now)
        assert verdict.failing is None
    assert verdict.status == "web-1: ContainerCreating; web-2: Running, not ready"


def test_an_unschedulable_pod_fails_only_past_its_grace() -> None:
    w = Watchful(pull_grace=60, unschedulable_grace=300, refused_grace=10)
    assert w.assess([pod(unschedulable=True)], 0.0).failing is None
    assert w.assess([pod(unschedulable=True)], 299.0).failing is None
    failing = w.assess([pod(unschedulable=True)], 300.0).failing
    assert failing is not None and "Insufficient cpu" in failing


def test_a_pull_failure_must_last_its_grace_and_says_why() -> None:
    w = Watchful(pull_grace=60, unschedulable_grace=300, refused_grace=10)
    err = pod(waiting="ErrImagePull", message="manifest unknown")
    back = pod(waiting="ImagePullBackOff", message="Back-off pulling image")
    assert w.assess([err], 0.0).failing is None
    assert w.assess([back], 30.0).failing is None
    # The pull worked after all (a registry hiccup): the clock starts over.
    assert w.assess([pod(waiting="ContainerCreating")], 40.0).failing is None
    assert w.assess([err], 50.0).failing is None
    failing = w.assess([back], 110.0).failing
    assert failing is not None and "manifest unknown" in failing


def test_a_crash_loop_fails_after_a_few_restarts() -> None:
    w = Watchful(pull_grace=60, unschedulable_grace=300, refused_grace=10)
    assert w.assess([pod(phase="Running", waiting="CrashLoopBackOff", restarts=1)],
                    0.0).failing is None
    failing = w.assess([pod(phase="Running", waiting="CrashLoopBackOff", restarts=3)],
                       1.0).failing
    assert failing is not None and "CrashLoopBackOff after 3 restarts" in failing


def test_terminating_and_ended_pods_are_not_judged() -> None:
    w = Watchful(pull_grace=0, unschedulable_grace=0, refused_grace=0)
    gone = pod(waiting="ErrImagePull")
    gone["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    # An evicted pod stays listed, Failed, until garbage-collected; its replacement counts.
    evicted = pod("web-0", phase="Failed", waiting="ErrImagePull")
    verdict = w.assess([gone, evicted, pod("web-2", waiting="ContainerCreating")], 0.0)
    assert verdict.failing is None and verdict.status == "web-2: ContainerCreating"


def refused(message: str = 'pods "web-x" is forbidden: violates PodSecurity '
            '"restricted:latest": runAsNonRoot != true') -> dict[str, Any]:
    """A Deployment whose pods the ReplicaSet controller cannot create, as it reports it."""
    return {"metadata": {"name": "web"}, "status": {"conditions": [
        {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable"},
        {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
         "message": message}]}}


def test_pods_refused_at_creation_fail_past_their_grace_naming_the_refusal() -> None:
    w = Watchful(pull_grace=60, unschedulable_grace=300, refused_grace=10)
    first = w.assess([], 0.0, refused())
    assert first.failing is None and "PodSecurity" in first.status
    assert first.due == 10.0  # looked at again when the grace ends, not a back-off later
    # The ReplicaSet's retry went through (a quota freed): the clock starts over.
    assert w.assess([pod(waiting="ContainerCreating")], 8.0, {"status": {}}).failing is None
    assert w.assess([], 9.0, refused()).failing is None
    assert w.assess([], 18.0, refused()).failing is None
    verdict = w.assess([], 19.0, refused())
    assert verdict.kind == "refused" and verdict.failing == (
        'pods refused at creation (FailedCreate): pods "web-x" is forbidden: violates '
        'PodSecurity "restricted:latest": runAsNonRoot != true')


def test_a_wake_waited_for_a_node_only_if_a_pod_is_still_unscheduled_past_the_wait() -> None:
    placed = {"metadata": {"name": "web-1"}, "spec": {"nodeName": "n1"},
              "status": {"phase": "Running", "conditions": [
                  {"type": "PodScheduled", "status": "True"}]}}
    fresh = {"metadata": {"name": "web-2"}}  # not yet looked at by the scheduler
    stuck = pod("web-3", unschedulable=True)
    # Written at 10 s, 2 s allowed: before 12 s, look again just after it.
    assert node_wait([stuck], 10.0, 11.0, 2.0) == NodeWait((), 12.05)
    assert node_wait([fresh], 10.0, 10.1, 2.0) == NodeWait((), 12.05)
    # Still there after it: waited.
    assert node_wait([placed, stuck], 10.0, 12.06, 2.0) == NodeWait(("web-3",), None)
    assert node_wait([fresh], 10.0, 13.0, 2.0).waited == ("web-2",)
    # Placed (or gone, or ending) in time: never waited, nothing to look at again.
    assert node_wait([placed], 10.0, 30.0, 2.0) == NodeWait((), None)
    leaving = pod("web-4", unschedulable=True)
    leaving["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert node_wait([leaving], 10.0, 30.0, 2.0) == NodeWait((), None)
    # Bound by a nodeName it was created with (no scheduler involved) is placed too.
    assert node_wait([{"metadata": {"name": "x"}, "spec": {"nodeName": "n1"}}],
                     10.0, 30.0, 2.0) == NodeWait((), None)
