"""Local builds: a real git fetch of one ref into a release directory of its own, then the
app's `build` command run there, every line of output captured as the build log.

Layout: `<root>/<app>/<build id>/` holds one checkout (a release); a finished build's log
is kept beside them (`buildlogs`). At most `concurrency` builds run at once;
the rest wait as QUEUED. A build past `timeout` fails; a cancelled build (superseded by a
newer commit) stops its processes and leaves no directory behind, nor does a failed one.
`changed` is called whenever what `records()` returns changes (so it can be saved), and
`restore` brings back the builds of an earlier run. Each step (git, the build command)
runs in a process group of its own, registered with the local platform's `watchdog` while
it runs, so it dies with wakeproxy even if wakeproxy is SIGKILLed; whatever a step leaves
running in its group when it exits is killed. Must never: deploy, or touch the readiness
board or the routes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import shutil
import signal
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from wakeproxy.controllers.build_book import BuildBook
from wakeproxy.controllers.buildlogs import LogFiles
from wakeproxy.controllers.builds import Build, BuildState
from wakeproxy.controllers.git_refs import REVISION, is_commit, kind
from wakeproxy.controllers.state import BuildRecord
from wakeproxy.controlplane.tasks import spawn
from wakeproxy.model.redact import credentials, redact
from wakeproxy.model.stats import CapStats
from wakeproxy.platforms.local.sandbox import RunAs, clean_env, git_env
from wakeproxy.platforms.local.watchdog import GroupWatchdog
from wakeproxy.settings import BuildLimits

log = structlog.get_logger("wakeproxy.builds")

_KILL_GRACE = 2.0
_APP_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
INTERRUPTED = "interrupted by a restart"


def _nothing() -> None:
    pass


@dataclass(frozen=True, slots=True)
class Source:
    """Where an app's code comes from and how it is built."""

    repo: str
    build: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)


class _StepFailed(Exception):
    def __init__(self, reason: str, exit_code: int | None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.exit_code = exit_code


class LocalBuilder(BuildBook):
    def __init__(
        self, *, root: Path, environ: Mapping[str, str], concurrency: int | None = None,
        timeout: float = 900.0, changed: Callable[[], None] = _nothing,
        watchdog: GroupWatchdog | None = None, run_as: RunAs | None = None,
        limits: BuildLimits | None = None, caps: CapStats | None = None,
    ) -> None:
        super().__init__(limits, caps, platform="local", concurrency=concurrency)
        self._root = root
        self._watchdog = watchdog
        self._changed = changed
        self._logs = LogFiles(root)
        self._unloaded: set[str] = set()  # restored builds whose log is only on disk yet
        self._environ = environ
        self._git_env = git_env(environ)
        self._run_as = run_as
        self._slots = asyncio.Semaphore(self._concurrency)
        self._timeout = timeout

    # -- readers ---------------------------------------------------------------------

    def get(self, build_id: str) -> Build | None:
        build = self._builds.get(build_id)
        if build is not None and build_id in self._unloaded:
            self._unloaded.discard(build_id)
            self._logs.load(build)
        return build

    # -- commands --------------------------------------------------------------------

    def start(self, app: str, source: Source, ref: str, *, deploy: bool = False) -> Build:
        self._admit(app)
        build_id = f"{app}-{secrets.token_hex(3)}"
        while build_id in self._builds:
            build_id = f"{app}-{secrets.token_hex(3)}"
        build = Build(id=build_id, app=app, repo=source.repo, ref=ref, created_at=time.time(),
                      deploy=deploy, log=self._new_log())
        build.log.hide(credentials(source.repo))
        self._builds[build_id] = build
        self._forget_old()
        task = spawn(self._run(build, source), name=f"build:{build_id}")
        task.add_done_callback(lambda _: self._settle(build))
        self._tasks[build_id] = task
        log.info("build queued", build=build_id, app=app, ref=ref)
        self._changed()
        return build

    def remove_release(self, build: Build) -> None:
        """Delete a release directory no process runs any more."""
        if build.release_dir is not None:
            shutil.rmtree(build.release_dir, ignore_errors=True)
            build.release_dir = None  # no longer deployable, and not missed after a restart
            self._changed()

    async def discard(self, app: str) -> None:
        """Cancel the app's builds, delete every release directory and log it has, and
        forget its builds: a deleted app (a closed pull request's) leaves nothing that
        would be listed, or missed with a warning after a restart."""
        for build in self.list(app):
            self.cancel(build.id, "the app was deleted")
        mine = [t for bid, t in self._tasks.items()
                if (b := self._builds.get(bid)) is not None and b.app == app]
        await asyncio.gather(*mine, return_exceptions=True)
        await asyncio.to_thread(shutil.rmtree, self._root / app, True)
        await asyncio.to_thread(self._logs.discard, app)
        for build in self.list(app):
            del self._builds[build.id]
            self._unloaded.discard(build.id)
        self._changed()

    # -- running one build -------------------------------------------------------------

    async def _run(self, build: Build, source: Source) -> None:
        blog = build.log
        release = self._root / build.app / build.id
        try:
            async with self._slots:
                build.state, build.started_at = BuildState.RUNNING, time.time()
                self._changed()
                log.info("build started", build=build.id, app=build.app, ref=build.ref)
                async with asyncio.timeout(self._timeout):
                    build.commit = await self._fetch(build, source, release)
                    if source.build:
                        blog.line(f"==> {source.build}")
                        # Only what the app's config gives it: never wakeproxy's secrets.
                        env = clean_env(self._environ, source.env,
                                        {"WAKEPROXY_COMMIT": build.commit},
                                        run_as=self._run_as)
                        if self._run_as is not None:
                            await asyncio.to_thread(self._run_as.chown_tree, release)
                        await self._step(build, ["/bin/sh", "-c", source.build], release, env,
                                         run_as=self._run_as)
            build.release_dir = str(release)
            self._finish(build, BuildState.SUCCEEDED, f"built {build.commit}")
        except _StepFailed as e:
            build.exit_code = e.exit_code
            self._finish(build, BuildState.FAILED, e.reason, release)
        except TimeoutError:
            self._finish(build, BuildState.FAILED,
                         f"the build took longer than {self._timeout:g}s", release)
        except asyncio.CancelledError:
            self._finish(build, BuildState.CANCELLED, build.reason or "cancelled", release)
        except Exception as e:  # the file system, a missing git: say so, keep serving
            log.exception("build crashed", build=build.id)
            self._finish(build, BuildState.FAILED, f"build error: {e}", release)

    def _settle(self, build: Build) -> None:
        self._tasks.pop(build.id, None)
        if not build.state.finished:  # cancelled before it ever ran
            self._finish(build, BuildState.CANCELLED, build.reason or "cancelled")

    async def _fetch(self, build: Build, source: Source, release: Path) -> str:
        """Check out the commit `build.ref` names into `release`; returns that commit.

        A full commit id or a plain name (branch, tag, HEAD) is fetched alone, shallow. A
        revision (`HEAD~1`, `main^`, a short id) needs history: every branch and tag is
        fetched (branches as `refs/remotes/<name>`, so `main~1` finds them; the remote's
        HEAD becomes ours when the ref starts with HEAD) and `git rev-parse` resolves it.
        User input reaches git only after `--end-of-options`.
        """
        blog = build.log
        await asyncio.to_thread(release.mkdir, parents=True, exist_ok=True)
        blog.line(f"==> git fetch {redact(source.repo)} {build.ref}")
        git = ["git", "-C", str(release)]
        await self._step(build, ["git", "init", "-q", str(release)], None, self._git_env)
        if kind(build.ref) != REVISION:
            await self._step(
                build, [*git, "fetch", "--quiet", "--depth", "1", "--no-tags",
                        "--end-of-options", source.repo, build.ref], None, self._git_env,
                what="git fetch")
            target = await self._rev_parse(git, "FETCH_HEAD^{commit}")
        else:
            # HEAD~1 means the remote's HEAD, not our empty one: fetched when named.
            head = ["+HEAD:refs/wakeproxy/HEAD"] if build.ref.startswith("HEAD") else []
            await self._step(
                build, [*git, "fetch", "--quiet", "--tags", "--end-of-options", source.repo,
                        *head, "+refs/heads/*:refs/remotes/*"], None, self._git_env,
                what="git fetch")
            if head:
                await self._step(build, [*git, "update-ref", "--no-deref", "HEAD",
                                         "refs/wakeproxy/HEAD"], None, self._git_env,
                                 what="git update-ref")
            target = await self._rev_parse(git, f"{build.ref}^{{commit}}")
            if target is None:
                raise _StepFailed(f"{build.ref!r} names no commit in the repository", None)
        if target is None:
            raise _StepFailed("git fetch gave no commit", None)
        # -f: a HEAD set above has an empty index; the checkout must not keep that.
        await self._step(build, [*git, "-c", "advice.detachedHead=false", "checkout", "-q",
                                 "-f", "--detach", target], None, self._git_env,
                         what="git checkout")
        blog.line(f"==> checked out {target}")
        return target

    async def _rev_parse(self, git: Sequence[str], rev: str) -> str | None:
        proc = await asyncio.create_subprocess_exec(
            *git, "rev-parse", "--verify", "--quiet", "--end-of-options", rev,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
            stdin=asyncio.subprocess.DEVNULL, env=self._git_env)
        out, _ = await proc.communicate()
        commit = out.decode().strip()
        return commit if proc.returncode == 0 and is_commit(commit) else None

    async def _step(
        self, build: Build, argv: Sequence[str], cwd: Path | None, env: Mapping[str, str],
        what: str | None = None, run_as: RunAs | None = None,
    ) -> None:
        """Run one command with its output into the build log. Raises _StepFailed."""
        try:
            proc = await asyncio.create_subprocess_exec(
                *(run_as.wrap(argv) if run_as is not None else argv), cwd=cwd, env=dict(env),
                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT, start_new_session=True)
        except OSError as e:
            raise _StepFailed(f"{what or argv[0]} could not start: {e.strerror}", None) from None
        assert proc.stdout is not None
        watchdog = self._watchdog
        if watchdog is not None:
            watchdog.add(proc.pid)  # a new session: the step leads its own group
        try:
            if watchdog is not None and not watchdog.running:
                await watchdog.start()  # it died: a new one, told every group (this one too)
            while chunk := await proc.stdout.read(65536):
                build.log.write(chunk)
            code = await proc.wait()
        except BaseException:  # cancelled or timed out: nothing of the build may live on
            await _kill_group(proc)
            raise
        finally:
            _kill_leftovers(proc.pid)
            if watchdog is not None:
                watchdog.remove(proc.pid)
        if code != 0:
            name = what or ("the build command" if argv[0] == "/bin/sh" else argv[0])
            raise _StepFailed(f"{name} exited with code {code}", code)

    def _finish(
        self, build: Build, state: BuildState, reason: str, release: Path | None = None,
    ) -> None:
        build.state, build.finished_at = state, time.time()
        if state is not BuildState.SUCCEEDED:
            build.reason = reason
            if release is not None:
                shutil.rmtree(release, ignore_errors=True)
        build.log.line(f"==> build {state.value}: {reason}")
        build.log.close()
        self._logs.save(build)
        build.done.set()
        self._changed()
        self._trim_logs()
        event = "build succeeded" if state is BuildState.SUCCEEDED else "build did not succeed"
        log.info(event, build=build.id, app=build.app, state=state.value, reason=reason,
                 exit_code=build.exit_code, commit=build.commit)

    def _evicted(self, build: Build) -> None:
        self._unloaded.add(build.id)  # its file is read back when it is asked for

    def _forgotten(self, build: Build) -> None:
        self._unloaded.discard(build.id)
        self._logs.forget(build)

    # -- what survives a restart -------------------------------------------------------

    def records(self) -> tuple[BuildRecord, ...]:
        """Every remembered build, oldest first, as saved."""
        return tuple(
            BuildRecord(
                id=b.id, app=b.app, repo=b.repo, ref=b.ref, state=b.state.value,
                created_at=b.created_at, commit=b.commit, started_at=b.started_at,
                finished_at=b.finished_at, exit_code=b.exit_code, reason=b.reason,
                release_dir=b.release_dir, deployed_at=b.deployed_at, log_bytes=b.log.end,
                deploy_outcome=b.deploy_outcome, deploy_error=b.deploy_error)
            for b in self._builds.values())

    def release_path(self, app: str, build_id: str) -> Path | None:
        """Where a build of `app` checks out; None when the names could not be ours."""
        if not _APP_NAME.match(app) or not re.fullmatch(rf"{re.escape(app)}-[0-9a-f]+",
                                                        build_id):
            return None
        return self._root / app / build_id

    def restore(self, records: Iterable[BuildRecord]) -> None:
        """Bring back the builds of an earlier run (before any new build starts).

        A build that was queued or running then was cut off by the restart: it is marked
        failed and its directory removed. A succeeded build whose release directory is
        gone can no longer be deployed.
        """
        now = time.time()
        for r in records:
            release = self.release_path(r.app, r.id)
            if release is None:
                log.warning("saved build with an invalid name skipped", build=r.id, app=r.app)
                continue
            try:
                state = BuildState(r.state)
            except ValueError:
                state = BuildState.FAILED
            build = Build(
                log=self._new_log(), id=r.id, app=r.app, repo=r.repo, ref=r.ref,
                created_at=r.created_at,
                state=state, commit=r.commit, started_at=r.started_at,
                finished_at=r.finished_at, exit_code=r.exit_code, reason=r.reason,
                deployed_at=r.deployed_at, deploy_outcome=r.deploy_outcome,
                deploy_error=r.deploy_error)
            if not state.finished:
                shutil.rmtree(release, ignore_errors=True)
                build.state, build.reason, build.finished_at = BuildState.FAILED, INTERRUPTED, now
                build.log.restore(f"==> build failed: {INTERRUPTED}\n".encode(), 0)
                self._logs.save(build)
                log.warning("build interrupted by a restart; marked failed, its directory "
                            "removed", build=r.id, app=r.app, directory=str(release))
            else:
                if state is BuildState.SUCCEEDED and r.release_dir is not None:
                    if release.is_dir():
                        build.release_dir = str(release)
                    else:
                        log.warning("release directory of a build is gone; that build can "
                                    "no longer be deployed", build=r.id, directory=str(release))
                build.log.restore(b"", r.log_bytes)
                self._unloaded.add(r.id)
            build.done.set()
            self._builds[r.id] = build
        self._forget_old()
        self._changed()

    def remove_strays(self, known: set[str]) -> None:
        """Delete build directories no saved build accounts for (a build whose start was
        never saved before wakeproxy died)."""
        try:
            apps = [d for d in self._root.iterdir() if d.is_dir() and _APP_NAME.match(d.name)]
        except OSError:
            return
        for app_dir in apps:
            stray = re.compile(rf"{re.escape(app_dir.name)}-[0-9a-f]{{6}}")
            for d in app_dir.iterdir():
                if d.is_dir() and stray.fullmatch(d.name) and d.name not in known:
                    log.warning("leftover build directory removed", directory=str(d))
                    shutil.rmtree(d, ignore_errors=True)


def _kill_leftovers(pgid: int) -> None:
    """SIGKILL what is left in a step's group after its leader exited (a daemon it started).

    Safe against pid reuse: while a member of the group lives its id cannot be given to a
    new process, and once none does, this runs moments after the leader was reaped.
    """
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


async def _kill_group(proc: asyncio.subprocess.Process) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        try:
            async with asyncio.timeout(_KILL_GRACE):
                await asyncio.shield(proc.wait())
            return
        except TimeoutError:
            continue
