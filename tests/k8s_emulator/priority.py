"""PriorityClasses and the Priority admission plugin, as the API server has them.

Owns: the built-in classes (`system-cluster-critical`, `system-node-critical`) the server
creates and refuses to delete; PriorityClass validation (a user-defined `value` at most
1000000000, `system-` names reserved, `preemptionPolicy` PreemptLowerPriority|Never,
`value` and `preemptionPolicy` immutable) and admission (only one `globalDefault`); and pod
admission: `spec.priorityClassName` must name an existing class (else 403 `no
PriorityClass with name X was found`), `spec.priority` and `spec.preemptionPolicy` are set
from it (or from the globalDefault class, or 0 / PreemptLowerPriority), and a pod that
brings a different priority or policy of its own is refused. Decides nothing about
scheduling; reads classes through the lookup it is given.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from . import resources as r
from .errors import BadRequest, Forbidden, Invalid, invalid
from .meta import JSON, dig, meta
from .resources import ResourceType

HIGHEST_USER_DEFINABLE = 1_000_000_000
SYSTEM_PREFIX = "system-"
POLICIES = ("Never", "PreemptLowerPriority")
_INT32 = (-(2**31), 2**31 - 1)

BUILT_IN: tuple[JSON, ...] = (
    {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
     "metadata": {"name": "system-node-critical"}, "value": 2_000_001_000,
     "description": "Used for system critical pods that must not be moved from their "
                    "current node.", "preemptionPolicy": "PreemptLowerPriority"},
    {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
     "metadata": {"name": "system-cluster-critical"}, "value": 2_000_000_000,
     "description": "Used for system critical pods that must run in the cluster, but can be "
                    "moved to another node if necessary.",
     "preemptionPolicy": "PreemptLowerPriority"},
)
_BUILT_IN_NAMES = {str(pc["metadata"]["name"]): pc for pc in BUILT_IN}

Classes = Callable[[], Iterable[JSON]]


def _refuse(name: str, field: str, detail: str) -> Invalid:
    return invalid("PriorityClass", r.PRIORITY_CLASSES.group, name, field, detail)


def check_decodable(obj: JSON) -> None:
    value = obj.get("value")
    if isinstance(value, int) and not isinstance(value, bool) and not (
            _INT32[0] <= value <= _INT32[1]):
        raise BadRequest('PriorityClass in version "v1" cannot be handled as a PriorityClass: '
                         f"json: cannot unmarshal number {value} into Go struct field "
                         "PriorityClass.value of type int32")


def validate(obj: JSON, old: JSON | None) -> None:
    """ValidatePriorityClass (and ValidatePriorityClassUpdate when `old` is given)."""
    name = str(dig(obj, "metadata", "name") or "")
    value = obj.get("value")
    if name.startswith(SYSTEM_PREFIX):
        known = _BUILT_IN_NAMES.get(name)
        if known is None:
            why = f"{name} is not a known system priority class"
        elif known["value"] != value:
            why = f"value of {name} PriorityClass must be {known['value']}"
        elif bool(obj.get("globalDefault")):
            why = f"globalDefault of {name} PriorityClass must be false"
        else:
            why = ""
        if why:
            raise _refuse(name, "metadata.name", "Forbidden: priority class names with "
                          f"'{SYSTEM_PREFIX}' prefix are reserved for system use only. "
                          f"error: {why}")
    elif isinstance(value, int) and value > HIGHEST_USER_DEFINABLE:
        raise _refuse(name, "value", "Forbidden: maximum allowed value of a user defined "
                      f"priority is {HIGHEST_USER_DEFINABLE}")
    policy = obj.get("preemptionPolicy")
    if policy is not None and policy not in POLICIES:
        raise _refuse(name, "preemptionPolicy", f'Unsupported value: "{policy}": supported '
                      f'values: "{POLICIES[0]}", "{POLICIES[1]}"')
    if old is None:
        return
    if value != old.get("value"):
        raise _refuse(name, "value", "Forbidden: may not be changed in an update.")
    if policy != old.get("preemptionPolicy"):
        raise _refuse(name, "preemptionPolicy",
                      f'Invalid value: "{policy}": field is immutable')


def _default_class(classes: Classes, other_than: str | None = None) -> JSON | None:
    return next((pc for pc in classes() if pc.get("globalDefault")
                 and meta(pc).get("name") != other_than), None)


def admit_class(classes: Classes) -> Callable[[ResourceType, JSON, JSON | None], None]:
    """Admission of PriorityClass writes: one globalDefault at most."""

    def admit(rt: ResourceType, pc: JSON, old: JSON | None) -> None:
        if rt is not r.PRIORITY_CLASSES or not pc.get("globalDefault"):
            return
        name = str(meta(pc).get("name"))
        existing = _default_class(classes, other_than=name)
        if existing is not None:
            raise Forbidden(f'priorityclasses.scheduling.k8s.io "{name}" is forbidden: '
                            f"PriorityClass {meta(existing)['name']} is already marked as "
                            "default. Only one default can exist", name=name,
                            group=r.PRIORITY_CLASSES.group, kind="priorityclasses")

    return admit


def refuse_built_in_delete(rt: ResourceType, obj: JSON) -> None:
    name = str(meta(obj).get("name"))
    if rt is r.PRIORITY_CLASSES and name in _BUILT_IN_NAMES:
        raise Forbidden(f'priorityclasses.scheduling.k8s.io "{name}" is forbidden: this is a '
                        "system priority class and cannot be deleted", name=name,
                        group=r.PRIORITY_CLASSES.group, kind="priorityclasses")


def admit_pod(classes: Classes) -> Callable[[ResourceType, Any], None]:
    """The Priority admission plugin on pod creation."""

    def admit(rt: ResourceType, pod: JSON) -> None:
        if rt is not r.PODS:
            return
        spec = pod.setdefault("spec", {})
        name = str(meta(pod).get("name") or meta(pod).get("generateName") or "")
        wanted = spec.get("priorityClassName")
        if wanted:
            found = next((pc for pc in classes() if meta(pc).get("name") == wanted), None)
            if found is None:
                raise Forbidden(f'pods "{name}" is forbidden: no PriorityClass with name '
                                f"{wanted} was found", name=name, kind="pods")
        else:
            found = _default_class(classes)
            if found is not None:
                spec["priorityClassName"] = meta(found)["name"]
        value = int(found["value"]) if found is not None else 0
        policy = (found.get("preemptionPolicy") if found is not None
                  else "PreemptLowerPriority")
        if spec.get("priority") is not None and spec["priority"] != value:
            raise Forbidden(f'pods "{name}" is forbidden: the integer value of priority '
                            f"({spec['priority']}) must not be provided in pod spec; priority "
                            f"admission controller computed {value} from the given "
                            "PriorityClass name", name=name, kind="pods")
        spec["priority"] = value
        if policy is not None:
            if spec.get("preemptionPolicy") not in (None, policy):
                raise Forbidden(f'pods "{name}" is forbidden: the string value of '
                                f"PreemptionPolicy ({spec['preemptionPolicy']}) must not be "
                                "provided in pod spec; priority admission controller computed "
                                f"{policy} from the given PriorityClass name", name=name,
                                kind="pods")
            spec["preemptionPolicy"] = policy

    return admit


def keep_pod_priority(rt: ResourceType, pod: JSON, old: JSON | None) -> None:
    """On a pod update the priority set at creation stays, as the plugin keeps it."""
    if rt is not r.PODS or old is None:
        return
    spec = pod.setdefault("spec", {})
    for field in ("priority", "preemptionPolicy"):
        if spec.get(field) is None and dig(old, "spec", field) is not None:
            spec[field] = dig(old, "spec", field)
