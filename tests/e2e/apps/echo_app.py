"""A small app for end-to-end tests: listens on $PORT and shows what a user would see.

Routes: / (hello + pid), /say?n=N&tag=T&to=stdout|stderr&rate=R (prints N lines "T i",
at most R a second, in pieces of 1000),
/slow?s=N, /upload (POST: counts streamed bytes), /download?mb=N
(streams N MiB), /ws (WebSocket echo), /headers (the request headers as JSON).
"""

import asyncio
import os
import sys

from aiohttp import WSMsgType, web

NAME = os.environ.get("APP_NAME", "app")
CHUNK = b"x" * 65536


async def hello(request: web.Request) -> web.Response:
    return web.Response(text=f"hello from {NAME} pid={os.getpid()}\n")


async def say(request: web.Request) -> web.Response:
    n, tag = int(request.query.get("n", "1")), request.query.get("tag", "line")
    out = sys.stderr if request.query.get("to") == "stderr" else sys.stdout
    pause = 1000 / float(request.query["rate"]) if "rate" in request.query else 0.0
    for start in range(0, n, 1000):  # written in pieces, as a busy app would
        out.write("".join(f"{tag} {i}\n" for i in range(start, min(n, start + 1000))))
        out.flush()
        if pause:
            await asyncio.sleep(pause)
    return web.Response(text=f"said {n}\n")


async def slow(request: web.Request) -> web.Response:
    await asyncio.sleep(float(request.query.get("s", "1")))
    return web.Response(text=f"slow done {NAME}\n")


async def upload(request: web.Request) -> web.Response:
    total = 0
    async for chunk in request.content.iter_any():
        total += len(chunk)
    return web.Response(text=str(total))


async def download(request: web.Request) -> web.StreamResponse:
    mb = int(request.query.get("mb", "1"))
    resp = web.StreamResponse()
    resp.content_length = mb * 1024 * 1024
    await resp.prepare(request)
    for _ in range(mb * 16):
        await resp.write(CHUNK)
    await resp.write_eof()
    return resp


async def headers(request: web.Request) -> web.Response:
    return web.json_response({k: v for k, v in request.headers.items()})


async def ws(request: web.Request) -> web.WebSocketResponse:
    sock = web.WebSocketResponse()
    await sock.prepare(request)
    async for msg in sock:
        if msg.type == WSMsgType.TEXT:
            await sock.send_str(f"echo: {msg.data}")
        elif msg.type == WSMsgType.BINARY:
            await sock.send_bytes(msg.data)
    return sock


def main() -> None:
    delay = float(os.environ.get("START_DELAY", "0"))
    if delay:
        import time

        time.sleep(delay)
    marker = os.environ.get("START_LOG")
    if marker:
        with open(marker, "a") as f:
            f.write(f"{os.getpid()}\n")
    app = web.Application(client_max_size=1024**3)
    app.add_routes([
        web.get("/", hello), web.get("/say", say), web.get("/slow", slow),
        web.post("/upload", upload),
        web.get("/download", download), web.get("/headers", headers), web.get("/ws", ws),
    ])
    print(f"{NAME} listening on {os.environ['PORT']}", file=sys.stderr, flush=True)
    web.run_app(app, host="127.0.0.1", port=int(os.environ["PORT"]), print=None,
                access_log=None, handle_signals=True)


if __name__ == "__main__":
    main()
