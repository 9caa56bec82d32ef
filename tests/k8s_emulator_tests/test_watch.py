"""Watch streams through the real client: events, bookmarks, resume, selectors and 410 Gone."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from kubernetes_asyncio import client, watch
from kubernetes_asyncio.client import ApiClient
from kubernetes_asyncio.client.exceptions import ApiException

from tests.k8s_emulator.fixtures import EmulatorFactory
from tests.k8s_emulator.manifests import config_map
from tests.k8s_emulator_tests.helpers import api_for

Event = dict[str, Any]


async def collect(api: ApiClient, *, until: str, **kwargs: Any) -> list[Event]:
    """Watch ConfigMaps in `default` until an event of type `until` arrives."""
    core: Any = client.CoreV1Api(api)
    events: list[Event] = []
    async with watch.Watch() as w:
        async for event in w.stream(core.list_namespaced_config_map, "default", **kwargs):
            events.append(event)
            if event["type"] == until:
                break
    return events


async def test_added_modified_deleted_and_bookmarks(make_k8s_emulator: EmulatorFactory) -> None:
    emulator = await make_k8s_emulator(bookmark_interval=0.1)
    async with api_for(emulator) as api:
        core: Any = client.CoreV1Api(api)
        listed = await core.list_namespaced_config_map("default")
        watcher = asyncio.create_task(collect(
            api, until="DELETED", resource_version=listed.metadata.resource_version,
            allow_watch_bookmarks=True, timeout_seconds=10))
        await asyncio.sleep(0.3)  # long enough for a bookmark on an idle stream
        await core.create_namespaced_config_map("default", config_map("cm", {"a": "1"}))
        await core.patch_namespaced_config_map("cm", "default", {"data": {"a": "2"}})
        await core.delete_namespaced_config_map("cm", "default")
        events = await asyncio.wait_for(watcher, 10)
    kinds = [e["type"] for e in events if e["type"] != "BOOKMARK"]
    assert kinds == ["ADDED", "MODIFIED", "DELETED"]
    bookmarks = [e for e in events if e["type"] == "BOOKMARK"]
    assert bookmarks, "an idle watch with bookmarks allowed gets BOOKMARK events"
    assert set(bookmarks[0]["object"]["metadata"]) == {"resourceVersion"}
    modified = next(e for e in events if e["type"] == "MODIFIED")
    assert modified["object"].data == {"a": "2"}
    versions = [int(e["raw_object"]["metadata"]["resourceVersion"]) for e in events]
    assert versions == sorted(versions)


async def test_watch_without_version_starts_with_current_objects(k8s_api: ApiClient) -> None:
    core: Any = client.CoreV1Api(k8s_api)
    await core.create_namespaced_config_map("default", config_map("old", {}))
    watcher = asyncio.create_task(collect(k8s_api, until="DELETED", timeout_seconds=10))
    await asyncio.sleep(0.2)
    await core.delete_namespaced_config_map("old", "default")
    events = await asyncio.wait_for(watcher, 10)
    assert [(e["type"], e["object"].metadata.name) for e in events] == [
        ("ADDED", "old"), ("DELETED", "old")]


async def test_resume_from_a_version_replays_later_events(k8s_api: ApiClient) -> None:
    core: Any = client.CoreV1Api(k8s_api)
    first = await core.create_namespaced_config_map("default", config_map("one", {}))
    await core.create_namespaced_config_map("default", config_map("two", {}))
    await core.delete_namespaced_config_map("two", "default")
    events = await collect(k8s_api, until="DELETED", timeout_seconds=5,
                           resource_version=first.metadata.resource_version)
    assert [(e["type"], e["object"].metadata.name) for e in events] == [
        ("ADDED", "two"), ("DELETED", "two")]


async def test_timeout_seconds_ends_the_stream(k8s_api: ApiClient) -> None:
    core: Any = client.CoreV1Api(k8s_api)
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with watch.Watch() as w:
        seen = [e async for e in w.stream(core.list_namespaced_config_map, "default",
                                          resource_version="1", timeout_seconds=1)]
    assert seen == []
    assert 0.9 <= loop.time() - started < 5


async def test_label_selector_filters_and_reports_transitions(k8s_api: ApiClient) -> None:
    core: Any = client.CoreV1Api(k8s_api)
    listed = await core.list_namespaced_config_map("default")
    watcher = asyncio.create_task(collect(
        k8s_api, until="DELETED", label_selector="team=a", timeout_seconds=10,
        resource_version=listed.metadata.resource_version))
    await asyncio.sleep(0.2)
    other = config_map("other", {})
    other["metadata"]["labels"] = {"team": "b"}
    await core.create_namespaced_config_map("default", other)
    await core.patch_namespaced_config_map("other", "default",
                                           {"metadata": {"labels": {"team": "a"}}})
    await core.patch_namespaced_config_map("other", "default",
                                           {"metadata": {"labels": {"team": "c"}}})
    events = await asyncio.wait_for(watcher, 10)
    # Starting to match reads as ADDED, ceasing to match as DELETED, as on a real server.
    assert [e["type"] for e in events] == ["ADDED", "DELETED"]


async def test_expired_version_is_410_in_the_stream(make_k8s_emulator: EmulatorFactory) -> None:
    emulator = await make_k8s_emulator(history_size=2)
    async with api_for(emulator) as api:
        core: Any = client.CoreV1Api(api)
        first = await core.create_namespaced_config_map("default", config_map("a", {}))
        for name in ("b", "c", "d"):
            await core.create_namespaced_config_map("default", config_map(name, {}))
        with pytest.raises(ApiException) as exc:
            await collect(api, until="DELETED", timeout_seconds=5,
                          resource_version=first.metadata.resource_version)
        assert exc.value.status == 410


async def test_compaction_switch_and_http_410(k8s_emulator: Any, k8s_api: ApiClient) -> None:
    core: Any = client.CoreV1Api(k8s_api)
    listed = await core.list_namespaced_config_map("default")
    await core.create_namespaced_config_map("default", config_map("a", {}))
    k8s_emulator.faults.expire_history()
    with pytest.raises(ApiException) as exc:
        await collect(k8s_api, until="DELETED", timeout_seconds=5,
                      resource_version=listed.metadata.resource_version)
    assert exc.value.status == 410
    k8s_emulator.faults.watch_gone_as_http = True
    with pytest.raises(ApiException) as exc:
        await collect(k8s_api, until="DELETED", timeout_seconds=5,
                      resource_version=listed.metadata.resource_version)
    assert exc.value.status == 410
    # A fresh list gives a version to watch from again.
    relisted = await core.list_namespaced_config_map("default")
    watcher = asyncio.create_task(collect(k8s_api, until="DELETED", timeout_seconds=5,
                                          resource_version=relisted.metadata.resource_version))
    await asyncio.sleep(0.2)
    await core.delete_namespaced_config_map("a", "default")
    assert [e["type"] for e in await asyncio.wait_for(watcher, 5)] == ["DELETED"]


async def test_open_watch_gets_410_in_the_middle(k8s_emulator: Any, k8s_api: ApiClient) -> None:
    core: Any = client.CoreV1Api(k8s_api)
    listed = await core.list_namespaced_config_map("default")
    watcher = asyncio.create_task(collect(k8s_api, until="DELETED", timeout_seconds=10,
                                          resource_version=listed.metadata.resource_version))
    await asyncio.sleep(0.2)
    await core.create_namespaced_config_map("default", config_map("a", {}))
    await asyncio.sleep(0.1)
    assert k8s_emulator.faults.expire_watches() == 1
    with pytest.raises(ApiException) as exc:
        await asyncio.wait_for(watcher, 5)
    assert exc.value.status == 410


async def test_watch_without_timeout_resumes_silently_after_stream_end(
    k8s_emulator: Any, k8s_api: ApiClient
) -> None:
    core: Any = client.CoreV1Api(k8s_api)
    listed = await core.list_namespaced_config_map("default")
    watcher = asyncio.create_task(collect(k8s_api, until="DELETED",
                                          resource_version=listed.metadata.resource_version))
    await asyncio.sleep(0.2)
    await core.create_namespaced_config_map("default", config_map("a", {}))
    await asyncio.sleep(0.1)
    assert k8s_emulator.faults.end_watches() == 1
    await asyncio.sleep(0.2)
    await core.delete_namespaced_config_map("a", "default")
    events = await asyncio.wait_for(watcher, 5)
    assert [e["type"] for e in events] == ["ADDED", "DELETED"]
    watch_calls = k8s_emulator.recorder.matching(verb="watch", resource="configmaps")
    assert len(watch_calls) == 2  # the client reconnected from its last version
