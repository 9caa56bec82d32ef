"""Reading request bodies and writing JSON responses the way the real API server does.

Owns: body decoding (JSON, or YAML for create/update), compact JSON encoding, the list and
Status envelopes, and error → response rendering (always a Status object, never a traceback).
Never decides what a request means.
"""

from __future__ import annotations

import json
from typing import Any

import yaml
from aiohttp import web

from .errors import ApiError, BadRequest, UnsupportedMediaType
from .meta import JSON
from .resources import ResourceType

CONTENT_TYPE = "application/json"


def dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


def respond(obj: Any, status: int = 200) -> web.Response:
    return web.Response(text=dumps(obj), status=status, content_type=CONTENT_TYPE)


def respond_error(err: ApiError) -> web.Response:
    resp = respond(err.status(), err.code)
    if err.retry_after is not None:
        resp.headers["Retry-After"] = str(err.retry_after)
    return resp


async def read_body(request: web.Request, *, allow_yaml: bool) -> Any:
    raw = await request.read()
    if not raw:
        return None
    media = request.content_type.lower()
    if allow_yaml and media in ("application/yaml", "application/x-yaml"):
        try:
            return yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise BadRequest(f"the body is not valid YAML: {exc}") from None
    if allow_yaml and media not in ("application/json", ""):
        raise UnsupportedMediaType(
            f"the body of the request was in an unknown format - accepted media types "
            f"include: application/json, application/yaml (got {media})"
        )
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(f"the body of the request is not valid JSON: {exc}") from None


def list_body(rt: ResourceType, items: list[JSON], rv: int, cont: str | None = None,
              remaining: int | None = None) -> JSON:
    # Items of a built-in list carry neither apiVersion nor kind on the wire.
    for item in items:
        item.pop("apiVersion", None)
        item.pop("kind", None)
    list_meta: JSON = {"resourceVersion": str(rv)}
    if cont:
        list_meta["continue"] = cont
    if remaining is not None:
        list_meta["remainingItemCount"] = remaining
    return {"kind": rt.list_kind, "apiVersion": rt.api_version, "metadata": list_meta,
            "items": items}


def success_status(rt: ResourceType, obj: JSON) -> JSON:
    m = obj.get("metadata") or {}
    details: JSON = {"name": m.get("name"), "kind": rt.plural, "uid": m.get("uid")}
    if rt.group:
        details["group"] = rt.group
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
            "details": details}
