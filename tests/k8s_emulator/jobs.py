"""The Job controller: runs a Job's pod to completion and reports the outcome.

Owns: creating one pod at a time for a Job (parallelism beyond 1 is not emulated), counting
succeeded and failed pods, retrying up to `backoffLimit`, and the terminal conditions
(`SuccessCriteriaMet` + `Complete`, or `FailureTarget` + `Failed` with BackoffLimitExceeded)
with startTime/completionTime. A pod refused by Pod Security admission leaves the Job without
pods (retried). Never runs processes.
"""

from __future__ import annotations

from collections.abc import Hashable

from . import events
from . import resources as r
from .controller import Controller
from .deployments import RETRY_FAILED_CREATE
from .errors import Forbidden
from .meta import (
    JSON,
    condition,
    deep,
    dig,
    format_time,
    is_pod_ready,
    is_terminating,
    meta,
    owned_by,
    random_suffix,
)


class JobController(Controller):
    name = "job-controller"
    watches = (r.JOBS, r.PODS)
    owner_kind = "Job"

    async def reconcile(self, key: Hashable) -> None:
        assert isinstance(key, tuple)
        ns, name = key
        job = self.store.find(r.JOBS, ns, name)
        if job is None or is_terminating(job):
            return
        status = job.get("status") or {}
        if _finished(status) or dig(job, "spec", "suspend"):
            return
        uid = str(meta(job)["uid"])
        pods = [p for p in self.store.items(r.PODS)
                if meta(p).get("namespace") == ns and owned_by(p, uid)]
        succeeded = sum(1 for p in pods if dig(p, "status", "phase") == "Succeeded")
        failed = sum(1 for p in pods if dig(p, "status", "phase") == "Failed")
        active = [p for p in pods if dig(p, "status", "phase") not in ("Succeeded", "Failed")
                  and not is_terminating(p)]
        spec = job.get("spec") or {}
        completions = int(spec.get("completions") or 1)
        at = format_time()
        new: JSON = {"startTime": status.get("startTime") or at}
        if succeeded >= completions:
            new["completionTime"] = at
            new["conditions"] = [_cond("SuccessCriteriaMet", "CompletionsReached", at),
                                 _cond("Complete", "CompletionsReached", at)]
        elif failed > int(spec.get("backoffLimit", 6)):
            new["conditions"] = [_cond("FailureTarget", "BackoffLimitExceeded", at),
                                 _cond("Failed", "BackoffLimitExceeded", at)]
            for pod in active:
                self.store.delete(r.PODS, ns, meta(pod)["name"])
            active = []
        elif not active:
            try:
                active = [self._create_pod(job)]
            except Forbidden as err:
                # Refused by Pod Security admission: the Job stays without a pod, says so
                # in a FailedCreate Event, and the creation is retried.
                events.record(self.store, job, reason="FailedCreate",
                              message=f"Error creating: {err.message}",
                              component="job-controller")
                self.enqueue(key, RETRY_FAILED_CREATE)
        counts = {"active": len(active), "succeeded": succeeded, "failed": failed,
                  "ready": sum(1 for p in active if is_pod_ready(p)), "terminating": 0}
        new.update({k: v for k, v in counts.items() if v or k == "ready"})

        def change(obj: JSON) -> None:
            obj["status"] = new

        if new != status:
            self.store.mutate(r.JOBS, ns, name, change, subresource="status")

    def _create_pod(self, job: JSON) -> JSON:
        template = (job.get("spec") or {}).get("template") or {}
        pod_meta = deep(template.get("metadata") or {})
        name = meta(job)["name"]
        pod_meta["name"] = f"{name}-{random_suffix()}"
        pod_meta.pop("creationTimestamp", None)
        pod_meta["ownerReferences"] = [{
            "apiVersion": "batch/v1", "kind": "Job", "name": name, "uid": meta(job)["uid"],
            "controller": True, "blockOwnerDeletion": True,
        }]
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta,
               "spec": deep(template.get("spec") or {})}
        return self.store.create(r.PODS, pod, str(meta(job)["namespace"]))


def _finished(status: JSON) -> bool:
    return any(
        (c := condition(status, kind)) is not None and c.get("status") == "True"
        for kind in ("Complete", "Failed")
    )


def _cond(kind: str, reason: str, at: str) -> JSON:
    return {"type": kind, "status": "True", "reason": reason, "lastProbeTime": at,
            "lastTransitionTime": at, "message": reason}
