"""SIGKILL of `wakeproxy serve` in the middle of a local build: every process of the build
(git, the build command and what it forked) is gone moments later, as an app's would be,
instead of running on as a stray nobody will stop."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from pathlib import Path

import aiohttp

from tests.controllers.gitrepo import Repo, app_command
from tests.e2e.harness import Wakeproxy, pids_alive
from tests.platforms.procs import wait_file
from tests.soak.support import figure

TOKEN = "admin-token-for-tests-0123"

# The build command leads a process group holding a long sleep, a subshell and that
# subshell's own sleep; each records its pid so the test can look for it afterwards.
LONG_BUILD = """\
echo $$ > {pids}/shell
sleep 30 &
echo $! > {pids}/sleep
( sleep 30 & echo $! > {pids}/grandchild; wait ) &
echo $! > {pids}/subshell
echo building
wait
"""
RECORDED = ("shell", "sleep", "subshell", "grandchild")


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name, or None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rfind(")") + 2 :].split()


def group_members(pgid: int) -> list[int]:
    """Live processes of the group (a zombie has exited: it does not count)."""
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit() and (f := _stat(int(name))) and int(f[2]) == pgid and f[0] != "Z":
            found.append(int(name))
    return found


def children_named(parent: int, name: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or (f := _stat(int(entry))) is None or int(f[1]) != parent:
            continue
        with contextlib.suppress(OSError):
            if name.encode() in Path(f"/proc/{entry}/cmdline").read_bytes():
                found.append(int(entry))
    return found


async def test_a_sigkilled_wakeproxy_takes_its_running_build_with_it(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    pids.mkdir()
    repo = Repo(tmp_path / "git")
    repo.commit("slow", build=LONG_BUILD.format(pids=pids))
    wp = Wakeproxy(tmp_path, {
        "admin_token": TOKEN,
        "builds_dir": str(tmp_path / "builds"),
        "apps": [{"name": "shop", "hosts": ["shop.localhost"], "repo": repo.url,
                  "build": "sh build.sh", "command": app_command()}],
    }).start()
    pgid: int | None = None
    recorded: list[int] = []
    try:
        assert wp.proc is not None
        watchdogs = children_named(wp.proc.pid, "wakeproxy-watchdog")
        assert len(watchdogs) == 1
        async with aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {TOKEN}"}) as s, s.post(
                wp.admin + "/api/v1/apps/shop/builds", json={"ref": "main"}) as r:
            assert r.status == 202, await r.text()
            build = (await r.json())["id"]
        for name in RECORDED:
            await wait_file(pids / name)
        recorded = [int((pids / name).read_text()) for name in RECORDED]
        fields = _stat(recorded[0])
        assert fields is not None
        pgid = int(fields[2])
        members = group_members(pgid)
        assert set(recorded) <= set(members), (recorded, members)
        assert wp.api(f"/api/v1/builds/{build}")["state"] == "running"

        wp.proc.send_signal(signal.SIGKILL)
        wp.proc.wait(5)
        killed = time.monotonic()
        while group_members(pgid) or pids_alive([*recorded, *watchdogs]):
            assert time.monotonic() - killed < 2.0, (
                f"still running 2s after wakeproxy was SIGKILLed: group {group_members(pgid)},"
                f" pids {pids_alive([*recorded, *watchdogs])}")
            await asyncio.sleep(0.01)
        gone_after = time.monotonic() - killed
    finally:
        # A failed run must not leave its processes behind either.
        if wp.proc is not None and wp.proc.poll() is None:
            wp.proc.kill()
            wp.proc.wait()
        if pgid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
        for pid in pids_alive(recorded):
            os.kill(pid, signal.SIGKILL)
    figure("faults", f"SIGKILL of wakeproxy during a build ({len(members)} processes in the "
                     f"build's group, one forked two levels down): all gone after "
                     f"{gone_after * 1000:.0f} ms, and the watchdog too")
