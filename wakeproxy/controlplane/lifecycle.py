"""The lifecycle: the one writer of wake and sleep transitions on the readiness board.

Data flow::

    data plane --request(app)--> WakeDemand --take()--> Lifecycle --wake/sleep--> Platform
    Platform --next_event() (AppsChanged, EndpointsChanged, AppExited)--> Lifecycle
    Lifecycle --mark_waking/ready/wake_failed/stopping/asleep--> ReadinessBoard --> readers
    Lifecycle --replace_apps (AppsChanged)--> ReadinessBoard + Routes
    Lifecycle --app_removed(app)--> the owners of records kept by app name (data plane)

Single flight per app: at most one wake or sleep runs for an app at a time. Demand for
an app that is waking or awake is already being served; demand for a stopping app is
remembered and served the moment the stop completes, so a request never reaches a
stopping process and is never forgotten. Every board transition happens in the same loop
step as the operation's bookkeeping, so readers never see a phase that disagrees with
what is running. Platform events about an app with a wake or sleep in progress are
ignored: the operation's own outcome is the truth, and the platform reports any later
change. It never decides *when* an app should sleep (the sweeper does) and never reads
the activity ledger.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import structlog

from wakeproxy.controlplane.apps import replace_apps
from wakeproxy.controlplane.errors import ShuttingDown, UnknownApp, WakeError, WakeTimedOut
from wakeproxy.controlplane.platform import (
    AppExited,
    AppsChanged,
    EndpointsChanged,
    Platform,
    PlatformEvent,
    StillStarting,
    WakeFailed,
)
from wakeproxy.controlplane.tasks import spawn
from wakeproxy.model.board import AppState, FailureKind, Phase, ReadinessBoard
from wakeproxy.model.clock import Clock
from wakeproxy.model.demand import WakeDemand
from wakeproxy.model.routes import HostConflict, Routes
from wakeproxy.model.stats import WakeStats

T = TypeVar("T")

log = structlog.get_logger("wakeproxy.lifecycle")

# How long past wake_timeout the platform may take to honour its own deadline (and stop
# what it started) before the lifecycle cancels the call.
_PLATFORM_DEADLINE_SLACK = 1.0
# The result label of a wake that found nothing deployed to wake (not a failure).
NOT_DEPLOYED = "not_deployed"


@dataclass(frozen=True, slots=True)
class WakeOutcome:
    result: str  # "ready" | "failed" | "timeout" | "not_deployed": WakeStats.wakes' label
    reason: str = ""


class Lifecycle:
    def __init__(
        self,
        *,
        board: ReadinessBoard,
        demand: WakeDemand,
        platform: Platform,
        stats: WakeStats,
        clock: Clock,
        routes: Routes | None = None,
        app_removed: Sequence[Callable[[str], None]] = (),
    ) -> None:
        self._board = board
        # The other owners of records kept by app name (the data plane's activity and
        # request stats), told of each app removed so they drop them: see `_on_apps`.
        self._app_removed = tuple(app_removed)
        self._routes = routes if routes is not None else Routes()
        self._demand = demand
        self._platform = platform
        self._stats = stats
        self._clock = clock
        self._wakes: dict[str, asyncio.Task[WakeOutcome]] = {}
        self._sleeps: dict[str, asyncio.Task[None]] = {}
        self._rewake: set[str] = set()  # demand that arrived while the app was stopping
        self._tasks: set[asyncio.Task[Any]] = set()  # every operation, for close()
        self._loops: list[asyncio.Task[None]] = []
        self._closed = False
        # Set once the platform's first app set is installed (platforms that discover apps).
        self.apps_synced = asyncio.Event()

    # -- the background loops --------------------------------------------------------

    async def run(self) -> None:
        """Serve wake demand and platform events until cancelled or closed."""
        self._loops = [
            spawn(self._serve_demand(), name="lifecycle:demand"),
            spawn(self._serve_events(), name="lifecycle:events"),
        ]
        try:
            done, _ = await asyncio.wait(self._loops, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                if not task.cancelled() and (exc := task.exception()) is not None:
                    raise exc
        finally:
            for task in self._loops:
                task.cancel()
            await asyncio.gather(*self._loops, return_exceptions=True)

    async def _serve_demand(self) -> None:
        while True:
            for app in await self._demand.take():
                self._on_demand(app)

    async def _serve_events(self) -> None:
        while True:
            self.apply(await self._platform.next_event())

    def apply(self, event: PlatformEvent) -> None:
        """Apply one platform event to the board (and routes), in this loop step."""
        if isinstance(event, AppExited):
            self._on_exit(event)
        elif isinstance(event, AppsChanged):
            self._on_apps(event)
        else:
            self._on_endpoints(event)

    def _on_demand(self, app: str) -> None:
        if self._closed:
            return
        state = self._board.get(app)
        if state is None:
            log.warning("wake demanded for an unknown app", app=app)
            return
        if app in self._sleeps:
            self._rewake.add(app)
        elif app not in self._wakes and state.phase is not Phase.AWAKE:
            self._start_wake(state)

    def _on_exit(self, event: AppExited) -> None:
        app = event.app
        state = self._board.get(app)
        if (
            state is None
            or state.phase is not Phase.AWAKE
            or app in self._wakes
            or app in self._sleeps
        ):
            log.info("exit of an app not awake ignored", app=app, reason=event.reason)
            return
        self._board.mark_asleep(app)
        log.warning("app exited while awake; the next request wakes it", app=app,
                    reason=event.reason)

    def _on_apps(self, event: AppsChanged) -> None:
        try:
            diff = replace_apps(event.policies, self._board, self._routes)
        except HostConflict as e:
            log.error("app set refused, the current one stays", reason=str(e))
            return
        for name in diff.removed:
            self._rewake.discard(name)
            # A removed app leaves nothing keyed by its name behind (review apps come and
            # go all day: their metric series would pile up for ever). It is done here,
            # where every removal is decided, in the same loop step, once the app is off
            # the board and the routes; yet each record is dropped by its one writer: the
            # wake stats by us, the data plane's ledger and request stats by the data
            # plane, told through its own method. A wake or a request that ends later
            # counts nowhere (see `_wake`, and the data plane's `app_removed`).
            self._stats.forget(name)
            for forget in self._app_removed:
                forget(name)
        if diff:
            log.info("apps changed", added=list(diff.added), changed=list(diff.changed),
                     removed=list(diff.removed), apps=len(event.policies))
        self.apps_synced.set()

    def _on_endpoints(self, event: EndpointsChanged) -> None:
        app = event.app
        state = self._board.get(app)
        if state is None or app in self._wakes or app in self._sleeps:
            return
        if event.endpoints:
            woke = state.phase is not Phase.AWAKE
            self._board.mark_ready(app, event.endpoints)
            if woke:
                # Someone scaled it up by hand: it is awake and gets a full idle_after.
                log.info("app became ready without a wake", app=app,
                         endpoints=[str(e) for e in event.endpoints])
        elif state.phase is Phase.AWAKE:
            self._board.mark_asleep(app)
            log.warning("app has no ready endpoint left; the next request wakes it", app=app)

    # -- commands (admin API, sweeper) -----------------------------------------------

    async def wake(self, app: str) -> None:
        """Wake `app` now (or join the wake in progress) and return once it is ready.

        Raises UnknownApp, WakeError, WakeTimedOut or ShuttingDown.
        """
        state = self._state(app)
        while True:
            if self._closed:
                raise ShuttingDown()
            stopping = self._sleeps.get(app)
            if stopping is not None:
                self._rewake.add(app)
                await self._join(stopping)
                continue
            waking = self._wakes.get(app)
            if waking is None:
                if state.phase is Phase.AWAKE:
                    return
                waking = self._start_wake(state)
            outcome = await self._join(waking)
            if outcome.result == "ready":
                return
            if outcome.result == "timeout":
                raise WakeTimedOut(app, outcome.reason)
            raise WakeError(app, outcome.reason)

    def begin_sleep(self, app: str, *, held: bool = False) -> asyncio.Future[None]:
        """Take `app` out of rotation now; the returned future is done once it is asleep.

        An awake app is marked STOPPING before this returns, so a caller that decided to
        sleep it (the sweeper) acts in the same loop step as its decision. A waking app
        is put to sleep once its wake ends; a stopping app's stop is joined. `held`: an
        operator's sleep, which keeps even a never-sleep app asleep until its next wake
        (Platform.sleep). Raises UnknownApp or ShuttingDown.
        """
        state = self._state(app)
        if self._closed:
            raise ShuttingDown()
        task: asyncio.Task[None] | None = self._sleeps.get(app)
        if task is None:
            if app in self._wakes:
                task = self._track(spawn(self._sleep_after_wake(app, held),
                                         name=f"sleep:{app}"))
            elif state.phase is Phase.ASLEEP:
                if not held:
                    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                    done.set_result(None)
                    return done
                # Nothing to stop, but the hold is recorded (a never-sleep app that is
                # asleep now is otherwise woken in a moment).
                task = self._track(spawn(self._stop_quietly(app, held),
                                         name=f"hold-asleep:{app}"))
            else:
                task = self._start_sleep(state, held)
        # Shielded: a caller giving up must not abort a stop half-way.
        return asyncio.shield(task)

    async def sleep(self, app: str) -> None:
        """Put `app` to sleep now, as an operator asks it (`held`: a never-sleep app stays
        asleep until its next wake), and return once it is stopped. Raises UnknownApp."""
        await self.begin_sleep(app, held=True)

    async def close(self) -> None:
        """Stop serving demand, cancel running operations, and stop every app."""
        self._closed = True
        for task in self._loops:
            task.cancel()
        ops = list(self._tasks)
        for task in ops:
            task.cancel()
        await asyncio.gather(*self._loops, *ops, return_exceptions=True)
        await self._platform.close()

    # -- operations ------------------------------------------------------------------

    def _start_wake(self, state: AppState) -> asyncio.Task[WakeOutcome]:
        attempt = self._board.mark_waking(state.name)
        task = self._track(spawn(self._wake(state, attempt), name=f"wake:{state.name}"))
        self._wakes[state.name] = task
        return task

    async def _wake(self, state: AppState, attempt: int) -> WakeOutcome:
        app = state.name
        timeout = state.policy.wake_timeout
        started = self._clock.monotonic()
        me = asyncio.current_task()
        log.info("waking app", app=app, attempt=attempt)
        try:
            current = self._board.get(app)
            unavailable = (current or state).policy.unavailable
            if unavailable is not None:
                # Nothing to wake yet (no release deployed): say why, try again later.
                return self._wake_failed(app, attempt, NOT_DEPLOYED, unavailable, started,
                                         FailureKind.UNAVAILABLE)
            cutoff = asyncio.timeout(timeout + _PLATFORM_DEADLINE_SLACK)
            try:
                async with cutoff:
                    endpoints = await self._platform.wake(app, timeout=timeout)
                if not endpoints:
                    raise WakeFailed("the platform reported no endpoint")
            except WakeFailed as e:
                result = NOT_DEPLOYED if e.not_deployed else "failed"
                return self._wake_failed(app, attempt, result, e.reason, started, e.kind)
            except TimeoutError as e:
                reason = f"not ready within {timeout:g}s"
                if cutoff.expired():
                    # The platform overran its own deadline, so it may not have stopped
                    # what it started: leave no half-started app behind. (A platform that
                    # timed out by itself has, or follows what it started to its own
                    # give-up; stopping here could undo a peer's wake or a slow start.)
                    await self._stop_quietly(app)
                elif isinstance(e, StillStarting):
                    reason += f"; still starting: {e.status}"
                return self._wake_failed(
                    app, attempt, "timeout", reason, started, FailureKind.TIMEOUT)
            except asyncio.CancelledError:
                if self._board.get(app) is not None:
                    self._board.mark_wake_failed(app, "wakeproxy is shutting down")
                raise
            except Exception as e:
                log.exception("platform error while waking", app=app, attempt=attempt)
                return self._wake_failed(app, attempt, "failed", f"platform error: {e}", started)
            seconds = self._clock.monotonic() - started
            if self._board.get(app) is not None:  # not removed meanwhile: counted
                self._board.mark_ready(app, endpoints)
                self._stats.wake_finished(app, "ready", seconds)
            log.info("app ready", app=app, attempt=attempt, seconds=round(seconds, 4),
                     endpoints=[str(e) for e in endpoints])
            return WakeOutcome("ready")
        finally:
            if self._wakes.get(app) is me:
                del self._wakes[app]

    def _wake_failed(
        self, app: str, attempt: int, result: str, reason: str, started: float,
        kind: FailureKind = FailureKind.FAILED,
    ) -> WakeOutcome:
        seconds = self._clock.monotonic() - started
        if self._board.get(app) is not None:  # not removed meanwhile: counted
            self._board.mark_wake_failed(app, reason, kind)
            self._stats.wake_finished(app, result, seconds)
        # A visit to an app with nothing deployed yet is expected (a review app whose
        # first build runs): not a warning.
        report = log.info if result == NOT_DEPLOYED else log.warning
        report("app failed to wake", app=app, attempt=attempt, result=result,
               kind=kind.value, reason=reason, seconds=round(seconds, 4))
        return WakeOutcome(result, reason)

    def _start_sleep(self, state: AppState, held: bool = False) -> asyncio.Task[None]:
        self._board.mark_stopping(state.name)
        task = self._track(spawn(self._sleep(state.name, held), name=f"sleep:{state.name}"))
        self._sleeps[state.name] = task
        return task

    async def _sleep(self, app: str, held: bool = False) -> None:
        me = asyncio.current_task()
        started = self._clock.monotonic()
        log.info("putting app to sleep", app=app, **({"held": True} if held else {}))
        try:
            await self._stop_quietly(app, held)
        finally:
            # Bookkeeping, board and any re-wake in one step: a reader sees ASLEEP only
            # when nothing is running, and demand that came while stopping is not lost.
            if self._sleeps.get(app) is me:
                del self._sleeps[app]
            state = self._board.get(app)
            if state is not None:
                self._board.mark_asleep(app)
                self._stats.slept(app)
                log.info("app asleep", app=app,
                         seconds=round(self._clock.monotonic() - started, 4))
                if app in self._rewake:
                    self._rewake.discard(app)
                    if not self._closed:
                        self._start_wake(state)

    async def _sleep_after_wake(self, app: str, held: bool) -> None:
        waking = self._wakes.get(app)
        if waking is not None:
            await asyncio.wait([waking])
        await self.begin_sleep(app, held=held)

    async def _stop_quietly(self, app: str, held: bool = False) -> None:
        try:
            await self._platform.sleep(app, held=held)
        except Exception:
            log.exception("platform failed to stop app", app=app)

    # -- helpers ---------------------------------------------------------------------

    def _state(self, app: str) -> AppState:
        state = self._board.get(app)
        if state is None:
            raise UnknownApp(app)
        return state

    def _track(self, task: asyncio.Task[T]) -> asyncio.Task[T]:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    @staticmethod
    async def _join(task: asyncio.Task[T]) -> T:
        """Await an operation without letting our own cancellation cancel it."""
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            me = asyncio.current_task()
            if task.cancelled() and (me is None or not me.cancelling()):
                raise ShuttingDown() from None
            raise
