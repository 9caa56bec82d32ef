"""GitHub webhook deliveries: is it signed with our secret, have we seen it, what does it say.

Must never: compare a signature in variable time, record a delivery before its signature
checked out (an unsigned request could otherwise block a genuine one), or act on it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections import OrderedDict
from dataclasses import dataclass

from wakeproxy.controllers.errors import BadWebhook

_SEEN = 10_000  # deliveries remembered for dedupe; GitHub redelivers within hours
_SHA = re.compile(r"[0-9a-fA-F]{40}")
REVIEW_ACTIONS = frozenset({"opened", "reopened", "synchronize", "closed"})


def signature_valid(secret: bytes, body: bytes, header: str | None) -> bool:
    """`X-Hub-Signature-256: sha256=<hex>` is the HMAC-SHA256 of the body with `secret`."""
    if not header or not header.startswith("sha256="):
        return False
    expected = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), header.strip().encode())


class Deliveries:
    """The ids of recent deliveries (bounded: the oldest are forgotten first)."""

    def __init__(self, limit: int = _SEEN) -> None:
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._limit = limit

    def first_time(self, delivery: str) -> bool:
        """Record `delivery`; False when it was seen already."""
        if delivery in self._seen:
            return False
        self._seen[delivery] = None
        if len(self._seen) > self._limit:
            self._seen.popitem(last=False)
        return True


@dataclass(frozen=True, slots=True)
class PullRequestEvent:
    action: str  # opened | reopened | synchronize | closed
    number: int
    head_sha: str
    repository: str  # owner/name
    delivery: str


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
    return PullRequestEvent(action, number, sha.lower(), name, delivery)
