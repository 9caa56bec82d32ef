"""Semantic validation the schema cannot express, as the real server's validation does it.

Owns: name syntax per kind, label syntax, Deployment/Job selector rules and immutable fields,
replica counts, and the exact `MicroTime` format of Lease times (a decode error, 400, on the
real server). Never stores anything; raises `Invalid`/`BadRequest`.
"""

from __future__ import annotations

import re
from typing import Any

from . import priority, quantity
from .errors import BadRequest, invalid
from .meta import JSON, dig, labels_of, parse_micro_time
from .resources import ResourceType
from .selectors import from_label_selector_object

_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_QUALIFIED = re.compile(
    r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
_MICRO_FIELDS = ("acquireTime", "renewTime")


def check_object(rt: ResourceType, obj: JSON, old: JSON | None) -> None:
    name = str(dig(obj, "metadata", "name") or "")
    _check_name(rt, name)
    for key, value in labels_of(obj).items():
        if not _QUALIFIED.match(str(key)) or len(str(key).split("/")[-1]) > 63:
            raise invalid(rt.kind, rt.group, name, "metadata.labels", "invalid label key", key)
        if not isinstance(value, str) or not _LABEL_VALUE.match(value):
            raise invalid(rt.kind, rt.group, name, "metadata.labels", "invalid label value", value)
    for key in (dig(obj, "metadata", "annotations") or {}):
        if not _QUALIFIED.match(str(key)):
            raise invalid(rt.kind, rt.group, name, "metadata.annotations", "invalid key", key)
    if rt.kind in ("Deployment", "Job"):
        _check_workload(rt, obj, old, name)
    for path, container in _containers(obj):
        _check_resources(rt, name, path, container)
    if rt.kind == "PriorityClass":
        priority.validate(obj, old)


def _check_name(rt: ResourceType, name: str) -> None:
    if not name:
        raise invalid(rt.kind, rt.group, name, "metadata.name", "name or generateName is required")
    if rt.kind == "Service":
        ok, what = bool(_LABEL_1035.match(name)) and len(name) <= 63, "RFC 1035 label"
    elif rt.kind == "Namespace":
        ok, what = bool(_LABEL_1123.match(name)) and len(name) <= 63, "RFC 1123 label"
    else:
        ok, what = bool(_SUBDOMAIN.match(name)) and len(name) <= 253, "RFC 1123 subdomain"
    if not ok:
        raise invalid(rt.kind, rt.group, name, "metadata.name", f"a lowercase {what} must "
                      "consist of lower case alphanumeric characters or '-'", name)


def _check_workload(rt: ResourceType, obj: JSON, old: JSON | None, name: str) -> None:
    spec = obj.get("spec") or {}
    for field in ("replicas", "parallelism", "completions", "backoffLimit"):
        value = spec.get(field)
        if isinstance(value, int) and value < 0:
            raise invalid(rt.kind, rt.group, name, f"spec.{field}",
                          "must be greater than or equal to 0", value)
    selector = spec.get("selector")
    template_labels = dig(spec, "template", "metadata", "labels") or {}
    if rt.kind == "Deployment":
        parsed = from_label_selector_object(selector)
        if parsed.empty:
            raise invalid(rt.kind, rt.group, name, "spec.selector",
                          "empty selector is invalid for deployment")
        if not parsed.matches(template_labels):
            raise invalid(rt.kind, rt.group, name, "spec.template.metadata.labels",
                          "`selector` does not match template `labels`", template_labels)
    if rt.kind == "Job":
        policy = dig(spec, "template", "spec", "restartPolicy")
        if policy not in ("Never", "OnFailure"):
            raise invalid(rt.kind, rt.group, name, "spec.template.spec.restartPolicy",
                          'supported values: "OnFailure", "Never"', policy)
    if old is not None and dig(old, "spec", "selector") != selector:
        raise invalid(rt.kind, rt.group, name, "spec.selector", "field is immutable", selector)


def _containers(obj: JSON) -> list[tuple[str, JSON]]:
    """(field path, container) of a Pod's or a pod template's containers."""
    spec_path = {"Pod": ("spec",), "Deployment": ("spec", "template", "spec"),
                 "Job": ("spec", "template", "spec")}.get(str(obj.get("kind")))
    spec = dig(obj, *spec_path) if spec_path else None
    if not isinstance(spec, dict):
        return []
    return [(f"{'.'.join(spec_path or ())}.{key}[{i}]", c)
            for key in ("initContainers", "containers")
            for i, c in enumerate(spec.get(key) or []) if isinstance(c, dict)]


def _check_resources(rt: ResourceType, name: str, path: str, container: JSON) -> None:
    """Amounts are not negative and a request is at most its limit."""
    requests = dig(container, "resources", "requests") or {}
    limits = dig(container, "resources", "limits") or {}
    for side, amounts in (("requests", requests), ("limits", limits)):
        for resource, amount in amounts.items():
            if quantity.parse(amount) < 0:
                raise invalid(rt.kind, rt.group, name, f"{path}.resources.{side}[{resource}]",
                              "must be greater than or equal to 0", str(amount))
    for resource, amount in requests.items():
        if resource in limits and quantity.parse(amount) > quantity.parse(limits[resource]):
            raise invalid(rt.kind, rt.group, name, f"{path}.resources.requests",
                          f"must be less than or equal to {resource} limit of "
                          f"{limits[resource]}", str(amount))


def check_decodable(rt: ResourceType, obj: JSON) -> None:
    """Checks the real server makes while decoding the body (failures are 400, not 422)."""
    for _, container in _containers(obj):
        for side in ("requests", "limits"):
            for amount in (dig(container, "resources", side) or {}).values():
                try:
                    quantity.parse(amount)
                except quantity.QuantityError as err:
                    raise BadRequest(f'{rt.kind} in version "{rt.version}" cannot be handled '
                                     f"as a {rt.kind}: {err}") from None
    if rt.kind == "PriorityClass":
        priority.check_decodable(obj)
    if rt.kind != "Lease":
        return
    spec: Any = obj.get("spec") or {}
    for field in _MICRO_FIELDS:
        value = spec.get(field) if isinstance(spec, dict) else None
        if value is None:
            continue
        if not isinstance(value, str) or parse_micro_time(value) is None:
            raise BadRequest(
                f'Lease in version "v1" cannot be handled as a Lease: parsing time {value!r} as '
                '"2006-01-02T15:04:05.000000Z07:00": MicroTime needs exactly six fraction '
                "digits and a zone"
            )
