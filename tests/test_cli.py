"""The `wakeproxy` command: config checks, and status/wake/sleep against a real admin server."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web

from tests.obs.world import ScriptedCommands, World, make_world
from wakeproxy.cli import format_duration, main
from wakeproxy.model.stats import HeadroomHeld
from wakeproxy.obs.admin import build_admin_app

TOKEN = "cli-test-token-0123456789"

GOOD = {
    "cluster": "dev",
    "listen": "127.0.0.1:0",
    "admin_listen": "127.0.0.1:0",
    "apps": [
        {"name": "hello", "hosts": ["hello.localhost"], "command": "python3 -m http.server $PORT"},
        {"name": "api", "hosts": ["api.localhost"], "command": "./api", "idle_after": "30s"},
    ],
}


def write(tmp_path: Path, name: str, doc: Any) -> Path:
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc))
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class AdminThread:
    """The real admin app on 127.0.0.1:<free port>, served by its own loop in a thread."""

    def __init__(self, token: str | None = None, headroom: HeadroomHeld | None = None) -> None:
        self.headroom = headroom
        self.world: World = make_world()
        self.commands = ScriptedCommands(self.world)
        self.token = token
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._runner: web.AppRunner | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._start())
        self._started.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._runner.cleanup())  # type: ignore[union-attr]
        self._loop.close()

    async def _start(self) -> None:
        app = build_admin_app(
            board=self.world.board, ledger=self.world.ledger, commands=self.commands,
            registry=self.world.registry(), cluster="dev", token=self.token,
            ready=lambda: True, clock=self.world.clock, headroom=lambda: self.headroom,
        )
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    def __enter__(self) -> AdminThread:
        self._thread.start()
        assert self._started.wait(10), "admin server did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
def admin() -> Iterator[AdminThread]:
    with AdminThread() as server:
        yield server


@pytest.fixture
def secured() -> Iterator[AdminThread]:
    with AdminThread(token=TOKEN) as server:
        yield server


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("WAKEPROXY_ADMIN", "WAKEPROXY_TOKEN"):
        monkeypatch.delenv(name, raising=False)


# -- check-config ------------------------------------------------------------------------


def test_check_config_accepts_a_good_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "cluster.yaml", GOOD)
    assert main(["check-config", str(path)]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == f"{path}: ok (2 apps)"
    assert err == ""


def test_check_config_lists_every_problem_with_file_and_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = {
        "cluster": "dev",
        "apps": [
            {"name": "hello", "hosts": ["hello.localhost"], "command": "x", "idle_after": "five"},
            {"name": "api", "hosts": ["api.localhost"], "command": "x", "wake_timout": "5s"},
        ],
    }
    path = write(tmp_path, "cluster.yaml", bad)
    assert main(["check-config", str(path)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    problems = err.strip().splitlines()
    assert f"{path}: apps[0].idle_after: expected a duration above zero like 30s or 5m, " \
           "or never, got 'five'" in problems
    assert any(p.startswith(f"{path}: apps[1].wake_timout: expected one of: ") for p in problems)
    assert len(problems) == 2


def test_check_config_checks_each_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write(tmp_path, "good.yaml", GOOD)
    bad = write(tmp_path, "bad.yaml", "listen: [oops")
    assert main(["check-config", str(good), str(bad)]) == 1
    out, err = capsys.readouterr()
    assert f"{good}: ok (2 apps)" in out
    assert err.startswith(f"{bad}: line ")
    assert "expected valid YAML" in err


def test_check_config_of_a_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(tmp_path / "nope.yaml")]) == 1
    assert "nope.yaml: expected a readable config file" in capsys.readouterr().err


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert main(["frobnicate"]) == 2
    assert main(["serve"]) == 2  # --config is required
    assert main(["check-config"]) == 2
    assert main(["wake"]) == 2
    err = capsys.readouterr().err
    assert "usage: wakeproxy" in err
    assert main(["--version"]) == 0


# -- serve -------------------------------------------------------------------------------


def test_serve_with_a_bad_config_reports_it_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "cluster.yaml", {"platform": "nomad"})
    assert main(["serve", "--config", str(path)]) == 1
    assert f"{path}: platform: expected one of: local, kubernetes, got 'nomad'" in \
        capsys.readouterr().err


def test_serve_hands_the_parsed_settings_to_the_app(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[Any] = []

    def run(settings: Any) -> int:
        seen.append(settings)
        return 7

    fake = types.ModuleType("wakeproxy.app")
    fake.run = run  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "wakeproxy.app", fake)
    path = write(tmp_path, "cluster.yaml", GOOD)
    assert main(["serve", "--config", str(path)]) == 7
    [settings] = seen
    assert settings.cluster == "dev"
    assert [a.policy.name for a in settings.apps] == ["hello", "api"]


# -- status ------------------------------------------------------------------------------


def test_status_prints_a_table(admin: AdminThread, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "--admin", admin.url]) == 0
    out = capsys.readouterr().out
    rows = out.splitlines()
    assert rows[0].split() == ["APP", "STATE", "HOSTS", "IN-FLIGHT", "LAST", "ACCESS", "IDLE",
                               "AFTER"]
    by_app = {r.split()[0]: r for r in rows[1:4]}
    assert by_app["api"].split() == ["api", "awake", "api.localhost", "2", "8s", "ago", "5m"]
    assert by_app["hello"].split() == [
        "hello", "asleep", "hello.localhost,*.hello.localhost", "0", "never", "30s"]
    assert by_app["docs"].split()[:2] == ["docs", "asleep"]
    assert by_app["docs"].split()[-1] == "1h"
    assert "docs: last wake failed: exited with code 3" in out
    assert "headroom" not in out  # the local platform holds none


def test_status_on_kubernetes_says_what_room_is_held_for_wakes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    held = HeadroomHeld(desired=2, ready=1, cpu_millis=500, memory_bytes=256 * 2**20)
    with AdminThread(headroom=held) as server:
        assert main(["status", "--admin", server.url]) == 0
        out = capsys.readouterr().out
        assert out.splitlines()[-1] == (
            "headroom: 2 placeholder pods (1 ready) holding 1 CPU, 512Mi memory for wakes")
        held.desired = held.ready = 0
        assert main(["status", "--admin", server.url]) == 0
        assert capsys.readouterr().out.splitlines()[-1] == (
            "headroom: none held (no sleeping app needs room, or it is turned off)")


def test_status_json_is_the_servers_list(
    admin: AdminThread, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["status", "--admin", admin.url, "--json"]) == 0
    apps = json.loads(capsys.readouterr().out)
    assert [a["name"] for a in apps] == ["api", "docs", "hello"]


def test_status_finds_the_admin_server_from_env(
    admin: AdminThread, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WAKEPROXY_ADMIN", f"127.0.0.1:{admin.port}")
    assert main(["status"]) == 0
    assert "hello" in capsys.readouterr().out


def test_status_finds_the_admin_server_from_the_config(
    admin: AdminThread, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "cluster.yaml", {**GOOD, "admin_listen": f"0.0.0.0:{admin.port}",
                                            "admin_token": "cli-test-token-0123"})
    assert main(["status", "--config", str(path)]) == 0
    assert "hello" in capsys.readouterr().out


def test_a_config_with_a_random_admin_port_needs_admin(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "cluster.yaml", GOOD)  # admin_listen: 127.0.0.1:0
    assert main(["status", "--config", str(path)]) == 1
    assert "admin_listen: port 0 is chosen at start-up" in capsys.readouterr().err


def test_unreachable_admin_server_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    assert main(["status", "--admin", url]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"wakeproxy: cannot reach the admin server at {url} (")
    assert "Traceback" not in err


# -- wake / sleep ------------------------------------------------------------------------


def test_wake_prints_the_outcome(admin: AdminThread, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["wake", "hello", "--admin", admin.url]) == 0
    out = capsys.readouterr().out
    assert out.startswith("hello: awake at 127.0.0.1:42000 (")
    assert admin.commands.finished == [("wake", "hello")]


def test_failed_wake_exits_1_with_the_servers_reason(
    admin: AdminThread, capsys: pytest.CaptureFixture[str]
) -> None:
    admin.commands.fail["hello"] = "command exited with code 3"
    assert main(["wake", "hello", "--admin", admin.url]) == 1
    err = capsys.readouterr().err
    assert err.strip() == ("wakeproxy: wake hello: hello failed to wake: command exited with "
                           "code 3 (HTTP 502)")


def test_wake_of_an_unknown_app(admin: AdminThread, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["wake", "ghost", "--admin", admin.url]) == 1
    assert "no app named 'ghost' (HTTP 404)" in capsys.readouterr().err


def test_sleep_prints_the_outcome(admin: AdminThread, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sleep", "api", "--admin", admin.url]) == 0
    assert capsys.readouterr().out.startswith("api: asleep (")
    assert admin.world.board.get("api").phase.value == "asleep"  # type: ignore[union-attr]


def test_writes_without_the_token_are_refused_with_a_hint(
    secured: AdminThread, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sleep", "api", "--admin", secured.url]) == 1
    err = capsys.readouterr().err
    assert "Bearer" in err and "HTTP 401" in err and "--token" in err
    assert main(["sleep", "api", "--admin", secured.url, "--token", "wrong-token"]) == 1
    assert "the bearer token is not valid" in capsys.readouterr().err
    assert secured.commands.calls == []


def test_token_from_flag_env_or_config(
    secured: AdminThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["wake", "hello", "--admin", secured.url, "--token", TOKEN]) == 0
    monkeypatch.setenv("WAKEPROXY_TOKEN", TOKEN)
    assert main(["sleep", "hello", "--admin", secured.url]) == 0
    monkeypatch.delenv("WAKEPROXY_TOKEN")
    token_file = write(tmp_path, "token", TOKEN + "\n")
    config = write(tmp_path, "cluster.yaml", {
        **GOOD, "admin_listen": f"127.0.0.1:{secured.port}", "admin_token_file": token_file.name,
    })
    assert main(["wake", "api", "--config", str(config)]) == 0
    assert secured.commands.finished == [("wake", "hello"), ("sleep", "hello"), ("wake", "api")]
    capsys.readouterr()


# -- the installed entry point -------------------------------------------------------------


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_PROXY": "127.0.0.1,localhost"}
    env.pop("WAKEPROXY_ADMIN", None)
    return subprocess.run([sys.executable, "-m", "wakeproxy", *args], capture_output=True,
                          text=True, timeout=60, env=env)


def test_python_dash_m_wakeproxy(tmp_path: Path, admin: AdminThread) -> None:
    good = write(tmp_path, "good.yaml", GOOD)
    bad = write(tmp_path, "bad.yaml", {"apps": [{"name": "x", "hosts": ["x.localhost"]}]})
    done = run_cli("check-config", str(good))
    assert (done.returncode, done.stdout.strip()) == (0, f"{good}: ok (2 apps)")
    done = run_cli("check-config", str(bad))
    assert done.returncode == 1
    assert done.stderr.strip() == \
        f"{bad}: apps[0].command: expected a shell command that listens on $PORT, got None"
    done = run_cli("status", "--admin", admin.url)
    assert done.returncode == 0, done.stderr
    assert "hello" in done.stdout
    done = run_cli("status", "--admin", f"http://127.0.0.1:{free_port()}")
    assert done.returncode == 1
    assert "cannot reach the admin server" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(("seconds", "text"), [
    (0.25, "250ms"), (1, "1s"), (30, "30s"), (90, "1m30s"), (300, "5m"), (3600, "1h"),
    (5400, "1h30m"), (90061, "1d1h"),
])
def test_durations_read_like_the_config(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
