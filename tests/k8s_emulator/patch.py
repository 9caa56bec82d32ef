"""The three patch content types the API accepts, applied to plain JSON objects.

Owns: RFC 7386 JSON merge patch, RFC 6902 JSON patch, and dispatch by `Content-Type`
(strategic merge lives in `strategic.py`). A malformed patch is 400, a patch that cannot be
applied to this object is 422, an unknown content type is 415 — as on the real server. Never
touches the store: callers pass the current object and get a new one back.
"""

from __future__ import annotations

import copy
from typing import Any

from .errors import BadRequest, Invalid, UnsupportedMediaType
from .strategic import strategic_merge

MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY = "application/apply-patch+yaml"
SUPPORTED = (MERGE, STRATEGIC, JSON_PATCH)


def apply_patch(content_type: str, current: dict[str, Any], patch: Any) -> dict[str, Any]:
    media = content_type.split(";")[0].strip().lower()
    if media == MERGE:
        if not isinstance(patch, dict):
            raise BadRequest("a merge patch must be a JSON object")
        return _as_object(merge_patch(current, patch))
    if media == STRATEGIC:
        if not isinstance(patch, dict):
            raise BadRequest("a strategic merge patch must be a JSON object")
        return _as_object(strategic_merge(current, patch))
    if media == JSON_PATCH:
        if not isinstance(patch, list):
            raise BadRequest("a JSON patch must be a JSON array of operations")
        return _as_object(json_patch(current, patch))
    raise UnsupportedMediaType(
        f"the body of the request was in an unknown format - accepted media types include: "
        f"{', '.join(SUPPORTED)}"
        + (" (server-side apply is served for main resources only)" if media == APPLY else "")
    )


def _as_object(result: Any) -> dict[str, Any]:
    if not isinstance(result, dict):
        raise Invalid("the patch turned the object into something that is not an object")
    return result


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def json_patch(document: Any, operations: list[Any]) -> Any:
    doc = copy.deepcopy(document)
    for op in operations:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise BadRequest(f"invalid JSON patch operation: {op!r}")
        doc = _apply_op(doc, op)
    return doc


def _pointer(path: Any) -> list[str]:
    if not isinstance(path, str) or (path and not path.startswith("/")):
        raise BadRequest(f"invalid JSON pointer {path!r}")
    if path == "":
        return []
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _unprocessable(message: str) -> Invalid:
    return Invalid(message)


def _resolve(doc: Any, tokens: list[str]) -> Any:
    for token in tokens:
        if isinstance(doc, dict):
            if token not in doc:
                raise _unprocessable(f"path component {token!r} not found")
            doc = doc[token]
        elif isinstance(doc, list):
            doc = doc[_index(doc, token, allow_end=False)]
        else:
            raise _unprocessable(f"cannot descend into {token!r}")
    return doc


def _index(seq: list[Any], token: str, *, allow_end: bool) -> int:
    if token == "-" and allow_end:
        return len(seq)
    if not token.isdigit():
        raise _unprocessable(f"invalid array index {token!r}")
    index = int(token)
    if index > len(seq) or (index == len(seq) and not allow_end):
        raise _unprocessable(f"array index {index} out of bounds")
    return index


def _add(doc: Any, tokens: list[str], value: Any) -> Any:
    if not tokens:
        return copy.deepcopy(value)
    parent = _resolve(doc, tokens[:-1])
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = copy.deepcopy(value)
    elif isinstance(parent, list):
        parent.insert(_index(parent, last, allow_end=True), copy.deepcopy(value))
    else:
        raise _unprocessable(f"cannot add at {last!r}")
    return doc


def _remove(doc: Any, tokens: list[str]) -> tuple[Any, Any]:
    if not tokens:
        raise _unprocessable("cannot remove the whole document")
    parent = _resolve(doc, tokens[:-1])
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise _unprocessable(f"cannot remove missing key {last!r}")
        return doc, parent.pop(last)
    if isinstance(parent, list):
        return doc, parent.pop(_index(parent, last, allow_end=False))
    raise _unprocessable(f"cannot remove {last!r}")


def _apply_op(doc: Any, op: dict[str, Any]) -> Any:
    kind = op["op"]
    tokens = _pointer(op["path"])
    if kind in ("add", "replace", "test") and "value" not in op:
        raise BadRequest(f"JSON patch operation {kind!r} needs a value")
    if kind == "add":
        return _add(doc, tokens, op["value"])
    if kind == "remove":
        return _remove(doc, tokens)[0]
    if kind == "replace":
        _resolve(doc, tokens)  # the target must exist
        if tokens:
            doc, _ = _remove(doc, tokens)
        return _add(doc, tokens, op["value"])
    if kind in ("move", "copy"):
        source = _pointer(op.get("from"))
        if kind == "move":
            doc, value = _remove(doc, source)
        else:
            value = copy.deepcopy(_resolve(doc, source))
        return _add(doc, tokens, value)
    if kind == "test":
        if _resolve(doc, tokens) != op["value"]:
            raise _unprocessable(f"testing value {op['path']} failed")
        return doc
    raise BadRequest(f"unknown JSON patch operation {kind!r}")
