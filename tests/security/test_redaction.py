"""A repo URL's credentials never leave wakeproxy: not in build logs, API answers, the
CLI, wakeproxy's own log, nor (on Kubernetes) the build Job's annotations and env."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from tests.controllers.gitrepo import app_command
from tests.e2e.harness import Wakeproxy, free_port
from wakeproxy.controllers.builds import BuildLog
from wakeproxy.model.redact import credentials, redact

TOKEN = "security-admin-token-0123"
CREDENTIAL = "ghs_16C7e42F292c6912E7710c838347Ae178B4a"


def test_urls_lose_their_credentials_and_nothing_else() -> None:
    cases = {
        f"https://x-access-token:{CREDENTIAL}@github.com/acme/shop.git":
            "https://x-access-token:***@github.com/acme/shop.git",
        f"https://{CREDENTIAL}@github.com/acme/shop": "https://***@github.com/acme/shop",
        "https://user:p%40ss@git.example/shop": "https://user:***@git.example/shop",
        "ssh://git@github.com/acme/shop.git": "ssh://git@github.com/acme/shop.git",
        "git@github.com:acme/shop.git": "git@github.com:acme/shop.git",
        "/srv/git/shop.git": "/srv/git/shop.git",
        f"fatal: unable to access 'https://u:{CREDENTIAL}@h/x/': 403":
            "fatal: unable to access 'https://u:***@h/x/': 403",
    }
    for given, shown in cases.items():
        assert redact(given) == shown
    assert credentials("https://user:p%40ss@git.example/shop") == ("p%40ss", "p@ss")
    log = BuildLog()
    log.hide(credentials(f"https://x-access-token:{CREDENTIAL}@github.com/acme/shop"))
    log.write(f"remote: {CREDENTIAL} denied\n".encode())
    assert log.read(0)[0] == b"remote: *** denied\n"


def get(wp: Wakeproxy, path: str) -> str:
    req = urllib.request.Request(wp.admin + path, headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return str(r.read().decode())


def test_a_build_of_a_repo_url_with_a_token_never_shows_it(
    tmp_path: Path, start_wakeproxy: Any,
) -> None:
    url = f"http://x-access-token:{CREDENTIAL}@127.0.0.1:{free_port()}/acme/shop.git"
    wp = start_wakeproxy({
        "admin_token": TOKEN, "builds_dir": str(tmp_path / "builds"),
        "apps": [{"name": "shop", "hosts": ["shop.localhost"], "repo": url,
                  "build": "true", "command": app_command()}]})
    req = urllib.request.Request(
        wp.admin + "/api/v1/apps/shop/builds", method="POST", data=b'{"ref": "main"}',
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        build: dict[str, Any] = json.loads(r.read())
    deadline = time.monotonic() + 20
    while json.loads(get(wp, f"/api/v1/builds/{build['id']}"))["state"] != "failed":
        assert time.monotonic() < deadline, wp.output()
        time.sleep(0.05)
    log = get(wp, f"/api/v1/builds/{build['id']}/log")
    assert "==> git fetch http://x-access-token:***@127.0.0.1:" in log
    cli = subprocess.run(
        [sys.executable, "-m", "wakeproxy", "logs", build["id"], "--admin", wp.admin,
         "--token", TOKEN], capture_output=True, text=True, timeout=30, check=False)
    assert "x-access-token:***@" in cli.stdout, cli.stderr
    shown = [log, cli.stdout, cli.stderr, get(wp, "/api/v1/builds"),
             get(wp, f"/api/v1/builds/{build['id']}"), get(wp, "/api/v1/apps"), wp.output()]
    for text in shown:
        assert CREDENTIAL not in text
