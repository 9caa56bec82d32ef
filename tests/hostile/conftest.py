"""Fixtures for hostile-input tests: the data-plane fixtures, a shop app, and a canary — a
listener that counts every connection made to it, which must stay at zero."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.dataplane.conftest import (
    Proxy,
    ProxyFactory,
    Upstream,
    make_proxy,
    pytest_asyncio_loop_factories,
    raw_upstream,
    upstream,
)
from tests.soak.support import print_figures, start_lean
from wakeproxy.model.limits import Limits

__all__ = [
    "make_proxy",
    "pytest_asyncio_loop_factories",
    "raw_upstream",
    "start_lean",
    "upstream",
]

IDN = "xn--bcher-kva.test"


@dataclass
class Canary:
    port: int
    connections: int = 0


@pytest.fixture
async def canary() -> AsyncIterator[Canary]:
    c = Canary(0)

    async def count(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        c.connections += 1
        writer.close()

    server = await asyncio.start_server(count, "127.0.0.1", 0)
    c.port = server.sockets[0].getsockname()[1]
    yield c
    server.close()


@pytest.fixture
async def shop(make_proxy: ProxyFactory, upstream: Upstream) -> Proxy:
    """A proxy with small limits (8 KiB heads, 20 fields, 1s for a head) serving
    `shop.test` and `xn--bcher-kva.test`."""
    proxy = await make_proxy(Limits(max_head_bytes=8192, max_headers=20, client_head_timeout=1))
    proxy.add_app("shop", ("shop.test", IDN), upstream.endpoint)
    return proxy


def pytest_terminal_summary(terminalreporter: Any) -> None:
    print_figures(terminalreporter, "hostile")
