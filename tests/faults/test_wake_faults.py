"""Apps that cannot wake: every held request gets a clear answer in bounded time, and no
process piles up however many requests keep asking for a wake."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import aiohttp
import pytest

from tests.dataplane.conftest import Proxy, Upstream, until
from tests.soak.support import fast_app, figure, running_with_marker, started_pids
from wakeproxy.model.board import FailureKind

H = {"Host": "app.localhost"}


@contextmanager
def most_processes(marker: str) -> Iterator[list[int]]:
    """Samples how many app processes run at once; yields [the most seen]."""
    most = [0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            most[0] = max(most[0], len(running_with_marker(marker)))
            stop.wait(0.005)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield most
    finally:
        stop.set()
        thread.join()


async def wave(s: aiohttp.ClientSession, url: str, n: int) -> list[tuple[int, str, float]]:
    async def one(i: int) -> tuple[int, str, float]:
        t0 = time.monotonic()
        async with s.get(f"{url}/hello/{i}", headers=H) as r:
            return r.status, await r.text(), time.monotonic() - t0

    return await asyncio.gather(*(one(i) for i in range(n)))


async def test_an_app_crashing_while_waking_gets_502s_and_no_process_pile_up(
    tmp_path: Path, start_lean
) -> None:
    marker = uuid.uuid4().hex
    starts = tmp_path / "starts"
    wp = start_lean({"apps": [fast_app("app", starts, env={"CRASH": "1", "MARK": marker})]})
    answers = []
    async with aiohttp.ClientSession() as s:
        with most_processes(marker) as most:
            for _ in range(10):
                answers += await wave(s, wp.url, 20)
    assert len(answers) == 200
    for status, text, seconds in answers:
        assert status == 502, text
        assert "failed to wake" in text and "crashing on purpose" in text
        assert seconds < 5
    crashes = len(started_pids(starts))
    # One wake per wave, or a few when requests arrive just after a failure: never one per
    # request, and never two processes at once.
    assert 10 <= crashes <= 40
    assert most[0] <= 1
    assert running_with_marker(marker) == []
    figure("faults", f"app crashing at every start: 200 requests in 10 waves, all 502 "
                     f"naming the crash, {crashes} starts, at most {most[0]} process at once")


async def test_an_app_that_never_gets_ready_gets_504s_after_wake_timeout(
    tmp_path: Path, start_lean
) -> None:
    marker = uuid.uuid4().hex
    starts = tmp_path / "starts"
    wp = start_lean({"apps": [fast_app(
        "app", starts, wake_timeout="500ms", env={"START_DELAY": "3600", "MARK": marker})]})
    answers = []
    async with aiohttp.ClientSession() as s:
        with most_processes(marker) as most:
            for _ in range(3):
                answers += await wave(s, wp.url, 10)
                await asyncio.sleep(0.2)  # past the end of this wave's wake
    for status, text, seconds in answers:
        assert status == 504, text
        assert "did not wake within 0.5s" in text
        assert 0.45 <= seconds < 3
    assert len(started_pids(starts)) == 3
    assert most[0] <= 1
    assert running_with_marker(marker) == []
    figure("faults", "app never ready: 30 requests in 3 waves, all 504 after the 0.5s "
                     "wake_timeout, 3 starts, each process stopped, at most 1 at once")


async def test_an_app_crashing_soon_after_it_is_ready_never_hangs_a_request(
    tmp_path: Path, start_lean
) -> None:
    """It listens, then dies 50 ms later: requests race its deaths, and each one still gets
    an answer in bounded time (200 when the app answered, or a 502 naming it)."""
    marker = uuid.uuid4().hex
    starts = tmp_path / "starts"
    wp = start_lean({
        "limits": {"connect_timeout": "1s"},
        "apps": [fast_app("app", starts, env={"CRASH_AFTER": "0.05", "MARK": marker})],
    })
    answers = []
    async with aiohttp.ClientSession() as s:
        with most_processes(marker) as most:
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:
                answers += await wave(s, wp.url, 4)
    statuses = {status for status, _, _ in answers}
    assert statuses <= {200, 502}, statuses
    assert 200 in statuses
    assert max(seconds for _, _, seconds in answers) < 5
    assert most[0] <= 1
    await asyncio.sleep(0.3)
    assert running_with_marker(marker) == []
    ok = sum(1 for status, _, _ in answers if status == 200)
    figure("faults", f"app crashing 50 ms after each start: {len(answers)} requests, {ok} "
                     f"served, {len(answers) - ok} answered 502, {len(started_pids(starts))} "
                     f"starts, at most {most[0]} process at once")


@pytest.mark.parametrize(
    ("kind", "status", "says"),
    [
        (FailureKind.FAILED, 502, "failed to wake: the reason"),
        (FailureKind.UNAVAILABLE, 503, "cannot be woken now: the reason"),
        (FailureKind.TIMEOUT, 504, "did not wake within"),
    ],
)
async def test_held_requests_get_the_answer_the_kind_of_wake_failure_calls_for(
    proxy: Proxy, upstream: Upstream, kind: FailureKind, status: int, says: str
) -> None:
    proxy.add_app("shop", ("shop.test",), upstream.endpoint, awake=False)
    proxy.control.gates["shop"] = asyncio.Event()  # the wake never finishes by itself
    async with aiohttp.ClientSession(headers={"Host": "shop.test"}) as s:
        held = asyncio.create_task(s.get(proxy.url("/")))
        await until(lambda: proxy.dataplane.held_requests == 1)
        proxy.board.mark_wake_failed("shop", "the reason", kind)
        async with await held as r:
            assert r.status == status
            assert says in await r.text()
            assert (r.headers.get("Retry-After") is not None) == (status != 502)
    assert upstream.seen == []
