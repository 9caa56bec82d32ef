"""An app's output on Kubernetes: the logs of every pod of its Deployment, followed at once.

For one reader (`Follower`): the pods matching the Deployment's selector are watched
(a Watcher of pods in the app's namespace); each pod whose container started gets its
`pods/log` read with `follow` and `timestamps`, every line tagged `[pod] `. A pod that
starts later (a wake, a rollout) joins; when a stream ends while its pod lives on (a
container restart, a dropped connection), it is reopened with `sinceSeconds` reaching
back past the last line shown, and the lines up to that line's timestamp are skipped, so
the stream resumes where it left off (the API's pod log call takes no sinceTime).
The first container of the pod is the one read (the app's, by convention; sidecars
come after). With no pod left the reader is told the app is asleep.
Must never: let a reader's streams outlive it, or use the connections wakes need (the
streams have a client of their own).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import aiohttp
import structlog

from wakeproxy.controlplane.tasks import spawn
from wakeproxy.model.applog import ASLEEP, MARK, Follower
from wakeproxy.model.clock import Clock
from wakeproxy.model.stats import PlatformStats
from wakeproxy.platforms.kubernetes.api import JSON, Api
from wakeproxy.platforms.kubernetes.errors import ApiError, NotFound
from wakeproxy.platforms.kubernetes.watcher import Key, Resource, Watcher

log = structlog.get_logger("wakeproxy.kubernetes")

_IDLE = 300.0  # a log stream silent this long is reopened (a quiet app is normal)
_RETRY = 0.5  # seconds before reopening a pod's log that could not be read yet
_MARGIN = 2  # seconds reached back past the last line shown, for clocks that differ


def _started(pod: JSON) -> bool:
    """The pod's first container runs or ran: it has a log to read."""
    first = _container(pod)
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") == first:
            return bool((status.get("state") or {}).keys() & {"running", "terminated"})
    return False


def _running(pod: JSON) -> bool:
    first = _container(pod)
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") == first:
            return "running" in (status.get("state") or {})
    return False


def _container(pod: JSON) -> str | None:
    containers = (pod.get("spec") or {}).get("containers") or []
    return str(containers[0].get("name")) if containers else None


def stamp(ts: str) -> float:
    """Seconds since the epoch of an RFC 3339 timestamp with up to nanoseconds."""
    head, _, frac = ts.rstrip("Z").partition(".")
    whole = datetime.fromisoformat(head + "+00:00").timestamp()
    return whole + (float("0." + frac) if frac else 0.0)


class PodLogs:
    """Every pod of one app, followed for one reader until it closes."""

    def __init__(self, *, api: Api, namespace: str, selector: str, follower: Follower,
                 backlog: int, stats: PlatformStats, clock: Clock, watch_timeout: float,
                 wall: Callable[[], float] = time.time) -> None:
        self._api = api
        self._namespace = namespace
        self._selector = selector
        self._out = follower
        self._backlog = backlog
        self._wall = wall
        self._pods: dict[str, asyncio.Task[None]] = {}
        self._changed = asyncio.Event()
        self._asleep_said = False
        self._watcher = Watcher(
            api=api, resource=Resource("pods", api.core.list_namespaced_pod,
                                       api.core.list_pod_for_all_namespaces),
            namespaces=(namespace,), label_selector=selector, on_change=self._pods_changed,
            stats=stats, clock=clock, watch_timeout=watch_timeout, idle_timeout=_IDLE)

    async def follow(self) -> None:
        try:
            await self._watcher.run()
        finally:
            for task in self._pods.values():
                task.cancel()
            await asyncio.gather(*self._pods.values(), return_exceptions=True)

    async def once(self) -> None:
        """The last `backlog` lines of the app's pods, merged by time; then the end."""
        try:
            body = await self._api.call(self._api.core.list_namespaced_pod, self._namespace,
                                        label_selector=self._selector)
            entries: list[tuple[float, str]] = []
            for pod in body.get("items") or []:
                if isinstance(pod, dict) and _started(pod):
                    entries += await self._read_all(pod)
            entries.sort(key=lambda e: e[0])
            lines = [line for _, line in entries[-self._backlog:]] if self._backlog else []
            if not any(_running(p) for p in body.get("items") or [] if isinstance(p, dict)):
                lines.append(ASLEEP)
            self._out.push(lines)
        except ApiError as e:
            self._out.push([f"{MARK}the pods' logs could not be read: {e.message}"])
        finally:
            self._out.end()

    async def _read_all(self, pod: JSON) -> list[tuple[float, str]]:
        name = str(pod["metadata"]["name"])
        body = await self._api.text(
            self._api.core.read_namespaced_pod_log, name, self._namespace,
            container=_container(pod), timestamps=True, tail_lines=self._backlog)
        entries = []
        for raw in body.decode("utf-8", "replace").splitlines():
            ts, _, text = raw.partition(" ")
            try:
                entries.append((stamp(ts), f"[{name}] {text}"))
            except ValueError:
                entries.append((0.0, f"[{name}] {raw}"))
        return entries

    # -- following ---------------------------------------------------------------------

    def _pods_changed(self, keys: set[Key]) -> None:
        cache = self._watcher.cache
        for key in keys:
            pod = cache.get(key)
            name = key[1]
            if pod is not None and name not in self._pods and _started(pod):
                self._out.push([f"{MARK}pod {name} joined"])
                self._pods[name] = spawn(self._follow_pod(name, _container(pod)),
                                         name=f"app-log:{self._namespace}/{name}")
        self._changed.set()
        if not any(_running(p) for p in cache.values()) and not self._live():
            if not self._asleep_said:
                self._out.push([ASLEEP])
                self._asleep_said = True
        elif any(_running(p) for p in cache.values()):
            self._asleep_said = False

    def _live(self) -> bool:
        """A pod's log is still being read (a pod that just ended does not count)."""
        me = asyncio.current_task()
        return any(not t.done() and t is not me for t in self._pods.values())

    async def _follow_pod(self, name: str, container: str | None) -> None:
        last: float | None = None  # the time of the last line shown
        first = True
        while True:
            kwargs: dict[str, Any] = {"container": container, "follow": True,
                                      "timestamps": True}
            if first:
                kwargs["tail_lines"] = self._backlog
            elif last is not None:
                kwargs["since_seconds"] = max(1, math.ceil(self._wall() - last) + _MARGIN)
            try:
                resp = await self._api.stream(self._api.core.read_namespaced_pod_log, name,
                                              self._namespace, idle_timeout=_IDLE, **kwargs)
            except NotFound:
                break  # the pod is gone
            except ApiError:
                # Not started yet, or the API failed: look again when the pod changes.
                await self._pod_changed(_RETRY)
                if (self._namespace, name) not in self._watcher.cache:
                    break
                continue
            first = False
            try:
                last = await self._read(resp, name, last)
            finally:
                resp.release()
            # The stream ended: the container stopped, or the connection dropped.
            while True:
                pod = self._watcher.cache.get((self._namespace, name))
                if pod is None or _running(pod):
                    break
                await self._pod_changed(None)
            if pod is None:
                break
        self._out.push([f"{MARK}pod {name} ended"])
        self._pods_changed(set())

    async def _pod_changed(self, within: float | None) -> None:
        self._changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), within)

    async def _read(self, resp: aiohttp.ClientResponse, name: str,
                    last: float | None) -> float | None:
        tag = f"[{name}] "
        buf = b""
        with contextlib.suppress(TimeoutError, aiohttp.ClientError, OSError):
            async for chunk in resp.content.iter_any():
                buf += chunk
                *raws, buf = buf.split(b"\n")
                lines: list[str] = []
                for raw in raws:
                    ts, _, text = raw.decode("utf-8", "replace").partition(" ")
                    try:
                        at = stamp(ts)
                    except ValueError:
                        lines.append(tag + ts + " " + text)
                        continue
                    if last is not None and at <= last:
                        continue  # shown before the stream was reopened
                    last = at
                    lines.append(tag + text.rstrip("\r"))
                if lines:
                    self._out.push(lines)
        return last
