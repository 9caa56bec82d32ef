"""A review app is no stage of its base app's pipeline: it keeps neither the base app's
`promote_to` (a pull request's code is never promoted to production) nor its
`awake_schedule` (each open pull request would be woken and kept awake every working
day); visitors wake it, and its `idle_after` sweeps it."""

from __future__ import annotations

from dataclasses import replace

from tests.controllers.conftest import Stack, shop
from wakeproxy.model.apps import AwakeSchedule, AwakeWindow


def test_a_review_app_has_no_next_stage_and_no_schedule(stack: Stack) -> None:
    reviews = stack.controllers.reviews
    assert reviews is not None
    schedule = AwakeSchedule("UTC", (AwakeWindow("0 8 * * mon-fri", 3600.0),))
    base = shop(stack.repo, stack.pids)
    staging = replace(base, policy=replace(base.policy, promote_to="shop-production",
                                           awake_schedule=schedule, idle_after=120.0))
    review = reviews.definition(staging, "pr-7-shop").policy
    assert review.promote_to is None and review.awake_schedule is None
    assert review.idle_after == 120.0  # the rest of the policy is the base app's
