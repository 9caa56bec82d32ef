"""A record of every API request the emulator received, in RBAC terms.

Owns the list of `RecordedRequest`s (verb, API group, resource, subresource, namespace, name,
status code, and every verb it was authorized as: a server-side apply that creates its object
is a `patch` and a `create`) and the summary an RBAC test compares with a Role: the set of
(apiGroup, resource[/subresource], verb) actually used. Never changes how requests are served.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class RecordedRequest:
    method: str
    path: str
    verb: str | None  # None for non-resource paths (discovery, /version)
    group: str | None
    resource: str | None
    subresource: str | None
    namespace: str | None
    name: str | None
    user_agent: str
    # Filled in when the answer is known; 0 while a long request (a watch) is still open.
    status: int = 0
    # The RBAC verbs the request was authorized as, in order (the first is `verb`).
    verbs: list[str] = field(default_factory=list)
    # Who sent it (the authenticated user name); None before authentication.
    user: str | None = None

    @property
    def rbac_resource(self) -> str | None:
        if self.resource is None:
            return None
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource


class Recorder:
    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []

    def add(self, request: RecordedRequest) -> None:
        self.requests.append(request)

    def clear(self) -> None:
        self.requests.clear()

    def matching(
        self, *, verb: str | None = None, resource: str | None = None,
        subresource: str | None = None, namespace: str | None = None,
    ) -> list[RecordedRequest]:
        return [
            r for r in self.requests
            if (verb is None or r.verb == verb)
            and (resource is None or r.resource == resource)
            and (subresource is None or r.subresource == subresource)
            and (namespace is None or r.namespace == namespace)
        ]

    def rbac_rules(self) -> set[tuple[str, str, str]]:
        """{(apiGroup, resource or resource/subresource, verb)} over all resource requests,
        with every verb each was authorized as."""
        return {
            (r.group or "", r.rbac_resource, verb)
            for r in self.requests
            if r.rbac_resource is not None
            for verb in (r.verbs or ([r.verb] if r.verb else []))
        }

    def scoped_rules(self, user: str) -> set[tuple[str, str, str, str]]:
        """{(namespace or "", apiGroup, resource[/subresource], verb)} of `user`'s resource
        requests, with every verb each was authorized as ("": cluster-wide requests)."""
        return {
            (r.namespace or "", r.group or "", r.rbac_resource, verb)
            for r in self.requests
            if r.user == user and r.rbac_resource is not None
            for verb in r.verbs
        }
