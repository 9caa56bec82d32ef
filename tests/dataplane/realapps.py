"""Real app servers no one here wrote, for the cases that are about them: a WSGI app under
gunicorn (threaded worker, so it keeps connections alive) and an ASGI app under uvicorn,
each on a socket bound here and handed over (no port race), each with its server's own
defaults unless a test says otherwise."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from wakeproxy.model.apps import Endpoint

_BIN = Path(sys.executable).parent
_ROOT = Path(__file__).resolve().parents[2]
# The keep-alive each server closes idle connections after, by default.
KEEP_ALIVE = {"gunicorn": 2.0, "uvicorn": 5.0}


@contextlib.asynccontextmanager
async def real_app(server: str, *extra: str) -> AsyncIterator[Endpoint]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    fd = sock.fileno()
    if server == "gunicorn":
        args = [str(_BIN / "gunicorn"), "--bind", f"fd://{fd}", "--worker-class", "gthread",
                "--threads", "4", "--workers", "1", "--no-control-socket",
                "tests.dataplane.apps.wsgi_app:app"]
    else:
        args = [str(_BIN / "uvicorn"), "--fd", str(fd), "--no-access-log",
                "tests.dataplane.apps.asgi_app:app"]
    proc = await asyncio.create_subprocess_exec(
        *args, *extra, pass_fds=(fd,), stderr=asyncio.subprocess.DEVNULL,
        cwd=_ROOT,
    )
    endpoint = Endpoint("127.0.0.1", sock.getsockname()[1])
    try:
        await _until_it_answers(endpoint)
        yield endpoint
    finally:
        sock.close()
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 5)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def _until_it_answers(endpoint: Endpoint) -> None:
    async with asyncio.timeout(20):
        while True:
            try:
                reader, writer = await asyncio.open_connection(endpoint.host, endpoint.port)
                writer.write(b"GET /ready HTTP/1.0\r\n\r\n")
                got = await reader.read(12)
                writer.close()
                if got[8:12] == b" 200":
                    return
            except OSError:
                pass
            await asyncio.sleep(0.05)
