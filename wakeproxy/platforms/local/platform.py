"""The local platform: each app is a process group on this host, started on demand.

Wake = spawn the app's command with a fresh free `PORT`, then probe it every
`probe_interval` (a TCP connect, or an HTTP GET of `readiness_path` answered below 500)
until it answers; the wake costs little beyond the app's own start-up. Sleep = SIGTERM
to the group, SIGKILL after `stop_grace`. A process that exits while awake is reported as
AppExited. Nothing it starts outlives it: `close()` stops every group, and a watchdog
process kills the groups left behind if wakeproxy dies without closing (the local builder
registers its build groups with the same watchdog, see `watchdog`). It never touches
the readiness board; the lifecycle turns its results into phases.

Apps built from source (`repo` set) run a *release*: the controllers fetch and build it
and `put_app` it (command and cwd of the checkout). Until one is, waking such an app fails
as unavailable (503: "not deployed yet"). `swap` moves an awake app to its new release
with no gap: the new process answers before the old one is stopped. `remove_app` forgets
an app and stops its process (review apps come and go at runtime).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence

import structlog

from wakeproxy.controlplane.platform import AppExited, WakeFailed
from wakeproxy.controlplane.tasks import spawn
from wakeproxy.model.applog import AppLog, Follower
from wakeproxy.model.apps import AppPolicy, Endpoint, not_deployed
from wakeproxy.model.board import FailureKind
from wakeproxy.platforms.local.net import free_port, probe_http, probe_tcp
from wakeproxy.platforms.local.process import AppProcess, Echo, log_lines
from wakeproxy.platforms.local.sandbox import RunAs
from wakeproxy.platforms.local.watchdog import GroupWatchdog
from wakeproxy.settings import LocalApp

log = structlog.get_logger("wakeproxy.local")

_RING = 200  # recent stderr lines kept per app, across restarts
_PROBE_TIMEOUT = 2.0  # one probe of an app that accepted but answers slowly
_OUTPUT_DRAIN = 0.2  # after an exit, time allowed for its last output lines to arrive


class LocalPlatform:
    def __init__(
        self, apps: Sequence[LocalApp], *, host: str = "127.0.0.1",
        environ: Mapping[str, str] | None = None, run_as: RunAs | None = None,
        echo: Echo = log_lines,
    ) -> None:
        self._echo = echo  # where app output lines go in wakeproxy's own log
        # What app processes get of wakeproxy's environment: only the basics (sandbox.py).
        self._environ: Mapping[str, str] = environ if environ is not None else {}
        self._run_as = run_as
        self._apps = {a.policy.name: a for a in apps}
        self._releases: dict[str, str] = {}  # app → the release it runs (built apps only)
        self._release_of: dict[AppProcess, str] = {}  # the release each process runs
        self._host = host
        self._procs: dict[str, AppProcess] = {}  # the current process of each app
        self._live: set[AppProcess] = set()  # every process not yet fully stopped
        self._tasks: set[asyncio.Task[None]] = set()  # stops and supervisors, for close()
        self._starting: set[asyncio.Task[AppProcess | str]] = set()  # spawns under way
        self._rings: dict[str, deque[str]] = {}
        self._outputs: dict[str, AppLog] = {}  # each app's output, across its runs
        # Put to sleep by an operator, not woken since: for this run of wakeproxy only.
        self._held: set[str] = set()
        self._events: asyncio.Queue[AppExited] = asyncio.Queue()
        self._watchdog = GroupWatchdog()
        self._closed = False

    # -- Platform ----------------------------------------------------------------------

    async def start(self) -> None:
        await self._watchdog.start()

    async def close(self) -> None:
        self._closed = True
        # A spawn under way registers its process when it lands; wait for that, so the
        # sweep below sees every process there is.
        await asyncio.gather(*self._starting, return_exceptions=True)
        self._procs.clear()
        for p in list(self._live):
            self._retire(p, self._grace(p.app))
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for output in self._outputs.values():
            output.end("wakeproxy stops")  # so the admin server can close their streams
        await self._watchdog.close()

    async def wake(self, app: str, *, timeout: float) -> tuple[Endpoint, ...]:  # noqa: ASYNC109
        local = self._apps.get(app)
        if local is None:
            raise WakeFailed(f"no local app named {app!r}")
        if self._closed:
            raise WakeFailed("the local platform is shut down")
        if local.repo is not None and app not in self._releases:
            raise WakeFailed(
                not_deployed(app), FailureKind.UNAVAILABLE, not_deployed=True)
        self._held.discard(app)  # woken again: an operator's sleep no longer holds it
        current = self._procs.get(app)
        if current is not None:
            if current.ready and current.returncode is None:
                return (Endpoint(self._host, current.port),)
            del self._procs[app]
            await asyncio.shield(self._retire(current, 0.0))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        if not self._watchdog.running:
            await self._watchdog.start()
        p = await self._start(local)
        try:
            await self._until_ready(p, local.policy, deadline, timeout)
        except asyncio.CancelledError:
            self._drop(p)
            self._retire(p, 0.0)
            raise
        except (WakeFailed, TimeoutError):
            self._drop(p)
            await asyncio.shield(self._retire(p, 0.0))
            raise
        if self._apps.get(app) is None:
            self._drop(p)
            await asyncio.shield(self._retire(p, 0.0))
            raise WakeFailed("the app was deleted while waking")
        p.ready = True
        return (Endpoint(self._host, p.port),)

    async def sleep(self, app: str, *, held: bool = False) -> None:
        if held:
            self._held.add(app)
        p = self._procs.pop(app, None)
        if p is not None:
            await asyncio.shield(self._retire(p, self._grace(app)))

    async def next_event(self) -> AppExited:
        return await self._events.get()

    def leader(self) -> bool:
        return True  # no peers: this one process decides every sleep

    def held_asleep(self, app: str) -> bool:
        return app in self._held

    # -- apps and releases (the controllers) ---------------------------------------------

    def put_app(self, local: LocalApp, *, release: str | None = None) -> None:
        """Add an app or change what it runs. A running process is left alone: the next
        start (or `swap`) runs `local`. `release` names what `local` runs."""
        name = local.policy.name
        self._apps[name] = local
        if release is not None:
            self._releases[name] = release

    def release(self, app: str) -> str | None:
        return self._releases.get(app)

    def definition(self, app: str) -> LocalApp | None:
        return self._apps.get(app)

    def running_release(self, app: str) -> str | None:
        """The release the app's ready process runs; None while it runs none."""
        p = self._procs.get(app)
        return self._release_of.get(p) if p is not None and p.ready else None

    async def remove_app(self, app: str) -> None:
        """Forget `app` and stop its process; return once it is stopped."""
        grace = self._grace(app)
        self._apps.pop(app, None)
        self._releases.pop(app, None)
        p = self._procs.pop(app, None)
        if p is not None:
            await asyncio.shield(self._retire(p, grace))
        self._held.discard(app)
        self._rings.pop(app, None)  # a process still stopping writes to it, unseen
        output = self._outputs.pop(app, None)
        if output is not None:
            output.end("app deleted")

    async def swap(
        self, app: str, routed: Callable[[Endpoint], Awaitable[None]], *,
        timeout: float,  # noqa: ASYNC109 - the deadline also bounds stopping what started
    ) -> bool:
        """Move an awake app to its current definition without a gap.

        Starts the new process beside the running one, waits until it answers, awaits
        `routed(endpoint)` (the caller sends traffic to it), then stops the old process.
        Returns False when there was nothing to swap (the app is not running, or stopped
        meanwhile): its next wake runs the new definition. Raises WakeFailed or
        TimeoutError, having stopped the new process, when it does not get ready; the
        old one keeps serving.
        """
        local, old = self._apps.get(app), self._procs.get(app)
        if local is None or old is None or not old.ready or old.stopping or self._closed:
            return False
        loop = asyncio.get_running_loop()
        new = await self._start(local, register=False)
        try:
            await self._until_ready(new, local.policy, loop.time() + timeout, timeout)
        except BaseException:
            self._retire(new, 0.0)
            raise
        if self._procs.get(app) is not old or old.stopping or self._closed:
            self._retire(new, 0.0)  # it was stopped or replaced meanwhile
            return False
        new.ready = True
        self._procs[app] = new
        try:
            await routed(Endpoint(self._host, new.port))
        except BaseException:
            if self._procs.get(app) is new:
                self._procs[app] = old
            self._retire(new, 0.0)
            raise
        await asyncio.shield(self._retire(old, self._grace(app)))
        return True

    @property
    def watchdog(self) -> GroupWatchdog:
        """The one watchdog of this platform; the local builder hands it its build groups."""
        return self._watchdog

    # -- extras for the admin API --------------------------------------------------------

    def recent_stderr(self, app: str) -> list[str]:
        """The last lines the app wrote to stderr, across its runs (newest last)."""
        return list(self._rings.get(app, ()))

    def follow_output(self, app: str, backlog: int, *, follow: bool) -> Follower:
        """The app's last `backlog` output lines and, if `follow`, its lines to come
        (across sleeps and wakes); LookupError for an app this platform does not run."""
        if app not in self._apps:
            raise LookupError(app)
        return self._output(app).follow(backlog, follow=follow)

    def pid(self, app: str) -> int | None:
        """The pid of the app's shell (its process group id) while it runs."""
        p = self._procs.get(app)
        return p.pid if p is not None else None

    # -- internals -----------------------------------------------------------------------

    async def _start(self, local: LocalApp, *, register: bool = True) -> AppProcess:
        """The app's new process, or WakeFailed saying why it could not start."""
        # The spawn runs in its own task so that, however the caller is interrupted,
        # the process is registered (and so stopped) rather than lost.
        starting = spawn(self._spawn(local, register=register), name=f"spawn:{local.policy.name}")
        self._starting.add(starting)
        starting.add_done_callback(self._starting.discard)
        try:
            started = await asyncio.shield(starting)
        except asyncio.CancelledError:
            starting.add_done_callback(self._stop_started)
            raise
        if isinstance(started, str):
            raise WakeFailed(started)
        return started

    async def _spawn(self, local: LocalApp, *, register: bool = True) -> AppProcess | str:
        """Start the app's process and (unless told not to) make it the app's current one;
        a reason instead when it cannot start."""
        app = local.policy.name
        try:
            output = self._output(app)
            p = await AppProcess.start(local, free_port(self._host), self._ring(app),
                                       environ=self._environ, run_as=self._run_as,
                                       output=output, echo=self._echo)
        except OSError as e:
            log.warning("app could not be started", app=app, error=str(e))
            return f"could not start the command: {e}"
        self._live.add(p)
        release = self._releases.get(app)
        if release is not None:
            self._release_of[p] = release
        self._watchdog.add(p.pgid)
        self._track(spawn(self._supervise(p), name=f"supervise:{app}"))
        if register and not self._closed:
            self._procs[app] = p
        log.info("app process started", app=app, pid=p.pid, port=p.port,
                 release=self._releases.get(app))
        output.started(f"app started (pid {p.pid}, port {p.port})")
        return p

    def _stop_started(self, starting: asyncio.Task[AppProcess | str]) -> None:
        if not starting.cancelled() and starting.exception() is None:
            p = starting.result()
            if isinstance(p, AppProcess):
                self._drop(p)
                self._retire(p, 0.0)

    async def _until_ready(
        self, p: AppProcess, policy: AppPolicy, deadline: float, budget: float,
    ) -> None:
        loop = asyncio.get_running_loop()
        host, port, path = self._host, p.port, policy.readiness_path
        while True:
            if p.stopping:
                raise WakeFailed("the app was stopped while waking")
            if p.returncode is not None:
                await p.output_done(within=_OUTPUT_DRAIN)
                tail = p.stderr_tail()
                reason = f"process {p.describe_exit()} while waking"
                if tail:
                    reason += f": {tail[-1]}"
                log.warning("app exited before it was ready", app=p.app, reason=reason,
                            stderr_tail=tail)
                raise WakeFailed(reason)
            remaining = deadline - loop.time()
            if remaining <= 0:
                log.warning("app not ready in time; stopping it", app=p.app, timeout=budget,
                            stderr_tail=p.stderr_tail())
                raise TimeoutError(f"{p.app} not ready within {budget:g}s")
            probe_timeout = min(remaining, _PROBE_TIMEOUT)
            if path is None:
                ok = await probe_tcp(host, port, within=probe_timeout)
            else:
                ok = await probe_http(host, port, path, within=probe_timeout)
            if ok:
                return
            # Sleep one interval, but wake at once if the process exits meanwhile.
            pause = min(policy.probe_interval, deadline - loop.time())
            if pause > 0:
                await asyncio.wait([p.exit_task], timeout=pause)

    async def _supervise(self, p: AppProcess) -> None:
        await asyncio.wait([p.exit_task])
        if p.stopping or not p.ready:
            return  # we stopped it, or the wake in progress reports the exit
        await p.output_done(within=_OUTPUT_DRAIN)
        if self._procs.get(p.app) is not p or p.stopping:
            return
        del self._procs[p.app]
        tail = p.stderr_tail()
        reason = f"process {p.describe_exit()}"
        if tail:
            reason += f": {tail[-1]}"
        log.warning("app process exited on its own", app=p.app, reason=reason, stderr_tail=tail)
        self._output(p.app).mark(reason)
        # Whatever it left running in its group goes too, the usual way.
        self._retire(p, self._grace(p.app))
        self._events.put_nowait(AppExited(p.app, reason))

    def _retire(self, p: AppProcess, grace: float) -> asyncio.Task[None]:
        """Stop `p`'s group in a task of its own, so no caller's cancellation cuts it short."""
        p.stopping = True
        return self._track(spawn(self._stop(p, grace), name=f"retire:{p.app}"))

    def _track(self, task: asyncio.Task[None]) -> asyncio.Task[None]:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _stop(self, p: AppProcess, grace: float) -> None:
        await p.stop(grace)
        self._live.discard(p)
        self._release_of.pop(p, None)
        self._watchdog.remove(p.pgid)
        log.info("app process stopped", app=p.app, pid=p.pid, how=p.describe_exit())
        output = self._outputs.get(p.app)
        if output is not None and output.awake and p.app not in self._procs:
            output.asleep()  # after its last lines: the stopped process's pipes are drained

    def _drop(self, p: AppProcess) -> None:
        if self._procs.get(p.app) is p:
            del self._procs[p.app]

    def _ring(self, app: str) -> deque[str]:
        ring = self._rings.get(app)
        if ring is None:
            ring = self._rings[app] = deque(maxlen=_RING)
        return ring

    def _output(self, app: str) -> AppLog:
        output = self._outputs.get(app)
        if output is None:
            output = self._outputs[app] = AppLog()
        return output

    def _grace(self, app: str) -> float:
        local = self._apps.get(app)
        return local.stop_grace if local is not None else 0.0
