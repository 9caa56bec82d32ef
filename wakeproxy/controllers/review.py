"""Review apps: one app per pull request and configured app, at `pr-<n>-<app>.<domain>`.

`opened`/`reopened`/`synchronize` → build the head commit, then deploy it as `pr-<n>-<app>`
(the app is routed from the first event on and answers 503 "not deployed yet" until its
first build is deployed). `closed` → delete it and everything it created.

Events of one review app are handled one at a time, in order of arrival, by one worker;
the newest wins: an event that arrives while a build runs cancels that build, and a build
that finished after a newer event arrived is not deployed. A failed build leaves the
previous release serving. `records()` are the open review apps as saved (`changed` is
called when they change) and `restore` reopens those of an earlier run, asleep. Must never:
block the caller (the webhook answers at once).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

import structlog

from wakeproxy.controllers.builder import Source
from wakeproxy.controllers.builds import Build, BuildState
from wakeproxy.controllers.errors import CapReached, ControllerError, DeployFailed, UnknownApp
from wakeproxy.controllers.ports import Builder, Deployer
from wakeproxy.controllers.state import ReviewRecord
from wakeproxy.controllers.webhook import REVIEW_ACTIONS, PullRequestEvent
from wakeproxy.controlplane.tasks import spawn
from wakeproxy.model.stats import CAP_REVIEW_APPS, CapStats
from wakeproxy.settings import LocalApp

log = structlog.get_logger("wakeproxy.review")

_NAME = re.compile(r"^pr-([1-9][0-9]*)-([a-z0-9][a-z0-9-]*)$")


def review_name(number: int, app: str) -> str | None:
    """`pr-<n>-<app>`, or None when it would not be a valid app name (over 63 chars)."""
    name = f"pr-{number}-{app}"
    return name if len(name) <= 63 else None


def base_of(name: str) -> str | None:
    """The configured app a review app name was made from, if it looks like one."""
    m = _NAME.match(name)
    return m.group(2) if m else None


def source_of(app: LocalApp, *, review: bool = False) -> Source:
    """How `app` is built; for one of its review apps (`review`), with `review_env`: the
    base app's `env` may hold secrets a pull request's build must not see."""
    assert app.repo is not None
    return Source(repo=app.repo, build=app.build, env=app.review_env if review else app.env)


@dataclass(eq=False)
class _Worker:
    pending: PullRequestEvent | None = None
    build: Build | None = None
    task: asyncio.Task[None] | None = None


class ReviewApps:
    def __init__(
        self, *, domain: str, apps: Sequence[LocalApp], builder: Builder,
        deployer: Deployer, changed: Callable[[], None] | None = None,
        max_per_repo: int = 10, caps: CapStats | None = None,
    ) -> None:
        self._domain = domain
        self._max_per_repo = max_per_repo
        self._caps = caps or CapStats()
        self._changed = changed or (lambda: None)
        self._open: dict[str, ReviewRecord] = {}
        self._builder = builder
        self._deployer = deployer
        self._by_repo: dict[str, list[LocalApp]] = {}
        for app in apps:
            if app.github_repo is not None and app.repo is not None:
                self._by_repo.setdefault(app.github_repo.lower(), []).append(app)
        self._workers: dict[str, _Worker] = {}

    def repositories(self) -> list[str]:
        return sorted(self._by_repo)

    def records(self) -> tuple[ReviewRecord, ...]:
        return tuple(self._open.values())

    def restore(self, records: Iterable[ReviewRecord]) -> list[str]:
        """Reopen the review apps of an earlier run (routed, asleep); returns their names.

        One whose base app no longer builds review apps is not reopened (a warning says so).
        """
        bases = {a.policy.name: a for apps in self._by_repo.values() for a in apps}
        names = []
        for r in records:
            base = bases.get(r.base)
            if base is None or review_name(r.number, r.base) != r.name:
                log.warning("saved review app not reopened: its app no longer has review apps",
                            app=r.name, base=r.base)
                continue
            definition = self.definition(base, r.name)
            try:
                self._deployer.add_app(definition)
            except DeployFailed as e:
                log.warning("saved review app not reopened", app=r.name, reason=e.message)
                continue
            self._open[r.name] = replace(r, host=definition.policy.hosts[0])
            names.append(r.name)
        self._changed()
        return names

    def definition(self, base: LocalApp, name: str) -> LocalApp:
        """The review app `name` of `base`: its own host, and `review_env` for `env` (the
        base app's may hold secrets code from a pull request must not see). It is no
        stage of the base app's pipeline and keeps no schedule: a review app is woken by
        its visitors only, and never promoted."""
        policy = replace(base.policy, name=name, hosts=(f"{name}.{self._domain}",),
                         promote_to=None, awake_schedule=None)
        return replace(base, policy=policy, cwd=None, env=base.review_env)

    def admit(self, event: PullRequestEvent) -> None:
        """Refuse an event that would open more than `max_per_repo` review apps of its
        repository (each runs code and holds resources). Raises CapReached."""
        if event.action not in REVIEW_ACTIONS or event.action == "closed":
            return
        bases = {b.policy.name for b in self._by_repo.get(event.repository.lower(), [])}
        names = {review_name(event.number, b) for b in bases} - {None}
        live = {n for n in (*self._open, *self._workers) if base_of(n) in bases}
        if names <= live or len(live | names) <= self._max_per_repo:
            return
        self._caps.refused(CAP_REVIEW_APPS)
        log.warning("review app refused: too many open", repository=event.repository,
                    pull_request=event.number, cap=self._max_per_repo,
                    delivery=event.delivery)
        raise CapReached(CAP_REVIEW_APPS, f"{event.repository} has {len(live)} open review "
                         f"apps, the most review_apps.max_per_repo ({self._max_per_repo}) "
                         f"allows: pull request #{event.number} gets none until one closes")

    def submit(self, event: PullRequestEvent) -> list[str]:
        """Queue the event for each review app it concerns; returns their names.

        Raises CapReached (see `admit`)."""
        if event.action not in REVIEW_ACTIONS:
            return []
        self.admit(event)
        names = []
        for base in self._by_repo.get(event.repository.lower(), []):
            name = review_name(event.number, base.policy.name)
            if name is None:
                log.warning("review app name too long; skipped", app=base.policy.name,
                            number=event.number)
                continue
            worker = self._workers.get(name)
            if worker is None:
                worker = self._workers[name] = _Worker()
                worker.task = spawn(self._work(name, base, worker), name=f"review:{name}")
            worker.pending = event
            if worker.build is not None:  # the newest commit wins
                self._builder.cancel(worker.build.id, f"superseded by {event.action} "
                                     f"of {event.head_sha[:12]} (delivery {event.delivery})")
            names.append(name)
        return names

    async def idle(self) -> None:
        """Return once no review app event is being handled (for tests and shutdown)."""
        while self._workers:
            await asyncio.gather(*(w.task for w in list(self._workers.values()) if w.task),
                                 return_exceptions=True)

    async def close(self) -> None:
        for worker in list(self._workers.values()):
            if worker.task is not None:
                worker.task.cancel()
        await self.idle()

    async def _work(self, name: str, base: LocalApp, worker: _Worker) -> None:
        try:
            while (event := worker.pending) is not None:
                worker.pending = None
                try:
                    await self._handle(name, base, event, worker)
                except ControllerError as e:
                    log.warning("review app event failed", app=name, action=event.action,
                                delivery=event.delivery, reason=e.message)
                except Exception:
                    log.exception("review app event crashed", app=name, delivery=event.delivery)
        finally:
            if self._workers.get(name) is worker:
                del self._workers[name]

    async def _handle(
        self, name: str, base: LocalApp, event: PullRequestEvent, worker: _Worker,
    ) -> None:
        log.info("review app event", app=name, action=event.action, commit=event.head_sha,
                 delivery=event.delivery)
        if event.action == "closed":
            # Closed before it was ever opened here: nothing to delete.
            with contextlib.suppress(UnknownApp):
                await self._deployer.delete(name)
            if self._open.pop(name, None) is not None:
                self._changed()
            return
        definition = self.definition(base, name)
        if not self._deployer.exists(name):
            self._deployer.add_app(definition)
        self._open[name] = ReviewRecord(name, event.number, base.policy.name, event.head_sha,
                                        definition.policy.hosts[0])
        self._changed()
        # Marked to deploy: on Kubernetes a wakeproxy restarted while it runs deploys it.
        build = self._builder.start(name, source_of(base, review=True), event.head_sha,
                                    deploy=True)
        worker.build = build
        try:
            await self._builder.wait(build)
        finally:
            worker.build = None
        if build.state is not BuildState.SUCCEEDED:
            log.warning("review app build did not succeed; the previous release keeps serving",
                        app=name, build=build.id, state=build.state.value, reason=build.reason,
                        exit_code=build.exit_code, log_tail=build.log.tail(5))
            return
        if worker.pending is not None:  # a newer event came while it finished
            self._builder.remove_release(build)
            return
        await self._deployer.deploy(name, build)
