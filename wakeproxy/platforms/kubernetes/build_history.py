"""Earlier builds read back from their Jobs: the builds list survives a wakeproxy restart.

Each build Job carries what its build was (builds.py: the build id and app as labels; the
repo, ref, commit, image, request time and whether to deploy it once built as
annotations); its status tells whether it still runs, when it started and finished, and
whether it succeeded; its pod, while it exists, the exit code and the log. Kubernetes
deletes a finished Job and its pod after `kubernetes.builds.ttl`, and a pod can go sooner
(node gone, pod garbage collection): what is gone from the cluster cannot be read back,
and `log` says so (None). Cancelled builds deleted their Job, so they are not found
either. Must never: write to the API.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiohttp
from kubernetes_asyncio import client

from wakeproxy.platforms.kubernetes.annotations import MANAGED_BY
from wakeproxy.platforms.kubernetes.api import JSON
from wakeproxy.platforms.kubernetes.builds import (
    BUILD_LABEL,
    COMMIT,
    CONTAINER,
    CREATED_AT,
    DEPLOY,
    IMAGE,
    REF,
    REPO,
    BuildJob,
    BuildJobs,
    container_state,
    job_finished,
)
from wakeproxy.platforms.kubernetes.deploys import APP_LABEL
from wakeproxy.platforms.kubernetes.errors import NotFound


@dataclass(frozen=True, slots=True)
class FoundJob:
    """One build as its Job (and pod, if still there) tell it."""

    job: BuildJob
    app: str
    started_at: float | None
    # (succeeded, why) once the Job ended; None while it runs.
    finished: tuple[bool, str] | None
    finished_at: float | None
    exit_code: int | None


def _time(value: Any) -> float | None:
    """An RFC 3339 time of the API (`2024-05-01T10:00:00Z`) as wall-clock seconds."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _finished_at(status: JSON) -> float | None:
    if (done := _time(status.get("completionTime"))) is not None:
        return done
    for cond in status.get("conditions") or []:
        if cond.get("type") in ("Complete", "Failed") and cond.get("status") == "True":
            return _time(cond.get("lastTransitionTime"))
    return None


def read_back(obj: JSON, pods: list[JSON]) -> FoundJob | None:
    """The build a Job of ours ran; None for a Job that does not describe one."""
    meta = obj.get("metadata") or {}
    labels, notes = meta.get("labels") or {}, meta.get("annotations") or {}
    build_id, app = labels.get(BUILD_LABEL), labels.get(APP_LABEL)
    if not build_id or not app or labels.get(MANAGED_BY) != "wakeproxy":
        return None
    created = _time(meta.get("creationTimestamp"))
    try:
        created_at = float(notes.get(CREATED_AT) or created or 0.0)
    except ValueError:
        created_at = created or 0.0
    ref = str(notes.get(REF) or "")
    job = BuildJob(build_id=str(build_id), repo=str(notes.get(REPO) or ""), ref=ref,
                   commit=str(notes.get(COMMIT) or ""), image=str(notes.get(IMAGE) or ""),
                   labels={k: str(v) for k, v in labels.items()}, created_at=created_at,
                   deploy=notes.get(DEPLOY) == "true")
    if job.job_name != meta.get("name"):
        return None  # not named as we name build Jobs: someone else's
    status = obj.get("status") or {}
    finished = job_finished(obj)
    exit_code = None
    for pod in pods:
        terminated = container_state(pod).get("terminated")
        if isinstance(terminated, dict) and isinstance(terminated.get("exitCode"), int):
            exit_code = int(terminated["exitCode"])
    return FoundJob(job=job, app=str(app), started_at=_time(status.get("startTime")),
                    finished=finished,
                    finished_at=_finished_at(status) if finished is not None else None,
                    exit_code=exit_code if finished is not None else None)


class BuildHistory:
    """Reads the build Jobs of `jobs`' namespace back."""

    def __init__(self, jobs: BuildJobs) -> None:
        self._jobs = jobs

    async def found(self, app: str | None = None) -> list[FoundJob]:
        """Every build Job of ours still in the cluster (of `app` only, if given), oldest
        first. Raises ApiError."""
        api, ns = self._jobs.api(), self._jobs.namespace
        batch, core = client.BatchV1Api(api.client), client.CoreV1Api(api.client)
        selector = BUILD_LABEL if app is None else f"{BUILD_LABEL},{APP_LABEL}={app}"
        jobs = await api.call(batch.list_namespaced_job, ns, label_selector=selector)
        pods = await api.call(core.list_namespaced_pod, ns, label_selector=selector)
        by_build: dict[str, list[JSON]] = {}
        for pod in pods.get("items") or []:
            build = ((pod.get("metadata") or {}).get("labels") or {}).get(BUILD_LABEL)
            by_build.setdefault(str(build), []).append(pod)
        out = []
        for obj in jobs.get("items") or []:
            build = ((obj.get("metadata") or {}).get("labels") or {}).get(BUILD_LABEL)
            found = read_back(obj, by_build.get(str(build), []))
            if found is not None:
                out.append(found)
        return sorted(out, key=lambda f: (f.job.created_at, f.job.build_id))

    async def log(self, job: BuildJob) -> bytes | None:
        """The whole log of a build's pod; None when no pod of it is left. Raises ApiError."""
        api, ns = self._jobs.api(), self._jobs.namespace
        core = client.CoreV1Api(api.client)
        pods = await api.call(core.list_namespaced_pod, ns,
                              label_selector=f"{BUILD_LABEL}={job.build_id}")
        for pod in pods.get("items") or []:
            name = str((pod.get("metadata") or {}).get("name") or "")
            try:
                resp = await api.stream(core.read_namespaced_pod_log, name, ns,
                                        container=CONTAINER, follow=False,
                                        idle_timeout=api.timeout)
            except NotFound:
                continue  # deleted between the list and the read
            try:
                return await resp.read()
            except (TimeoutError, aiohttp.ClientError, OSError) as e:
                raise api.unreachable(e) from None
            finally:
                resp.release()
        return None
