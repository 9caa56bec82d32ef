"""Converters from one raw config value to a typed one: durations, addresses, names, hosts.

Each takes the value as YAML gave it and returns the converted value or raises
ValueError; the Reader turns that into a problem naming the key. Never reads files and
never reports problems itself.
"""

from __future__ import annotations

import math
import re

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_HOST_LABEL = re.compile(r"^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$")
# App names and namespaces: what Kubernetes accepts as a DNS label.
DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(
    r"^(?=.{1,253}$)[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$")

DURATION = "a duration like 30s or 5m"
POSITIVE_DURATION = "a duration above zero like 30s or 5m"
IDLE_AFTER = "a duration above zero like 30s or 5m, or never"
# `idle_after: never`: an app the sweeper never puts to sleep (production apps).
NEVER = math.inf


def parse_duration(value: object) -> float:
    """`300`, `300s`, `5m`, `1h`, `250ms`, `1m30s` → seconds. Raises ValueError."""
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, int | float):
        if value < 0 or not math.isfinite(value):
            raise ValueError(value)
        return float(value)
    if not isinstance(value, str):
        raise ValueError(value)
    text = value.strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        total = float(text)
        if not math.isfinite(total):
            raise ValueError(value)
        return total
    pos, total = 0, 0.0
    for m in _DURATION_PART.finditer(text):
        if m.start() != pos:
            raise ValueError(value)
        total += float(m.group(1)) * _UNIT[m.group(2)]
        pos = m.end()
    if pos != len(text) or pos == 0 or not math.isfinite(total):
        raise ValueError(value)
    return total


def parse_address(value: object) -> tuple[str, int]:
    """`host:port` or `[v6]:port` → (host, port). Raises ValueError."""
    if not isinstance(value, str):
        raise ValueError(value)
    host, sep, port_s = value.rpartition(":")
    if not sep or not host or not port_s.isdigit():
        raise ValueError(value)
    port = int(port_s)
    if not 0 <= port <= 65535:
        raise ValueError(value)
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, port


def positive_int(v: object) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ValueError(v)
    return v


def boolean(v: object) -> bool:
    if not isinstance(v, bool):
        raise ValueError(v)
    return v


def nonblank(v: object) -> str:
    if not isinstance(v, str) or not v.strip():
        raise ValueError(v)
    return v


def positive_duration(v: object) -> float:
    d = parse_duration(v)
    if d <= 0:
        raise ValueError(v)
    return d


def idle_after(v: object) -> float:
    """A positive duration, or `never` (NEVER: the app is never swept)."""
    if isinstance(v, str) and v.strip().lower() == "never":
        return NEVER
    return positive_duration(v)


def str_list(v: object) -> tuple[str, ...]:
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, list) or not all(isinstance(x, str) and x for x in v):
        raise ValueError(v)
    return tuple(v)


def host_pattern(v: str) -> str:
    p = v.strip().lower().rstrip(".")
    labels = p[2:].split(".") if p.startswith("*.") else p.split(".")
    if not p or not all(_HOST_LABEL.match(label) for label in labels):
        raise ValueError(v)
    return p


def dns_label(v: object) -> str:
    if not isinstance(v, str) or not DNS_LABEL.match(v):
        raise ValueError(v)
    return v


def dns_subdomain(v: object) -> str:
    if not isinstance(v, str) or not _DNS_SUBDOMAIN.match(v):
        raise ValueError(v)
    return v
