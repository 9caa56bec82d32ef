"""A closed pull request's review app is gone for good: its builds, releases and logs are
forgotten, and no restart afterwards warns about anything of it."""

from __future__ import annotations

from pathlib import Path

import structlog

from tests.controllers.conftest import running_stack
from tests.controllers.test_restart import REVIEW, event, setup


async def test_a_closed_review_app_leaves_nothing_behind_across_restarts(tmp_path: Path) -> None:
    repo, pids = setup(tmp_path)
    pr = repo.commit("pr one", branch="pr")
    async with running_stack(tmp_path, repo, pids) as first:
        c = first.controllers
        assert c.reviews is not None and c.reviews.submit(event("opened", pr)) == [REVIEW]
        await c.reviews.idle()
        assert [b.app for b in c.builder.list()] == [REVIEW]
    async with running_stack(tmp_path, repo, pids) as second:
        c = second.controllers
        assert c.reviews is not None
        c.reviews.submit(event("closed", pr))
        await c.reviews.idle()
        assert c.builder.list() == []
    for _ in range(2):
        with structlog.testing.capture_logs() as logs:
            async with running_stack(tmp_path, repo, pids) as later:
                assert later.controllers.builder.list() == []
                assert later.board.get(REVIEW) is None
        assert [e for e in logs if e["log_level"] == "warning"] == []
    assert not (tmp_path / "builds" / REVIEW).exists()
