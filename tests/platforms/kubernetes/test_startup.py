"""Start-up against a slow API: health answers at once, readiness waits for routing."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import yaml

from tests.k8s_emulator import Emulator
from tests.platforms.kubernetes.support import app_deployment, until
from wakeproxy.app import Daemon
from wakeproxy.settings import parse_settings


async def _status(session: aiohttp.ClientSession, url: str) -> int | None:
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=0.5)) as resp:
            return resp.status
    except (aiohttp.ClientError, TimeoutError):
        return None


async def test_health_answers_at_once_while_the_api_is_stalled(
    k8s_emulator: Emulator, tmp_path: Path,
) -> None:
    k8s_emulator.create(app_deployment("web", hosts="web.example.com"))
    config = {
        "platform": "kubernetes", "listen": "127.0.0.1:0", "admin_listen": "127.0.0.1:0",
        # An app built from source: the controllers read its build Jobs and reserve its
        # Deployment at start, several API calls in a row.
        "apps": [{"name": "shop", "hosts": ["shop.example.com"], "repo": str(tmp_path)}],
        "kubernetes": {"kubeconfig": str(k8s_emulator.kubeconfig), "namespaces": ["default"],
                       "lease_namespace": "default", "request_timeout": "10s",
                       "builds": {"namespace": "default"}},
    }
    settings = parse_settings(yaml.safe_dump(config), "test.yaml", tmp_path)
    # Every call takes seconds: a slow or overloaded API server.
    stall = k8s_emulator.faults.stall(2.0, times=None)
    daemon = Daemon(settings)
    starting = asyncio.create_task(daemon.start())
    began = time.monotonic()
    try:
        async with aiohttp.ClientSession() as session:
            await until(lambda: starting.done(), 1.0)  # listening: start-up did not wait
            starting.result()
            assert daemon._admin_runner is not None
            host, port = daemon._admin_runner.addresses[0][:2]
            base = f"http://{host}:{port}"
            assert await _status(session, f"{base}/healthz") == 200
            assert time.monotonic() - began < 1.0, "/healthz not up within a second of start"
            assert await _status(session, f"{base}/readyz") == 503  # nothing routable yet
            k8s_emulator.faults.remove(stall)
            # Routing becomes possible once the API answers again.
            for _ in range(150):
                if await _status(session, f"{base}/readyz") == 200:
                    break
                await asyncio.sleep(0.1)
            assert await _status(session, f"{base}/readyz") == 200
            assert daemon.routes.table.resolve("web.example.com") == "default.web"
    finally:
        k8s_emulator.faults.remove(stall)
        if not starting.done():
            starting.cancel()
        await asyncio.gather(starting, return_exceptions=True)
        await daemon.stop()
