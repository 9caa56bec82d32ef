"""The verbs on a resource collection or object: list, get, create, update, patch, delete.

Owns the HTTP semantics of each verb — status codes (201 on create), dry runs, list paging with
`limit`/`continue`, delete options and propagation, and the rule that a patch result carrying
a stale `metadata.resourceVersion` is a 409. Subresources are handed to `subresources.py` and
watches to `watch.py`. Never mutates objects except through the store.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

import yaml
from aiohttp import web

from . import gc, tables
from . import resources as r
from .errors import BadRequest, Gone, MethodNotAllowed
from .httpio import list_body, read_body, respond, success_status
from .meta import JSON, meta
from .patch import APPLY, STRATEGIC, apply_patch
from .rbac import AUTHORIZE
from .routing import ApiRequest, query_bool
from .selectors import Filter, parse_field_selector, parse_label_selector
from .store import Store


def request_filter(req: ApiRequest, query: Any) -> Filter:
    return Filter(
        namespace=req.namespace,
        labels=parse_label_selector(query.get("labelSelector")),
        fields=parse_field_selector(query.get("fieldSelector"), req.rt.kind),
    )


def _dry_run(query: Any) -> bool:
    values = query.getall("dryRun", [])
    if any(v != "All" for v in values):
        raise BadRequest("dryRun may only be 'All'")
    return bool(values)


class ResourceHandlers:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def list(self, req: ApiRequest, request: web.Request) -> web.Response:
        flt = request_filter(req, request.query)
        items = self.store.select(req.rt, flt)
        rv = self.store.resource_version
        try:
            limit = int(request.query.get("limit") or 0)
        except ValueError:
            raise BadRequest("limit must be an integer") from None
        token = request.query.get("continue")
        if token:
            rv, after = self._decode_continue(req, token)
            items = [i for i in items if _key(i) > after]
        cont, remaining = None, None
        if limit > 0 and len(items) > limit:
            items, rest = items[:limit], items[limit:]
            cont = _encode_continue(rv, _key(items[-1]))
            remaining = len(rest)
        body = list_body(req.rt, items, rv, cont, remaining)
        printed = (tables.table(req.rt.kind, items, body["metadata"])
                   if tables.wants_table(request.headers.get("Accept", "")) else None)
        return respond(printed if printed is not None else body)

    def _decode_continue(self, req: ApiRequest, token: str) -> tuple[int, tuple[str, str]]:
        try:
            data = json.loads(base64.urlsafe_b64decode(token.encode()))
            rv, after = int(data["rv"]), (str(data["ns"]), str(data["name"]))
        except (ValueError, KeyError, TypeError, binascii.Error):
            raise BadRequest("continue key is not valid") from None
        if rv < self.store.history(req.rt).compacted_rv:
            raise Gone("The provided continue parameter is too old to display a consistent list "
                       "result. You can start a new list without the continue parameter.")
        return rv, after

    def get(self, req: ApiRequest, request: web.Request) -> web.Response:
        assert req.name is not None
        obj = self.store.get(req.rt, req.namespace, req.name)
        printed = (tables.table(req.rt.kind, [obj], {"resourceVersion": meta(obj).get(
            "resourceVersion")}) if tables.wants_table(request.headers.get("Accept", ""))
            else None)
        return respond(printed if printed is not None else obj)

    async def create(self, req: ApiRequest, request: web.Request) -> web.Response:
        if req.rt.namespaced and req.namespace is None:
            raise MethodNotAllowed("create needs a namespaced path for this resource")
        body = await read_body(request, allow_yaml=True)
        obj = self.store.create(req.rt, body, req.namespace, dry_run=_dry_run(request.query))
        return respond(obj, 201)

    async def update(self, req: ApiRequest, request: web.Request) -> web.Response:
        assert req.name is not None
        body = await read_body(request, allow_yaml=True)
        obj = self.store.update(req.rt, body, req.namespace, req.name,
                                subresource=req.subresource, dry_run=_dry_run(request.query))
        return respond(obj)

    async def patch(self, req: ApiRequest, request: web.Request) -> web.Response:
        assert req.name is not None
        content_type = request.headers.get("Content-Type", "")
        if content_type.split(";")[0].strip().lower() == APPLY and req.subresource is None:
            return await self._apply(req, request)
        body = await read_body(request, allow_yaml=False)
        current = self.store.get(req.rt, req.namespace, req.name)
        patched = apply_patch(content_type, current, body)
        obj = self.store.update(req.rt, patched, req.namespace, req.name,
                                subresource=req.subresource, dry_run=_dry_run(request.query))
        return respond(obj)

    async def _apply(self, req: ApiRequest, request: web.Request) -> web.Response:
        """Server-side apply, minimally: create if absent (authorized as `create` too),
        else merge the applied fields."""
        assert req.name is not None
        if not request.query.get("fieldManager"):
            raise BadRequest("PATCH " + request.path + ": fieldManager is required for "
                             "apply requests")
        if request.query.get("force", "false").lower() not in ("true", "false", "1", "0"):
            raise BadRequest("force must be true or false")
        try:
            body = yaml.safe_load(await request.read())
        except yaml.YAMLError as exc:
            raise BadRequest(f"the body is not valid YAML: {exc}") from None
        if not isinstance(body, dict) or not body.get("apiVersion") or not body.get("kind"):
            raise BadRequest("an applied configuration needs apiVersion and kind")
        name = (body.get("metadata") or {}).get("name")
        if name != req.name:
            raise BadRequest(f"the name in the body ({name!r}) does not match the URL "
                             f"({req.name!r})")
        dry_run = _dry_run(request.query)
        if self.store.find(req.rt, req.namespace, req.name) is None:
            # An apply that creates is authorized as a create as well (patch came first).
            authorize = request.get(AUTHORIZE)
            if authorize is not None:
                authorize("create")
            return respond(self.store.create(req.rt, body, req.namespace, dry_run=dry_run), 201)
        current = self.store.get(req.rt, req.namespace, req.name)
        body.get("metadata", {}).pop("resourceVersion", None)
        merged = apply_patch(STRATEGIC, current, body)
        obj = self.store.update(req.rt, merged, req.namespace, req.name, dry_run=dry_run)
        return respond(obj)

    async def delete(self, req: ApiRequest, request: web.Request) -> web.Response:
        assert req.name is not None
        options = await _delete_options(request)
        obj, _removed = self._delete_one(req, req.name, options, _dry_run(request.query))
        if req.rt in (r.PODS, r.NAMESPACES):
            return respond(obj)
        return respond(success_status(req.rt, obj))

    async def delete_collection(self, req: ApiRequest, request: web.Request) -> web.Response:
        options = await _delete_options(request)
        dry_run = _dry_run(request.query)
        deleted = [
            self._delete_one(req, meta(item)["name"], options, dry_run, item.get("metadata"))[0]
            for item in self.store.select(req.rt, request_filter(req, request.query))
        ]
        return respond(list_body(req.rt, deleted, self.store.resource_version))

    def _delete_one(
        self, req: ApiRequest, name: str, options: JSON, dry_run: bool, m: Any = None
    ) -> tuple[JSON, bool]:
        namespace = req.namespace if m is None else m.get("namespace")
        policy = options.get("propagationPolicy") or gc.default_policy(req.rt)
        if options.get("orphanDependents") is True:
            policy = "Orphan"
        if policy not in ("Orphan", "Background", "Foreground"):
            raise BadRequest(f"unsupported propagationPolicy {policy!r}")
        current = self.store.get(req.rt, namespace, name)
        grace = options.get("gracePeriodSeconds")
        result = self.store.delete(
            req.rt, namespace, name, grace_seconds=grace if isinstance(grace, int) else None,
            preconditions=options.get("preconditions"), dry_run=dry_run,
        )
        if policy == "Orphan" and not dry_run:
            gc.orphan_dependents(self.store, meta(current)["uid"])
        return result


async def _delete_options(request: web.Request) -> JSON:
    body = await read_body(request, allow_yaml=False)
    options: JSON = dict(body) if isinstance(body, dict) else {}
    query = request.query
    if "gracePeriodSeconds" in query:
        try:
            options["gracePeriodSeconds"] = int(query["gracePeriodSeconds"])
        except ValueError:
            raise BadRequest("gracePeriodSeconds must be an integer") from None
    if "propagationPolicy" in query:
        options["propagationPolicy"] = query["propagationPolicy"]
    if "orphanDependents" in query:
        options["orphanDependents"] = query_bool(query, "orphanDependents")
    return options


def _key(obj: JSON) -> tuple[str, str]:
    m = obj.get("metadata") or {}
    return (str(m.get("namespace") or ""), str(m.get("name") or ""))


def _encode_continue(rv: int, key: tuple[str, str]) -> str:
    raw = json.dumps({"rv": rv, "ns": key[0], "name": key[1]}).encode()
    return base64.urlsafe_b64encode(raw).decode()
