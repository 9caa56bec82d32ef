"""OpenAPI schema validation of every stored object, with the schemas `kubernetes-validate` ships.

Owns: loading the strict schema for a kind once per process and turning schema violations into
422 Invalid errors naming the field. `kubernetes_validate.validate()` re-reads a 1.2 MB
definitions file on every call (about 5 ms); building one validator per kind and reusing it
costs well under a millisecond per object, which matters because the kubelet and controllers
write often. Never decides semantics beyond the schema (see `rules.py`).
"""

from __future__ import annotations

import functools
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import kubernetes_validate  # type: ignore[import-untyped]
import referencing
from kubernetes_validate import utils as kv_utils

from .errors import invalid
from .meta import JSON, dig


def _schema_version(desired: str) -> str:
    wanted = kv_utils.major_minor(desired)
    versions = [v for v in kv_utils.all_versions() if kv_utils.major_minor(v) <= wanted]
    if not versions:
        raise ValueError(f"kubernetes-validate ships no schema for {desired}")
    return str(versions[-1])


@functools.cache
def _definitions(schema_dir: str) -> referencing.Resource[Any]:
    contents = kv_utils.schema_contents(
        f"kubernetes-json-schema/{schema_dir}/_definitions.json", schema_dir
    )
    return referencing.Resource.from_contents(contents)


@functools.cache
def _validator(kube_version: str, api_version: str, kind: str) -> jsonschema.Validator:
    schema_dir = f"v{_schema_version(kube_version)}-local-strict"
    group_version = api_version.replace("/", "-")
    if "/" in api_version:
        group, version = api_version.split("/", 1)
        group_version = f"{group.split('.')[0]}-{version}"
    schema = kv_utils.schema_contents(
        f"kubernetes-json-schema/{schema_dir}/{kind.lower()}-{group_version}.json", kube_version
    )
    registry: referencing.Registry[Any] = referencing.Registry().with_resources(
        [("", referencing.Resource.from_contents(schema))]
    )
    registry = _definitions(schema_dir) @ registry
    return jsonschema.Draft202012Validator(schema, registry=registry)


def _field_path(path: Any) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<root>"


class SchemaValidator:
    """Validates objects of one Kubernetes version strictly (unknown fields rejected)."""

    def __init__(self, kube_version: str) -> None:
        self.kube_version = kube_version
        self.schema_version = _schema_version(kube_version)

    def warm(self, kinds: list[tuple[str, str]]) -> None:
        for api_version, kind in kinds:
            _validator(self.kube_version, api_version, kind)

    def validate(self, obj: JSON, group: str) -> None:
        api_version, kind = str(obj.get("apiVersion")), str(obj.get("kind"))
        validator = _validator(self.kube_version, api_version, kind)
        errors = sorted(validator.iter_errors(obj), key=lambda e: list(e.absolute_path))
        if not errors:
            return
        first = errors[0]
        name = str(dig(obj, "metadata", "name") or "")
        err = invalid(kind, group, name, _field_path(first.absolute_path), first.message)
        err.causes = [
            {"reason": "FieldValueInvalid", "message": e.message,
             "field": _field_path(e.absolute_path)}
            for e in errors[:10]
        ]
        raise err


def reference_validate(obj: JSON, kube_version: str) -> str:
    """The library's own entry point, used by tests to cross-check the cached validators."""
    return str(kubernetes_validate.validate(obj, kube_version, strict=True))
