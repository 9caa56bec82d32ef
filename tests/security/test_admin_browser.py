"""A web page in the operator's browser, or a pod, against the admin API of a running
`wakeproxy serve`: simple (no-preflight) POSTs, DNS rebinding, foreign origins, an admin
port open to the network without a token, build logs read without it."""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from tests.controllers.gitrepo import Repo, app_command
from tests.e2e.harness import Wakeproxy, free_port

TOKEN = "security-admin-token-0123"
SECRET = b"webhook-secret-for-tests"


def shop(repo: Repo) -> dict[str, Any]:
    return {"name": "shop", "hosts": ["shop.localhost"], "repo": repo.url,
            "github_repo": "acme/shop", "build": "sh build.sh", "command": app_command()}


async def builds(s: aiohttp.ClientSession, wp: Wakeproxy, **headers: str) -> Any:
    async with s.get(wp.admin + "/api/v1/builds", headers=headers) as r:
        return await r.json()


async def test_a_page_cannot_start_a_build_with_a_simple_post(
    tmp_path: Path, start_wakeproxy: Any,
) -> None:
    """No token (the local default): what a form, `text/plain` or body-less `fetch` can
    send without a CORS preflight is refused 415, and builds nothing."""
    repo = Repo(tmp_path / "git")
    repo.commit("hello")
    wp = start_wakeproxy({"builds_dir": str(tmp_path / "builds"), "apps": [shop(repo)]})
    simple = [
        ({"Content-Type": "text/plain"}, b'{"ref": "main"}'),
        ({"Content-Type": "application/x-www-form-urlencoded"}, b"ref=main"),
        ({"Content-Type": "multipart/form-data; boundary=x"}, b"--x--\r\n"),
        ({}, b""),
    ]
    async with aiohttp.ClientSession() as s:
        for headers, body in simple:
            for path in ("/api/v1/apps/shop/builds", "/api/v1/apps/shop/wake"):
                async with s.post(wp.admin + path, data=body,
                                  headers={"Origin": "null", **headers}) as r:
                    assert r.status == 403, (path, headers)
                async with s.post(wp.admin + path, data=body, headers=headers) as r:
                    assert r.status == 415, (path, headers, await r.text())
                    assert "application/json" in (await r.json())["error"]
        assert await builds(s, wp) == []
        assert wp.app_state("shop") == "asleep"
        # The CLI's way (JSON) works.
        async with s.post(wp.admin + "/api/v1/apps/shop/builds", json={"ref": "main"}) as r:
            assert r.status == 202


async def test_dns_rebinding_and_foreign_origins_are_refused(
    tmp_path: Path, start_wakeproxy: Any,
) -> None:
    repo = Repo(tmp_path / "git")
    repo.commit("hello")
    wp = start_wakeproxy({"builds_dir": str(tmp_path / "builds"), "apps": [shop(repo)],
                          "admin_hosts": ["wakeproxy-admin.wakeproxy.svc"]})
    port = wp.admin_port
    refused = [
        {"Host": f"attacker.example:{port}"},  # a name rebound to 127.0.0.1
        {"Host": "attacker.example"},
        {"Host": f"localhost.attacker.example:{port}"},
        {"Host": f"127.0.0.1:{port}", "Origin": "http://attacker.example"},
        {"Host": f"127.0.0.1:{port}", "Origin": f"http://127.0.0.1:{port + 1}"},
        {"Host": f"127.0.0.1:{port}", "Origin": "null"},
        {"Host": f"127.0.0.1:{port}", "Sec-Fetch-Site": "cross-site"},
        {"Host": f"127.0.0.1:{port}", "Sec-Fetch-Site": "same-site"},
        {"Host": "bad host"},
    ]
    allowed = [
        {"Host": f"127.0.0.1:{port}"}, {"Host": f"localhost:{port}"}, {"Host": f"[::1]:{port}"},
        {"Host": f"wakeproxy-admin.wakeproxy.svc:{port}"},
        {"Host": f"127.0.0.1:{port}", "Origin": f"http://127.0.0.1:{port}",
         "Sec-Fetch-Site": "same-origin"},
    ]
    async with aiohttp.ClientSession() as s:
        for headers in refused:
            async with s.get(wp.admin + "/api/v1/apps", headers=headers) as r:
                assert r.status == 403, headers
                assert "refused" in (body := (await r.json())["error"]) or "Host" in body
            async with s.post(wp.admin + "/api/v1/apps/shop/builds", json={"ref": "main"},
                              headers=headers) as r:
                assert r.status == 403, headers
        assert await builds(s, wp) == []
        for headers in allowed:
            async with s.get(wp.admin + "/api/v1/apps", headers=headers) as r:
                assert r.status == 200, headers


def check_config(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "wakeproxy", "check-config", str(path)],
                          capture_output=True, text=True, timeout=60, check=False)


def test_an_admin_port_open_to_the_network_needs_a_token(tmp_path: Path) -> None:
    config = {"listen": "127.0.0.1:0", "admin_listen": f"0.0.0.0:{free_port()}",
              "apps": [{"name": "a", "hosts": ["a.localhost"], "command": "true"}]}
    path = tmp_path / "wakeproxy.yaml"
    path.write_text(yaml.safe_dump(config))
    checked = check_config(path)
    assert checked.returncode != 0
    assert "admin_token_file: expected a token (admin_token_file or admin_token) because " \
           "admin_listen 0.0.0.0:" in checked.stdout + checked.stderr
    served = subprocess.run(
        [sys.executable, "-m", "wakeproxy", "serve", "--config", str(path)],
        capture_output=True, text=True, timeout=60, check=False)
    assert served.returncode != 0 and "admin_token_file" in served.stdout + served.stderr
    (tmp_path / "token").write_text("x" * 32)
    path.write_text(yaml.safe_dump({**config, "admin_token_file": "token"}))
    assert check_config(path).returncode == 0
    path.write_text(yaml.safe_dump({**config, "admin_listen": "127.0.0.1:0"}))
    assert check_config(path).returncode == 0


def signed(body: bytes) -> dict[str, str]:
    return {"X-GitHub-Event": "pull_request", "X-GitHub-Delivery": str(uuid.uuid4()),
            "X-Hub-Signature-256": "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest(),
            "Content-Type": "application/json"}


async def test_the_webhook_has_a_listener_of_its_own_that_serves_nothing_else(
    tmp_path: Path, start_wakeproxy: Any,
) -> None:
    repo = Repo(tmp_path / "git")
    sha = repo.commit("hello")
    (tmp_path / "secret").write_bytes(SECRET)
    hook_port = free_port()
    wp = start_wakeproxy({
        "admin_token": TOKEN, "builds_dir": str(tmp_path / "builds"), "apps": [shop(repo)],
        "webhook_listen": f"127.0.0.1:{hook_port}",
        "review_apps": {"domain": "review.localhost", "webhook_secret_file": "secret"}})
    hooks = f"http://127.0.0.1:{hook_port}"
    body = json.dumps({"action": "opened", "number": 1, "repository": {"full_name": "acme/shop"},
                       "pull_request": {"number": 1, "head": {
                           "sha": sha, "repo": {"full_name": "acme/shop"}}}}).encode()
    async with aiohttp.ClientSession() as s:
        # GitHub's own Host (whatever the public name) is fine on the webhook's listener.
        async with s.post(hooks + "/hooks/github", data=body,
                          headers={**signed(body), "Host": "hooks.example.com"}) as r:
            assert r.status == 202, await r.text()
            assert (await r.json())["review_apps"] == ["pr-1-shop"]
        async with s.post(hooks + "/hooks/github", data=body,
                          headers={**signed(b"other"), "Host": "hooks.example.com"}) as r:
            assert r.status == 401
        for method, path in (("GET", "/api/v1/apps"), ("GET", "/metrics"),
                             ("POST", "/api/v1/apps/shop/builds"), ("GET", "/api/v1/builds")):
            async with s.request(method, hooks + path, json={}, headers={
                    "Authorization": f"Bearer {TOKEN}"}) as r:
                assert r.status in (404, 405), (method, path)
        # Build logs (and the builds list, whose reasons quote them) need the token.
        async with s.get(wp.admin + "/api/v1/builds") as r:
            assert r.status == 401
        listed = await builds(s, wp, Authorization=f"Bearer {TOKEN}")
        assert [b["app"] for b in listed] == ["pr-1-shop"]
        for path in (f"/api/v1/builds/{listed[0]['id']}",
                     f"/api/v1/builds/{listed[0]['id']}/log"):
            async with s.get(wp.admin + path) as r:
                assert r.status == 401, path
            async with s.get(wp.admin + path, headers={"Authorization": f"Bearer {TOKEN}"}) as r:
                assert r.status == 200, path
        # App state and metrics stay readable for dashboards and Prometheus.
        async with s.get(wp.admin + "/metrics") as r:
            assert r.status == 200
