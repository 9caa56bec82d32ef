"""Builds on Kubernetes: each build a Job (see platforms.kubernetes.builds), kept as a `Build`.

Same surface as the local builder, so review apps and the admin API use either: a build
is QUEUED, RUNNING while its ref is resolved to a commit (`git ls-remote`, git_refs.py)
and its Job runs (the Job's pod log streams into `Build.log`, so `wakeproxy logs BUILD
--follow` works the same), then SUCCEEDED once its image `<registry>/<app>:<commit>-<id>`
is pushed (`registry`: the address builds push to, from a pod) — deployed as
`<pull_registry>/<app>@<digest>`, the digest the builder's last log line reports and the
address nodes pull from, so what runs is exactly what was built even if the tag is
pushed over — or FAILED with the exit code and the log's last lines, or CANCELLED (its
Job is deleted). A build to deploy once built (`deploy`: a review app's push, a build
asked with `deploy`) says so on its Job. `close` (wakeproxy stopping: a rollout, a node
drain) leaves the running Jobs running, for the next wakeproxy or another replica to
follow. `restore` reads the builds of earlier runs back from their Jobs after a restart:
finished ones with their outcome (their log is read from the pod when first asked for,
or says it is gone), running ones followed again to their end (only watched: such a
build is never deleted from here; the controllers deploy it, see `superseded`). Must
never: deploy, or call the API other than through `BuildJobs` and `BuildHistory`.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections import OrderedDict
from collections.abc import Coroutine, Mapping
from typing import Any

import structlog

from wakeproxy.controllers.build_book import BuildBook
from wakeproxy.controllers.builder import Source
from wakeproxy.controllers.builds import Build, BuildState
from wakeproxy.controllers.git_refs import Unresolved, is_commit, resolve
from wakeproxy.controllers.review import base_of
from wakeproxy.controlplane.tasks import spawn
from wakeproxy.model.images import moved, repository
from wakeproxy.model.redact import credentials, redact
from wakeproxy.model.stats import CapStats
from wakeproxy.platforms.kubernetes.build_history import BuildHistory, FoundJob
from wakeproxy.platforms.kubernetes.builds import (
    BuildJob,
    BuildJobs,
    JobOutcome,
    pushed_digest,
)
from wakeproxy.platforms.kubernetes.deploys import APP_LABEL
from wakeproxy.platforms.kubernetes.errors import ApiError
from wakeproxy.settings import BuildLimits

log = structlog.get_logger("wakeproxy.builds")

REVIEW_LABEL = "wakeproxy.io/review-app"
PULL_REQUEST_LABEL = "wakeproxy.io/pull-request"

_DIGEST_LINES = 20  # the builder's digest line is its last; a few more for stray output
LOG_GONE = ("==> the log of this build is no longer available: its pod is gone from the "
            "cluster (Kubernetes deletes a finished build Job and its pod after "
            "kubernetes.builds.ttl; a pod can also go sooner)\n")


def labels_of(app: str) -> dict[str, str]:
    """Labels of everything made for `app`; review apps also name their pull request."""
    labels = {APP_LABEL: app}
    if base_of(app) is not None:
        labels[REVIEW_LABEL] = app
        labels[PULL_REQUEST_LABEL] = app.split("-")[1]
    return labels


class KubernetesBuilder(BuildBook):
    def __init__(self, *, jobs: BuildJobs, registry: str, pull_registry: str | None = None,
                 environ: Mapping[str, str] | None = None,
                 hidden: tuple[str, ...] = (), limits: BuildLimits | None = None,
                 caps: CapStats | None = None) -> None:
        super().__init__(limits, caps, platform="kubernetes")
        # Jobs running at once, each holding an API log stream: the API client's
        # connections and the cluster are not for an outsider's pull requests to exhaust.
        self._slots = asyncio.Semaphore(self._concurrency)
        self._job_of: dict[str, BuildJob] = {}  # to read a log back once it left memory
        # Credentials of every configured repo URL: a build read back after a restart
        # has only the redacted URL of its Job, yet its pod's log may show the real one.
        self._hidden = hidden
        self._jobs = jobs
        self._history = BuildHistory(jobs)
        self._registry = registry  # builds push here (from a pod)
        self._pull_registry = pull_registry or registry  # Deployments pull from here
        self._environ = environ  # for git; None: this process's environment
        self._images: dict[str, str] = {}
        # Read-back builds whose log is still in their pod (or gone): read when asked for.
        self._unread: dict[str, BuildJob] = {}
        self._reading: dict[str, asyncio.Task[None]] = {}
        self._closing = False

    @property
    def registry(self) -> str:
        return self._registry

    @property
    def pull_registry(self) -> str:
        return self._pull_registry

    def image(self, build: Build) -> str | None:
        """The image a succeeded build pushed, as nodes pull it: by digest from the pull
        registry (a tag can be pushed over; the digest names exactly what was built)."""
        return self._images.get(build.id) if build.state is BuildState.SUCCEEDED else None

    def has_image(self, build: Build) -> bool:
        """Whether a succeeded build's image is known, or will be once its log is read
        (`load_log`: a build read back after a restart)."""
        return self.image(build) is not None or (
            build.state is BuildState.SUCCEEDED and build.id in self._unread)

    def pull_image(self, job: BuildJob, digest: str) -> str:
        """`job`'s pushed image as Deployments name it: pull registry, by digest."""
        return f"{repository(moved(job.image, self._registry, self._pull_registry))}@{digest}"

    def start(self, app: str, source: Source, ref: str, *, deploy: bool = False) -> Build:
        # Job names are DNS labels: `build-` + id must fit in 63 characters.
        self._admit(app)
        build_id = f"{app[:48].rstrip('-')}-{secrets.token_hex(3)}"
        while build_id in self._builds:  # read-back builds hold ids too
            build_id = f"{app[:48].rstrip('-')}-{secrets.token_hex(3)}"
        build = Build(id=build_id, app=app, repo=source.repo, ref=ref, created_at=time.time(),
                      deploy=deploy, log=self._new_log())
        build.log.hide((*self._hidden, *credentials(source.repo)))
        self._builds[build_id] = build
        self._forget_old()
        self._track(build, self._run(build))
        log.info("build queued", build=build_id, app=app, ref=ref, platform="kubernetes")
        return build

    def remove_release(self, build: Build) -> None:
        """Nothing on disk here: an unused image stays in the registry."""

    async def load_log(self, build: Build) -> None:
        """Fill a read-back build's log from its pod, once (or say that it is gone)."""
        job = self._unread.get(build.id)
        if job is None:
            return
        task = self._reading.get(build.id)
        if task is None:
            task = self._reading[build.id] = spawn(self._read_log(build, job),
                                                   name=f"build-log:{build.id}")
        await asyncio.shield(task)

    async def close(self) -> None:
        """Stop following the builds, leaving their Jobs running: the next wakeproxy (or
        another replica) reads them back and follows them to their end, so a build is not
        lost to a rollout. A build still resolving its ref has no Job yet and is lost."""
        self._closing = True
        await super().close()

    # -- what survives a restart -------------------------------------------------------

    async def restore(self) -> list[str]:
        """Read back the builds whose Jobs are still in the cluster; returns their ids.

        Never fails: an API that cannot be read is logged, and the list starts empty.
        """
        try:
            found = await self._history.found()
        except ApiError as e:
            log.warning("earlier builds not read back: the Kubernetes API refused the list",
                        status=e.status, reason=e.message)
            return []
        restored = []
        for f in found:
            if f.job.build_id not in self._builds:
                self._builds[f.job.build_id] = self._read_back(f)
                restored.append(f.job.build_id)
        # Oldest first, as if they had been started here: `list()` shows newest first.
        self._builds = OrderedDict(sorted(self._builds.items(),
                                          key=lambda kv: (kv[1].created_at, kv[0])))
        self._forget_old()
        return restored

    def _read_back(self, f: FoundJob) -> Build:
        job = f.job
        self._job_of[job.build_id] = job
        build = Build(log=self._new_log(), id=job.build_id, app=f.app, repo=job.repo,
                      ref=job.ref,
                      created_at=job.created_at, commit=job.commit or None,
                      started_at=f.started_at or job.created_at, deploy=job.deploy)
        build.log.hide(self._hidden)
        if f.finished is None:
            build.state = BuildState.RUNNING
            build.log.line(f"==> read back after a restart: build Job "
                           f"{self._jobs.namespace}/{job.job_name} still runs; following it")
            self._track(build, self._watch(build, job))
            return build
        succeeded, why = f.finished
        build.finished_at = f.finished_at
        if succeeded:
            # Its digest is in its log, read when first asked for (load_log).
            build.state = BuildState.SUCCEEDED
        else:
            build.state, build.exit_code = BuildState.FAILED, f.exit_code
            build.reason = (f"the builder exited with code {f.exit_code}"
                            if f.exit_code is not None else why)
        build.log.close()
        build.done.set()
        self._unread[build.id] = job
        return build

    async def superseded(self, build: Build) -> bool:
        """Whether a build of the same app asked for later is also to be deployed: started
        here, or its Job started by any replica. Then that one wins, whatever its outcome,
        as when a newer push arrives while a build runs. Raises ApiError."""
        def newer(app: str, created_at: float, build_id: str, deploy: bool) -> bool:
            return (app == build.app and deploy and build_id != build.id
                    and (created_at, build_id) > (build.created_at, build.id))

        if any(newer(b.app, b.created_at, b.id, b.deploy) for b in self._builds.values()):
            return True
        return any(newer(f.app, f.job.created_at, f.job.build_id, f.job.deploy)
                   for f in await self._history.found(build.app))

    async def _read_log(self, build: Build, job: BuildJob) -> None:
        try:
            data = await self._history.log(job)
        except ApiError as e:
            note = (f"==> the log of this build could not be read from the Kubernetes API "
                    f"now (HTTP {e.status} {e.message}); ask again later\n").encode()
            build.log.restore(note, len(note))
            return  # still unread: the next ask tries again
        finally:
            self._reading.pop(build.id, None)
        self._unread.pop(build.id, None)
        digest = pushed_digest(data.decode(errors="replace").splitlines(), job.image) if (
            data is not None and build.state is BuildState.SUCCEEDED) else None
        if digest is not None:
            self._images[build.id] = self.pull_image(job, digest)
        outcome = build.reason or f"built {job.image}"
        text = (f"==> build Job {self._jobs.namespace}/{job.job_name}: {redact(job.repo)} "
                f"{job.ref} ({job.commit}) -> {job.image}\n").encode()
        text += LOG_GONE.encode() if data is None else data
        if text and not text.endswith(b"\n"):
            text += b"\n"
        text += f"==> build {build.state.value}: {outcome}\n".encode()
        build.log.restore(text, len(text))

    # -- running one build -------------------------------------------------------------

    def _track(self, build: Build, work: Coroutine[Any, Any, None]) -> None:
        task = spawn(work, name=f"build:{build.id}")
        task.add_done_callback(lambda _: self._tasks.pop(build.id, None))
        self._tasks[build.id] = task

    async def _watch(self, build: Build, job: BuildJob) -> None:
        """Follow a Job read back after a restart (its log stream takes a slot too)."""
        async with self._slots:
            await self._follow(build, job, owned=False)

    async def _run(self, build: Build) -> None:
        try:
            async with self._slots:  # queued until then
                await self._run_job(build)
        except asyncio.CancelledError:
            if not build.state.finished:  # cancelled while queued
                self._finish(build, BuildState.CANCELLED, build.reason or "cancelled")
            raise

    async def _run_job(self, build: Build) -> None:
        blog = build.log
        build.state, build.started_at = BuildState.RUNNING, time.time()
        try:
            build.commit = await self._resolve(build)
        except Unresolved as e:
            self._finish(build, BuildState.FAILED, f"the ref could not be resolved: {e.reason}")
            return
        except asyncio.CancelledError:
            self._finish(build, BuildState.CANCELLED, build.reason or "cancelled")
            raise
        suffix = build.id.rsplit("-", 1)[-1]
        # The exact commit, and unique per build: a rebuild of one commit still rolls out.
        job = BuildJob(build_id=build.id, repo=build.repo, ref=build.ref, commit=build.commit,
                       image=f"{self._registry}/{build.app}:{build.commit}-{suffix}",
                       labels=labels_of(build.app), created_at=build.created_at,
                       deploy=build.deploy)
        self._job_of[build.id] = job
        blog.line(f"==> build Job {self._jobs.namespace}/{job.job_name}: {redact(job.repo)} "
                  f"{job.commit} -> {job.image}")
        await self._follow(build, job, owned=True)

    async def _resolve(self, build: Build) -> str:
        if is_commit(build.ref):
            return build.ref.lower()
        build.log.line(f"==> git ls-remote {redact(build.repo)} {build.ref}")
        commit = await resolve(build.repo, build.ref, environ=self._environ)
        build.log.line(f"==> {build.ref} is {commit}")
        return commit

    async def _follow(self, build: Build, job: BuildJob, *, owned: bool) -> None:
        """Run (`owned`: create, and delete when cancelled) or only watch the build Job."""
        try:
            if owned:
                outcome = await self._jobs.run(job, build.log.write)
            else:
                outcome = await self._jobs.follow(job, build.log.write)
        except asyncio.CancelledError:
            # Cancelled by a user or a newer push: the Job goes. Stopping: it stays.
            if owned and not self._closing:
                with contextlib.suppress(Exception):
                    await asyncio.shield(self._jobs.delete(job))
            self._finish(build, BuildState.CANCELLED, build.reason or "cancelled")
            raise
        except TimeoutError:
            if owned:
                with contextlib.suppress(Exception):
                    await self._jobs.delete(job)
            self._finish(build, BuildState.FAILED, "the build Job did not finish in time")
            return
        except ApiError as e:
            self._finish(build, BuildState.FAILED,
                         f"the Kubernetes API refused the build: HTTP {e.status} {e.message}")
            return
        self._outcome(build, job, outcome)

    def _outcome(self, build: Build, job: BuildJob, outcome: JobOutcome) -> None:
        if outcome.succeeded:
            digest = pushed_digest(build.log.tail(_DIGEST_LINES), job.image)
            if digest is None:
                build.exit_code = None
                self._finish(build, BuildState.FAILED, "the builder reported no image "
                             f"digest (its last line must be `==> pushed {job.image}"
                             "@sha256:<digest>`): nothing to deploy")
                return
            image = self.pull_image(job, digest)
            self._images[build.id] = image
            self._finish(build, BuildState.SUCCEEDED, f"built {image}")
            return
        build.exit_code = outcome.exit_code
        tail = [line for line in build.log.tail(5) if line.strip()]
        reason = outcome.reason + (": " + " | ".join(tail) if tail else "")
        self._finish(build, BuildState.FAILED, reason)

    def _finish(self, build: Build, state: BuildState, reason: str) -> None:
        build.state, build.finished_at = state, time.time()
        if state is not BuildState.SUCCEEDED:
            build.reason = reason
        build.log.line(f"==> build {state.value}: {reason}")
        build.log.close()
        build.done.set()
        log.info("build finished", build=build.id, app=build.app, state=state.value,
                 reason=reason, exit_code=build.exit_code, commit=build.commit)
        self._trim_logs()

    def _evicted(self, build: Build) -> None:
        job = self._job_of.get(build.id)
        if job is not None:  # read from its pod (while Kubernetes keeps it) when asked
            self._unread[build.id] = job

    def _forgotten(self, build: Build) -> None:
        self._images.pop(build.id, None)
        self._unread.pop(build.id, None)
        self._job_of.pop(build.id, None)
