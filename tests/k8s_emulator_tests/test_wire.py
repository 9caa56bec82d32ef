"""Wire details a client can see, checked with a plain HTTP client."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.k8s_emulator import Emulator
from tests.k8s_emulator.manifests import config_map


@pytest.fixture
async def http(k8s_emulator: Emulator) -> AsyncIterator[aiohttp.ClientSession]:
    headers = {"Authorization": f"Bearer {k8s_emulator.token}"}
    async with aiohttp.ClientSession(k8s_emulator.base_url, headers=headers) as session:
        yield session


async def get_json(http: aiohttp.ClientSession, path: str, status: int = 200) -> Any:
    async with http.get(path) as resp:
        assert resp.status == status, await resp.text()
        assert resp.content_type == "application/json"
        return await resp.json()


async def test_list_items_carry_no_kind_and_list_has_a_version(
    k8s_emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    k8s_emulator.create(config_map("cm", {"a": "1"}))
    body = await get_json(http, "/api/v1/namespaces/default/configmaps")
    assert body["kind"] == "ConfigMapList" and body["apiVersion"] == "v1"
    assert body["metadata"]["resourceVersion"] == str(k8s_emulator.store.resource_version)
    assert "kind" not in body["items"][0] and "apiVersion" not in body["items"][0]
    single = await get_json(http, "/api/v1/namespaces/default/configmaps/cm")
    assert single["kind"] == "ConfigMap"


@pytest.mark.parametrize("spelling", ["true", "True", "1"])
async def test_watch_flag_spellings(
    k8s_emulator: Emulator, http: aiohttp.ClientSession, spelling: str
) -> None:
    k8s_emulator.create(config_map("cm", {}))
    path = f"/api/v1/namespaces/default/configmaps?watch={spelling}&timeoutSeconds=1"
    async with http.get(path) as resp:
        assert resp.status == 200
        first = json.loads(await resp.content.readline())
    assert first["type"] == "ADDED" and first["object"]["metadata"]["name"] == "cm"


async def test_bad_boolean_and_bad_selector_are_400(http: aiohttp.ClientSession) -> None:
    bad_bool = await get_json(http, "/api/v1/namespaces/default/configmaps?watch=maybe", 400)
    assert bad_bool["reason"] == "BadRequest"
    bad_selector = await get_json(
        http, "/api/v1/namespaces/default/configmaps?labelSelector=a%20in%20b", 400)
    assert bad_selector["reason"] == "BadRequest"
    bad_field = await get_json(
        http, "/api/v1/namespaces/default/configmaps?fieldSelector=spec.x%3Dy", 400)
    assert "field label not supported" in bad_field["message"]


async def test_unknown_paths_are_404_status(http: aiohttp.ClientSession) -> None:
    for path in ("/api/v1/widgets", "/apis/apps/v1/namespaces/default/deployments/x/y",
                 "/healthz/nothing"):
        body = await get_json(http, path, 404)
        assert body["kind"] == "Status" and body["reason"] == "NotFound"


async def test_missing_token_is_401(k8s_emulator: Emulator) -> None:
    async with aiohttp.ClientSession(k8s_emulator.base_url) as anonymous, \
            anonymous.get("/api/v1/widgets") as resp:
        assert resp.status == 401
        assert (await resp.json())["reason"] == "Unauthorized"


async def test_discovery_and_version(http: aiohttp.ClientSession) -> None:
    assert (await get_json(http, "/api"))["versions"] == ["v1"]
    groups = {g["name"] for g in (await get_json(http, "/apis"))["groups"]}
    assert {"apps", "batch", "coordination.k8s.io", "discovery.k8s.io"} <= groups
    apps = await get_json(http, "/apis/apps/v1")
    names = {r["name"] for r in apps["resources"]}
    assert {"deployments", "deployments/scale", "deployments/status"} <= names
    assert (await get_json(http, "/version"))["major"] == "1"


async def test_malformed_body_is_a_status_not_a_traceback(http: aiohttp.ClientSession) -> None:
    async with http.post("/api/v1/namespaces/default/configmaps", data=b"{not json",
                         headers={"Content-Type": "application/json"}) as resp:
        assert resp.status == 400
        body = await resp.json()
    assert body["kind"] == "Status" and "Traceback" not in body["message"]


async def test_yaml_body_is_accepted_on_create(http: aiohttp.ClientSession) -> None:
    manifest = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-yaml\ndata:\n  a: '1'\n"
    async with http.post("/api/v1/namespaces/default/configmaps", data=manifest,
                         headers={"Content-Type": "application/yaml"}) as resp:
        assert resp.status == 201
        assert (await resp.json())["data"] == {"a": "1"}


async def test_dry_run_validates_without_storing(
    k8s_emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    before = k8s_emulator.store.resource_version
    async with http.post("/api/v1/namespaces/default/configmaps?dryRun=All",
                         json=config_map("dry", {})) as resp:
        assert resp.status == 201
    assert k8s_emulator.store.resource_version == before
    await get_json(http, "/api/v1/namespaces/default/configmaps/dry", 404)


async def test_send_initial_events_ends_with_a_marked_bookmark(
    k8s_emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    k8s_emulator.create(config_map("cm", {}))
    path = ("/api/v1/namespaces/default/configmaps?watch=1&sendInitialEvents=true"
            "&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan&timeoutSeconds=1")
    async with http.get(path) as resp:
        first = json.loads(await resp.content.readline())
        second = json.loads(await resp.content.readline())
    assert first["type"] == "ADDED"
    assert second["type"] == "BOOKMARK"
    assert second["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
