"""The object store: current objects, the global resourceVersion, and the write operations.

Owns every stored object and the one counter all writes bump (like etcd's revision, a string of
digits on the wire). Each write is a synchronous step — check, bump, store, record the event —
so concurrent requests on the event loop can never interleave inside one. Creates, updates and
deletes go through `Preparer` (defaults + validation) and append to the type's `History`.
Never speaks HTTP and never runs controllers; they subscribe to histories.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

from . import resources as r
from .errors import AlreadyExists, Conflict, Forbidden, NotFound
from .history import Event, History
from .meta import JSON, deep, format_time, meta
from .prepare import Preparer, same_content
from .resources import ResourceType
from .schema import SchemaValidator
from .selectors import Filter

Admission = Callable[[ResourceType, JSON], None]
# Admission of an update (the object about to be stored, and the stored one).
UpdateAdmission = Callable[[ResourceType, JSON, JSON], None]
# Admission of a deletion (the stored object), before anything is done.
DeleteAdmission = Callable[[ResourceType, JSON], None]
Key = tuple[str, str]


def not_found(rt: ResourceType, name: str) -> NotFound:
    return NotFound(f'{rt.qualified} "{name}" not found', name=name, group=rt.group, kind=rt.plural)


class Store:
    def __init__(self, *, history_size: int, validator: SchemaValidator | None) -> None:
        self._objects: dict[ResourceType, dict[Key, JSON]] = {t: {} for t in r.ALL}
        self._histories = {t: History(history_size) for t in r.ALL}
        self._rv = 0
        self._prepare = Preparer(validator)
        self._waiters: list[asyncio.Future[None]] = []
        self._next_cluster_ip = 10
        # Mutating admission on create (e.g. the kubelet's port assignment for pods).
        self.admission: list[Admission] = []
        self.update_admission: list[UpdateAdmission] = []
        self.delete_admission: list[DeleteAdmission] = []

    # -- reads -------------------------------------------------------------------------------
    @property
    def resource_version(self) -> int:
        return self._rv

    def history(self, rt: ResourceType) -> History:
        return self._histories[rt]

    def find(self, rt: ResourceType, namespace: str | None, name: str) -> JSON | None:
        obj = self._objects[rt].get((namespace or "", name))
        return deep(obj) if obj is not None else None

    def get(self, rt: ResourceType, namespace: str | None, name: str) -> JSON:
        obj = self.find(rt, namespace, name)
        if obj is None:
            raise not_found(rt, name)
        return obj

    def select(self, rt: ResourceType, flt: Filter | None = None) -> list[JSON]:
        flt = flt or Filter()
        return [deep(o) for _, o in sorted(self._objects[rt].items()) if flt.matches(o)]

    def items(self, rt: ResourceType) -> list[JSON]:
        """Live references, sorted; for in-process readers that promise not to mutate."""
        return [o for _, o in sorted(self._objects[rt].items())]

    # -- writes ------------------------------------------------------------------------------
    def create(
        self, rt: ResourceType, body: Any, namespace: str | None = None, *, dry_run: bool = False
    ) -> JSON:
        if rt.namespaced and namespace is None and isinstance(body, dict):
            namespace = (body.get("metadata") or {}).get("namespace") or "default"
        obj = self._prepare.for_create(rt, body, namespace if rt.namespaced else None)
        if rt.namespaced:
            self._check_namespace(str(namespace))
        for hook in self.admission:
            hook(rt, obj)
        if rt is r.SERVICES:
            self._allocate_cluster_ip(obj)
        self._prepare.finish(rt, obj, None)
        key = (meta(obj).get("namespace") or "", meta(obj)["name"])
        if key in self._objects[rt]:
            raise AlreadyExists(
                f'{rt.qualified} "{key[1]}" already exists', name=key[1], group=rt.group,
                kind=rt.plural,
            )
        if dry_run:
            return obj
        return self._commit(rt, key, obj, None)

    def update(
        self, rt: ResourceType, body: Any, namespace: str | None, name: str, *,
        subresource: str | None = None, dry_run: bool = False,
    ) -> JSON:
        key = (namespace or "", name)
        old = self._objects[rt].get(key)
        if old is None:
            raise not_found(rt, name)
        wanted_rv = (body.get("metadata") or {}).get("resourceVersion") if isinstance(
            body, dict) else None
        if wanted_rv and str(wanted_rv) != meta(old)["resourceVersion"]:
            raise self.conflict(rt, name)
        obj = self._prepare.for_update(rt, body, old, subresource)
        for hook in self.update_admission:
            hook(rt, obj, old)
        self._prepare.finish(rt, obj, old)
        if same_content(obj, old) or dry_run:
            return deep(old) if not dry_run else obj
        return self._commit(rt, key, obj, old)

    def mutate(
        self, rt: ResourceType, namespace: str | None, name: str, change: Callable[[JSON], None],
        *, subresource: str | None = None,
    ) -> JSON:
        """Read-modify-write for the emulator's own controllers (always the latest version)."""
        obj = self.get(rt, namespace, name)
        change(obj)
        meta(obj).pop("resourceVersion", None)
        return self.update(rt, obj, namespace, name, subresource=subresource)

    def delete(
        self, rt: ResourceType, namespace: str | None, name: str, *,
        grace_seconds: int | None = None, preconditions: JSON | None = None,
        dry_run: bool = False,
    ) -> tuple[JSON, bool]:
        """Delete or start a graceful deletion; returns (object, removed now)."""
        key = (namespace or "", name)
        old = self._objects[rt].get(key)
        if old is None:
            raise not_found(rt, name)
        for hook in self.delete_admission:
            hook(rt, old)
        for field in ("uid", "resourceVersion"):
            wanted = (preconditions or {}).get(field)
            if wanted and wanted != meta(old).get(field):
                raise Conflict(
                    f"Precondition failed: {field} in precondition: {wanted}, {field} in object "
                    f"meta: {meta(old).get(field)}", name=name, group=rt.group, kind=rt.plural,
                )
        if dry_run:
            return deep(old), False
        if self._graceful(rt, old, grace_seconds):
            if meta(old).get("deletionTimestamp"):
                return deep(old), False
            obj = deep(old)
            if rt is r.NAMESPACES:
                grace = 0
            elif grace_seconds is not None:
                grace = grace_seconds
            else:
                grace = int((old.get("spec") or {}).get("terminationGracePeriodSeconds", 30))
            meta(obj)["deletionTimestamp"] = format_time()
            meta(obj)["deletionGracePeriodSeconds"] = grace
            if rt is r.NAMESPACES:
                obj.setdefault("status", {})["phase"] = "Terminating"
            return self._commit(rt, key, obj, old), False
        return self.remove(rt, namespace, name), True

    def remove(self, rt: ResourceType, namespace: str | None, name: str) -> JSON:
        """Final removal: no preconditions, no grace (the kubelet and GC finish deletions)."""
        key = (namespace or "", name)
        old = self._objects[rt].pop(key, None)
        if old is None:
            raise not_found(rt, name)
        self._rv += 1
        gone = deep(old)
        meta(gone)["resourceVersion"] = str(self._rv)
        self._histories[rt].record(Event("DELETED", self._rv, gone, deep(old)))
        self._notify()
        return deep(gone)

    def conflict(self, rt: ResourceType, name: str) -> Conflict:
        return Conflict(
            f'Operation cannot be fulfilled on {rt.qualified} "{name}": the object has been '
            "modified; please apply your changes to the latest version and try again",
            name=name, group=rt.group, kind=rt.plural,
        )

    def compact_all(self) -> None:
        for history in self._histories.values():
            history.compact(self._rv)

    # -- waiting -----------------------------------------------------------------------------
    async def wait_until(self, predicate: Callable[[], Any], within: float = 10.0) -> Any:
        """Wait until predicate() is truthy (re-checked after every write); returns its value."""
        deadline = time.monotonic() + within
        while True:
            value = predicate()
            if value:
                return value
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"condition not met within {within}s")
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(fut)
            # Re-check at least every 0.25 s: predicates may depend on more than the store.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(remaining, 0.25)):
                    await fut

    # -- internals ---------------------------------------------------------------------------
    def _commit(self, rt: ResourceType, key: Key, obj: JSON, old: JSON | None) -> JSON:
        self._rv += 1
        meta(obj)["resourceVersion"] = str(self._rv)
        self._objects[rt][key] = obj
        kind = "ADDED" if old is None else "MODIFIED"
        self._histories[rt].record(Event(kind, self._rv, deep(obj), deep(old) if old else None))
        self._notify()
        return deep(obj)

    def _notify(self) -> None:
        waiters, self._waiters = self._waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    def _graceful(self, rt: ResourceType, obj: JSON, grace: int | None) -> bool:
        if rt is r.NAMESPACES:
            return True
        if rt is not r.PODS or grace == 0:
            return False
        phase = (obj.get("status") or {}).get("phase")
        return bool((obj.get("spec") or {}).get("nodeName")) and phase not in (
            "Succeeded", "Failed")

    def _check_namespace(self, namespace: str) -> None:
        ns = self._objects[r.NAMESPACES].get(("", namespace))
        if ns is None:
            raise NotFound(f'namespaces "{namespace}" not found', name=namespace, kind="namespaces")
        if meta(ns).get("deletionTimestamp"):
            raise Forbidden(
                f"unable to create new content in namespace {namespace} because it is being "
                "terminated", name=namespace, kind="namespaces",
            )

    def _allocate_cluster_ip(self, obj: JSON) -> None:
        spec = obj.setdefault("spec", {})
        if spec.get("clusterIP") in (None, ""):
            n = self._next_cluster_ip
            self._next_cluster_ip += 1
            spec["clusterIP"] = f"10.96.{n // 250}.{n % 250 + 1}"
        spec.setdefault("clusterIPs", [spec["clusterIP"]])
