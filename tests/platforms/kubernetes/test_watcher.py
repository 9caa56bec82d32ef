"""Watching one kind: list, watch with bookmarks, relist on 410, reconnect, idle restarts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from kubernetes_asyncio.client import ApiClient, CoreV1Api

from tests.k8s_emulator import Emulator
from tests.k8s_emulator.fixtures import EmulatorFactory
from tests.k8s_emulator.manifests import config_map
from tests.k8s_emulator.resources import CONFIGMAPS
from tests.platforms.kubernetes.support import api_client, until
from wakeproxy.model.clock import SystemClock
from wakeproxy.model.stats import PlatformStats
from wakeproxy.platforms.kubernetes.api import Api
from wakeproxy.platforms.kubernetes.watcher import Key, Resource, Watcher


class Watched:
    """A running Watcher of ConfigMaps labelled `watched=yes`, and what it reported."""

    def __init__(self, api: Api, stats: PlatformStats, idle_timeout: float,
                 namespaces: tuple[str, ...]) -> None:
        self.stats = stats
        self.reported: list[set[Key]] = []
        core = CoreV1Api(api.client)
        self.watcher = Watcher(
            api=api, resource=Resource("configmaps", core.list_namespaced_config_map,
                                       core.list_config_map_for_all_namespaces),
            namespaces=namespaces, label_selector="watched=yes", on_change=self.reported.append,
            stats=stats, clock=SystemClock(), watch_timeout=60, idle_timeout=idle_timeout)
        self.task = asyncio.create_task(self.watcher.run())

    def names(self) -> set[str]:
        return {name for _, name in self.watcher.cache}

    def data(self, name: str) -> Any:
        return self.watcher.cache[("default", name)].get("data")


@pytest.fixture
async def watch(k8s_emulator: Emulator) -> AsyncIterator[Callable[..., Watched]]:
    clients: list[ApiClient] = []
    made: list[Watched] = []

    async def start(emulator: Emulator = k8s_emulator, idle_timeout: float = 5.0,
                    namespaces: tuple[str, ...] = ()) -> Watched:
        client = await api_client(emulator, admin=True)  # ConfigMaps: not wakeproxy's
        clients.append(client)
        stats = PlatformStats(leader=False)
        w = Watched(Api(client, timeout=2.0, stats=stats), stats, idle_timeout, namespaces)
        made.append(w)
        await until(w.watcher.synced.is_set, 5)
        # Listed and watching: a change from now on reaches an open stream.
        scopes = max(1, len(namespaces))
        await until(lambda: emulator.store.history(CONFIGMAPS).watcher_count >= scopes, 5)
        return w

    yield start  # type: ignore[misc]
    for w in made:
        w.task.cancel()
        await asyncio.gather(w.task, return_exceptions=True)
    for c in clients:
        await c.close()


def labelled(name: str, value: str = "1") -> dict[str, Any]:
    cm = config_map(name, {"v": value})
    cm["metadata"]["labels"] = {"watched": "yes"}
    return cm


async def test_list_then_watch_mirrors_every_change(k8s_emulator: Emulator, watch: Any) -> None:
    k8s_emulator.create(labelled("before"))
    k8s_emulator.create(config_map("unlabelled", {"v": "x"}))
    w = await watch()
    assert w.names() == {"before"}
    assert w.reported[0] == {("default", "before")}
    k8s_emulator.create(labelled("after"))
    await until(lambda: w.names() == {"before", "after"})
    k8s_emulator.store.delete(CONFIGMAPS, "default", "before")
    await until(lambda: w.names() == {"after"})
    # One watch per namespace scope, whatever the number of objects.
    watches = k8s_emulator.recorder.matching(verb="watch", resource="configmaps")
    assert len(watches) == 1 and "allowWatchBookmarks" in watches[0].path


@pytest.mark.parametrize("as_http", [False, True], ids=["error-event", "http-410"])
async def test_410_in_the_middle_of_a_watch_relists_and_misses_nothing(
    k8s_emulator: Emulator, watch: Any, as_http: bool,
) -> None:
    k8s_emulator.create(labelled("a"))
    k8s_emulator.create(labelled("b"))
    w = await watch()
    k8s_emulator.faults.watch_gone_as_http = as_http
    # Changes land while the stream is being told its history is gone.
    k8s_emulator.faults.expire_watches()
    k8s_emulator.create(labelled("c"))
    k8s_emulator.store.delete(CONFIGMAPS, "default", "a")
    k8s_emulator.store.mutate(CONFIGMAPS, "default", "b", lambda o: o.update(data={"v": "2"}))
    await until(lambda: w.names() == {"b", "c"} and w.data("b") == {"v": "2"})
    assert w.stats.watch_restarts.get("configmaps", 0) >= 1
    lists = k8s_emulator.recorder.matching(verb="list", resource="configmaps")
    assert len(lists) >= 2  # the relist


async def test_api_down_then_back_reconnects_and_catches_up(
    k8s_emulator: Emulator, watch: Any,
) -> None:
    k8s_emulator.create(labelled("a"))
    w = await watch()
    await k8s_emulator.down()
    await until(lambda: not w.watcher.healthy, 5)
    k8s_emulator.create(labelled("made-while-down"))
    k8s_emulator.store.delete(CONFIGMAPS, "default", "a")
    await asyncio.sleep(0.3)
    assert w.names() == {"a"}  # the cache is kept while the API is away
    await k8s_emulator.up()
    await until(lambda: w.names() == {"made-while-down"}, 10)
    await until(lambda: w.watcher.healthy, 5)
    assert w.stats.api_errors.get(0, 0) >= 1  # no answer, counted under code 0


async def test_a_silent_watch_is_restarted_and_still_sees_later_changes(
    make_k8s_emulator: EmulatorFactory, watch: Any,
) -> None:
    quiet = await make_k8s_emulator(bookmark_interval=60.0)
    w = await watch(quiet, idle_timeout=0.3)
    await until(lambda: w.stats.watch_restarts.get("configmaps", 0) >= 2, 5)
    quiet.create(labelled("late"))
    await until(lambda: w.names() == {"late"}, 5)


async def test_bookmarks_keep_a_quiet_watch_alive(
    make_k8s_emulator: EmulatorFactory, watch: Any,
) -> None:
    chatty = await make_k8s_emulator(bookmark_interval=0.1)
    w = await watch(chatty, idle_timeout=0.5)
    await asyncio.sleep(1.2)
    assert w.stats.watch_restarts.get("configmaps", 0) == 0
    assert time.monotonic() - w.stats.watch_last_event["configmaps"] < 0.5


async def test_throttled_list_waits_for_retry_after(k8s_emulator: Emulator, watch: Any) -> None:
    k8s_emulator.faults.fail(429, retry_after=1, verb="list", resource="configmaps")
    started = time.monotonic()
    w = await watch()
    assert time.monotonic() - started >= 0.95
    assert w.stats.api_errors[429] == 1


async def test_one_watch_per_namespace_of_the_set(k8s_emulator: Emulator, watch: Any) -> None:
    k8s_emulator.create(labelled("in-default"))
    k8s_emulator.create(labelled("elsewhere") | {"metadata": {
        "name": "elsewhere", "namespace": "kube-public", "labels": {"watched": "yes"}}})
    w = await watch(namespaces=("default", "kube-public"))
    assert w.watcher.cache.keys() == {("default", "in-default"), ("kube-public", "elsewhere")}

    def watched_namespaces() -> list[str | None]:
        return sorted(r.namespace for r in k8s_emulator.recorder.matching(
            verb="watch", resource="configmaps") if r.namespace)

    assert watched_namespaces() == ["default", "kube-public"]
