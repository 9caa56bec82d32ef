"""Label and field selectors: parse the query-string forms and match objects against them.

Owns the selector grammar the real API accepts (`=`, `==`, `!=`, `in`, `notin`, `key`, `!key`,
`>`/`<`) and the `LabelSelector` object form (matchLabels/matchExpressions). Parsing errors are
400 BadRequest. Never reads the store.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import BadRequest
from .meta import JSON, dig, labels_of

_NAME = r"[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_KEY = rf"(?:[a-z0-9](?:[-a-z0-9.]{{0,251}}[a-z0-9])?/)?{_NAME}"
_VALUE = rf"(?:{_NAME})?"
_SET_RE = re.compile(rf"^({_KEY})\s+(in|notin)\s*\(([^()]*)\)$")
_OP_RE = re.compile(rf"^({_KEY})\s*(==|=|!=|>|<)\s*({_VALUE})$")
_EXISTS_RE = re.compile(rf"^({_KEY})$")
_NOT_EXISTS_RE = re.compile(rf"^!\s*({_KEY})$")
_VALUE_RE = re.compile(rf"^{_VALUE}$")


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # in, notin, exists, !exists, gt, lt
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        has = self.key in labels
        value = labels.get(self.key)
        if self.op == "in":
            return has and value in self.values
        if self.op == "notin":
            return not has or value not in self.values
        if self.op == "exists":
            return has
        if self.op == "!exists":
            return not has
        if not has or value is None:
            return False
        try:
            number, bound = int(value), int(next(iter(self.values)))
        except ValueError:
            return False
        return number > bound if self.op == "gt" else number < bound


@dataclass(frozen=True)
class LabelSelector:
    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(r.matches(labels) for r in self.requirements)

    @property
    def empty(self) -> bool:
        return not self.requirements


def _split_top_level(text: str) -> list[str]:
    parts: list[str] = []
    depth = 0
    current: list[str] = []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


def parse_label_selector(text: str | None) -> LabelSelector:
    if not text or not text.strip():
        return LabelSelector()
    reqs: list[Requirement] = []
    for raw in _split_top_level(text):
        part = raw.strip()
        reqs.append(_parse_requirement(part, text))
    return LabelSelector(tuple(reqs))


def _parse_requirement(part: str, whole: str) -> Requirement:
    if m := _SET_RE.match(part):
        values = [v.strip() for v in m.group(3).split(",")]
        if not all(_VALUE_RE.match(v) for v in values) or values == [""]:
            raise BadRequest(f"unable to parse requirement: values in {part!r} are not valid")
        return Requirement(m.group(1), m.group(2), frozenset(values))
    if m := _OP_RE.match(part):
        op = {"=": "in", "==": "in", "!=": "notin", ">": "gt", "<": "lt"}[m.group(2)]
        if op in ("gt", "lt") and not m.group(3).lstrip("-").isdigit():
            raise BadRequest(f"unable to parse requirement: {part!r}: value must be an integer")
        return Requirement(m.group(1), op, frozenset({m.group(3)}))
    if m := _NOT_EXISTS_RE.match(part):
        return Requirement(m.group(1), "!exists")
    if m := _EXISTS_RE.match(part):
        return Requirement(m.group(1), "exists")
    raise BadRequest(f"unable to parse requirement: found {part!r} in selector {whole!r}")


def from_label_selector_object(selector: Any) -> LabelSelector:
    """The `LabelSelector` object form (matchLabels + matchExpressions)."""
    if not isinstance(selector, dict):
        return LabelSelector()
    reqs = [
        Requirement(k, "in", frozenset({str(v)}))
        for k, v in sorted((selector.get("matchLabels") or {}).items())
    ]
    ops = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!exists"}
    for expr in selector.get("matchExpressions") or []:
        op = ops.get(str(expr.get("operator")))
        if op is None:
            raise BadRequest(f"unsupported label selector operator {expr.get('operator')!r}")
        reqs.append(Requirement(str(expr.get("key")), op, frozenset(expr.get("values") or ())))
    return LabelSelector(tuple(reqs))


def to_string(selector: LabelSelector) -> str:
    """The canonical string form, as the server writes in `Scale.status.selector`."""
    out: list[str] = []
    for r in selector.requirements:
        values = sorted(r.values)
        if r.op == "in" and len(values) == 1:
            out.append(f"{r.key}={values[0]}")
        elif r.op in ("in", "notin"):
            out.append(f"{r.key} {r.op} ({','.join(values)})")
        elif r.op == "exists":
            out.append(r.key)
        elif r.op == "!exists":
            out.append(f"!{r.key}")
        else:
            out.append(f"{r.key}{'>' if r.op == 'gt' else '<'}{values[0]}")
    return ",".join(out)


def map_selects(selector: Mapping[str, str] | None, labels: Mapping[str, str]) -> bool:
    """A Service-style plain map selector; an empty one selects nothing."""
    if not selector:
        return False
    return all(labels.get(k) == v for k, v in selector.items())


# Field selectors: the fields every kind supports, plus a few per kind.
_COMMON_FIELDS: dict[str, Callable[[JSON], Any]] = {
    "metadata.name": lambda o: dig(o, "metadata", "name"),
    "metadata.namespace": lambda o: dig(o, "metadata", "namespace"),
}
_KIND_FIELDS: dict[str, dict[str, Callable[[JSON], Any]]] = {
    "Pod": {
        "spec.nodeName": lambda o: dig(o, "spec", "nodeName"),
        "spec.restartPolicy": lambda o: dig(o, "spec", "restartPolicy"),
        "status.phase": lambda o: dig(o, "status", "phase"),
        "status.podIP": lambda o: dig(o, "status", "podIP"),
    },
    "Job": {"status.successful": lambda o: str(dig(o, "status", "succeeded") or 0)},
    # What the API server's Event field selectors offer (events about one object).
    "Event": {
        "involvedObject.kind": lambda o: dig(o, "involvedObject", "kind"),
        "involvedObject.namespace": lambda o: dig(o, "involvedObject", "namespace"),
        "involvedObject.name": lambda o: dig(o, "involvedObject", "name"),
        "involvedObject.uid": lambda o: dig(o, "involvedObject", "uid"),
        "involvedObject.apiVersion": lambda o: dig(o, "involvedObject", "apiVersion"),
        "reason": lambda o: o.get("reason"),
        "type": lambda o: o.get("type"),
        "source": lambda o: dig(o, "source", "component"),
        "reportingComponent": lambda o: o.get("reportingComponent"),
    },
}


@dataclass(frozen=True)
class FieldSelector:
    terms: tuple[tuple[Callable[[JSON], Any], bool, str], ...] = ()  # (getter, equal?, value)

    def matches(self, obj: JSON) -> bool:
        for getter, equal, value in self.terms:
            actual = getter(obj)
            actual_text = "" if actual is None else str(actual)
            if (actual_text == value) != equal:
                return False
        return True


def parse_field_selector(text: str | None, kind: str) -> FieldSelector:
    if not text or not text.strip():
        return FieldSelector()
    known = {**_COMMON_FIELDS, **_KIND_FIELDS.get(kind, {})}
    terms: list[tuple[Callable[[JSON], Any], bool, str]] = []
    for raw in text.split(","):
        part = raw.strip()
        m = re.match(r"^([A-Za-z0-9_.]+)\s*(==|=|!=)\s*(.*)$", part)
        if not m:
            raise BadRequest(f"invalid selector: {part!r}; can't understand it")
        field, op, value = m.groups()
        getter = known.get(field)
        if getter is None:
            raise BadRequest(f'field label not supported: "{field}"')
        terms.append((getter, op != "!=", value))
    return FieldSelector(tuple(terms))


@dataclass(frozen=True)
class Filter:
    """What one list or watch asks for: namespace, labels, fields."""

    namespace: str | None = None
    labels: LabelSelector = LabelSelector()
    fields: FieldSelector = FieldSelector()

    def matches(self, obj: JSON) -> bool:
        if self.namespace is not None and dig(obj, "metadata", "namespace") != self.namespace:
            return False
        return self.labels.matches(labels_of(obj)) and self.fields.matches(obj)
