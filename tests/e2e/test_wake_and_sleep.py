"""A sleeping app is woken by its first request, through nginx as the ingress, and put
back to sleep when idle — what a user of the platform sees, with real processes."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp

from tests.e2e.conftest import assert_no_app_process, started_pids
from tests.e2e.harness import echo_command, pids_alive


def app(name: str, start_log: Path, **over: object) -> dict[str, object]:
    return {
        "name": name,
        "hosts": [f"{name}.localhost", f"*.{name}.localhost"],
        "command": echo_command(name, START_LOG=str(start_log)),
        **over,
    }


async def test_first_request_wakes_the_app_through_the_ingress(
    tmp_path, start_wakeproxy, start_ingress,
):
    starts = tmp_path / "starts.log"
    wp = start_wakeproxy({"apps": [app("hello", starts)]})
    ingress = start_ingress(wp)
    assert wp.app_state("hello") == "asleep"
    assert started_pids(starts) == []

    async with aiohttp.ClientSession() as s:
        async with s.get(ingress.url + "/", headers={"Host": "Hello.localhost:8080"}) as r:
            assert r.status == 200
            assert "hello from hello" in await r.text()
        # A wildcard host reaches the same, now awake, app without another start.
        async with s.get(ingress.url + "/", headers={"Host": "pr-1.hello.localhost"}) as r:
            assert r.status == 200
    assert len(started_pids(starts)) == 1
    assert wp.app_state("hello") == "awake"
    access = wp.wait_log(lambda e: e.get("event") == "request" and e.get("held_ms") is not None)
    assert access["app"] == "hello" and access["status"] == 200


async def test_200_concurrent_requests_to_a_sleeping_app_all_succeed_with_one_start(
    tmp_path, start_wakeproxy,
):
    starts = tmp_path / "starts.log"
    wp = start_wakeproxy({"apps": [app("burst", starts, env={"START_DELAY": "0.3"})]})

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:
        async def one() -> int:
            async with s.get(wp.url + "/", headers={"Host": "burst.localhost"}) as r:
                await r.read()
                return r.status

        statuses = await asyncio.gather(*(one() for _ in range(200)))
    assert statuses == [200] * 200
    assert len(started_pids(starts)) == 1


async def test_idle_app_is_put_to_sleep_and_its_process_stopped(tmp_path, start_wakeproxy):
    starts = tmp_path / "starts.log"
    wp = start_wakeproxy({"apps": [app("idle", starts, idle_after="1s")]})
    async with aiohttp.ClientSession() as s, s.get(
        wp.url + "/", headers={"Host": "idle.localhost"}
    ) as r:
        assert r.status == 200
    pid = started_pids(starts)[0]
    t0 = time.monotonic()
    wp.wait_state("idle", "asleep", timeout=10)
    assert time.monotonic() - t0 >= 0.5  # not before its idle time
    deadline = time.monotonic() + 5
    while pids_alive([pid]) and time.monotonic() < deadline:  # noqa: ASYNC110 - polling a pid
        await asyncio.sleep(0.02)
    assert pids_alive([pid]) == []


async def test_requests_racing_repeated_sleeps_are_never_lost(tmp_path, start_wakeproxy):
    """Traffic with gaps around idle_after: the app sleeps and wakes again and again,
    and every request still gets its answer."""
    starts = tmp_path / "starts.log"
    wp = start_wakeproxy({
        "sweep_interval": "20ms",
        "apps": [app("churn", starts, idle_after="150ms")],
    })
    statuses: list[int] = []
    async with aiohttp.ClientSession() as s:
        t_end = time.monotonic() + 8
        i = 0
        while time.monotonic() < t_end:
            i += 1
            gap = (0.0, 0.05, 0.14, 0.16, 0.3)[i % 5]
            await asyncio.sleep(gap)
            async def one(n: int) -> int:
                data = f"payload-{n}".encode()
                async with s.post(wp.url + "/upload", data=data,
                                  headers={"Host": "churn.localhost"}) as r:
                    body = await r.text()
                    assert r.status != 200 or body == str(len(data))
                    return r.status
            statuses.extend(await asyncio.gather(one(i), one(i + 1)))
    assert statuses and all(code == 200 for code in statuses), statuses
    assert len(started_pids(starts)) >= 3, "the app should have slept and woken several times"


async def test_unknown_host_gets_a_404_naming_it(tmp_path, start_wakeproxy):
    wp = start_wakeproxy({"apps": [app("known", tmp_path / "s.log")]})
    async with aiohttp.ClientSession() as s, s.get(
        wp.url + "/", headers={"Host": "nobody.localhost", "X-Forwarded-Host": "known.localhost"}
    ) as r:
        assert r.status == 404
        assert "nobody.localhost" in await r.text()


async def test_wake_timeout_answers_504_naming_the_app(tmp_path, start_wakeproxy):
    wp = start_wakeproxy({"apps": [{
        "name": "deaf", "hosts": ["deaf.localhost"], "command": "sleep 30", "wake_timeout": "1s",
    }]})
    t0 = time.monotonic()
    async with aiohttp.ClientSession() as s, s.get(
        wp.url + "/", headers={"Host": "deaf.localhost"}
    ) as r:
        assert r.status == 504
        assert "deaf" in await r.text()
        assert r.headers.get("Retry-After")
    assert 0.9 <= time.monotonic() - t0 < 5


async def test_app_crashing_while_waking_answers_502_and_logs_its_stderr(
    tmp_path, start_wakeproxy,
):
    wp = start_wakeproxy({"apps": [{
        "name": "broken", "hosts": ["broken.localhost"],
        "command": "echo 'database url missing' >&2; exit 3",
    }]})
    async with aiohttp.ClientSession() as s, s.get(
        wp.url + "/", headers={"Host": "broken.localhost"}
    ) as r:
        assert r.status == 502
        assert "broken" in await r.text()
    assert "database url missing" in wp.output()


async def test_sigterm_drains_in_flight_requests_and_stops_the_apps(tmp_path, start_wakeproxy):
    starts = tmp_path / "starts.log"
    wp = start_wakeproxy({"apps": [app("drain", starts)]})
    async with aiohttp.ClientSession() as s:
        async with s.get(wp.url + "/", headers={"Host": "drain.localhost"}) as r:
            assert r.status == 200
        slow = asyncio.ensure_future(
            s.get(wp.url + "/slow?s=1", headers={"Host": "drain.localhost"}))
        await asyncio.sleep(0.3)
        assert wp.proc is not None
        wp.proc.terminate()
        r = await slow
        assert r.status == 200
        assert "slow done" in await r.text()
        r.release()
    assert await asyncio.to_thread(wp.terminate) == 0
    assert_no_app_process(starts)
