"""Turns a client's body into the object the store will keep, as the server's write path does.

Owns: filling `apiVersion`/`kind` from the URL, checking body vs URL name and namespace,
system fields (uid, creationTimestamp, generation) on create and their carry-over on update,
status handling (the main resource ignores status, the status subresource changes only status),
generation bumps on spec changes, pod spec immutability, then defaulting and validation.
Pure with respect to storage: never reads or writes the store.
"""

from __future__ import annotations

from typing import Any

from .defaults import apply_defaults
from .errors import BadRequest, Conflict, Invalid
from .meta import JSON, deep, dig, format_time, meta, new_uid, random_suffix
from .resources import NODES, PODS, ResourceType
from .rules import check_decodable, check_object
from .schema import SchemaValidator

_SYSTEM_FIELDS = ("uid", "creationTimestamp", "generation", "deletionTimestamp",
                  "deletionGracePeriodSeconds", "resourceVersion")


def _check_type(rt: ResourceType, obj: Any) -> JSON:
    if not isinstance(obj, dict):
        raise BadRequest(f"the body of the request must be a {rt.kind} object")
    copied: JSON = deep(obj)
    obj = copied
    api_version = obj.setdefault("apiVersion", rt.api_version)
    kind = obj.setdefault("kind", rt.kind)
    if (api_version, kind) != (rt.api_version, rt.kind):
        raise BadRequest(
            f"the API version in the data ({api_version}) does not match the expected API "
            f"version ({rt.api_version}) or kind {kind} is not {rt.kind}"
        )
    return copied


def _place(rt: ResourceType, obj: JSON, namespace: str | None) -> None:
    m = meta(obj)
    if not rt.namespaced:
        m.pop("namespace", None)
        return
    body_ns = m.get("namespace")
    if body_ns and body_ns != namespace:
        raise BadRequest(
            "the namespace of the provided object does not match the namespace sent on the request"
        )
    m["namespace"] = namespace


class Preparer:
    def __init__(self, validator: SchemaValidator | None) -> None:
        self._validator = validator

    def for_create(self, rt: ResourceType, body: Any, namespace: str | None) -> JSON:
        obj = _check_type(rt, body)
        _place(rt, obj, namespace)
        m = meta(obj)
        if not m.get("name") and m.get("generateName"):
            m["name"] = f"{m['generateName']}{random_suffix()}"
        if m.get("resourceVersion"):
            raise _InternalBodyError("resourceVersion should not be set on objects to be created")
        for field in _SYSTEM_FIELDS:
            m.pop(field, None)
        m["uid"] = new_uid()
        m["creationTimestamp"] = format_time()
        if rt.has_generation:
            m["generation"] = 1
        # A kubelet registers its Node with its status (capacity): kept, as the server does.
        if rt.has_status and rt not in (PODS, NODES):
            obj["status"] = {}
        return obj

    def for_update(
        self, rt: ResourceType, body: Any, old: JSON, subresource: str | None
    ) -> JSON:
        obj = _check_type(rt, body)
        m, old_m = meta(obj), meta(old)
        if m.get("name") and m["name"] != old_m["name"]:
            raise BadRequest(
                f"the name of the object ({m['name']}) does not match the name on the URL "
                f"({old_m['name']})"
            )
        _place(rt, obj, old_m.get("namespace"))
        m["name"] = old_m["name"]
        if m.get("uid") and m["uid"] != old_m.get("uid"):
            raise Conflict(
                f"Precondition failed: UID in precondition: {m['uid']}, UID in object meta: "
                f"{old_m.get('uid')}", name=old_m["name"], group=rt.group, kind=rt.plural,
            )
        if subresource == "status":
            status = obj.get("status")
            obj = deep(old)
            obj["status"] = status if status is not None else {}
            m = meta(obj)
        elif subresource == "binding":
            # pods/binding: the one write that sets a pod's node (and its PodScheduled
            # condition); nothing else of the body is taken.
            node, status = dig(obj, "spec", "nodeName"), obj.get("status")
            obj = deep(old)
            if dig(old, "spec", "nodeName"):
                raise Conflict(f'pod {old_m["name"]} is already assigned to node '
                               f'"{dig(old, "spec", "nodeName")}"', name=old_m["name"],
                               kind="pods/binding")
            obj.setdefault("spec", {})["nodeName"] = node
            obj["status"] = status if status is not None else {}
            m = meta(obj)
        elif rt.has_status:
            if "status" in old:
                obj["status"] = deep(old["status"])
            else:
                obj.pop("status", None)
        for field in _SYSTEM_FIELDS:
            if field == "resourceVersion":
                continue
            if field in old_m:
                m[field] = old_m[field]
            else:
                m.pop(field, None)
        # Defaults first, so a body that omits defaulted fields is neither a spec change
        # (generation) nor a forbidden pod spec edit.
        apply_defaults(rt.kind, obj)
        if rt is PODS and subresource is None:
            _check_pod_spec_unchanged(old, obj)
        if rt.has_generation and _spec_of(obj) != _spec_of(old):
            m["generation"] = int(old_m.get("generation") or 0) + 1
        return obj

    def finish(self, rt: ResourceType, obj: JSON, old: JSON | None) -> None:
        """Defaults then validation, on every object about to be stored."""
        apply_defaults(rt.kind, obj)
        check_decodable(rt, obj)
        check_object(rt, obj, old)
        if self._validator is not None:
            self._validator.validate(obj, rt.group)


class _InternalBodyError(BadRequest):
    """The real server reports this misuse as a 500 from its storage layer."""

    code = 500
    reason = "InternalError"


def _spec_of(obj: JSON) -> JSON:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


def _check_pod_spec_unchanged(old: JSON, new: JSON) -> None:
    def masked(pod: JSON) -> Any:
        spec = deep(pod.get("spec") or {})
        for c in spec.get("containers") or []:
            if isinstance(c, dict):
                c.pop("image", None)
        spec.pop("activeDeadlineSeconds", None)
        spec.pop("tolerations", None)
        return spec

    if masked(old) != masked(new):
        name = meta(old).get("name")
        raise Invalid(
            f'Pod "{name}" is invalid: spec: Forbidden: pod updates may not change fields other '
            "than `spec.containers[*].image`, `spec.activeDeadlineSeconds` or "
            "`spec.tolerations`", name=name, kind="Pod",
        )


def same_content(a: JSON, b: JSON) -> bool:
    """Equal apart from resourceVersion: such an update is a no-op on the real server."""
    a_m = {k: v for k, v in (a.get("metadata") or {}).items() if k != "resourceVersion"}
    b_m = {k: v for k, v in (b.get("metadata") or {}).items() if k != "resourceVersion"}
    return a_m == b_m and _spec_of(a) == _spec_of(b) and a.get("status") == b.get("status")
