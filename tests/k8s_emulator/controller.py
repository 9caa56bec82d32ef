"""The reconcile-loop skeleton shared by the emulator's kubelet and controllers.

Owns: subscribing to the store's histories (internal subscribers, untouched by fault switches),
a de-duplicating work queue of keys, one worker per controller (so a controller never races
itself), delayed re-queues, and the guard that records any unexpected exception in a shared
list the fixture checks at teardown. Never decides what to reconcile; subclasses do.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Hashable, Iterable
from typing import Any

from .errors import NotFound
from .history import Event, Item, Subscription
from .meta import meta
from .resources import ResourceType
from .store import Store

log = logging.getLogger("k8s_emulator")


class Controller:
    name = "controller"
    watches: tuple[ResourceType, ...] = ()

    def __init__(self, store: Store, errors: list[BaseException]) -> None:
        self.store = store
        self.errors = errors
        self._events: asyncio.Queue[Item] = asyncio.Queue()
        self._subs: list[Subscription] = []
        self._pending: set[Hashable] = set()
        self._work: asyncio.Queue[Hashable] = asyncio.Queue()
        self._tasks: set[asyncio.Task[None]] = set()
        self._timers: set[asyncio.TimerHandle] = set()

    # Set by controllers of an owning kind (Deployment, Job): events of that kind and of
    # the objects it owns are keyed by the owner's (namespace, name).
    owner_kind: str | None = None

    def keys_for(self, event: Event) -> Iterable[Hashable]:
        if self.owner_kind is None:
            raise NotImplementedError
        obj = event.obj
        ns = str(meta(obj).get("namespace"))
        if obj.get("kind") == self.owner_kind:
            yield (ns, str(meta(obj)["name"]))
            return
        for ref in meta(obj).get("ownerReferences") or []:
            if ref.get("kind") == self.owner_kind:
                yield (ns, str(ref.get("name")))

    async def reconcile(self, key: Hashable) -> None:
        raise NotImplementedError

    def delay_for(self, event: Event) -> float:
        """How long after this event its keys are reconciled (0: as soon as possible)."""
        return 0.0

    def start(self) -> None:
        for rt in self.watches:
            history = self.store.history(rt)
            self._subs.append(history.subscribe(queue=self._events, external=False))
            for obj in self.store.select(rt):
                for key in self.keys_for(Event("ADDED", self.store.resource_version, obj)):
                    self.enqueue(key)
        self.spawn(self._pump(), f"{self.name}-events")
        self.spawn(self._worker(), f"{self.name}-worker")

    async def stop(self) -> None:
        for sub in self._subs:
            sub.close()
        for timer in self._timers:
            timer.cancel()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def enqueue(self, key: Hashable, delay: float = 0.0) -> None:
        if delay > 0:
            loop = asyncio.get_running_loop()
            self._timers = {t for t in self._timers if t.when() > loop.time()}
            self._timers.add(loop.call_later(delay, self._enqueue_now, key))
            return
        self._enqueue_now(key)

    def _enqueue_now(self, key: Hashable) -> None:
        if key not in self._pending:
            self._pending.add(key)
            self._work.put_nowait(key)

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            assert exc is not None
            self._record(exc)

    def _record(self, exc: BaseException) -> None:
        log.error("%s failed: %r", self.name, exc, exc_info=exc)
        self.errors.append(exc)

    async def _pump(self) -> None:
        while True:
            item = await self._events.get()
            if isinstance(item, Event):
                delay = self.delay_for(item)
                for key in self.keys_for(item):
                    self.enqueue(key, delay)

    async def _worker(self) -> None:
        while True:
            key = await self._work.get()
            self._pending.discard(key)
            try:
                await self.reconcile(key)
            except NotFound:
                pass  # the object went away while being reconciled; its DELETED event follows
            except Exception as exc:  # recorded for the test to fail on; the loop goes on
                self._record(exc)
