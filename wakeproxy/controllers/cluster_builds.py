"""Builds on Kubernetes: each build a Job (see platforms.kubernetes.builds), kept as a `Build`.

Same surface as the local builder, so review apps and the admin API use either: a build
is QUEUED, RUNNING while its Job runs (the Job's pod log streams into `Build.log`, so
`wakeproxy logs BUILD --follow` works the same), then SUCCEEDED with an image in the
registry, or FAILED with the exit code and the log's last lines, or CANCELLED (its Job is
deleted). Must never: deploy, or call the API other than through `BuildJobs`.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time

import structlog

from wakeproxy.controllers.build_book import BuildBook
from wakeproxy.controllers.builder import Source
from wakeproxy.controllers.builds import Build, BuildState
from wakeproxy.controllers.review import base_of
from wakeproxy.controlplane.tasks import spawn
from wakeproxy.platforms.kubernetes.builds import BuildJob, BuildJobs
from wakeproxy.platforms.kubernetes.deploys import APP_LABEL
from wakeproxy.platforms.kubernetes.errors import ApiError

log = structlog.get_logger("wakeproxy.builds")

REVIEW_LABEL = "wakeproxy.io/review-app"
PULL_REQUEST_LABEL = "wakeproxy.io/pull-request"


def labels_of(app: str) -> dict[str, str]:
    """Labels of everything made for `app`; review apps also name their pull request."""
    labels = {APP_LABEL: app}
    if base_of(app) is not None:
        labels[REVIEW_LABEL] = app
        labels[PULL_REQUEST_LABEL] = app.split("-")[1]
    return labels


class KubernetesBuilder(BuildBook):
    def __init__(self, *, jobs: BuildJobs, registry: str) -> None:
        super().__init__()
        self._jobs = jobs
        self._registry = registry
        self._images: dict[str, str] = {}

    def image(self, build: Build) -> str | None:
        """The image a succeeded build pushed."""
        return self._images.get(build.id) if build.state is BuildState.SUCCEEDED else None

    def start(self, app: str, source: Source, ref: str) -> Build:
        # Job names are DNS labels: `build-` + id must fit in 63 characters.
        build_id = f"{app[:48].rstrip('-')}-{secrets.token_hex(3)}"
        build = Build(id=build_id, app=app, repo=source.repo, ref=ref, created_at=time.time())
        self._builds[build_id] = build
        self._forget_old()
        job = BuildJob(build_id=build_id, repo=source.repo, ref=ref,
                       image=f"{self._registry}/{app}:{build_id}", labels=labels_of(app))
        task = spawn(self._run(build, job), name=f"build:{build_id}")
        task.add_done_callback(lambda _: self._tasks.pop(build_id, None))
        self._tasks[build_id] = task
        log.info("build queued", build=build_id, app=app, ref=ref, platform="kubernetes")
        return build

    def remove_release(self, build: Build) -> None:
        """Nothing on disk here: an unused image stays in the registry."""

    async def _run(self, build: Build, job: BuildJob) -> None:
        blog = build.log
        build.state, build.started_at = BuildState.RUNNING, time.time()
        # A review app's head commit is exact; a branch is resolved by the builder's fetch.
        build.commit = job.ref
        blog.line(f"==> build Job {self._jobs.namespace}/{job.job_name}: {job.repo} "
                  f"{job.ref} -> {job.image}")
        try:
            outcome = await self._jobs.run(job, blog.write)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._jobs.delete(job))
            self._finish(build, BuildState.CANCELLED, build.reason or "cancelled")
            raise
        except TimeoutError:
            with contextlib.suppress(Exception):
                await self._jobs.delete(job)
            self._finish(build, BuildState.FAILED, "the build Job did not finish in time")
            return
        except ApiError as e:
            self._finish(build, BuildState.FAILED,
                         f"the Kubernetes API refused the build: HTTP {e.status} {e.message}")
            return
        if outcome.succeeded:
            self._images[build.id] = job.image
            self._finish(build, BuildState.SUCCEEDED, f"built {job.image}")
            return
        build.exit_code = outcome.exit_code
        tail = [line for line in blog.tail(5) if line.strip()]
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
                 reason=reason, exit_code=build.exit_code)

    def _forgotten(self, build: Build) -> None:
        self._images.pop(build.id, None)
