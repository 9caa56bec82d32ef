"""Server-side printing: the `meta.k8s.io/v1` Table `kubectl get` asks for.

Owns the columns the API server prints for the kinds a test most often looks at with
`kubectl get` — Pods (NAME READY STATUS RESTARTS AGE; wide: IP NODE NOMINATED NODE),
Nodes (NAME STATUS ROLES AGE VERSION), PriorityClasses (NAME VALUE GLOBAL-DEFAULT AGE
PREEMPTIONPOLICY) and Deployments (NAME READY UP-TO-DATE AVAILABLE AGE) — each row carrying
the object's metadata (PartialObjectMetadata), as the server answers an `Accept:
application/json;as=Table;v=v1;g=meta.k8s.io` request. Other kinds are answered as plain
objects (kubectl then prints NAME and AGE). Never reads the store.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from .meta import JSON, condition, dig, meta, now

Column = tuple[str, str, int]  # name, type, priority (1: only with -o wide)


def wants_table(accept: str) -> bool:
    return any("as=Table" in part and "g=meta.k8s.io" in part for part in accept.split(","))


def _age(obj: JSON) -> str:
    created = meta(obj).get("creationTimestamp")
    if not created:
        return "<unknown>"
    at = datetime.strptime(str(created), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    seconds = max(int((now() - at).total_seconds()), 0)
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    return f"{hours}h" if hours < 48 else f"{hours // 24}d"


def _pod_status(pod: JSON) -> str:
    status = pod.get("status") or {}
    reason = str(status.get("reason") or status.get("phase") or "Unknown")
    for c in status.get("containerStatuses") or []:
        state = c.get("state") or {}
        waiting = (state.get("waiting") or {}).get("reason")
        terminated = (state.get("terminated") or {}).get("reason")
        if waiting or terminated:
            reason = str(waiting or terminated)
    if meta(pod).get("deletionTimestamp"):
        reason = "Terminating"
    return reason


def _pod(pod: JSON) -> list[Any]:
    statuses = dig(pod, "status", "containerStatuses") or []
    containers = dig(pod, "spec", "containers") or []
    ready = sum(1 for c in statuses if c.get("ready"))
    return [meta(pod).get("name"), f"{ready}/{len(containers)}", _pod_status(pod),
            sum(int(c.get("restartCount") or 0) for c in statuses), _age(pod),
            dig(pod, "status", "podIP") or "<none>", dig(pod, "spec", "nodeName") or "<none>",
            dig(pod, "status", "nominatedNodeName") or "<none>", "<none>"]


def _node(node: JSON) -> list[Any]:
    ready = condition(node.get("status") or {}, "Ready")
    status = "Ready" if ready and ready.get("status") == "True" else (
        "NotReady" if ready else "Unknown")
    if dig(node, "spec", "unschedulable"):
        status += ",SchedulingDisabled"
    addresses = {a.get("type"): a.get("address") for a in dig(node, "status", "addresses") or []}
    info = dig(node, "status", "nodeInfo") or {}
    return [meta(node).get("name"), status, "<none>", _age(node), info.get("kubeletVersion"),
            addresses.get("InternalIP") or "<none>", addresses.get("ExternalIP") or "<none>",
            info.get("osImage"), info.get("kernelVersion"), info.get("containerRuntimeVersion")]


def _priority_class(pc: JSON) -> list[Any]:
    return [meta(pc).get("name"), pc.get("value"), bool(pc.get("globalDefault")), _age(pc),
            pc.get("preemptionPolicy") or "PreemptLowerPriority"]


def _deployment(dep: JSON) -> list[Any]:
    status = dep.get("status") or {}
    wanted = int(dig(dep, "spec", "replicas") or 0)
    return [meta(dep).get("name"), f"{int(status.get('readyReplicas') or 0)}/{wanted}",
            int(status.get("updatedReplicas") or 0), int(status.get("availableReplicas") or 0),
            _age(dep)]


_TABLES: dict[str, tuple[list[Column], Callable[[JSON], list[Any]]]] = {
    "Pod": ([("Name", "string", 0), ("Ready", "string", 0), ("Status", "string", 0),
             ("Restarts", "integer", 0), ("Age", "string", 0), ("IP", "string", 1),
             ("Node", "string", 1), ("Nominated Node", "string", 1),
             ("Readiness Gates", "string", 1)], _pod),
    "Node": ([("Name", "string", 0), ("Status", "string", 0), ("Roles", "string", 0),
              ("Age", "string", 0), ("Version", "string", 0), ("Internal-IP", "string", 1),
              ("External-IP", "string", 1), ("OS-Image", "string", 1),
              ("Kernel-Version", "string", 1), ("Container-Runtime", "string", 1)], _node),
    "PriorityClass": ([("Name", "string", 0), ("Value", "integer", 0),
                       ("Global-Default", "boolean", 0), ("Age", "string", 0),
                       ("PreemptionPolicy", "string", 0)], _priority_class),
    "Deployment": ([("Name", "string", 0), ("Ready", "string", 0), ("Up-to-date", "integer", 0),
                    ("Available", "integer", 0), ("Age", "string", 0)], _deployment),
}


def table(kind: str, objects: list[JSON], list_meta: JSON) -> JSON | None:
    """The Table for `objects` of `kind`, or None when the kind has no printer here."""
    found = _TABLES.get(kind)
    if found is None:
        return None
    columns, cells = found
    return {
        "kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta,
        "columnDefinitions": [{"name": name, "type": kind_, "format": "name" if i == 0 else "",
                               "description": "", "priority": priority}
                              for i, (name, kind_, priority) in enumerate(columns)],
        "rows": [{"cells": cells(obj), "object": {
            "kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
            "metadata": meta(obj)}} for obj in objects],
    }
