"""Image builds as `batch/v1` Jobs: the Job manifest, its pod's log followed, its outcome.

A build Job runs rootless BuildKit (`buildctl-daemonless.sh`, no daemon, no privileges):
it fetches the commit from git itself (`--opt context=<repo>#<commit>`: the exact commit
the ref was resolved to), builds the Dockerfile at the root of that commit and pushes the
image to the in-cluster registry. The Job carries what the build was (`wakeproxy.io/*`
labels and annotations: app, build id, repo, ref, commit, image, when it was asked for,
whether it is to be deployed once built),
so the builds list can be read back from the cluster after a restart (history.py).
The Job has a deadline, resource requests and limits, no retries (a failed build is a
fact to report, not to retry) and a TTL after which Kubernetes deletes it. Its pod's log
is followed (`follow=true`) into the caller's sink while the build runs; the outcome
comes from the Job's conditions and the container's exit code. A Job whose pod the API
refuses to create (Pod Security admission, a quota: the Job controller's `FailedCreate`
Events, while the Job has no pod) for `refused_grace` fails the build with the refusal,
and the Job is deleted: it would otherwise start by itself once the refusal clears,
unwatched.
Must never: know about build bookkeeping, deploys or review apps (the controllers do).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import structlog
from kubernetes_asyncio import client

from wakeproxy.model.redact import redact
from wakeproxy.platforms.kubernetes.annotations import MANAGED_BY
from wakeproxy.platforms.kubernetes.api import JSON, Api
from wakeproxy.platforms.kubernetes.errors import ApiError, NotFound
from wakeproxy.settings import KubernetesBuilds, KubernetesSettings

log = structlog.get_logger("wakeproxy.kubernetes.builds")

BUILD_LABEL = "wakeproxy.io/build"
REPO = "wakeproxy.io/repo"
REF = "wakeproxy.io/ref"
COMMIT = "wakeproxy.io/commit"
IMAGE = "wakeproxy.io/image"
CREATED_AT = "wakeproxy.io/created-at"  # wall-clock seconds, as the build record has them
# "true" on the Job of a build to deploy once it succeeds (a review app's push, a build
# asked with `deploy`): a wakeproxy restarted while it runs still deploys it.
DEPLOY = "wakeproxy.io/deploy-when-built"
CONTAINER = "buildkit"
METADATA = "/tmp/buildkit-metadata.json"
DOCKER_CONFIG = "/home/user/.docker"
# The last line of a build that pushed: `==> pushed <image>@sha256:<digest>` (the
# builder's contract; a replacement `builder_command` prints it too).
PUSHED = re.compile(r"^==> pushed (\S+)@(sha256:[0-9a-f]{64})\s*$")
_REPORT_DIGEST = (
    'buildctl-daemonless.sh "$@" && '
    'digest=$(sed -n \'s/.*"containerimage.digest": *"\\(sha256:[0-9a-f]*\\)".*/\\1/p\' '
    f"{METADATA}) && "
    'echo "==> pushed $WAKEPROXY_IMAGE@$digest"'
)
# AppArmor on Kubernetes 1.29 (the appArmorProfile field is 1.30+): one per container.
APPARMOR = "container.apparmor.security.beta.kubernetes.io/"
_POLL = 0.2  # how often the Job and its pod are read while waiting for them
# A refusal may pass (a quota freed by a pod ending; the Job controller retries): the Job
# is failed once its pod has been refused this long (kubernetes.refused_grace).
REFUSED_GRACE = KubernetesSettings().refused_grace
_LOG_IDLE = 600.0  # a build may print nothing for this long (a slow layer)


@dataclass(frozen=True, slots=True)
class BuildJob:
    """One build to run: which commit of which repository becomes which image.

    `ref` is what was asked for (a branch, a tag, a commit); `commit` the commit it named
    when the build started, which is what the Job builds.
    """

    build_id: str
    repo: str
    ref: str
    commit: str
    image: str
    labels: Mapping[str, str] = field(default_factory=dict)
    created_at: float = 0.0
    deploy: bool = False

    @property
    def job_name(self) -> str:
        return f"build-{self.build_id}"[:63].rstrip("-")


@dataclass(frozen=True, slots=True)
class JobOutcome:
    succeeded: bool
    reason: str
    exit_code: int | None = None


def job_manifest(job: BuildJob, s: KubernetesBuilds) -> JSON:
    """The Job of one build (rootless BuildKit as its documentation asks for it)."""
    labels = {**job.labels, BUILD_LABEL: job.build_id, MANAGED_BY: "wakeproxy"}
    # The repo as shown: anyone who may read Jobs reads these. Only BuildKit's own
    # argument carries the credentials it fetches with.
    notes = {REPO: redact(job.repo), REF: job.ref, COMMIT: job.commit, IMAGE: job.image,
             CREATED_AT: f"{job.created_at:.6f}"}
    if job.deploy:
        notes[DEPLOY] = "true"
    output = f"type=image,name={job.image},push=true,registry.insecure=true"
    argv = ["build", "--progress=plain", "--frontend", "dockerfile.v0",
            "--opt", f"context={job.repo}#{job.commit}", "--output", output,
            "--metadata-file", METADATA]
    container: JSON = {
        "name": CONTAINER, "image": s.builder_image,
        "env": [
            # Rootless without a user namespace for each build step (no privileges).
            {"name": "BUILDKITD_FLAGS", "value": "--oci-worker-no-process-sandbox"},
            {"name": "WAKEPROXY_REPO", "value": redact(job.repo)},
            {"name": "WAKEPROXY_REF", "value": job.ref},
            {"name": "WAKEPROXY_COMMIT", "value": job.commit},
            {"name": "WAKEPROXY_IMAGE", "value": job.image},
        ],
        "securityContext": {
            # BuildKit's rootless mode needs unconfined seccomp and AppArmor profiles to
            # make its own user and mount namespaces (even with the process sandbox off):
            # Pod Security admits that in a `privileged` namespace only, hence Jobs run in
            # kubernetes.builds.job_namespace. It never runs as root. The AppArmor field
            # is 1.30+ (a 1.29 API server drops it): the pod's annotation says the same.
            "seccompProfile": {"type": "Unconfined"},
            "appArmorProfile": {"type": "Unconfined"},
            "runAsNonRoot": True, "runAsUser": 1000, "runAsGroup": 1000,
        },
        "resources": {"requests": {"cpu": "500m", "memory": "512Mi"},
                      "limits": {"cpu": "2", "memory": "4Gi"}},
        "volumeMounts": [{"name": "buildkitd", "mountPath": "/home/user/.local/share/buildkit"}],
    }
    volumes: list[JSON] = [{"name": "buildkitd", "emptyDir": {}}]
    if s.push_secret is not None:
        # The registry's push credentials: only build Jobs hold them (their namespace's
        # Secret); apps pull anonymously from the read-only side (k8s/registry/).
        container["env"].append({"name": "DOCKER_CONFIG", "value": DOCKER_CONFIG})
        container["volumeMounts"].append({"name": "push-credentials",
                                          "mountPath": DOCKER_CONFIG, "readOnly": True})
        volumes.append({"name": "push-credentials", "secret": {
            "secretName": s.push_secret,
            "items": [{"key": ".dockerconfigjson", "path": "config.json"}]}})
    if s.builder_command is not None:
        container["command"] = list(s.builder_command)
    else:
        # BuildKit, then the digest it pushed (from its metadata file) as the last line,
        # which is what the deploy pins.
        container["command"] = ["/bin/sh", "-c", _REPORT_DIGEST, "buildctl-daemonless.sh"]
        container["args"] = argv
    return {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": job.job_name, "labels": labels, "annotations": notes},
        "spec": {
            "activeDeadlineSeconds": max(1, int(s.deadline)),
            "backoffLimit": 0,
            "ttlSecondsAfterFinished": max(0, int(s.ttl)),
            "template": {
                "metadata": {"labels": labels, "annotations": {APPARMOR + CONTAINER: "unconfined"}},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "containers": [container],
                    "volumes": volumes,
                },
            },
        },
    }


class BuildJobs:
    """Runs build Jobs in one namespace. `api` gives the platform's client once started."""

    def __init__(self, api: Callable[[], Api], settings: KubernetesBuilds, *,
                 refused_grace: float = REFUSED_GRACE) -> None:
        self._api = api
        self._s = settings
        self._refused_grace = refused_grace

    @property
    def namespace(self) -> str:
        return self._s.job_namespace

    def api(self) -> Api:
        return self._api()

    async def run(self, job: BuildJob, write: Callable[[bytes], None]) -> JobOutcome:
        """Create the Job, stream its log into `write`, return how it ended.

        Raises ApiError when the API refuses or cannot be reached; TimeoutError past the
        deadline (plus slack for the pod to be scheduled and the status to be written).
        """
        api = self._api()
        batch = client.BatchV1Api(api.client)
        await api.call(batch.create_namespaced_job, self.namespace, job_manifest(job, self._s))
        log.info("build job created", job=job.job_name, namespace=self.namespace)
        return await self.follow(job, write)

    async def follow(self, job: BuildJob, write: Callable[[bytes], None]) -> JobOutcome:
        """Stream an existing Job's log into `write` (from its start), return how it ended.

        Raises like `run`.
        """
        api = self._api()
        async with asyncio.timeout(self._s.deadline + 60.0):
            try:
                pod = await self._started_pod(api, job)
            except _Refused as e:
                log.warning("build job's pod refused: deleting the job", job=job.job_name,
                            namespace=self.namespace, reason=e.message)
                with contextlib.suppress(ApiError):  # the refusal is the news, not this
                    await self.delete(job)
                return JobOutcome(False, f"its pod was refused at creation (FailedCreate): "
                                         f"{e.message}")
            streamed = 0
            if pod is not None:
                streamed = await self._follow(api, str(pod["metadata"]["name"]), write)
            outcome = await self._outcome(api, job)
            if pod is not None and streamed == 0:
                # The stream can end before the container's first line (it had not started
                # writing yet): read the whole log once the container is done.
                await self._follow(api, str(pod["metadata"]["name"]), write, follow=False)
            return outcome

    async def delete(self, job: BuildJob) -> None:
        """Delete the Job and its pod (a cancelled build). Absent is fine."""
        api = self._api()
        batch = client.BatchV1Api(api.client)
        with contextlib.suppress(NotFound):
            await api.call(batch.delete_namespaced_job, job.job_name, self.namespace,
                           propagation_policy="Background")

    async def _started_pod(self, api: Api, job: BuildJob) -> JSON | None:
        """The Job's pod once its container runs or ran; None if the Job ended without.

        Raises _Refused when the Job has had no pod, its creation refused, for the grace.
        """
        core = client.CoreV1Api(api.client)
        loop = asyncio.get_running_loop()
        refused_since: float | None = None
        while True:
            # The Job's status first, then its pods: a fast build can finish between two
            # reads, and its pod must still be found then, or its whole log is lost.
            finished = job_finished(await self._job(api, job)) is not None
            pods = await api.call(core.list_namespaced_pod, self.namespace,
                                  label_selector=f"{BUILD_LABEL}={job.build_id}")
            items = pods.get("items") or []
            for pod in items:
                if container_state(pod).keys() & {"running", "terminated"}:
                    return dict(pod)
            if finished:
                return dict(items[0]) if items else None
            refusal = None if items else await self._refusal(api, job)
            if refusal is None:
                refused_since = None
            else:
                now = loop.time()
                refused_since = now if refused_since is None else refused_since
                if now - refused_since >= self._refused_grace:
                    raise _Refused(refusal)
            await asyncio.sleep(_POLL)

    async def _refusal(self, api: Api, job: BuildJob) -> str | None:
        """The latest refusal of the Job's pod (its FailedCreate Events), or None."""
        core = client.CoreV1Api(api.client)
        found = await api.call(core.list_namespaced_event, self.namespace, field_selector=(
            f"involvedObject.kind=Job,involvedObject.name={job.job_name},reason=FailedCreate"))
        events = [e for e in found.get("items") or [] if isinstance(e, dict)]
        if not events:
            return None
        latest = max(events, key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime")
                                                or ""))
        return str(latest.get("message") or "no reason given")

    async def _follow(self, api: Api, pod: str, write: Callable[[bytes], None], *,
                      follow: bool = True) -> int:
        """Stream the pod's log into `write`; returns how many bytes came."""
        core = client.CoreV1Api(api.client)
        count = 0
        try:
            resp = await api.stream(core.read_namespaced_pod_log, pod, self.namespace,
                                    container=CONTAINER, follow=follow, idle_timeout=_LOG_IDLE)
        except ApiError as e:
            write(f"==> the build log could not be read: {e.message}\n".encode())
            return count
        try:
            async for chunk in resp.content.iter_any():
                count += len(chunk)
                write(chunk)
        except (TimeoutError, aiohttp.ClientError, OSError) as e:
            write(f"==> the build log ended early: {e or type(e).__name__}\n".encode())
        finally:
            resp.release()
        return count

    async def _job(self, api: Api, job: BuildJob) -> JSON:
        batch = client.BatchV1Api(api.client)
        return await api.call(batch.read_namespaced_job, job.job_name, self.namespace)

    async def _outcome(self, api: Api, job: BuildJob) -> JobOutcome:
        while (finished := job_finished(await self._job(api, job))) is None:  # noqa: ASYNC110
            await asyncio.sleep(_POLL)
        succeeded, reason = finished
        if succeeded:
            return JobOutcome(True, "the image was built and pushed")
        exit_code, why = await self._exit(api, job)
        if exit_code is not None:
            reason = f"the builder exited with code {exit_code} ({why or reason})"
        return JobOutcome(False, reason, exit_code)

    async def _exit(self, api: Api, job: BuildJob) -> tuple[int | None, str]:
        core = client.CoreV1Api(api.client)
        pods = await api.call(core.list_namespaced_pod, self.namespace,
                              label_selector=f"{BUILD_LABEL}={job.build_id}")
        for pod in pods.get("items") or []:
            terminated = container_state(pod).get("terminated")
            if isinstance(terminated, dict) and isinstance(terminated.get("exitCode"), int):
                return int(terminated["exitCode"]), str(terminated.get("reason") or "")
        return None, ""


class _Refused(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def container_state(pod: Any) -> dict[str, Any]:
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") == CONTAINER:
            state = status.get("state") or {}
            return state if isinstance(state, dict) else {}
    return {}


def pushed_digest(lines: list[str], image: str) -> str | None:
    """The digest a build's log says `image` was pushed as (its last such line)."""
    for line in reversed(lines):
        m = PUSHED.match(line)
        if m and m.group(1) == image:
            return m.group(2)
    return None


def job_finished(job: JSON) -> tuple[bool, str] | None:
    """(succeeded, why) once the Job has a terminal condition, else None."""
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("status") != "True":
            continue
        if cond.get("type") == "Complete":
            return True, "complete"
        if cond.get("type") == "Failed":
            reason = str(cond.get("reason") or "Failed")
            if reason == "DeadlineExceeded":
                return False, "the build took longer than its deadline (DeadlineExceeded)"
            return False, f"the build Job failed ({reason})"
    return None
