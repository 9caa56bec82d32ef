"""Readiness probes as the kubelet runs them: status range, headers, HTTPS unverified."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.k8s_emulator.tls import generate
from wakeproxy.platforms.local.net import probe_http

KUBELET_OK = range(200, 400)


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., Any]]:
    runners: list[web.AppRunner] = []

    async def start(status: int, seen: list[dict[str, str]], ssl: Any = None) -> int:
        async def handler(request: web.Request) -> web.Response:
            seen.append(dict(request.headers))
            return web.Response(status=status)

        app = web.Application()
        app.router.add_get("/ready", handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        runners.append(runner)
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl)
        await site.start()
        return int(runner.addresses[0][1])

    yield start
    for runner in runners:
        await runner.cleanup()


async def test_the_status_range_decides(serve: Callable[..., Any]) -> None:
    seen: list[dict[str, str]] = []
    found = await serve(404, seen)
    assert await probe_http("127.0.0.1", found, "/ready", within=2)  # below 500: local rule
    assert not await probe_http("127.0.0.1", found, "/ready", within=2, ok=KUBELET_OK)
    moved = await serve(302, seen)
    assert await probe_http("127.0.0.1", moved, "/ready", within=2, ok=KUBELET_OK)


async def test_the_probes_headers_are_sent_and_a_host_among_them_wins(
    serve: Callable[..., Any],
) -> None:
    seen: list[dict[str, str]] = []
    port = await serve(200, seen)
    assert await probe_http("127.0.0.1", port, "/ready", within=2, ok=KUBELET_OK,
                            headers=(("Host", "shop.internal"), ("X-Probe", "1")))
    assert seen[0]["Host"] == "shop.internal" and seen[0]["X-Probe"] == "1"
    assert seen[0]["User-Agent"] == "wakeproxy-probe"


async def test_https_probes_do_not_check_the_certificate(
    serve: Callable[..., Any], tmp_path: Path,
) -> None:
    certs = await asyncio.to_thread(generate, tmp_path)
    seen: list[dict[str, str]] = []
    port = await serve(200, seen, certs.server_context())
    assert await probe_http("127.0.0.1", port, "/ready", within=2, ok=KUBELET_OK, tls=True)
    assert not await probe_http("127.0.0.1", port, "/ready", within=2)  # plain HTTP to TLS
