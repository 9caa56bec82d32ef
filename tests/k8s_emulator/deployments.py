"""The Deployment controller: keeps the wanted number of pods and reports status.

Owns: creating pods from the template (labelled with `pod-template-hash`, owned by the
Deployment — the emulator has no ReplicaSet objects), deleting surplus pods (unscheduled,
pending and not-ready first), rollouts (new-template pods are created at once and old ones
deleted when enough new ones are ready), and `status` (replicas, updated/ready/available/
unavailable counts with zero values omitted as on the wire, observedGeneration,
Available/Progressing conditions).
Never runs processes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Hashable

from . import events
from . import resources as r
from .controller import Controller
from .errors import Forbidden
from .meta import (
    JSON,
    deep,
    dig,
    format_time,
    is_pod_ready,
    is_terminating,
    meta,
    owned_by,
    random_suffix,
)

_HASH_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
# A pod creation refused by admission is tried again after this long.
RETRY_FAILED_CREATE = 0.5


def template_hash(template: JSON) -> str:
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).digest()
    return "".join(_HASH_ALPHABET[b % len(_HASH_ALPHABET)] for b in digest[:10])


class DeploymentController(Controller):
    name = "deployment-controller"
    watches = (r.DEPLOYMENTS, r.PODS)
    owner_kind = "Deployment"

    async def reconcile(self, key: Hashable) -> None:
        assert isinstance(key, tuple)
        ns, name = key
        dep = self.store.find(r.DEPLOYMENTS, ns, name)
        if dep is None or is_terminating(dep):
            return
        uid = str(meta(dep)["uid"])
        template = (dep.get("spec") or {}).get("template") or {}
        current_hash = template_hash(template)
        pods = [p for p in self.store.items(r.PODS)
                if meta(p).get("namespace") == ns and owned_by(p, uid)]
        active = [p for p in pods if not is_terminating(p)]
        current = [p for p in active if _hash_of(p) == current_hash]
        old = [p for p in active if _hash_of(p) != current_hash]
        wanted = int((dep.get("spec") or {}).get("replicas", 1))
        failure: str | None = None
        for _ in range(wanted - len(current)):
            try:
                self._create_pod(dep, template, current_hash)
            except Forbidden as err:
                # Pod Security admission refused the pod: reported on the status and as
                # an Event, retried later (the ReplicaSet controller's back-off).
                failure = err.message
                events.record(self.store, dep, reason="FailedCreate",
                              message=f"Error creating: {err.message}",
                              component="replicaset-controller")
                self.enqueue(key, RETRY_FAILED_CREATE)
                break
        if len(current) > wanted:
            # As the ReplicaSet controller ranks them: pods not yet on a node go first,
            # then pending ones, then not ready ones.
            surplus = sorted(current, key=lambda p: (
                bool(dig(p, "spec", "nodeName")), dig(p, "status", "phase") != "Pending",
                is_pod_ready(p), meta(p)["creationTimestamp"]))
            for pod in surplus[: len(current) - wanted]:
                self.store.delete(r.PODS, ns, meta(pod)["name"])
        ready_current = sum(1 for p in current if is_pod_ready(p))
        if old and (wanted == 0 or ready_current >= wanted):
            for pod in old:
                self.store.delete(r.PODS, ns, meta(pod)["name"])
        self._write_status(ns, name, dep, active, current, wanted, failure)

    def _create_pod(self, dep: JSON, template: JSON, pod_hash: str) -> None:
        pod_meta = deep(template.get("metadata") or {})
        labels = pod_meta.setdefault("labels", {})
        labels["pod-template-hash"] = pod_hash
        name = meta(dep)["name"]
        pod_meta["name"] = f"{name}-{pod_hash}-{random_suffix()}"[:253]
        pod_meta.pop("creationTimestamp", None)
        pod_meta["ownerReferences"] = [{
            "apiVersion": "apps/v1", "kind": "Deployment", "name": name,
            "uid": meta(dep)["uid"], "controller": True, "blockOwnerDeletion": True,
        }]
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta,
               "spec": deep(template.get("spec") or {})}
        self.store.create(r.PODS, pod, str(meta(dep)["namespace"]))

    def _write_status(self, ns: str, name: str, dep: JSON, active: list[JSON],
                      current: list[JSON], wanted: int, failure: str | None) -> None:
        ready = sum(1 for p in active if is_pod_ready(p))
        counts = {
            "replicas": len(active),
            "updatedReplicas": len(current),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "unavailableReplicas": max(wanted - ready, 0) if active or wanted else 0,
        }
        old_status = dep.get("status") or {}
        status: JSON = {"observedGeneration": meta(dep).get("generation", 1)}
        # Zero counts are omitted on the wire (omitempty), so clients see them absent.
        status.update({k: v for k, v in counts.items() if v})
        available = ready >= wanted
        complete = available and len(current) == len(active) == wanted
        status["conditions"] = [
            _condition(old_status, "Available", available,
                       "MinimumReplicasAvailable" if available else "MinimumReplicasUnavailable",
                       "Deployment has minimum availability." if available
                       else "Deployment does not have minimum availability."),
            _condition(old_status, "Progressing", True,
                       "NewReplicaSetAvailable" if complete else "ReplicaSetUpdated",
                       f'ReplicaSet "{name}" has successfully progressed.' if complete
                       else f'ReplicaSet "{name}" is progressing.'),
        ]
        if failure is not None:
            # As the ReplicaSet controller reports a refused pod, copied to the Deployment.
            status["conditions"].append(_condition(old_status, "ReplicaFailure", True,
                                                   "FailedCreate", failure))

        def change(obj: JSON) -> None:
            obj["status"] = status

        if status != old_status:
            self.store.mutate(r.DEPLOYMENTS, ns, name, change, subresource="status")


def _hash_of(pod: JSON) -> str:
    return str((meta(pod).get("labels") or {}).get("pod-template-hash", ""))


def _condition(old_status: JSON, kind: str, value: bool, reason: str, message: str) -> JSON:
    status = "True" if value else "False"
    for c in old_status.get("conditions") or []:
        if c.get("type") == kind and c.get("status") == status and c.get("reason") == reason:
            return dict(c)
    at = format_time()
    return {"type": kind, "status": status, "lastUpdateTime": at, "lastTransitionTime": at,
            "reason": reason, "message": message}
