"""Review apps from pull request events: serialised per PR, the newest commit wins, a
failed build keeps the previous release, closed deletes everything."""

from __future__ import annotations

import asyncio

from tests.controllers.conftest import SECRET, Stack
from tests.controllers.gitrepo import BAD_BUILD
from wakeproxy.controllers.builds import BuildState
from wakeproxy.controllers.webhook import PullRequestEvent

SLOW_BUILD = "sleep 5\ncp content.src content.txt\n"


def event(action: str, sha: str, n: int = 7) -> PullRequestEvent:
    return PullRequestEvent(action, n, sha, "Acme/Shop", f"{action}-{sha[:8]}")


async def test_a_newer_commit_cancels_the_build_of_an_older_one(stack: Stack) -> None:
    reviews = stack.controllers.reviews
    assert reviews is not None
    slow = stack.repo.commit("slow one", build=SLOW_BUILD, branch="pr")
    fast = stack.repo.commit("fast two", branch="pr")
    assert reviews.submit(event("opened", slow)) == ["pr-7-shop"]
    while not any(b.state is BuildState.RUNNING for b in stack.controllers.builder.list()):  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    # Routed while its first build runs (it answers "not deployed yet" until deployed).
    assert stack.routes.table.resolve("pr-7-shop.review.localhost") == "pr-7-shop"
    assert reviews.submit(event("synchronize", fast)) == ["pr-7-shop"]
    await reviews.idle()

    builds = {b.ref: b for b in stack.controllers.builder.list("pr-7-shop")}
    assert builds[slow].state is BuildState.CANCELLED
    assert "superseded" in str(builds[slow].reason)
    assert builds[fast].state is BuildState.SUCCEEDED and builds[fast].deployed_at
    await stack.lifecycle.wake("pr-7-shop")
    assert await stack.fetch("pr-7-shop") == "fast two"


async def test_a_failed_build_keeps_the_previous_release_and_closed_deletes_it(
    stack: Stack,
) -> None:
    reviews = stack.controllers.reviews
    assert reviews is not None
    good = stack.repo.commit("good", branch="pr")
    reviews.submit(event("opened", good))
    await reviews.idle()
    await stack.lifecycle.wake("pr-7-shop")
    bad = stack.repo.commit("bad", build=BAD_BUILD, branch="pr")
    reviews.submit(event("synchronize", bad))
    await reviews.idle()
    failed = stack.controllers.builder.list("pr-7-shop")[0]
    assert failed.commit == bad and failed.state is BuildState.FAILED and failed.exit_code == 3
    assert await stack.fetch("pr-7-shop") == "good"

    pid = stack.platform.pid("pr-7-shop")
    reviews.submit(event("closed", bad))
    await reviews.idle()
    assert stack.board.get("pr-7-shop") is None
    assert stack.routes.table.resolve("pr-7-shop.review.localhost") is None
    assert stack.platform.pid("pr-7-shop") is None and pid is not None
    assert not (stack.builds_dir / "pr-7-shop").exists()
    assert stack.board.get("shop") is not None  # the configured app is untouched


async def test_events_of_other_repositories_and_actions_are_ignored(stack: Stack) -> None:
    reviews = stack.controllers.reviews
    assert reviews is not None
    sha = stack.repo.commit("x")
    other = PullRequestEvent("opened", 1, sha, "acme/other", "d")
    assert reviews.submit(other) == []
    assert reviews.submit(event("edited", sha)) == []
    assert stack.controllers.builder.list() == []
    assert SECRET  # the stack is signed with it (see test_webhook)
