"""URL and method → which resource, namespace, name, subresource and verb a request is.

Owns the real API's path layout (`/api/v1/...`, `/apis/{group}/{version}/...`, namespaced and
cluster-wide forms, `namespaces/{ns}` vs the Namespace object itself) and the Kubernetes verb
names RBAC uses (get, list, watch, create, update, patch, delete, deletecollection). Also the
boolean spellings query parameters accept. Never handles the request.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from . import resources
from .errors import BadRequest, MethodNotAllowed, NotFound
from .resources import ResourceType

_TRUE = frozenset({"1", "t", "T", "true", "True", "TRUE"})
_FALSE = frozenset({"0", "f", "F", "false", "False", "FALSE"})


def query_bool(query: Mapping[str, str], name: str) -> bool:
    """Go's strconv.ParseBool, which is what the real server uses (the client sends `True`)."""
    value = query.get(name)
    if value is None or value == "":
        return False
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise BadRequest(f"invalid boolean value {value!r} for query parameter {name!r}")


@dataclass(frozen=True)
class ApiRequest:
    verb: str
    rt: ResourceType
    namespace: str | None
    name: str | None
    subresource: str | None

    @property
    def resource(self) -> str:
        return self.rt.plural


@dataclass(frozen=True)
class GroupVersionPath:
    """A discovery path such as `/api`, `/apis`, `/api/v1` or `/apis/apps/v1`."""

    group: str | None
    version: str | None


@dataclass(frozen=True)
class VersionPath:
    """`/version`."""


Parsed = ApiRequest | GroupVersionPath | VersionPath


def _not_found() -> NotFound:
    return NotFound("the server could not find the requested resource")


def parse(method: str, path: str, query: Mapping[str, str]) -> Parsed:
    parts = [p for p in path.split("/") if p]
    if parts == ["version"]:
        return VersionPath()
    if not parts or parts[0] not in ("api", "apis"):
        raise _not_found()
    if parts[0] == "api":
        if len(parts) == 1:
            return GroupVersionPath("", None)
        group, version, rest = "", parts[1], parts[2:]
    else:
        if len(parts) == 1:
            return GroupVersionPath(None, None)
        if len(parts) == 2:
            return GroupVersionPath(parts[1], None)
        group, version, rest = parts[1], parts[2], parts[3:]
    if not rest:
        return GroupVersionPath(group, version)
    namespace: str | None = None
    if rest[0] == "namespaces" and len(rest) >= 3:
        candidate = resources.by_path(group, version, rest[2])
        if candidate is not None and candidate.namespaced:
            namespace, rest = rest[1], rest[2:]
    rt = resources.by_path(group, version, rest[0])
    if rt is None or len(rest) > 3 or (rt.namespaced and namespace is None and len(rest) > 1):
        raise _not_found()
    name = rest[1] if len(rest) > 1 else None
    sub = rest[2] if len(rest) > 2 else None
    if sub is not None and sub not in rt.subresources:
        raise _not_found()
    return ApiRequest(_verb(method, name, sub, query), rt, namespace, name, sub)


def _verb(method: str, name: str | None, sub: str | None, query: Mapping[str, str]) -> str:
    if method == "GET":
        if name is None:
            return "watch" if query_bool(query, "watch") else "list"
        return "get"
    if sub == "log":
        raise MethodNotAllowed(f"the server does not allow this method on the requested resource "
                               f"({method} log)")
    verbs = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
    verb = verbs.get(method)
    if verb is None:
        raise MethodNotAllowed(f"method {method} is not allowed")
    if name is None:
        if verb == "create":
            return verb
        if verb == "delete":
            return "deletecollection"
        raise MethodNotAllowed(f"{method} needs an object name")
    if verb == "create" or (verb == "delete" and sub is not None):
        raise MethodNotAllowed(f"the server does not allow {method} on this resource")
    return verb
