"""One resource kind over a namespace set, mirrored into a local cache that stays current.

Per namespace (or once for the whole cluster): list in pages, then watch from the list's
resourceVersion with bookmarks; a 410 Gone (as HTTP status or as an ERROR event) means
relist; any other failure reconnects with backoff (honouring Retry-After) from the last
version seen; a stream the server ends is reopened at once from there; a stream silent
for `idle_timeout` (no event, no bookmark) is presumed dead and reopened. One watch per
kind and namespace, however many apps. After every change of the cache it calls
`on_change(keys)` — the first time once every namespace is listed, even with no keys; a
relist reports every key it added, changed or dropped, so nothing that happened during
an outage is missed. Never interprets the objects it holds.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import structlog

from wakeproxy.controlplane.tasks import spawn
from wakeproxy.model.clock import Clock
from wakeproxy.model.stats import PlatformStats
from wakeproxy.platforms.kubernetes.api import JSON, Api, ApiFunction
from wakeproxy.platforms.kubernetes.backoff import Backoff
from wakeproxy.platforms.kubernetes.errors import ApiError, Gone

log = structlog.get_logger("wakeproxy.kubernetes")

Key = tuple[str, str]  # (namespace, name)


@dataclass(frozen=True, slots=True)
class Resource:
    name: str  # as in metrics and logs: "deployments"
    list_namespaced: ApiFunction
    list_all: ApiFunction


def key_of(obj: JSON) -> Key:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def _version_of(obj: JSON) -> str | None:
    rv = (obj.get("metadata") or {}).get("resourceVersion")
    return str(rv) if rv else None


class Watcher:
    def __init__(
        self,
        *,
        api: Api,
        resource: Resource,
        namespaces: tuple[str, ...],
        label_selector: str,
        on_change: Callable[[set[Key]], None],
        stats: PlatformStats,
        clock: Clock,
        watch_timeout: float,
        idle_timeout: float,
        cache: dict[Key, JSON] | None = None,
        page_size: int = 500,
    ) -> None:
        self._api = api
        self.resource = resource
        self._scopes: tuple[str | None, ...] = namespaces or (None,)
        self._selector = label_selector
        self._on_change = on_change
        self._stats = stats
        self._clock = clock
        self._watch_timeout = max(1, int(watch_timeout))
        self._idle_timeout = idle_timeout
        self._page_size = page_size
        self.cache: dict[Key, JSON] = cache if cache is not None else {}
        self._listed: set[str | None] = set()
        self._connected: dict[str | None, bool] = dict.fromkeys(self._scopes, False)
        self.synced = asyncio.Event()  # every namespace listed at least once
        self._poked = asyncio.Event()

    def poke(self) -> None:
        """Cut short a backoff wait: someone needs the cache current now (a wake)."""
        self._poked.set()

    @property
    def healthy(self) -> bool:
        """Every stream is open (or was just listed): the cache is current."""
        return all(self._connected.values())

    async def run(self) -> None:
        tasks = [spawn(self._scope(ns), name=f"watch:{self.resource.name}:{ns or '*'}")
                 for ns in self._scopes]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    # -- one namespace ---------------------------------------------------------------

    async def _scope(self, ns: str | None) -> None:
        backoff = Backoff(initial=0.2, maximum=10.0)
        where = ns or "(all namespaces)"
        rv: str | None = None
        while True:
            try:
                if rv is None:
                    rv = await self._relist(ns)
                    backoff.reset()
                opened = self._clock.monotonic()
                rv, lines = await self._follow(ns, rv, backoff)
                if lines == 0 and self._clock.monotonic() - opened < 1.0:
                    # Ended at once with nothing to say (a proxy cutting streams?): do not
                    # spin reopening it.
                    await asyncio.sleep(backoff.delay())
            except Gone:
                # History moved past our version: only a fresh list is complete.
                log.info("watch expired; relisting", resource=self.resource.name,
                         namespace=where)
                self._stats.watch_restarted(self.resource.name)
                rv = None
            except ApiError as e:
                self._connected[ns] = False
                self._stats.watch_restarted(self.resource.name)
                wait = backoff.delay(e)
                log.warning("watch failed; reconnecting", resource=self.resource.name,
                            namespace=where, status=e.status, error=e.message,
                            retry_in=round(wait, 3))
                self._poked.clear()
                try:
                    async with asyncio.timeout(wait):
                        await self._poked.wait()
                except TimeoutError:
                    pass
                if isinstance(e, _Stream) and e.version:
                    rv = e.version

    def _args(self, ns: str | None) -> tuple[ApiFunction, tuple[Any, ...]]:
        if ns is None:
            return self.resource.list_all, ()
        return self.resource.list_namespaced, (ns,)

    async def _relist(self, ns: str | None) -> str:
        fn, args = self._args(ns)
        items: list[JSON] = []
        version = ""
        cont: str | None = None
        while True:
            kwargs: dict[str, Any] = {"label_selector": self._selector, "limit": self._page_size}
            if cont:
                kwargs["_continue"] = cont
            body = await self._api.call(fn, *args, **kwargs)
            meta = body.get("metadata") or {}
            version = version or str(meta.get("resourceVersion") or "")
            items.extend(i for i in body.get("items") or [] if isinstance(i, dict))
            cont = meta.get("continue") or None
            if not cont:
                break
        fresh = {key_of(obj): obj for obj in items}
        changed = {k for k, obj in fresh.items()
                   if _version_of(self.cache.get(k) or {}) != _version_of(obj)}
        for k in [k for k in self.cache if (ns is None or k[0] == ns) and k not in fresh]:
            del self.cache[k]
            changed.add(k)
        self.cache.update(fresh)
        self._connected[ns] = True
        self._stats.watch_event(self.resource.name, self._clock.monotonic())
        first_sync = not self.synced.is_set()
        self._listed.add(ns)
        if first_sync and self._listed.issuperset(self._scopes):
            self.synced.set()
            changed = set(self.cache)
        # The first complete sync is reported even when empty: "no objects" is news too.
        if self.synced.is_set() and (changed or first_sync):
            self._notify(changed)
        return version

    async def _follow(self, ns: str | None, rv: str, backoff: Backoff) -> tuple[str, int]:
        """Watch from `rv` until the server ends the stream; the last version and how
        many lines came."""
        fn, args = self._args(ns)
        try:
            resp = await self._api.stream(
                fn, *args, watch=True, resource_version=rv, allow_watch_bookmarks=True,
                timeout_seconds=self._watch_timeout, label_selector=self._selector,
                idle_timeout=self._idle_timeout)
        except ApiError as e:
            if isinstance(e, Gone):
                raise
            raise _Stream(e, rv) from None
        self._connected[ns] = True
        lines = 0
        try:
            while True:
                try:
                    line = await resp.content.readline()
                except TimeoutError:
                    silent = TimeoutError(f"no event or bookmark for {self._idle_timeout:g}s")
                    raise _Stream(self._api.unreachable(silent), rv) from None
                except (aiohttp.ClientError, OSError) as e:
                    raise _Stream(self._api.unreachable(e), rv) from None
                if not line:
                    return rv, lines  # the server ended the watch: resume from rv
                lines += 1
                backoff.reset()
                rv = self._apply(line, rv)
        finally:
            resp.release()

    def _apply(self, line: bytes, rv: str) -> str:
        try:
            event = json.loads(line)
        except ValueError:
            log.warning("unreadable watch line skipped", resource=self.resource.name)
            return rv
        kind = event.get("type")
        obj = event.get("object")
        if not isinstance(obj, dict):
            return rv
        if kind == "ERROR":
            raise self._api.failed_event(obj)
        self._stats.watch_event(self.resource.name, self._clock.monotonic())
        version = _version_of(obj) or rv
        if kind == "BOOKMARK":
            return version
        key = key_of(obj)
        if kind == "DELETED":
            self.cache.pop(key, None)
        elif kind in ("ADDED", "MODIFIED"):
            self.cache[key] = obj
        else:
            return version
        if self.synced.is_set():
            self._notify({key})
        return version

    def _notify(self, keys: set[Key]) -> None:
        try:
            self._on_change(keys)
        except Exception:
            # A consumer's bug must not stop the watch that every app depends on.
            log.exception("watch consumer failed", resource=self.resource.name)


class _Stream(ApiError):
    """A watch broke after it was opened at `version` (or later): resume from there."""

    def __init__(self, cause: ApiError, version: str) -> None:
        super().__init__(cause.message, status=cause.status, reason=cause.reason,
                         retry_after=cause.retry_after)
        self.version = version
