"""Ports and readiness probes for local apps: cheap enough to run every few milliseconds.

A probe answers "does the app serve yet?" and nothing else; it never raises for an app
that is not ready, and never waits longer than the timeout it is given.
"""

from __future__ import annotations

import asyncio
import socket
import ssl

_AGENT = "wakeproxy-probe"


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def free_port(host: str) -> int:
    """A port nothing listens on right now (the kernel's pick for an ephemeral bind)."""
    with socket.socket(_family(host), socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def connected_to_itself(sock: socket.socket) -> bool:
    return bool(sock.getsockname() == sock.getpeername())


async def probe_tcp(host: str, port: int, *, within: float) -> bool:
    """True once something accepts TCP connections on host:port."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(_family(host), socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        async with asyncio.timeout(within):
            await loop.sock_connect(sock, (host, port))
        # Connecting to a free local port can pick that very port as the source and
        # connect the socket to itself: that is not the app answering.
        return not connected_to_itself(sock)
    except (OSError, TimeoutError):
        return False
    finally:
        sock.close()


async def probe_http(
    host: str, port: int, path: str, *, within: float, ok: range = range(100, 500),
    headers: tuple[tuple[str, str], ...] = (), tls: bool = False,
) -> bool:
    """True once `GET path` on host:port is answered with a status in `ok` (below 500 by
    default). `headers` are sent too (a Host among them replaces ours); `tls` speaks
    HTTPS without checking the certificate, as the kubelet's probes do."""
    writer: asyncio.StreamWriter | None = None
    context: ssl.SSLContext | None = None
    if tls:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    try:
        async with asyncio.timeout(within):
            reader, writer = await asyncio.open_connection(host, port, ssl=context)
            authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            fields = {"host": ("Host", authority), "user-agent": ("User-Agent", _AGENT),
                      "accept": ("Accept", "*/*")}
            for name, value in headers:
                fields[name.lower()] = (name, value)
            lines = "".join(f"{name}: {value}\r\n" for name, value in fields.values())
            writer.write(f"GET {path} HTTP/1.1\r\n{lines}Connection: close\r\n\r\n"
                         .encode("latin-1"))
            status_line = await reader.readline()
    except (OSError, TimeoutError, ValueError, UnicodeEncodeError):
        return False
    finally:
        if writer is not None:
            writer.close()
    parts = status_line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        return False
    return int(parts[1]) in ok
