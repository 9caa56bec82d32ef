"""The ref of a build reaches git as a ref, never as an option; revisions resolve."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.controllers.gitrepo import Repo, app_command
from tests.e2e.harness import Wakeproxy

TOKEN = "security-admin-token-0123"


def post(wp: Wakeproxy, path: str, doc: object) -> tuple[int, Any]:
    req = urllib.request.Request(
        wp.admin + path, method="POST", data=json.dumps(doc).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def get(wp: Wakeproxy, path: str) -> Any:
    req = urllib.request.Request(wp.admin + path,
                                 headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def finished(wp: Wakeproxy, build_id: str, within: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        b: dict[str, Any] = get(wp, f"/api/v1/builds/{build_id}")
        if b["state"] in ("succeeded", "failed", "cancelled"):
            return b
        time.sleep(0.05)
    raise AssertionError(f"build {build_id} did not finish\n{wp.output()}")


def config(tmp: Path, repo: Repo) -> dict[str, Any]:
    return {
        "admin_token": TOKEN, "builds_dir": str(tmp / "builds"),
        "apps": [{"name": "shop", "hosts": ["shop.localhost"], "repo": repo.url,
                  "build": "sh build.sh", "command": app_command()}],
    }


@pytest.mark.parametrize("ref", [" --upload-pack=touch {marker};false",
                                 "\t--upload-pack=touch {marker};false",
                                 "-c", "--output={marker}", "main..HEAD", "main@{1}",
                                 "a b", "x\n--upload-pack=touch {marker}"])
def test_a_ref_that_git_would_read_as_an_option_is_refused_and_runs_nothing(
    tmp_path: Path, start_wakeproxy: Any, ref: str,
) -> None:
    repo = Repo(tmp_path / "git")
    repo.commit("hello")
    marker = tmp_path / "pwned"
    wp = start_wakeproxy(config(tmp_path, repo))
    ref = ref.replace("{marker}", str(marker))
    status, body = post(wp, "/api/v1/apps/shop/builds", {"ref": ref})
    assert status == 400, body
    assert "is not a branch, tag, commit or revision" in body["error"]
    time.sleep(0.3)
    assert not marker.exists()
    assert get(wp, "/api/v1/builds") == []


def test_revisions_tags_and_short_ids_build_the_commit_they_name(
    tmp_path: Path, start_wakeproxy: Any,
) -> None:
    repo = Repo(tmp_path / "git")
    first = repo.commit("one")
    repo.tag("v1")
    second = repo.commit("two")
    third = repo.commit("three")
    wp = start_wakeproxy(config(tmp_path, repo))
    cases = {"HEAD~1": second, "main^": second, "HEAD~2": first, "main~2": first,
             "v1": first, "v1^{commit}": None, first[:7]: first, "main": third,
             "HEAD": third, third.upper(): third}
    for ref, commit in cases.items():
        status, body = post(wp, "/api/v1/apps/shop/builds", {"ref": ref})
        if commit is None:
            assert status == 400, (ref, body)
            continue
        assert status == 202, (ref, body)
        b = finished(wp, body["id"])
        assert (b["state"], b["commit"]) == ("succeeded", commit), (ref, b)
    # The CLI, as a user types it.
    cli = subprocess.run(
        [sys.executable, "-m", "wakeproxy", "build", "shop", "--ref", "HEAD~1", "--admin",
         wp.admin, "--token", TOKEN], capture_output=True, text=True, timeout=60, check=False)
    assert cli.returncode == 0, cli.stderr
    built = [b for b in get(wp, "/api/v1/builds") if b["ref"] == "HEAD~1"]
    assert finished(wp, built[0]["id"])["commit"] == second
    status, body = post(wp, "/api/v1/apps/shop/builds", {"ref": "HEAD~9"})
    b = finished(wp, body["id"])
    assert b["state"] == "failed" and "'HEAD~9' names no commit" in b["reason"]


def test_git_gets_refs_after_end_of_options_even_past_the_api(tmp_path: Path) -> None:
    """The builder itself: a ref that starts like an option is a refspec to git."""
    import asyncio

    from wakeproxy.controllers.builder import LocalBuilder, Source
    from wakeproxy.controllers.builds import BuildState

    repo = Repo(tmp_path / "git")
    repo.commit("hello")
    marker = tmp_path / "pwned"

    async def run() -> None:
        builder = LocalBuilder(root=tmp_path / "builds", environ={"PATH": "/usr/bin:/bin"})
        build = await builder.wait(builder.start(
            "shop", Source(repo.url), f"--upload-pack=touch {marker};false"))
        assert build.state is BuildState.FAILED

    asyncio.run(run())
    assert not marker.exists()
