"""The set of apps from every declaring Deployment, with each host claimed by one app only.

When two Deployments claim one host (or one `*.domain` wildcard), the one created first
keeps it and the later one is refused as a whole, with a reason naming the host and its
owner; every other app is unaffected. Deterministic: the same Deployments always give
the same set, whichever replica computes it. Pure: no I/O, no state.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from wakeproxy.model.routes import normalize_pattern
from wakeproxy.platforms.kubernetes.annotations import AppSpec


@dataclass(frozen=True, slots=True)
class Catalog:
    apps: Mapping[str, AppSpec] = field(default_factory=dict)  # by app name
    refused: Mapping[str, str] = field(default_factory=dict)  # app name → why


def build_catalog(specs: Iterable[AppSpec], invalid: Mapping[str, str]) -> Catalog:
    """Accept `specs` oldest first while their hosts are free; `invalid` is refused as is."""
    apps: dict[str, AppSpec] = {}
    refused = dict(invalid)
    claims: dict[str, str] = {}
    for spec in sorted(specs, key=lambda s: (s.created, s.namespace, s.deployment)):
        taken = [(h, claims[normalize_pattern(h)]) for h in spec.policy.hosts
                 if normalize_pattern(h) in claims]
        if taken:
            host, owner = taken[0]
            refused[spec.name] = f"host {host!r} is already claimed by app {owner!r}"
            continue
        for h in spec.policy.hosts:
            claims[normalize_pattern(h)] = spec.name
        apps[spec.name] = spec
    return Catalog(apps, refused)
