"""Readiness probes against a pod's process: TCP connect, or HTTP GET on the probe's path.

Owns one probe attempt with a short timeout; success for HTTP is a 2xx/3xx status as the
kubelet counts it. Uses raw sockets so no proxy environment variable can redirect it. Never
changes pod state.
"""

from __future__ import annotations

import asyncio
import contextlib

from .meta import JSON, dig


async def probe(port: int, container: JSON, within: float = 1.0) -> bool:
    path = dig(container, "readinessProbe", "httpGet", "path")
    try:
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation
        # that races with completion, and the prober must stop when told to.
        async with asyncio.timeout(within):
            return await _attempt(port, path)
    except (OSError, TimeoutError, ValueError):
        return False


async def _attempt(port: int, path: str | None) -> bool:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        if path is None:
            return True
        request = f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: kube-probe\r\n\r\n"
        writer.write(request.encode())
        await writer.drain()
        status_line = await reader.readline()
        parts = status_line.split()
        return len(parts) >= 2 and 200 <= int(parts[1]) < 400
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
