"""Discovery documents: `/version`, `/api`, `/apis`, `/api/v1`, `/apis/{group}/{version}`.

Owns what the emulator tells clients it serves (groups, versions, resources with their verbs
and subresources), derived from the resource registry. Never serves objects.
"""

from __future__ import annotations

from . import resources as r
from .errors import NotFound
from .meta import JSON

_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


def version(kube_version: str) -> JSON:
    major, minor = kube_version.split(".")[:2]
    return {"major": major, "minor": minor, "gitVersion": f"v{major}.{minor}.0-emulator",
            "platform": "linux/amd64"}


def document(group: str | None, ver: str | None) -> JSON:
    if group == "" and ver is None:
        return {"kind": "APIVersions", "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0",
                                                "serverAddress": "127.0.0.1"}]}
    if group is None:
        groups: dict[str, list[str]] = {}
        for g, v in r.group_versions():
            if g:
                groups.setdefault(g, []).append(v)
        return {"kind": "APIGroupList", "apiVersion": "v1",
                "groups": [_group(g, vs) for g, vs in groups.items()]}
    found = [v for g, v in r.group_versions() if g == group]
    if not found:
        raise NotFound("the server could not find the requested resource")
    if ver is None:
        return {"kind": "APIGroup", "apiVersion": "v1", **_group(group, found)}
    if ver not in found:
        raise NotFound("the server could not find the requested resource")
    return _resource_list(group, ver)


def _group(group: str, versions: list[str]) -> JSON:
    entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"name": group, "versions": entries, "preferredVersion": entries[0]}


def _resource_list(group: str, ver: str) -> JSON:
    out: list[JSON] = []
    for rt in r.in_group_version(group, ver):
        entry: JSON = {"name": rt.plural, "singularName": rt.kind.lower(),
                       "namespaced": rt.namespaced, "kind": rt.kind, "verbs": _VERBS}
        if rt.short_names:
            entry["shortNames"] = list(rt.short_names)
        out.append(entry)
        for sub in sorted(rt.subresources):
            kind = {"scale": "Scale", "log": "Pod"}.get(sub, rt.kind)
            verbs = ["get"] if sub == "log" else ["get", "patch", "update"]
            sub_entry: JSON = {"name": f"{rt.plural}/{sub}", "singularName": "",
                               "namespaced": rt.namespaced, "kind": kind, "verbs": verbs}
            if sub == "scale":
                sub_entry.update(group="autoscaling", version="v1")
            out.append(sub_entry)
    return {"kind": "APIResourceList", "apiVersion": "v1",
            "groupVersion": f"{group}/{ver}" if group else ver, "resources": out}
