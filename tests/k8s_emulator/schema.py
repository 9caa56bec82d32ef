"""OpenAPI schema validation of every stored object, with the schemas `kubernetes-validate` ships.

Owns: loading the strict schema for a kind once per process and turning schema violations into
422 Invalid errors naming the field. `kubernetes_validate.validate()` re-reads a 1.2 MB
definitions file on every call (about 5 ms); building one validator per kind and reusing it
costs well under a millisecond per object, which matters because the kubelet and controllers
write often. Never decides semantics beyond the schema (see `rules.py`).
"""

from __future__ import annotations

import functools
import re
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


_UNEXPECTED = re.compile(r"\((.+?) (?:was|were) unexpected\)")
APPARMOR = "container.apparmor.security.beta.kubernetes.io/"
_APPARMOR_VALUES = {"RuntimeDefault": "runtime/default", "Unconfined": "unconfined"}


def _unknown_fields(error: Any) -> list[str]:
    if error.validator != "additionalProperties":
        return []
    m = _UNEXPECTED.search(error.message)
    return [n.strip().strip("'") for n in m.group(1).split(",")] if m else []


def _at(obj: Any, path: list[Any]) -> Any:
    for part in path:
        obj = obj[part]
    return obj


def _apparmor_annotated(obj: JSON, sc_path: list[Any]) -> bool:
    """Whether the `appArmorProfile` in the securityContext at `sc_path` (a container's or
    a pod's) is also given by the AppArmor annotation API servers before 1.30 read."""
    spec_path = sc_path[:-1]
    in_container = len(spec_path) >= 2 and spec_path[-2] in ("containers", "initContainers")
    owner = _at(obj, spec_path)  # the container, or the pod spec
    if in_container:
        spec_path = spec_path[:-2]
    spec = _at(obj, spec_path)
    notes = dig(_at(obj, spec_path[:-1]), "metadata", "annotations") or {}  # pod or template
    names = [owner.get("name")] if in_container else [
        c.get("name") for c in spec.get("containers") or []]
    profile = dig(owner, "securityContext", "appArmorProfile") or {}
    wanted = _APPARMOR_VALUES.get(profile.get("type")) or (
        f"localhost/{profile.get('localhostProfile')}")
    return bool(names) and all(notes.get(APPARMOR + str(n)) == wanted for n in names)


def _pod_spec_path(obj: JSON) -> list[Any] | None:
    if obj.get("kind") == "Pod":
        return ["spec"]
    if obj.get("kind") in ("Deployment", "Job", "ReplicaSet", "StatefulSet", "DaemonSet"):
        return ["spec", "template", "spec"]
    return None


def _gated_off(obj: JSON, version: str) -> list[tuple[list[Any], str]]:
    """Fields the schema of `version` has but its API server drops by default (behind a
    feature gate still off there): (path, why)."""
    spec_path = _pod_spec_path(obj)
    if spec_path is None or tuple(int(x) for x in version.split(".")[:2]) >= (1, 30):
        return []
    spec = dig(obj, *spec_path) or {}
    found = []
    for key in ("initContainers", "containers"):
        for i, c in enumerate(spec.get(key) or []):
            for hook in ("preStop", "postStart"):
                if "sleep" in (dig(c, "lifecycle", hook) or {}):
                    found.append(([*spec_path, key, i, "lifecycle", hook, "sleep"],
                                  "the sleep action is off by default before 1.30 "
                                  "(PodLifecycleSleepAction): use exec [sleep, N]"))
    return found


class SchemaValidator:
    """Validates objects of one Kubernetes version strictly (unknown fields rejected).

    `oldest`: an older version whose API server must not lose a field either. Such a
    server drops a field it does not know (with a warning at most), so an object that
    relies on a newer field is refused here naming the version — unless the field has a
    fallback that version reads, which the object also carries: `appArmorProfile`
    (1.30+) with the `container.apparmor.security.beta.kubernetes.io/<container>`
    annotation.
    """

    def __init__(self, kube_version: str, oldest: str | None = None, *,
                 fallbacks: bool = True) -> None:
        self.kube_version = kube_version
        self.schema_version = _schema_version(kube_version)
        self.oldest = oldest
        # False for what `kubectl apply` sends: its strict field validation makes an old
        # server refuse an unknown field outright, fallback or not.
        self.fallbacks = fallbacks

    def warm(self, kinds: list[tuple[str, str]]) -> None:
        for api_version, kind in kinds:
            _validator(self.kube_version, api_version, kind)

    def validate(self, obj: JSON, group: str) -> None:
        self._validate(obj, group, self.kube_version)
        if self.oldest is not None:
            self._validate_oldest(obj, group, self.oldest)

    def _validate_oldest(self, obj: JSON, group: str, version: str) -> None:
        api_version, kind = str(obj.get("apiVersion")), str(obj.get("kind"))
        validator = _validator(version, api_version, kind)
        for error in validator.iter_errors(obj):
            path = list(error.absolute_path)
            fields = _unknown_fields(error)
            if (self.fallbacks and fields == ["appArmorProfile"]
                    and _apparmor_annotated(obj, path)):
                continue
            name = str(dig(obj, "metadata", "name") or "")
            where = _field_path(path)
            if fields:
                raise invalid(kind, group, name, where, f"{', '.join(fields)}: not a field of "
                              f"Kubernetes {version}, whose API server drops it")
            raise invalid(kind, group, name, where, f"{error.message} (Kubernetes {version})")
        for path, why in _gated_off(obj, version):
            raise invalid(kind, str(group), str(dig(obj, "metadata", "name") or ""),
                          _field_path(path), f"dropped by a Kubernetes {version} API "
                          f"server: {why}")

    def _validate(self, obj: JSON, group: str, version: str) -> None:
        api_version, kind = str(obj.get("apiVersion")), str(obj.get("kind"))
        validator = _validator(version, api_version, kind)
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
