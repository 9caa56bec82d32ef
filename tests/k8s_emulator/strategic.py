"""Strategic merge patch for the built-in kinds the emulator serves.

Owns the subset of the strategic-merge rules that clients of these kinds rely on: maps merge
recursively, `null` deletes a key, lists named below merge element by element on their merge
key (containers by `name`, container ports by `containerPort`, Service ports by `port`, ...),
other lists are replaced, and the `$patch` (`replace`/`delete`/`merge`),
`$deleteFromPrimitiveList/...` and `$setElementOrder/...` directives. Never touches the store.
"""

from __future__ import annotations

import copy
from typing import Any

from .errors import BadRequest

# field name -> merge key, for lists of objects merged by key
_MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "hostAliases": "ip",
    "conditions": "type",
    "ownerReferences": "uid",
    "topologySpreadConstraints": "topologyKey",
    "resourceClaims": "name",
}
# lists of scalars whose patch strategy is "merge" (set union)
_MERGED_PRIMITIVES = frozenset({"finalizers"})
_CONTAINER_LISTS = frozenset({"containers", "initContainers", "ephemeralContainers"})


def _merge_key(path: tuple[str, ...], field: str) -> str | None:
    if field == "ports":
        # Container ports merge on containerPort; Service ports on port.
        return "containerPort" if any(p in _CONTAINER_LISTS for p in path) else "port"
    return _MERGE_KEYS.get(field)


def strategic_merge(original: dict[str, Any], patch: dict[str, Any]) -> Any:
    return _merge_map(copy.deepcopy(original), patch, ())


def _merge_map(original: dict[str, Any], patch: dict[str, Any], path: tuple[str, ...]) -> Any:
    directive = patch.get("$patch")
    if directive == "replace":
        return _strip_directives({k: v for k, v in patch.items() if k != "$patch"})
    if directive == "delete":
        return None
    if directive not in (None, "merge"):
        raise BadRequest(f"unknown patch directive {directive!r}")
    result = dict(original)
    for key, value in patch.items():
        if key == "$patch" or key.startswith("$setElementOrder/") or key == "$retainKeys":
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            if isinstance(result.get(field), list) and isinstance(value, list):
                result[field] = [v for v in result[field] if v not in value]
            continue
        if value is None:
            result.pop(key, None)
            continue
        current = result.get(key)
        if isinstance(value, dict):
            merged = _merge_map(current if isinstance(current, dict) else {}, value, (*path, key))
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        elif isinstance(value, list):
            result[key] = _merge_list(current, value, (*path, key), key)
        else:
            result[key] = copy.deepcopy(value)
    return result


def _merge_list(current: Any, patch: list[Any], path: tuple[str, ...], field: str) -> list[Any]:
    existing = list(current) if isinstance(current, list) else []
    if any(isinstance(item, dict) and item.get("$patch") == "replace" for item in patch):
        return [_strip_directives(i) for i in patch if not _is_directive_only(i)]
    if field in _MERGED_PRIMITIVES:
        return existing + [v for v in patch if v not in existing]
    key = _merge_key(path[:-1], field)
    if key is None or not all(isinstance(i, dict) for i in patch):
        return [_strip_directives(i) for i in patch]
    result = existing
    for item in patch:
        if key not in item:
            raise BadRequest(f"map in list {field!r} does not contain the merge key {key!r}")
        position = next(
            (i for i, e in enumerate(result) if isinstance(e, dict) and e.get(key) == item[key]),
            None,
        )
        if item.get("$patch") == "delete":
            if position is not None:
                result.pop(position)
            continue
        if position is None:
            result.append(_strip_directives(item))
        else:
            result[position] = _merge_map(result[position], item, path)
    return result


def _is_directive_only(item: Any) -> bool:
    return isinstance(item, dict) and set(item) == {"$patch"}


def _strip_directives(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: _strip_directives(v)
            for k, v in value.items()
            if not k.startswith("$")
        }
    if isinstance(value, list):
        return [_strip_directives(v) for v in value]
    return copy.deepcopy(value)
