"""Garbage collection by owner references, namespace termination, and pods of deleted nodes.

Owns: deleting dependents whose owner is gone (background propagation), orphaning dependents
when asked (`propagationPolicy: Orphan`, the batch/v1 Job default), and finishing a terminating
Namespace once everything in it is gone, and PodGC's part: when a Node is deleted, its pods
are marked Failed (DisruptionTarget, DeletionByPodGC) and deleted at once. Foreground
propagation is treated as background. Never touches processes: deleting a pod is enough,
the kubelet does the rest.
"""

from __future__ import annotations

import contextlib
from collections.abc import Hashable, Iterable

from . import resources as r
from .controller import Controller
from .errors import NotFound
from .history import Event
from .meta import JSON, dig, format_time, is_terminating, meta, owned_by
from .resources import ResourceType
from .store import Store


def default_policy(rt: ResourceType) -> str:
    # batch/v1 Jobs orphan their pods unless told otherwise, as the real server does.
    return "Orphan" if rt is r.JOBS else "Background"


def dependents(store: Store, uid: str) -> list[tuple[ResourceType, JSON]]:
    return [(rt, obj) for rt in r.ALL for obj in store.items(rt) if owned_by(obj, uid)]


def orphan_dependents(store: Store, uid: str) -> None:
    def drop(obj: JSON) -> None:
        refs = [ref for ref in meta(obj).get("ownerReferences") or [] if ref.get("uid") != uid]
        if refs:
            meta(obj)["ownerReferences"] = refs
        else:
            meta(obj).pop("ownerReferences", None)

    for rt, obj in dependents(store, uid):
        store.mutate(rt, meta(obj).get("namespace"), meta(obj)["name"], drop)


class GarbageCollector(Controller):
    name = "garbage-collector"
    watches = r.ALL

    def keys_for(self, event: Event) -> Iterable[Hashable]:
        m = meta(event.obj)
        if event.type == "DELETED":
            yield ("owner", str(m.get("uid")))
            if event.obj.get("kind") == "Node":
                yield ("node", str(m.get("name")))
        if event.obj.get("kind") == "Namespace" and is_terminating(event.obj):
            yield ("namespace", str(m.get("name")))
        elif event.type == "DELETED" and m.get("namespace"):
            ns = self.store.find(r.NAMESPACES, None, str(m["namespace"]))
            if ns is not None and is_terminating(ns):
                yield ("namespace", str(m["namespace"]))

    async def reconcile(self, key: Hashable) -> None:
        assert isinstance(key, tuple)
        what, ident = key
        if what == "owner":
            for rt, obj in dependents(self.store, ident):
                self._delete(rt, obj)
        elif what == "node":
            self._collect_pods_of(ident)
        else:
            self._finish_namespace(ident)

    def _delete(self, rt: ResourceType, obj: JSON) -> None:
        if is_terminating(obj):
            return
        with contextlib.suppress(NotFound):
            self.store.delete(rt, meta(obj).get("namespace"), meta(obj)["name"])

    def _collect_pods_of(self, node: str) -> None:
        """PodGC: the pods of a node that is gone fail and are deleted at once (their
        controllers make new ones, which the scheduler places elsewhere)."""
        if self.store.find(r.NODES, None, node) is not None:
            return  # registered again meanwhile
        for pod in self.store.items(r.PODS):
            if dig(pod, "spec", "nodeName") != node:
                continue
            ns, name = meta(pod).get("namespace"), str(meta(pod)["name"])

            def fail(p: JSON) -> None:
                status = p.setdefault("status", {})
                status["phase"] = "Failed"
                status["conditions"] = [
                    *[c for c in status.get("conditions") or []
                      if c.get("type") != "DisruptionTarget"],
                    {"type": "DisruptionTarget", "status": "True", "reason": "DeletionByPodGC",
                     "message": "PodGC: node no longer exists", "lastProbeTime": None,
                     "lastTransitionTime": format_time()}]

            with contextlib.suppress(NotFound):
                self.store.mutate(r.PODS, ns, name, fail, subresource="status")
                self.store.delete(r.PODS, ns, name, grace_seconds=0)

    def _finish_namespace(self, name: str) -> None:
        ns = self.store.find(r.NAMESPACES, None, name)
        if ns is None or not is_terminating(ns):
            return
        remaining = [
            (rt, obj) for rt in r.ALL if rt.namespaced
            for obj in self.store.items(rt) if meta(obj).get("namespace") == name
        ]
        for rt, obj in remaining:
            self._delete(rt, obj)
        if not remaining:
            self.store.remove(r.NAMESPACES, None, name)
