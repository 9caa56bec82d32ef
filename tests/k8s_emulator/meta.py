"""Small helpers on object metadata and API time formats.

Owns: how timestamps are written (`Time` whole seconds, `MicroTime` exactly six fraction
digits, both UTC with `Z`), generated names, uids, and safe access to nested JSON. Never
touches the store or the network.
"""

from __future__ import annotations

import copy
import re
import secrets
import uuid
from datetime import UTC, datetime
from typing import Any

JSON = dict[str, Any]

# The alphabet the real server uses for generateName suffixes: no vowels, no look-alikes.
_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_MICRO_RE = re.compile(
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}(Z|[+-]\d{2}:\d{2})$"
)


def now() -> datetime:
    return datetime.now(UTC)


def format_time(at: datetime | None = None) -> str:
    """metav1.Time: RFC 3339 in UTC, whole seconds."""
    return (at or now()).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_micro_time(at: datetime | None = None) -> str:
    """metav1.MicroTime: RFC 3339 in UTC with exactly six fraction digits."""
    return (at or now()).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_micro_time(value: str) -> datetime | None:
    """Parse a MicroTime the way the real server does: six fraction digits and a zone, or None."""
    if not _MICRO_RE.match(value):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def random_suffix(length: int = 5) -> str:
    return "".join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(length))


def new_uid() -> str:
    return str(uuid.uuid4())


def deep(obj: JSON) -> JSON:
    return copy.deepcopy(obj)


def meta(obj: JSON) -> JSON:
    """The object's metadata, created if missing (a malformed non-dict is replaced)."""
    m = obj.get("metadata")
    if not isinstance(m, dict):
        m = {}
        obj["metadata"] = m
    return m


def labels_of(obj: JSON) -> dict[str, str]:
    m = obj.get("metadata")
    if not isinstance(m, dict):
        return {}
    labels = m.get("labels")
    return labels if isinstance(labels, dict) else {}


def name_of(obj: JSON) -> str:
    return str(meta(obj).get("name") or "")


def namespace_of(obj: JSON) -> str:
    return str(meta(obj).get("namespace") or "")


def dig(obj: Any, *path: str) -> Any:
    """obj[path[0]][path[1]]... or None where any step is missing or not a mapping."""
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def owned_by(obj: JSON, uid: str) -> bool:
    refs = meta(obj).get("ownerReferences") or []
    return any(isinstance(r, dict) and r.get("uid") == uid for r in refs)


def controller_of(obj: JSON) -> JSON | None:
    for ref in meta(obj).get("ownerReferences") or []:
        if isinstance(ref, dict) and ref.get("controller"):
            return ref
    return None


def condition(status: JSON, kind: str) -> JSON | None:
    for c in status.get("conditions") or []:
        if isinstance(c, dict) and c.get("type") == kind:
            return c
    return None


def is_pod_ready(pod: JSON) -> bool:
    c = condition(pod.get("status") or {}, "Ready")
    return bool(c and c.get("status") == "True")


def is_terminating(obj: JSON) -> bool:
    return bool(meta(obj).get("deletionTimestamp"))
