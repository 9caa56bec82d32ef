"""Builds: a real git fetch into a release directory, the build command's output as the
log, and failures, timeouts and cancellations that leave nothing behind."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.controllers.gitrepo import BAD_BUILD, Repo
from tests.platforms.procs import alive, wait_dead
from wakeproxy.controllers.builder import LocalBuilder, Source
from wakeproxy.controllers.builds import BuildState

ENV = {"PATH": "/usr/bin:/bin"}


async def test_a_build_checks_out_the_ref_and_runs_the_build_command(tmp_path: Path) -> None:
    repo = Repo(tmp_path / "git")
    sha = repo.commit("hello")
    builder = LocalBuilder(root=tmp_path / "builds", environ=ENV)
    build = await builder.wait(builder.start("shop", Source(repo.url, "sh build.sh"), "main"))
    assert build.state is BuildState.SUCCEEDED, build.log.tail()
    assert build.commit == sha
    assert build.release_dir is not None
    assert (Path(build.release_dir) / "content.txt").read_text() == "hello"
    log = build.log.read(0)[0].decode()
    assert f"building {sha}" in log and "built" in log
    assert builder.list() == [build]


async def test_a_failing_build_says_why_and_leaves_no_release(tmp_path: Path) -> None:
    repo = Repo(tmp_path / "git")
    repo.commit("broken", build=BAD_BUILD)
    builder = LocalBuilder(root=tmp_path / "builds", environ=ENV)
    build = await builder.wait(builder.start("shop", Source(repo.url, "sh build.sh"), "main"))
    assert build.state is BuildState.FAILED
    assert build.exit_code == 3
    assert build.reason == "the build command exited with code 3"
    assert "boom: missing dependency" in build.log.tail()
    assert list((tmp_path / "builds" / "shop").iterdir()) == []


async def test_an_unknown_ref_fails_at_the_fetch(tmp_path: Path) -> None:
    repo = Repo(tmp_path / "git")
    repo.commit("x")
    builder = LocalBuilder(root=tmp_path / "builds", environ=ENV)
    build = await builder.wait(builder.start("shop", Source(repo.url), "nope"))
    assert build.state is BuildState.FAILED
    assert build.reason == "git fetch exited with code 128"
    assert any("nope" in line for line in build.log.tail())


async def test_cancel_and_timeout_stop_the_build_process(tmp_path: Path) -> None:
    repo = Repo(tmp_path / "git")
    repo.commit("slow", build="echo $$ > ../slow.pid\nsleep 30\n")
    builder = LocalBuilder(root=tmp_path / "builds", environ=ENV, timeout=1.0)
    slow = Source(repo.url, "sh build.sh")
    timed_out = await builder.wait(builder.start("shop", slow, "main"))
    assert timed_out.state is BuildState.FAILED
    assert timed_out.reason == "the build took longer than 1s"

    pid_file = tmp_path / "builds" / "shop" / "slow.pid"
    assert not alive(int(pid_file.read_text()))
    pid_file.unlink()

    builder = LocalBuilder(root=tmp_path / "builds", environ=ENV, timeout=30.0)
    build = builder.start("shop", slow, "main")
    while not pid_file.exists():
        assert not build.state.finished, build.log.tail()
        await asyncio.sleep(0.02)
    pid = int(pid_file.read_text())
    builder.cancel(build.id, "superseded")
    await builder.wait(build)
    assert build.state is BuildState.CANCELLED and build.reason == "superseded"
    assert not alive(pid)
    assert not (tmp_path / "builds" / "shop" / build.id).exists()


async def test_a_build_cancelled_while_queued_ends_cancelled(tmp_path: Path) -> None:
    repo = Repo(tmp_path / "git")
    repo.commit("x")
    builder = LocalBuilder(root=tmp_path / "builds", environ=ENV, concurrency=1)
    first = builder.start("shop", Source(repo.url), "main")
    second = builder.start("shop", Source(repo.url), "main")
    builder.cancel(second.id, "not wanted")
    await builder.wait(second)
    await builder.wait(first)
    assert second.state is BuildState.CANCELLED
    assert first.state is BuildState.SUCCEEDED


async def test_what_a_build_step_leaves_running_is_stopped_when_it_ends(tmp_path: Path) -> None:
    repo = Repo(tmp_path / "git")
    # A daemon that let go of the output pipe: the step ends while it still runs.
    repo.commit("x", build="sleep 30 > /dev/null 2>&1 &\necho $! > ../daemon.pid\n"
                           "cp content.src content.txt\n")
    builder = LocalBuilder(root=tmp_path / "builds", environ=ENV)
    build = await builder.wait(builder.start("shop", Source(repo.url, "sh build.sh"), "main"))
    assert build.state is BuildState.SUCCEEDED, build.log.tail()
    await wait_dead(int((tmp_path / "builds" / "shop" / "daemon.pid").read_text()), within=2)
