"""Raw HTTP/1.1 on a socket, for requests no well-behaved client library would send."""

from __future__ import annotations

import asyncio
import contextlib

from tests.dataplane.conftest import Proxy, Response, parse_responses


async def first_response(proxy: Proxy, data: bytes, *, limit: float = 3.0) -> tuple[
    Response | None, bytes, bool
]:
    """Send `data` on a new connection → (first response, raw bytes, whether it closed)."""
    reader, writer = await asyncio.open_connection(proxy.host, proxy.port)
    raw = b""
    closed = False
    try:
        writer.write(data)
        with contextlib.suppress(TimeoutError, ConnectionError):
            async with asyncio.timeout(limit):
                while True:
                    chunk = await reader.read(65536)
                    if not chunk:
                        closed = True
                        break
                    raw += chunk
                    done = parse_responses(raw)
                    if done and done[0].header("connection") != "close":
                        break  # kept alive; a closing answer is read until the close
    finally:
        writer.close()
    responses = parse_responses(raw)
    return (responses[0] if responses else None), raw, closed


async def still_serves(proxy: Proxy) -> bool:
    response, _, _ = await first_response(proxy, b"GET /alive HTTP/1.1\r\nHost: shop.test\r\n\r\n")
    return response is not None and response.status == 200
