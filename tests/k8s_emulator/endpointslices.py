"""The EndpointSlice controller: publishes where each pod can be reached, after a set delay.

Owns the slices labelled `endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io`.
A pod belongs to every Service in its namespace whose selector matches its labels; a pod that
no Service selects is published under its owning Deployment's name instead (the emulator's
convenience). Deviation forced by all pods sharing 127.0.0.1: each pod listens on its own port,
and the real controller puts endpoints with different port numbers in different slices, so
here every pod has its own slice `<service>-<pod-hash>` with one endpoint: address 127.0.0.1,
conditions ready/serving/terminating as the real controller sets them, targetRef the pod, and
ports named after the Service's ports (or the container's port names) carrying the pod's actual
port. Publication lags pod changes by `publish_delay` seconds to emulate control-plane
propagation. Never touches processes or pods.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Hashable, Iterable

from . import resources as r
from .controller import Controller
from .errors import NotFound
from .history import Event
from .meta import JSON, controller_of, dig, is_pod_ready, is_terminating, labels_of, meta
from .podspec import port_of
from .selectors import map_selects
from .store import Store

MANAGED_BY = "endpointslice.kubernetes.io/managed-by"
CONTROLLER = "endpointslice-controller.k8s.io"
SERVICE_NAME = "kubernetes.io/service-name"


class EndpointSliceController(Controller):
    name = "endpointslice-controller"
    watches = (r.PODS, r.SERVICES, r.ENDPOINT_SLICES)

    def __init__(self, store: Store, errors: list[BaseException], *, node_name: str,
                 publish_delay: float) -> None:
        super().__init__(store, errors)
        self.node_name = node_name
        self.publish_delay = publish_delay

    def keys_for(self, event: Event) -> Iterable[Hashable]:
        # One key per namespace: every slice of a namespace is recomputed together.
        if event.obj.get("kind") != "EndpointSlice" or \
                labels_of(event.obj).get(MANAGED_BY) == CONTROLLER:
            yield str(meta(event.obj).get("namespace"))

    def delay_for(self, event: Event) -> float:
        # Pod and Service changes reach the slices only after the propagation delay; an edit
        # of one of our slices by someone else is put right at once.
        return 0.0 if event.obj.get("kind") == "EndpointSlice" else self.publish_delay

    async def reconcile(self, key: Hashable) -> None:
        ns = str(key)
        wanted = self._desired(ns)
        existing = {
            meta(s)["name"]: s for s in self.store.items(r.ENDPOINT_SLICES)
            if meta(s).get("namespace") == ns and labels_of(s).get(MANAGED_BY) == CONTROLLER
        }
        for name, body in wanted.items():
            current = existing.get(name)
            if current is None:
                self.store.create(r.ENDPOINT_SLICES, body, ns)
            elif any(current.get(k) != body.get(k) for k in ("endpoints", "ports")) or \
                    labels_of(current) != labels_of(body):
                def change(obj: JSON, body: JSON = body) -> None:
                    obj["endpoints"], obj["ports"] = body["endpoints"], body["ports"]
                    meta(obj)["labels"] = meta(body)["labels"]
                self.store.mutate(r.ENDPOINT_SLICES, ns, name, change)
        for name in existing.keys() - wanted.keys():
            with contextlib.suppress(NotFound):
                self.store.remove(r.ENDPOINT_SLICES, ns, name)

    def _desired(self, ns: str) -> dict[str, JSON]:
        services = [s for s in self.store.items(r.SERVICES) if meta(s).get("namespace") == ns]
        slices: dict[str, JSON] = {}
        for pod in self.store.items(r.PODS):
            if meta(pod).get("namespace") != ns or not dig(pod, "status", "podIP"):
                continue
            if dig(pod, "status", "phase") in ("Succeeded", "Failed"):
                continue
            port = port_of(pod)
            if port is None:
                continue
            selecting = [s for s in services
                         if map_selects(dig(s, "spec", "selector"), labels_of(pod))]
            owner = controller_of(pod)
            if selecting:
                for svc in selecting:
                    ports = [_port(p.get("name"), port) for p in dig(svc, "spec", "ports") or []]
                    slices.update(self._slice(svc_name(svc), pod, ports or [_port(None, port)],
                                              svc))
            elif owner is not None and owner.get("kind") == "Deployment":
                container = (dig(pod, "spec", "containers") or [{}])[0]
                ports = [_port(p.get("name"), port) for p in container.get("ports") or []]
                slices.update(self._slice(str(owner["name"]), pod, ports or [_port(None, port)],
                                          None))
        return slices

    def _slice(self, service: str, pod: JSON, ports: list[JSON],
               svc: JSON | None) -> dict[str, JSON]:
        pod_name = str(meta(pod)["name"])
        digest = hashlib.sha256(f"{service}/{pod_name}".encode()).hexdigest()[:10]
        name = f"{service[:200]}-{digest}"
        terminating = is_terminating(pod)
        ready = is_pod_ready(pod)
        m: JSON = {"name": name, "namespace": meta(pod)["namespace"],
                   "labels": {SERVICE_NAME: service, MANAGED_BY: CONTROLLER}}
        if svc is not None:
            m["ownerReferences"] = [{"apiVersion": "v1", "kind": "Service", "name": service,
                                     "uid": meta(svc)["uid"], "controller": True,
                                     "blockOwnerDeletion": True}]
        endpoint = {
            "addresses": ["127.0.0.1"],
            "conditions": {"ready": ready and not terminating, "serving": ready,
                           "terminating": terminating},
            "targetRef": {"kind": "Pod", "namespace": meta(pod)["namespace"], "name": pod_name,
                          "uid": meta(pod)["uid"]},
            "nodeName": dig(pod, "spec", "nodeName") or self.node_name,
        }
        return {name: {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                       "metadata": m, "addressType": "IPv4", "endpoints": [endpoint],
                       "ports": ports}}


def svc_name(svc: JSON) -> str:
    return str(meta(svc)["name"])


def _port(name: object, port: int) -> JSON:
    # An unnamed port is published with the empty name, as the real controller does.
    return {"name": str(name or ""), "port": port, "protocol": "TCP"}
