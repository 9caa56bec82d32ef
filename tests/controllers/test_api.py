"""The controllers' admin routes on the real admin app: token, errors, log streaming."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry

from tests.controllers.conftest import Stack
from wakeproxy.controllers.api import WEBHOOK_PATH, add_controller_routes
from wakeproxy.model.activity import ActivityLedger
from wakeproxy.model.clock import SystemClock
from wakeproxy.obs.admin import build_admin_app

TOKEN = "controllers-api-token-0123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def client_for(stack: Stack, aiohttp_client: Any) -> Any:
    app = build_admin_app(
        board=stack.board, ledger=ActivityLedger(SystemClock()), commands=stack.lifecycle,
        registry=CollectorRegistry(), cluster="t", token=TOKEN, ready=lambda: True,
        clock=SystemClock(), open_paths=frozenset({WEBHOOK_PATH}))
    add_controller_routes(app, stack.controllers)
    return await aiohttp_client(app)


async def test_build_follow_log_and_deploy_over_http(stack: Stack, aiohttp_client: Any) -> None:
    c = await client_for(stack, aiohttp_client)
    stack.repo.commit("over http")
    r = await c.post("/api/v1/apps/shop/builds", json={"ref": "main"})
    assert r.status == 401  # writes need the token
    r = await c.post("/api/v1/apps/shop/builds", json={"ref": "main"}, headers=AUTH)
    assert r.status == 202
    build = await r.json()
    assert r.headers["Location"] == f"/api/v1/builds/{build['id']}"

    r = await c.get(f"/api/v1/builds/{build['id']}/log?follow=1")
    assert r.headers.get("Transfer-Encoding") == "chunked"
    log = await r.text()  # returns only once the build has ended
    assert "==> git fetch" in log and log.rstrip().endswith("built " + log.split()[-1])
    r = await c.get(f"/api/v1/builds/{build['id']}")
    assert (await r.json())["state"] == "succeeded"

    r = await c.post("/api/v1/apps/shop/deploys", json={"build": build["id"]}, headers=AUTH)
    assert r.status == 200 and (await r.json())["outcome"].startswith("asleep")


async def test_errors_are_clear_json(stack: Stack, aiohttp_client: Any) -> None:
    c = await client_for(stack, aiohttp_client)
    cases = [
        ("/api/v1/apps/shop/builds", b"{", 400, "JSON object"),
        ("/api/v1/apps/shop/builds", b'{"ref": "--upload-pack=x"}', 400,
         "is not a branch, tag, commit or revision"),
        ("/api/v1/apps/nope/builds", b"{}", 404, "no app named 'nope'"),
        ("/api/v1/apps/shop/deploys", b'{"build": "shop-000000"}', 404, "no build"),
        ("/api/v1/apps/shop/deploys", b"{}", 400, "give the build"),
        ("/api/v1/apps/shop/deploys", b'{"build": "shop-1", "image": "shop:1"}', 400,
         "give the build"),
        # Local apps run from their builds: an image has nothing to run it here.
        ("/api/v1/apps/shop/deploys", b'{"image": "registry.example.com/shop:1"}', 409,
         "not from images"),
    ]
    for path, body, status, message in cases:
        r = await c.post(path, data=body,
                         headers={**AUTH, "Content-Type": "application/json"})
        assert r.status == status, (path, await r.text())
        assert message in (await r.json())["error"]

    stack.repo.commit("broken", build="exit 4\n")
    failed = stack.controllers.build("shop", "main")
    await stack.controllers.builder.wait(failed)
    r = await c.post("/api/v1/apps/shop/deploys", json={"build": failed.id}, headers=AUTH)
    assert r.status == 409 and "only a succeeded build" in (await r.json())["error"]
    r = await c.get(f"/api/v1/builds/{failed.id}")
    view = await r.json()
    assert view["exit_code"] == 4 and view["log_tail"][-1].startswith("==> build failed")

    r = await c.post(WEBHOOK_PATH, data=b"{}")  # no token needed, but a signature is
    assert r.status == 401 and "signature" in (await r.json())["error"]


async def test_deleting_an_app_of_the_config_file_is_refused_with_what_to_do(
        stack: Stack, aiohttp_client: Any) -> None:
    c = await client_for(stack, aiohttp_client)
    r = await c.delete("/api/v1/apps/shop", headers=AUTH)
    assert r.status == 409
    body = await r.json()
    assert "shop is declared in cluster.yaml: remove it from apps: there" in str(body)
    assert stack.board.get("shop") is not None
