"""The `scale` subresource of Deployments, as `autoscaling/v1` Scale objects.

Owns: the Scale view of a Deployment (spec.replicas, status.replicas, status.selector as a
selector string, and the Deployment's name/uid/resourceVersion), GET, PUT and PATCH (all three
patch types) on it, the resourceVersion precondition (a Scale carrying a stale
`metadata.resourceVersion` is a 409 Conflict), and validation of the Scale. Never touches
anything but the Deployment's `spec.replicas`.
"""

from __future__ import annotations

from typing import Any

from . import resources as r
from .errors import BadRequest, invalid
from .meta import JSON, deep, dig, meta
from .patch import apply_patch
from .schema import SchemaValidator
from .selectors import from_label_selector_object, to_string
from .store import Store

SCALE_API_VERSION = "autoscaling/v1"


def scale_of(dep: JSON) -> JSON:
    m = meta(dep)
    return {
        "kind": "Scale",
        "apiVersion": SCALE_API_VERSION,
        "metadata": {k: m[k] for k in ("name", "namespace", "uid", "resourceVersion",
                                       "creationTimestamp") if k in m},
        "spec": {"replicas": int(dig(dep, "spec", "replicas") or 0)},
        "status": {
            "replicas": int(dig(dep, "status", "replicas") or 0),
            "selector": to_string(from_label_selector_object(dig(dep, "spec", "selector"))),
        },
    }


class ScaleSubresource:
    def __init__(self, store: Store, validator: SchemaValidator | None) -> None:
        self.store = store
        self.validator = validator

    def get(self, namespace: str | None, name: str) -> JSON:
        return scale_of(self.store.get(r.DEPLOYMENTS, namespace, name))

    def update(self, namespace: str | None, name: str, body: Any, *, dry_run: bool) -> JSON:
        dep = self.store.get(r.DEPLOYMENTS, namespace, name)
        if not isinstance(body, dict):
            raise BadRequest("the body of the request must be a Scale object")
        scale = deep(body)
        scale.setdefault("apiVersion", SCALE_API_VERSION)
        scale.setdefault("kind", "Scale")
        if (scale["apiVersion"], scale["kind"]) != (SCALE_API_VERSION, "Scale"):
            raise BadRequest(f"expected an {SCALE_API_VERSION} Scale, got "
                             f"{scale['apiVersion']} {scale['kind']}")
        scale_meta = meta(scale)
        if scale_meta.get("name") not in (None, name):
            raise BadRequest(f"the name of the object ({scale_meta['name']}) does not match "
                             f"the name on the URL ({name})")
        wanted_rv = scale_meta.get("resourceVersion")
        if wanted_rv and str(wanted_rv) != meta(dep)["resourceVersion"]:
            raise self.store.conflict(r.DEPLOYMENTS, name)
        if self.validator is not None:
            self.validator.validate(scale, "autoscaling")
        replicas = dig(scale, "spec", "replicas")
        if replicas is None:
            replicas = 0  # an omitted count is zero on the wire, as in the real API
        if not isinstance(replicas, int) or replicas < 0:
            raise invalid("Scale", "autoscaling", name, "spec.replicas",
                          "must be greater than or equal to 0", replicas)
        dep.setdefault("spec", {})["replicas"] = replicas
        updated = self.store.update(r.DEPLOYMENTS, dep, namespace, name, dry_run=dry_run)
        return scale_of(updated)

    def patch(self, namespace: str | None, name: str, content_type: str, patch: Any, *,
              dry_run: bool) -> JSON:
        current = self.get(namespace, name)
        return self.update(namespace, name, apply_patch(content_type, current, patch),
                           dry_run=dry_run)
