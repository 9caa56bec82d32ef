"""An app's pods after a scale-up → still starting, or failing for good (and why).

Starting is everything a real cluster does slowly but surely: waiting to be scheduled
(the cluster autoscaler may be adding a node), `ContainerCreating` while the image is
pulled, running but not ready yet. Failing is what will not fix itself: a crash loop
(restarted `CRASH_RESTARTS` times), an image that cannot be pulled, or a pod that cannot
be scheduled, or pods the API refuses to create (the Deployment's `ReplicaFailure`
condition, reason `FailedCreate`: Pod Security admission, a ResourceQuota, a webhook),
each seen for longer than its grace (a registry or an autoscaler may be slow, a quota may
be freed, the ReplicaSet retries); a container that cannot even be created
(`InvalidImageName`, a missing Secret) counts as a pull failure. Pods that ended (Failed:
evicted, say) are left out: their ReplicaSet replaces them. `Watchful` remembers since
when each problem shows, across the polls of one scale-up. Pure: no I/O, the caller
passes the time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from wakeproxy.platforms.kubernetes.api import JSON

CRASH_RESTARTS = 3
_PULL_FAILURES = frozenset({
    "ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull",
    "CreateContainerConfigError", "CreateContainerError",
})


@dataclass(frozen=True, slots=True)
class Verdict:
    failing: str | None  # why the scale-up will not come up, or None: still starting
    status: str  # what the pods do now, for logs and the wake's timeout message
    kind: str = ""  # what fails, as a metric label: crash_loop, image_pull, ...
    # When a problem seen now outlasts its grace (look again then), or None: none pending.
    due: float | None = None


@dataclass
class Watchful:
    """Problems seen per pod, with when each was first seen (continuously since)."""

    pull_grace: float
    unschedulable_grace: float
    refused_grace: float
    _since: dict[tuple[str, str], float] = field(default_factory=dict)
    # The most telling account of each problem: ErrImagePull says why, the back-off
    # between its retries does not.
    _detail: dict[tuple[str, str], str] = field(default_factory=dict)

    def assess(self, pods: list[JSON], now: float, deployment: JSON | None = None) -> Verdict:
        """`pods` of the scale-up, and its Deployment as last seen (its status conditions)."""
        seen: dict[tuple[str, str], float] = {}
        notes: list[str] = []
        failing: str | None = None
        failing_kind = ""
        due: float | None = None
        problems: list[tuple[str, str, str]] = []  # (subject, kind, detail)
        refused = _refused(deployment)
        if refused is not None:
            # No pod to name: the Deployment reports them refused before any exists.
            problems.append(("", "refused", refused))
            notes.append(refused)
        for pod in pods:
            meta = pod.get("metadata") or {}
            if meta.get("deletionTimestamp"):
                continue  # on its way out: not part of this scale-up
            if (pod.get("status") or {}).get("phase") in ("Failed", "Succeeded"):
                # Ended for good (evicted, say), and kept until garbage-collected: its
                # ReplicaSet has made another pod, which is the one to judge.
                continue
            name = str(meta.get("name") or "?")
            problem, note = _problem(pod)
            notes.append(f"{name}: {note}")
            if problem is not None:
                problems.append((f"pod {name}: ", *problem))
        for subject, kind, detail in problems:
            key = (subject, kind)
            since = seen[key] = self._since.get(key, now)
            if not detail.startswith("ImagePullBackOff") or key not in self._detail:
                self._detail[key] = detail
            detail = self._detail[key]
            grace = {"image_pull": self.pull_grace, "unschedulable": self.unschedulable_grace,
                     "refused": self.refused_grace}.get(kind, 0.0)
            if now - since < grace:
                at = since + grace
                due = at if due is None else min(due, at)
            elif failing is None:
                failing, failing_kind = f"{subject}{detail}", kind
        self._since = seen
        self._detail = {k: v for k, v in self._detail.items() if k in seen}
        status = "; ".join(notes) if notes else "no pod yet"
        return Verdict(failing, status, failing_kind, due)


def unscheduled(pods: list[JSON]) -> list[str]:
    """The pods still waiting for a node (Pending, not scheduled: none fits yet, or the
    pods it preempts are still leaving), by name."""
    waiting = []
    for pod in pods:
        meta = pod.get("metadata") or {}
        status = pod.get("status") or {}
        if meta.get("deletionTimestamp") or (status.get("phase") or "Pending") != "Pending":
            continue
        scheduled = next((c.get("status") for c in status.get("conditions") or []
                          if c.get("type") == "PodScheduled"), None)
        if scheduled == "True" or (scheduled is None and (pod.get("spec") or {}).get("nodeName")):
            continue  # bound to a node (a pod created with a nodeName skips the scheduler)
        waiting.append(str(meta.get("name") or "?"))
    return waiting


@dataclass(frozen=True, slots=True)
class NodeWait:
    """Whether a scale-up's pods waited for a node beyond the allowed wait, and when to
    look again (None: no need, nothing waits or it is decided)."""

    waited: tuple[str, ...]  # the pods still waiting past it; empty: not (yet) waited
    look_again_at: float | None


def node_wait(pods: list[JSON], since: float, now: float, allowed: float) -> NodeWait:
    """Judge `pods`, listed at `now`, of a scale-up written at `since`: do any still wait
    for a node `allowed` seconds on? Before then, look again just after it (not a back-off
    later), so a pod placed at 2.1 s counts and one placed at 1.9 s does not."""
    waiting = unscheduled(pods)
    if not waiting:
        return NodeWait((), None)
    due = since + allowed
    if now <= due:
        return NodeWait((), due + 0.05)
    return NodeWait(tuple(waiting), None)


def _refused(deployment: JSON | None) -> str | None:
    """Why the Deployment's pods are refused at creation, as it reports it, or None."""
    for condition in ((deployment or {}).get("status") or {}).get("conditions") or []:
        if (condition.get("type") == "ReplicaFailure" and condition.get("status") == "True"
                and condition.get("reason") == "FailedCreate"):
            message = str(condition.get("message") or "no reason given")
            return f"pods refused at creation (FailedCreate): {message}"
    return None


def _problem(pod: JSON) -> tuple[tuple[str, str] | None, str]:
    """(kind, detail) of what is wrong with `pod`, or None; and a short note of its state."""
    status = pod.get("status") or {}
    phase = str(status.get("phase") or "Pending")
    for condition in status.get("conditions") or []:
        if (condition.get("type") == "PodScheduled" and condition.get("status") == "False"
                and condition.get("reason") == "Unschedulable"):
            message = condition.get("message") or "no node fits it"
            return ("unschedulable", f"cannot be scheduled: {message}"), "Unschedulable"
    for container in status.get("containerStatuses") or []:
        state = container.get("state") or {}
        waiting = state.get("waiting") or {}
        reason = str(waiting.get("reason") or "")
        message = str(waiting.get("message") or "")
        restarts = int(container.get("restartCount") or 0)
        if reason in _PULL_FAILURES:
            return ("image_pull", f"{reason}: {message}".rstrip(": ")), reason
        if reason == "CrashLoopBackOff" and restarts >= CRASH_RESTARTS:
            return (("crash_loop", f"CrashLoopBackOff after {restarts} restarts: {message}"
                     .rstrip(": ")), reason)
        if reason:
            return None, reason
    if phase == "Running":
        return None, "Running, not ready"
    return None, phase
