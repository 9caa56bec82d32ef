"""The local platform with real processes: waking, probing, stopping, reporting exits."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import structlog
import uvloop

from tests.platforms.procs import (
    PY,
    alive,
    http_get,
    local_app,
    read_pid,
    server_command,
    wait_dead,
    wait_file,
)
from wakeproxy.controlplane.platform import WakeFailed
from wakeproxy.platforms.local import LocalPlatform
from wakeproxy.settings import LocalApp

MakePlatform = Callable[..., Awaitable[LocalPlatform]]


@pytest.fixture
async def make_platform() -> AsyncIterator[MakePlatform]:
    made: list[LocalPlatform] = []

    async def make(*apps: LocalApp) -> LocalPlatform:
        # wakeproxy's environment, with a secret its apps must never see
        platform = LocalPlatform(apps, environ={**os.environ, "SECRET_OF_WAKEPROXY": "x"})
        await platform.start()
        made.append(platform)
        return platform

    yield make
    for platform in made:
        await platform.close()


async def test_wake_returns_an_endpoint_that_answers(
    make_platform: MakePlatform, tmp_path: Path,
) -> None:
    platform = await make_platform(local_app("web", server_command()))
    (endpoint,) = await platform.wake("web", timeout=10)
    assert endpoint.host == "127.0.0.1"
    status, body = await http_get(endpoint)
    assert status == 200
    assert body.startswith("hello from")
    # Waking an app that is already awake hands back the same endpoint.
    assert await platform.wake("web", timeout=10) == (endpoint,)


async def test_command_gets_port_env_and_cwd(make_platform: MakePlatform, tmp_path: Path) -> None:
    seen = tmp_path / "seen"
    command = ('echo "$GREETING|$(pwd)|$PORT|$HOME|$SECRET_OF_WAKEPROXY" > seen; '
               + server_command())
    platform = await make_platform(
        local_app("web", command, cwd=str(tmp_path), env={"GREETING": "hi there"}))
    (endpoint,) = await platform.wake("web", timeout=10)
    greeting, cwd, port, home, secret = seen.read_text().strip().split("|")
    assert greeting == "hi there"
    assert Path(cwd) == tmp_path
    assert int(port) == endpoint.port
    # The basics of wakeproxy's environment (HOME, PATH, ...) and the app's env, nothing else.
    assert home == os.environ.get("HOME", "")
    assert secret == ""


async def test_exit_before_ready_fails_with_code_and_last_stderr_line(
    make_platform: MakePlatform,
) -> None:
    platform = await make_platform(local_app("boom", "echo first >&2; echo boom >&2; exit 3"))
    with structlog.testing.capture_logs() as logs, pytest.raises(WakeFailed) as failed:
        await platform.wake("boom", timeout=10)
    assert failed.value.reason == "process exited with code 3 while waking: boom"
    report = [e for e in logs if e["event"] == "app exited before it was ready"]
    assert report and report[0]["stderr_tail"] == ["first", "boom"]
    assert platform.recent_stderr("boom") == ["first", "boom"]


async def test_a_removed_app_leaves_no_stderr_behind_for_one_added_again(
    make_platform: MakePlatform,
) -> None:
    boom = local_app("boom", "echo first >&2; echo boom >&2; exit 3")
    platform = await make_platform(boom)
    with pytest.raises(WakeFailed):
        await platform.wake("boom", timeout=10)
    await platform.remove_app("boom")
    assert platform.recent_stderr("boom") == []
    platform.put_app(local_app("boom", "exit 4"))
    with pytest.raises(WakeFailed) as failed:
        await platform.wake("boom", timeout=10)
    assert failed.value.reason == "process exited with code 4 while waking"
    assert platform.recent_stderr("boom") == []


async def test_app_that_never_listens_times_out_and_is_killed(
    make_platform: MakePlatform, tmp_path: Path,
) -> None:
    platform = await make_platform(local_app("mute", f"echo $$ > {tmp_path}/pid; exec sleep 30"))
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await platform.wake("mute", timeout=0.3)
    assert time.monotonic() - started < 3
    assert not alive(read_pid(tmp_path / "pid"))


async def test_readiness_path_waits_for_a_status_below_500(
    make_platform: MakePlatform, tmp_path: Path,
) -> None:
    ready_file = tmp_path / "ready"
    app = local_app("web", server_command("--ready-file", str(ready_file)), readiness_path="/ready")
    platform = await make_platform(app)
    waking = asyncio.create_task(platform.wake("web", timeout=20))
    async with asyncio.timeout(10):  # until a probe was answered 503
        while "request /ready" not in platform.recent_stderr("web"):  # noqa: ASYNC110
            await asyncio.sleep(0.005)
    await asyncio.sleep(0.05)  # and ten more probe intervals
    assert not waking.done()
    ready_file.touch()
    (endpoint,) = await asyncio.wait_for(waking, 5)
    assert (await http_get(endpoint, "/ready"))[0] == 200


async def test_sleep_stops_the_whole_process_group(
    make_platform: MakePlatform, tmp_path: Path,
) -> None:
    pidfile, childfile = tmp_path / "pid", tmp_path / "child"
    platform = await make_platform(
        local_app("web", server_command("--pidfile", str(pidfile), "--child", str(childfile))))
    await platform.wake("web", timeout=10)
    server, child = read_pid(pidfile), read_pid(childfile)
    assert alive(server) and alive(child)
    await platform.sleep("web")
    assert not alive(server)
    assert not alive(child)
    assert platform.pid("web") is None
    await platform.sleep("web")  # idempotent


async def test_sleep_kills_an_app_that_ignores_sigterm_after_its_grace(
    make_platform: MakePlatform, tmp_path: Path,
) -> None:
    pidfile = tmp_path / "pid"
    platform = await make_platform(local_app(
        "stubborn", server_command("--pidfile", str(pidfile), "--ignore-term"), stop_grace=0.3))
    await platform.wake("stubborn", timeout=10)
    started = time.monotonic()
    await platform.sleep("stubborn")
    assert 0.3 <= time.monotonic() - started < 3
    assert not alive(read_pid(pidfile))


async def test_an_exit_while_awake_is_reported_and_the_app_can_wake_again(
    make_platform: MakePlatform, tmp_path: Path,
) -> None:
    pidfile = tmp_path / "pid"
    platform = await make_platform(local_app("web", server_command("--pidfile", str(pidfile))))
    await platform.wake("web", timeout=10)
    first = read_pid(pidfile)
    os.kill(first, signal.SIGKILL)
    event = await asyncio.wait_for(platform.next_event(), 5)
    assert event.app == "web"
    assert "SIGKILL" in event.reason
    pidfile.unlink()
    (endpoint,) = await platform.wake("web", timeout=10)
    assert read_pid(pidfile) != first
    assert (await http_get(endpoint))[0] == 200


async def test_stops_we_cause_are_not_reported(make_platform: MakePlatform) -> None:
    platform = await make_platform(local_app("web", server_command()))
    await platform.wake("web", timeout=10)
    await platform.sleep("web")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(platform.next_event(), 0.2)


async def test_output_lines_become_log_lines_tagged_with_app_and_stream(
    make_platform: MakePlatform,
) -> None:
    command = "echo to-out; echo to-err >&2; " + server_command()
    with structlog.testing.capture_logs() as logs:
        platform = await make_platform(local_app("web", command))
        await platform.wake("web", timeout=10)
        for _ in range(200):
            lines = {(e["event"], e.get("app"), e.get("stream")) for e in logs}
            if ("to-out", "web", "stdout") in lines and ("to-err", "web", "stderr") in lines:
                break
            await asyncio.sleep(0.01)
    assert ("to-out", "web", "stdout") in lines
    assert ("to-err", "web", "stderr") in lines


async def test_a_cancelled_wake_leaves_no_process(
    make_platform: MakePlatform, tmp_path: Path,
) -> None:
    platform = await make_platform(local_app("mute", f"echo $$ > {tmp_path}/pid; exec sleep 30"))
    waking = asyncio.create_task(platform.wake("mute", timeout=30))
    await wait_file(tmp_path / "pid")
    waking.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waking
    await wait_dead(read_pid(tmp_path / "pid"))


async def test_close_stops_every_app(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    platform = LocalPlatform([
        local_app("a", server_command("--pidfile", str(a))),
        local_app("b", server_command("--pidfile", str(b), "--term-delay", "0.2")),
        local_app("mute", f"echo $$ > {tmp_path}/mute; exec sleep 30"),
    ])
    await platform.start()
    try:
        await platform.wake("a", timeout=10)
        await platform.wake("b", timeout=10)
        waking = asyncio.create_task(platform.wake("mute", timeout=30))
        await wait_file(tmp_path / "mute")
    finally:
        await platform.close()
    with pytest.raises(WakeFailed, match="stopped while waking"):
        await waking
    for pid in (read_pid(a), read_pid(b), read_pid(tmp_path / "mute")):
        assert not alive(pid)


async def test_unknown_app_and_unstartable_command_fail_cleanly(
    make_platform: MakePlatform, tmp_path: Path,
) -> None:
    platform = await make_platform(
        local_app("lost", server_command(), cwd=str(tmp_path / "no-such-dir")))
    with pytest.raises(WakeFailed, match="no local app named 'nope'"):
        await platform.wake("nope", timeout=1)
    with pytest.raises(WakeFailed, match="could not start the command"):
        await platform.wake("lost", timeout=1)


def test_works_under_uvloop(tmp_path: Path) -> None:
    async def scenario() -> None:
        pidfile = tmp_path / "pid"
        platform = LocalPlatform([
            local_app("web", server_command("--pidfile", str(pidfile))),
            local_app("boom", "echo boom >&2; exit 3"),
        ])
        await platform.start()
        try:
            (endpoint,) = await platform.wake("web", timeout=10)
            assert (await http_get(endpoint))[0] == 200
            with pytest.raises(WakeFailed, match="code 3 while waking: boom"):
                await platform.wake("boom", timeout=10)
            await platform.sleep("web")
            assert not alive(read_pid(pidfile))
        finally:
            await platform.close()

    uvloop.run(scenario())


_HOST = """
import asyncio, sys
from wakeproxy.model.apps import AppPolicy
from wakeproxy.platforms.local import LocalPlatform
from wakeproxy.settings import LocalApp

async def main():
    app = LocalApp(policy=AppPolicy(name="web", hosts=("web.localhost",)), command=sys.argv[1])
    platform = LocalPlatform([app])
    await platform.start()
    await platform.wake("web", timeout=20)
    print("READY", flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


async def test_apps_die_with_wakeproxy_even_when_it_is_sigkilled(tmp_path: Path) -> None:
    pidfile, childfile = tmp_path / "pid", tmp_path / "child"
    command = server_command("--pidfile", str(pidfile), "--child", str(childfile))
    host = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _HOST, command,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        assert host.stdout is not None
        async with asyncio.timeout(20):
            while (line := await host.stdout.readline()) and line.strip() != b"READY":
                pass
        server, child = read_pid(pidfile), read_pid(childfile)
        assert alive(server) and alive(child)
        host.kill()
        await host.wait()
        await wait_dead(server, child, within=5)
    finally:
        if host.returncode is None:
            host.kill()
            await host.wait()


async def test_output_is_read_as_whole_lines_whatever_the_pipe_reads_bring(
    make_platform: MakePlatform,
) -> None:
    """CRLF endings, a line written in two parts, bytes that are not UTF-8 and a line
    longer than 64 KiB (in pieces, once 64 KiB of it wait) reach app-logs as the app
    meant them."""
    command = ("printf 'one\\r\\ntwo\\r\\n'; printf 'spl'; sleep 0.2; printf 'it\\n'; "
               "printf '\\377bad\\n'; head -c 70000 /dev/zero | tr '\\0' x; echo; "
               + server_command())
    platform = await make_platform(local_app("web", command))
    await platform.wake("web", timeout=10)
    for _ in range(200):
        lines = await platform.follow_output("web", 100, follow=False).next() or []
        if any(line.startswith("listening on") for line in lines):
            break
        await asyncio.sleep(0.01)
    start = lines.index("one")
    assert lines[start:start + 4] == ["one", "two", "split", "\ufffdbad"]
    long = [line for line in lines[start + 4:] if line.startswith("x")]
    assert "".join(long) == "x" * 70000 and len(long) <= 2


async def test_a_chatty_app_costs_a_read_per_pause_not_one_per_write(tmp_path: Path) -> None:
    """An app printing a line every millisecond: its output is read (and echoed, kept,
    handed to followers) a few hundred times a second at most, every line arriving."""
    talker = tmp_path / "talk.py"
    talker.write_text("import sys, time\n"
                      "for i in range(1000):\n"
                      "    sys.stdout.write(f'line {i}\\n')\n"
                      "    sys.stdout.flush()\n"
                      "    time.sleep(0.001)\n")
    blocks: list[str] = []
    platform = LocalPlatform([local_app("talk", f"{PY} {talker}; " + server_command())],
                             echo=lambda app, stream, text: blocks.append(text))
    await platform.start()
    try:
        started = time.monotonic()
        await platform.wake("talk", timeout=20)
        lines: list[str] = []
        while "line 999" not in lines:
            await asyncio.sleep(0.05)
            lines = "\n".join(blocks).split("\n")
        seconds = time.monotonic() - started
        assert [line for line in lines if line.startswith("line ")] == \
            [f"line {i}" for i in range(1000)]
        assert len(blocks) <= 250 * seconds + 10, (len(blocks), seconds)  # ≤ one per 5 ms
    finally:
        await platform.close()
