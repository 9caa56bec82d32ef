"""The resource types the emulator serves, and how URLs and `apiVersion`/`kind` name them.

Owns the registry only: which group/version/plural exists, its kind, whether it is namespaced,
which subresources it has and which server-set behaviours (generation, status subresource)
apply. Must never hold objects or behaviour beyond these static facts.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ResourceType:
    group: str  # "" for the core group
    version: str
    plural: str
    kind: str
    namespaced: bool
    subresources: frozenset[str] = frozenset()
    # metadata.generation is tracked and bumped on spec changes
    has_generation: bool = False
    short_names: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def qualified(self) -> str:
        """`deployments.apps` style name used in error messages."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def has_status(self) -> bool:
        return "status" in self.subresources

    def __str__(self) -> str:
        return self.qualified


NAMESPACES = ResourceType("", "v1", "namespaces", "Namespace", False, frozenset({"status"}),
                          short_names=("ns",))
PODS = ResourceType(
    "", "v1", "pods", "Pod", True, frozenset({"status", "log"}), short_names=("po",)
)
SERVICES = ResourceType("", "v1", "services", "Service", True, frozenset({"status"}),
                        short_names=("svc",))
CONFIGMAPS = ResourceType("", "v1", "configmaps", "ConfigMap", True, short_names=("cm",))
DEPLOYMENTS = ResourceType(
    "apps", "v1", "deployments", "Deployment", True, frozenset({"status", "scale"}),
    has_generation=True, short_names=("deploy",),
)
JOBS = ResourceType("batch", "v1", "jobs", "Job", True, frozenset({"status"}), has_generation=True)
ENDPOINT_SLICES = ResourceType("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", True)
LEASES = ResourceType("coordination.k8s.io", "v1", "leases", "Lease", True)
EVENTS = ResourceType("", "v1", "events", "Event", True, short_names=("ev",))
PRIORITY_CLASSES = ResourceType("scheduling.k8s.io", "v1", "priorityclasses", "PriorityClass",
                                False, short_names=("pc",))
NODES = ResourceType("", "v1", "nodes", "Node", False, frozenset({"status"}), short_names=("no",))

ALL: tuple[ResourceType, ...] = (
    NAMESPACES, PODS, SERVICES, CONFIGMAPS, DEPLOYMENTS, JOBS, ENDPOINT_SLICES, LEASES, EVENTS,
    NODES, PRIORITY_CLASSES,
)

_BY_PATH = {(r.group, r.version, r.plural): r for r in ALL}
_BY_KIND = {(r.api_version, r.kind): r for r in ALL}


def by_path(group: str, version: str, plural: str) -> ResourceType | None:
    return _BY_PATH.get((group, version, plural))


def by_kind(api_version: str, kind: str) -> ResourceType | None:
    return _BY_KIND.get((api_version, kind))


def group_versions() -> list[tuple[str, str]]:
    """Every (group, version) served, core first, in a stable order."""
    seen: list[tuple[str, str]] = []
    for r in ALL:
        if (r.group, r.version) not in seen:
            seen.append((r.group, r.version))
    return seen


def in_group_version(group: str, version: str) -> list[ResourceType]:
    return [r for r in ALL if r.group == group and r.version == version]
