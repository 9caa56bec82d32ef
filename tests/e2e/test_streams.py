"""Large bodies and WebSockets through a real `wakeproxy serve`: streamed, never buffered."""

from __future__ import annotations

import aiohttp

from tests.e2e.harness import echo_command

MB = 1024 * 1024


def stream_app(tmp_path):
    return {"apps": [{"name": "big", "hosts": ["big.localhost"], "command": echo_command("big")}]}


async def test_200_mb_upload_and_download_keep_memory_flat(tmp_path, start_wakeproxy):
    wp = start_wakeproxy(stream_app(tmp_path))
    host = {"Host": "big.localhost"}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as s:
        async with s.get(wp.url + "/", headers=host) as r:
            assert r.status == 200
        rss_before = wp.rss_kib()

        async def body():
            chunk = b"u" * (256 * 1024)
            for _ in range(200 * 4):
                yield chunk

        async with s.post(wp.url + "/upload", data=body(), headers=host) as r:
            assert r.status == 200
            assert await r.text() == str(200 * MB)
        rss_upload = wp.rss_kib()

        received = 0
        async with s.get(wp.url + "/download?mb=200", headers=host) as r:
            assert r.status == 200
            async for chunk in r.content.iter_chunked(1 << 20):
                received += len(chunk)
        assert received == 200 * MB
        rss_download = wp.rss_kib()
    # Buffering either body whole would add ~200 MiB; streaming stays within a few MiB.
    assert rss_upload - rss_before < 32 * 1024, (rss_before, rss_upload)
    assert rss_download - rss_before < 32 * 1024, (rss_before, rss_download)


async def test_websocket_echo_through_the_ingress_keeps_the_app_awake(
    tmp_path, start_wakeproxy, start_ingress,
):
    cfg = stream_app(tmp_path)
    cfg["apps"][0]["idle_after"] = "300ms"
    wp = start_wakeproxy(cfg)
    ingress = start_ingress(wp)
    async with aiohttp.ClientSession() as s, s.ws_connect(
        ingress.url + "/ws", headers={"Host": "big.localhost"}
    ) as ws:
        await ws.send_str("hi")
        assert (await ws.receive_str()) == "echo: hi"
        # Quiet for longer than idle_after: the open WebSocket keeps the app awake.
        import asyncio

        await asyncio.sleep(1.0)
        assert wp.app_state("big") == "awake"
        await ws.send_bytes(b"\x00\x01binary")
        assert (await ws.receive_bytes()) == b"\x00\x01binary"
    wp.wait_state("big", "asleep", timeout=10)
