"""GitHub webhook deliveries: is it signed with our secret, have we seen it, what does it say.

Deliveries are known by their id and by their body's digest (`body_key`: a signed body
replayed under a new id is a duplicate too), remembered for `WINDOW` (GitHub.com lets a
delivery be redelivered for 3 days, GitHub Enterprise Server for 7), at most `LIMIT` of
them, the oldest forgotten first. `records()`/`restore()` carry them across a restart
(the local controllers save them in their state file), so a redelivery after a restart
is still a duplicate. Where several replicas answer the webhook (Kubernetes), a
`SharedDeliveries` log tells each of them about the deliveries any of them received.
Must never: compare a signature in variable time, record a delivery before its signature
checked out (an unsigned request could otherwise block a genuine one), or act on it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from wakeproxy.controllers.errors import BadWebhook
from wakeproxy.model.clock import Clock, SystemClock
from wakeproxy.model.recent import RecentIds

LIMIT = 10_000  # delivery ids remembered for dedupe (about 600 KB in the state file)
WINDOW = 7 * 24 * 3600.0  # seconds; the longest redelivery window GitHub offers
_SHA = re.compile(r"[0-9a-fA-F]{40}")
# `labeled`: a maintainer approving a fork's pull request (review_apps.forks: label).
REVIEW_ACTIONS = frozenset({"opened", "reopened", "synchronize", "closed", "labeled"})


def body_key(body: bytes) -> str:
    """A delivery's body as a dedupe key. GitHub's signature covers the body, not the
    X-GitHub-Delivery header: a captured delivery resent under a new id is still this."""
    # 48 hex digits (192 bits): fits a shared log's key as is (at most 64 characters).
    return "body-" + hashlib.sha256(body).hexdigest()[:48]


def signature_valid(secret: bytes, body: bytes, header: str | None) -> bool:
    """`X-Hub-Signature-256: sha256=<hex>` is the HMAC-SHA256 of the body with `secret`."""
    if not header or not header.startswith("sha256="):
        return False
    expected = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), header.strip().encode())


class Deliveries:
    """The ids of recent deliveries, oldest first, each with when it arrived (wall clock).

    Bounded twice: at most `limit` ids, none older than `window` seconds. `changed` is
    called whenever `records()` changes (so it can be saved).
    """

    def __init__(
        self, limit: int = LIMIT, window: float = WINDOW, *, clock: Clock | None = None,
        changed: Callable[[], None] | None = None,
    ) -> None:
        self._seen = RecentIds(limit, window)
        self._clock = clock or SystemClock()
        self._changed = changed or (lambda: None)

    def first_time(self, *keys: str) -> bool:
        """Record a delivery's keys (its id, its body's digest); False when any was seen
        already (within the bounds)."""
        before = len(self._seen.records())
        fresh = self._seen.add_all(keys, self._clock.wall())
        if fresh or len(self._seen.records()) != before:
            self._changed()
        return fresh

    def forget(self, *keys: str) -> None:
        """Forget a delivery that was refused for now (GitHub's redelivery must work)."""
        self._seen.discard(keys)
        self._changed()

    def records(self) -> tuple[tuple[str, float], ...]:
        """(id, received at) of every remembered delivery, oldest first."""
        return self._seen.records()

    def restore(self, records: Iterable[tuple[str, float]]) -> None:
        """Remember the deliveries of an earlier run too (those still within the bounds)."""
        self._seen.restore(records, self._clock.wall())


class SharedDeliveries(Protocol):
    """Delivery ids every replica records and consults, kept across restarts."""

    async def first_time(self, delivery: str, *more: str) -> bool | None:
        """Record `delivery` (and `more` keys of it: its body's digest); False when any
        replica recorded any of them already, None when that cannot be told in time (the
        log is unreachable; the implementation logs why)."""
        ...


@dataclass(frozen=True, slots=True)
class PullRequestEvent:
    action: str  # opened | reopened | synchronize | closed | labeled
    number: int
    head_sha: str
    repository: str  # owner/name
    delivery: str
    # Where the head commit lives: the repository itself, a fork (`stranger/shop`), or
    # None when GitHub does not say (a deleted fork): then it counts as a fork.
    head_repo: str | None = None
    author: str = ""  # the pull request's author (login, lowercase)
    association: str = "NONE"  # the author's author_association with the repository
    label: str | None = None  # the label a `labeled` event added

    @property
    def from_fork(self) -> bool:
        return self.head_repo is None or self.head_repo.lower() != self.repository.lower()


def parse_pull_request(body: bytes, delivery: str) -> PullRequestEvent:
    """A `pull_request` event's payload → what review apps need. Raises BadWebhook."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise BadWebhook("the payload is not JSON") from None
    if not isinstance(doc, dict):
        raise BadWebhook("the payload is not a JSON object")
    pr, repo = doc.get("pull_request"), doc.get("repository")
    action, number = doc.get("action"), doc.get("number")
    if not isinstance(pr, dict) or not isinstance(repo, dict):
        raise BadWebhook("pull_request and repository objects are required")
    if number is None:
        number = pr.get("number")
    head = pr.get("head")
    sha = head.get("sha") if isinstance(head, dict) else None
    name = repo.get("full_name")
    if not isinstance(action, str):
        raise BadWebhook("action is required")
    if isinstance(number, bool) or not isinstance(number, int) or number < 1:
        raise BadWebhook("number must be a positive whole number")
    if not isinstance(sha, str) or not _SHA.fullmatch(sha):
        raise BadWebhook("pull_request.head.sha must be a 40-digit commit sha")
    if not isinstance(name, str) or "/" not in name:
        raise BadWebhook("repository.full_name must look like owner/name")
    head_repo = head.get("repo") if isinstance(head, dict) else None
    head_name = head_repo.get("full_name") if isinstance(head_repo, dict) else None
    user = pr.get("user")
    login = user.get("login") if isinstance(user, dict) else None
    association = pr.get("author_association")
    label = doc.get("label")
    label_name = label.get("name") if isinstance(label, dict) else None
    return PullRequestEvent(
        action, number, sha.lower(), name, delivery,
        head_repo=head_name if isinstance(head_name, str) else None,
        author=login.lower() if isinstance(login, str) else "",
        association=association.upper() if isinstance(association, str) else "NONE",
        label=label_name if isinstance(label_name, str) else None)
