"""The README's first command: the demo app of config/local.yaml, as a newcomer meets it.

It must serve a page meant to be seen, not a listing of the repository (with .git/ and
.venv/), and what the demo writes must not show up as untracked files."""

from __future__ import annotations

import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from tests.e2e.harness import Wakeproxy
from wakeproxy.settings.load import load_settings

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "config" / "local.yaml"


def get(wp: Wakeproxy, path: str) -> tuple[int, str]:
    req = urllib.request.Request(wp.url + path, headers={"Host": "hello.localhost"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(req, timeout=20) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_the_demo_app_serves_its_own_page_and_nothing_of_the_repository(
        start_wakeproxy: Callable[..., Wakeproxy]) -> None:
    (hello,) = load_settings(DEMO).apps
    wp = start_wakeproxy({"apps": [{
        "name": "hello", "hosts": list(hello.policy.hosts), "command": hello.command,
        "cwd": hello.cwd}]})
    status, body = get(wp, "/")
    assert status == 200
    assert "Hello from a sleeping app" in body
    assert "pyproject.toml" not in body and ".git" not in body
    for path in ("/.git/", "/.venv/", "/config/local.yaml", "/pyproject.toml"):
        assert get(wp, path)[0] == 404, path


def test_a_relative_cwd_is_relative_to_the_config_file(tmp_path: Path) -> None:
    (hello,) = load_settings(DEMO).apps
    assert hello.cwd == str(ROOT / "config" / "hello")


def test_what_the_demo_writes_beside_its_config_is_ignored_by_git() -> None:
    builds_dir = Path(load_settings(DEMO).builds_dir)
    state = builds_dir / "state.json"
    assert state.is_relative_to(ROOT / "config")
    r = subprocess.run(["git", "-C", str(ROOT), "check-ignore", "-q", str(state)], check=False)
    assert r.returncode == 0, f"{state.relative_to(ROOT)} would show up as untracked"
