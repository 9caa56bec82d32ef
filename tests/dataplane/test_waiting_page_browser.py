"""The waiting page in a real browser (headless Chromium): it turns into the app by itself."""

from __future__ import annotations

import asyncio
import shutil
import tempfile

from tests.dataplane.conftest import Proxy, Upstream

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or "chromium"


async def browse(url: str, *, host_rule: str, budget_ms: int) -> str:
    """The DOM a fresh headless Chromium ends with after `budget_ms` of virtual time (a
    meta refresh runs in virtual time; network waits do not use it up)."""
    with tempfile.TemporaryDirectory(prefix="wakeproxy-chromium-") as profile:
        proc = await asyncio.create_subprocess_exec(
            CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-proxy-server", f"--user-data-dir={profile}",
            f"--host-resolver-rules={host_rule}", f"--virtual-time-budget={budget_ms}",
            "--dump-dom", url,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), 60)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    return out.decode("utf-8", "replace")


async def test_the_waiting_page_turns_into_the_app_by_itself(proxy: Proxy, upstream: Upstream):
    proxy.add_app("shop", ("shop.test",), upstream.endpoint, awake=False, waiting_page=True)
    proxy.control.delay = 2.5  # longer than the browser is held: it gets the page first
    dom = await browse(f"http://shop.test:{proxy.port}/", host_rule="MAP shop.test 127.0.0.1",
                       budget_ms=20000)
    assert "Waking up" not in dom
    assert '"path": "/"' in dom, dom  # the app's own answer
    statuses = [r.status for r in proxy.records if r.path == "/"]
    assert statuses[0] == 503 and statuses[-1] == 200, statuses


async def test_an_app_that_wakes_quickly_shows_without_the_waiting_page(
    proxy: Proxy, upstream: Upstream
):
    proxy.add_app("shop", ("shop.test",), upstream.endpoint, awake=False, waiting_page=True)
    proxy.control.delay = 0.3
    dom = await browse(f"http://shop.test:{proxy.port}/", host_rule="MAP shop.test 127.0.0.1",
                       budget_ms=5000)
    assert '"path": "/"' in dom, dom
    assert [r.status for r in proxy.records if r.path == "/"] == [200]
