"""A restart of the controllers changes nothing a user sees: builds (and their logs),
deployed releases and review apps come back, asleep; what a restart cut short or took
away is cleaned up with a warning."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import structlog

from tests.controllers.conftest import running_stack
from tests.controllers.gitrepo import Repo
from tests.platforms.procs import alive
from wakeproxy.controllers.builder import INTERRUPTED
from wakeproxy.controllers.builds import BuildState
from wakeproxy.controllers.webhook import PullRequestEvent

REVIEW = "pr-7-shop"


def event(action: str, sha: str) -> PullRequestEvent:
    return PullRequestEvent(action, 7, sha, "acme/shop", f"{action}-{sha[:8]}")


def setup(tmp_path: Path) -> tuple[Repo, Path]:
    repo = Repo(tmp_path / "git")
    pids = tmp_path / "pids"
    pids.mkdir()
    return repo, pids


async def test_builds_releases_and_review_apps_come_back_asleep(tmp_path: Path) -> None:
    repo, pids = setup(tmp_path)
    repo.commit("main one")
    pr = repo.commit("pr one", branch="pr")
    async with running_stack(tmp_path, repo, pids) as first:
        c = first.controllers
        main = await c.builder.wait(c.build("shop", "main"))
        await c.deploy("shop", main.id)
        assert c.reviews is not None and c.reviews.submit(event("opened", pr)) == [REVIEW]
        await c.reviews.idle()
        await first.lifecycle.wake(REVIEW)
        assert await first.fetch(REVIEW) == "pr one"
        before = [b.view() for b in c.builder.list()]
        review_log = c.builder.list(REVIEW)[0].log.read(0)[0]
        assert b"building " + pr.encode() in review_log

    async with running_stack(tmp_path, repo, pids) as second:
        c = second.controllers
        for app in ("shop", REVIEW):
            state = second.board.get(app)
            assert state is not None and state.phase == "asleep", app
        assert second.routes.table.resolve("pr-7-shop.review.localhost") == REVIEW
        assert [b.view() for b in c.builder.list()] == before
        review_build = c.get_build(before[0]["id"])
        assert review_build.log.read(0)[0] == review_log  # the log, from its file
        await second.lifecycle.wake("shop")
        assert await second.fetch("shop") == "main one"
        await second.lifecycle.wake(REVIEW)
        assert await second.fetch(REVIEW) == "pr one"

        # Closed after the restart deletes it and everything it made.
        pid = second.platform.pid(REVIEW)
        assert c.reviews is not None and c.reviews.submit(event("closed", pr)) == [REVIEW]
        await c.reviews.idle()
        assert second.board.get(REVIEW) is None
        assert second.routes.table.resolve("pr-7-shop.review.localhost") is None
        assert not (second.builds_dir / REVIEW).exists()
        assert not (second.builds_dir / ".logs" / REVIEW).exists()
        assert pid is not None and not alive(pid)

    async with running_stack(tmp_path, repo, pids) as third:
        assert third.board.get(REVIEW) is None  # the close survived a restart too
        await third.lifecycle.wake("shop")
        assert await third.fetch("shop") == "main one"


async def test_what_a_restart_cut_short_or_lost_is_cleaned_up(tmp_path: Path) -> None:
    repo, pids = setup(tmp_path)
    async with running_stack(tmp_path, repo, pids) as first:
        c = first.controllers
        repo.commit("zero")
        zero = await c.builder.wait(c.build("shop", "main"))
        await c.deploy("shop", zero.id)  # the third deploy removes its release, as it should
        repo.commit("one")
        one = await c.builder.wait(c.build("shop", "main"))
        await c.deploy("shop", one.id)
        repo.commit("two")
        two = await c.builder.wait(c.build("shop", "main"))
        await c.deploy("shop", two.id)
    builds_dir = tmp_path / "builds"
    # wakeproxy died while a build ran (its state says running, its checkout is half
    # made), and after a build started whose start was never saved.
    state_file = builds_dir / "state.json"
    doc = json.loads(state_file.read_text())
    doc["builds"].append({"id": "shop-dddddd", "app": "shop", "repo": repo.url, "ref": "main",
                          "state": "running", "created_at": 1.0, "started_at": 2.0})
    state_file.write_text(json.dumps(doc))
    (builds_dir / "shop" / "shop-dddddd" / ".git").mkdir(parents=True)
    (builds_dir / "shop" / "shop-eeeeee").mkdir()
    # Someone removed the deployed release's checkout meanwhile.
    assert two.release_dir is not None
    shutil.rmtree(two.release_dir)

    with structlog.testing.capture_logs() as logs:
        async with running_stack(tmp_path, repo, pids) as second:
            c = second.controllers
            interrupted = c.get_build("shop-dddddd")
            assert interrupted.state is BuildState.FAILED and interrupted.reason == INTERRUPTED
            assert INTERRUPTED in interrupted.log.read(0)[0].decode()
            assert not (builds_dir / "shop" / "shop-dddddd").exists()
            assert not (builds_dir / "shop" / "shop-eeeeee").exists()
            # The vanished release is dropped: the one before it serves.
            await second.lifecycle.wake("shop")
            assert await second.fetch("shop") == "one"
    warnings = [e for e in logs if e["log_level"] == "warning"]
    assert any("release directory gone" in e["event"] and e["build"] == two.id
               for e in warnings), warnings
    assert any("interrupted" in e["event"] and e["build"] == "shop-dddddd" for e in warnings)
    assert not any(e.get("build") == zero.id for e in warnings)  # removed on purpose: no fuss
