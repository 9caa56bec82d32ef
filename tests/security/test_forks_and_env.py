"""A stranger's pull request against a running `wakeproxy serve`: a fork is not built
unless allowed, and what is built and run sees only what its config gives it (never
wakeproxy's environment, the base app's secrets or, with run_as, the admin token)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.controllers.gitrepo import Repo
from tests.e2e.harness import Wakeproxy

TOKEN = "security-admin-token-0123"
SECRET = b"webhook-secret-for-tests"
CANARY = "wakeproxy-environment-canary-7f3a"
BASE_SECRET = "base-app-database-password-91c2"
HOST = "pr-{n}-shop.review.localhost"

# A pull request's code that shows everything it can see: its build writes the build's
# environment and whatever it can read of the admin token into content.txt; the app
# answers with that, its own environment and its uid.
SPY_BUILD = """\
env | sort > content.txt
cat "$TOKEN_FILE" >> content.txt 2>/dev/null && echo TOKEN-READ >> content.txt
echo built
"""
SPY_APP = """\
import http.server, json, os, pathlib

built = pathlib.Path("content.txt").read_text()
body = json.dumps({"uid": os.getuid(), "env": dict(os.environ), "built": built}).encode()


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"""


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory another user can enter (pytest's tmp is private to root)."""
    d = Path(tempfile.mkdtemp(prefix="wakeproxy-sec-", dir="/tmp"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def spy_repo(root: Path) -> tuple[Repo, str]:
    repo = Repo(root)
    (repo.work / "app.py").write_text(SPY_APP)
    return repo, repo.commit("spy", build=SPY_BUILD, branch="feature")


def config(tmp: Path, repo: Repo, **review: Any) -> dict[str, Any]:
    (tmp / "secret").write_bytes(SECRET)
    token = tmp / "admin-token"
    token.write_text(TOKEN)
    token.chmod(0o600)
    return {
        "admin_token_file": str(token), "builds_dir": str(tmp / "builds"),
        "review_apps": {"domain": "review.localhost",
                        "webhook_secret_file": str(tmp / "secret"),
                        **review},
        "apps": [{
            "name": "shop", "hosts": ["shop.localhost"], "repo": repo.url,
            "github_repo": "acme/shop", "build": "sh build.sh",
            "command": "exec /usr/bin/python3 app.py",
            "env": {"DATABASE_PASSWORD": BASE_SECRET},
            "review_env": {"TOKEN_FILE": str(token), "REVIEW": "yes"},
        }],
    }


def pr(action: str, sha: str, *, number: int = 1, fork: str | None = "stranger/shop",
       author: str = "stranger", association: str = "NONE",
       label: str | None = None) -> bytes:
    doc: dict[str, Any] = {
        "action": action, "number": number, "repository": {"full_name": "acme/shop"},
        "pull_request": {
            "number": number, "author_association": association, "user": {"login": author},
            # None: GitHub's null for a fork deleted since.
            "head": {"sha": sha, "repo": None if fork is None else {"full_name": fork}}},
    }
    if label is not None:
        doc["label"] = {"name": label}
    return json.dumps(doc).encode()


async def hook(s: aiohttp.ClientSession, wp: Wakeproxy, body: bytes) -> dict[str, Any]:
    headers = {"X-GitHub-Event": "pull_request", "X-GitHub-Delivery": str(uuid.uuid4()),
               "Content-Type": "application/json",
               "X-Hub-Signature-256": "sha256=" + hmac.new(SECRET, body,
                                                           hashlib.sha256).hexdigest()}
    async with s.post(wp.admin + "/hooks/github", data=body, headers=headers) as r:
        assert r.status == 202, await r.text()
        answer: dict[str, Any] = await r.json()
        return answer


async def builds(s: aiohttp.ClientSession, wp: Wakeproxy) -> list[dict[str, Any]]:
    async with s.get(wp.admin + "/api/v1/builds",
                     headers={"Authorization": f"Bearer {TOKEN}"}) as r:
        listed: list[dict[str, Any]] = await r.json()
        return listed


async def served(s: aiohttp.ClientSession, wp: Wakeproxy, n: int = 1,
                 within: float = 30.0) -> dict[str, Any]:
    """What review app `n` answers once its build is deployed."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        async with s.get(wp.url + "/", headers={"Host": HOST.format(n=n)}) as r:
            if r.status == 200:
                answer: dict[str, Any] = json.loads(await r.text())
                return answer
        await asyncio.sleep(0.1)
    raise AssertionError(f"review app {n} never answered: {await builds(s, wp)}\n"
                         f"{wp.output()}")


async def test_a_fork_is_not_built_by_default_and_the_answer_says_why(
    tmp_path: Path, start_wakeproxy: Any,
) -> None:
    repo, sha = spy_repo(tmp_path / "git")
    wp = start_wakeproxy(config(tmp_path, repo))
    async with aiohttp.ClientSession() as s:
        for body in (pr("opened", sha), pr("synchronize", sha),
                     pr("opened", sha, fork=None),
                     pr("labeled", sha, label="safe-to-build")):
            answer = await hook(s, wp, body)
            assert "review_apps" not in answer, answer
            assert "ignored" in answer
        answer = await hook(s, wp, pr("opened", sha, number=4))
        assert "is from a fork (stranger/shop) by stranger" in answer["ignored"]
        assert "review_apps.forks: never" in answer["ignored"]
        await asyncio.sleep(0.5)
        assert await builds(s, wp) == []
        logged = wp.events("pull request not built")
        assert logged and logged[-1]["head_repo"] == "stranger/shop"
        # A member's pull request from a personal fork, and a same-repository one, build.
        answer = await hook(s, wp, pr("opened", sha, number=2, author="alice",
                                      association="MEMBER"))
        assert answer["review_apps"] == ["pr-2-shop"]
        answer = await hook(s, wp, pr("opened", sha, number=3, fork="acme/shop"))
        assert answer["review_apps"] == ["pr-3-shop"]


async def test_with_forks_label_only_the_labelled_commit_is_built(
    tmp_path: Path, start_wakeproxy: Any,
) -> None:
    repo, sha = spy_repo(tmp_path / "git")
    wp = start_wakeproxy(config(tmp_path, repo, forks="label"))
    async with aiohttp.ClientSession() as s:
        answer = await hook(s, wp, pr("opened", sha))
        assert "adds the label 'safe-to-build'" in answer["ignored"]
        answer = await hook(s, wp, pr("labeled", sha, label="looks-good"))
        assert "not review_apps.fork_label" in answer["ignored"]
        answer = await hook(s, wp, pr("labeled", sha, label="safe-to-build"))
        assert answer["review_apps"] == ["pr-1-shop"]
        await served(s, wp)
        # A push after the approval is not built until the label is added again.
        newer = repo.commit("pushed after approval", build=SPY_BUILD, branch="feature")
        answer = await hook(s, wp, pr("synchronize", newer))
        assert "again after each push" in answer["ignored"]
        await asyncio.sleep(0.5)
        assert [b["commit"] for b in await builds(s, wp)] == [sha]


async def assert_sees_nothing_of_wakeproxy(answer: dict[str, Any]) -> None:
    env, built = answer["env"], answer["built"]
    assert CANARY not in json.dumps(env) and CANARY not in built
    assert BASE_SECRET not in json.dumps(env) and BASE_SECRET not in built
    assert "DATABASE_PASSWORD" not in env and "DATABASE_PASSWORD" not in built
    assert env["REVIEW"] == "yes" and "REVIEW=yes" in built  # review_env is given
    assert "WAKEPROXY_COMMIT=" in built and env["PORT"]
    assert set(env) <= {"PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE",
                        "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "TERM", "PORT", "REVIEW",
                        "TOKEN_FILE", "PWD", "SHLVL", "_"}, sorted(env)


async def test_builds_and_apps_get_a_clean_environment(
    tmp_path: Path, start_wakeproxy: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WAKEPROXY_CANARY", CANARY)  # as an operator's shell would export
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", CANARY)
    repo, sha = spy_repo(tmp_path / "git")
    wp = start_wakeproxy(config(tmp_path, repo))
    async with aiohttp.ClientSession() as s:
        assert (await hook(s, wp, pr("opened", sha, fork="acme/shop")))["review_apps"]
        await assert_sees_nothing_of_wakeproxy(await served(s, wp))


@pytest.mark.skipif(os.geteuid() != 0, reason="run_as needs wakeproxy to run as root")
async def test_with_run_as_builds_and_apps_cannot_read_the_admin_token(
    shared_dir: Path, start_wakeproxy: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WAKEPROXY_CANARY", CANARY)
    repo, sha = spy_repo(shared_dir / "git")
    wp = start_wakeproxy({**config(shared_dir, repo), "run_as": "nobody"})
    async with aiohttp.ClientSession() as s:
        assert (await hook(s, wp, pr("opened", sha, fork="acme/shop")))["review_apps"]
        answer = await served(s, wp)
        await assert_sees_nothing_of_wakeproxy(answer)
        assert answer["uid"] == 65534
        assert TOKEN not in answer["built"] and "TOKEN-READ" not in answer["built"]
        assert "HOME=/nonexistent" in answer["built"]
