"""GitHub webhook checks: constant-time HMAC signatures, delivery dedupe, payloads."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from tests.controllers.conftest import SECRET, Stack
from wakeproxy.controllers.errors import BadWebhook, WebhookRefused
from wakeproxy.controllers.webhook import (
    WINDOW,
    Deliveries,
    parse_pull_request,
    signature_valid,
)
from wakeproxy.model.clock import FakeClock

SHA = "a" * 40


def sign(body: bytes, secret: bytes = SECRET) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def test_signature_must_be_the_hmac_of_the_exact_body() -> None:
    body = b'{"x": 1}'
    assert signature_valid(SECRET, body, sign(body))
    assert not signature_valid(SECRET, body + b" ", sign(body))
    assert not signature_valid(SECRET, body, sign(body, b"other"))
    assert not signature_valid(SECRET, body, None)
    assert not signature_valid(SECRET, body, sign(body).replace("sha256=", "sha1="))


def test_deliveries_are_remembered_within_a_bound() -> None:
    seen = Deliveries(limit=2)
    assert seen.first_time("a") and not seen.first_time("a")
    assert seen.first_time("b") and seen.first_time("c")
    assert seen.first_time("a")  # forgotten: the oldest went first


def test_deliveries_are_forgotten_after_the_redelivery_window() -> None:
    clock = FakeClock()
    seen = Deliveries(clock=clock)
    assert seen.first_time("old")
    clock.advance(WINDOW - 1)
    assert seen.first_time("new")
    assert not seen.first_time("old")  # GitHub can still redeliver it: a duplicate
    clock.advance(2)
    assert seen.first_time("old")  # past the window GitHub offers: a new delivery
    assert not seen.first_time("new")


def test_deliveries_carry_over_to_a_new_run_within_their_bounds() -> None:
    clock = FakeClock()
    changes: list[int] = []
    first = Deliveries(limit=3, clock=clock, changed=lambda: changes.append(1))
    for delivery in ("a", "b", "c"):
        assert first.first_time(delivery)
        clock.advance(WINDOW / 3)
    assert not first.first_time("c")
    assert len(changes) == 3  # one per new delivery, none for a duplicate
    saved = first.records()
    assert [d for d, _ in saved] == ["a", "b", "c"]

    second = Deliveries(limit=2, clock=clock)  # a restart that keeps two ids: the newest
    second.restore(saved)
    assert [d for d, _ in second.records()] == ["b", "c"]
    assert not second.first_time("b") and not second.first_time("c")
    assert second.first_time("a")


@pytest.mark.parametrize(("doc", "message"), [
    ({"action": "opened"}, "pull_request and repository"),
    ({"action": "opened", "number": 0, "pull_request": {"head": {"sha": SHA}},
      "repository": {"full_name": "a/b"}}, "positive whole number"),
    ({"action": "opened", "number": 1, "pull_request": {"head": {"sha": "0x" + "1" * 38}},
      "repository": {"full_name": "a/b"}}, "40-digit"),
])
def test_malformed_payloads_are_refused_with_a_reason(doc: object, message: str) -> None:
    with pytest.raises(BadWebhook, match=message):
        parse_pull_request(json.dumps(doc).encode(), "d")
    with pytest.raises(BadWebhook, match="not JSON"):
        parse_pull_request(b"{", "d")


async def test_the_webhook_checks_signature_before_anything_else(stack: Stack) -> None:
    body = json.dumps({"action": "opened", "number": 3, "pull_request": {"head": {
        "sha": SHA, "repo": {"full_name": "acme/shop"}}},
                       "repository": {"full_name": "acme/shop"}}).encode()
    headers = {"X-GitHub-Event": "pull_request", "X-GitHub-Delivery": "d1"}
    with pytest.raises(WebhookRefused):
        await stack.controllers.webhook({**headers, "X-Hub-Signature-256": sign(body, b"x")},
                                        body)
    # The refused delivery was not recorded: the genuine one with its id goes through.
    signed = {**headers, "X-Hub-Signature-256": sign(body)}
    assert (await stack.controllers.webhook(signed, body))["review_apps"] == ["pr-3-shop"]
    assert (await stack.controllers.webhook(signed, body))["ignored"] == "already received"
