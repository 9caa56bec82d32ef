"""RBAC authorization as the API server's RBAC authorizer decides it.

Owns: who a request is (`Identity`: user name and groups), the request's attributes in
RBAC terms (`Attributes`: verb, API group, resource, subresource, namespace, name), the
rules of Roles/ClusterRoles reached through RoleBindings/ClusterRoleBindings, and the 403
the server answers, worded as the real one. `system:masters` may do anything (the admin
identity the tests use); every identity may read the discovery and version paths. Never
stores API objects; the rules come from manifests (`install.py`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from aiohttp import web

from .errors import Forbidden
from .meta import JSON

# One request's check, by verb; kept on the aiohttp request under AUTHORIZE so a handler
# can authorize a second verb (a server-side apply that creates is also a `create`).
Authorize = Callable[[str], None]
AUTHORIZE = web.RequestKey("k8s_emulator.authorize", Authorize)

MASTERS = "system:masters"
AUTHENTICATED = "system:authenticated"


@dataclass(frozen=True)
class Identity:
    user: str
    groups: tuple[str, ...] = (AUTHENTICATED,)

    @classmethod
    def service_account(cls, namespace: str, name: str) -> Identity:
        return cls(f"system:serviceaccount:{namespace}:{name}",
                   ("system:serviceaccounts", f"system:serviceaccounts:{namespace}",
                    AUTHENTICATED))

    @property
    def is_admin(self) -> bool:
        return MASTERS in self.groups


ADMIN = Identity("kubernetes-admin", (MASTERS, AUTHENTICATED))


@dataclass(frozen=True)
class Attributes:
    verb: str
    group: str
    resource: str
    subresource: str | None
    namespace: str | None
    name: str | None

    @property
    def rbac_resource(self) -> str:
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource


@dataclass(frozen=True)
class _Rule:
    groups: frozenset[str]
    resources: frozenset[str]
    verbs: frozenset[str]
    names: frozenset[str]

    def allows(self, a: Attributes) -> bool:
        if not (a.verb in self.verbs or "*" in self.verbs):
            return False
        if not (a.group in self.groups or "*" in self.groups):
            return False
        wanted = a.rbac_resource
        star_sub = f"*/{a.subresource}" if a.subresource else None
        if not (wanted in self.resources or "*" in self.resources
                or (star_sub is not None and star_sub in self.resources)):
            return False
        # resourceNames only match requests that name one object (not list, create, ...).
        return not self.names or (a.name is not None and a.name in self.names)


def _rules(role: JSON) -> list[_Rule]:
    out = []
    for rule in role.get("rules") or []:
        if rule.get("nonResourceURLs"):
            continue
        out.append(_Rule(frozenset(rule.get("apiGroups") or ()),
                         frozenset(rule.get("resources") or ()),
                         frozenset(rule.get("verbs") or ()),
                         frozenset(rule.get("resourceNames") or ())))
    return out


def _subject_matches(subject: JSON, who: Identity) -> bool:
    kind, name = subject.get("kind"), subject.get("name")
    if kind == "ServiceAccount":
        return who.user == f"system:serviceaccount:{subject.get('namespace')}:{name}"
    if kind == "User":
        return who.user == name
    if kind == "Group":
        return name in who.groups
    return False


class Authorizer:
    """Decides requests from the RBAC objects it was given."""

    def __init__(self, objects: Iterable[JSON]) -> None:
        self._cluster_roles: dict[str, list[_Rule]] = {}
        self._roles: dict[tuple[str, str], list[_Rule]] = {}
        self._bindings: list[tuple[str | None, JSON]] = []  # (namespace or None, binding)
        for obj in objects:
            kind, m = obj.get("kind"), obj.get("metadata") or {}
            if kind == "ClusterRole":
                self._cluster_roles[m["name"]] = _rules(obj)
            elif kind == "Role":
                self._roles[(m["namespace"], m["name"])] = _rules(obj)
            elif kind == "ClusterRoleBinding":
                self._bindings.append((None, obj))
            elif kind == "RoleBinding":
                self._bindings.append((m["namespace"], obj))

    def allowed(self, who: Identity, a: Attributes) -> bool:
        if who.is_admin:
            return True
        for namespace, binding in self._bindings:
            if namespace is not None and namespace != a.namespace:
                continue
            if not any(_subject_matches(s, who) for s in binding.get("subjects") or []):
                continue
            ref = binding.get("roleRef") or {}
            if ref.get("kind") == "ClusterRole":
                rules = self._cluster_roles.get(ref.get("name"), [])
            else:
                rules = self._roles.get((str(namespace), ref.get("name")), [])
            if any(rule.allows(a) for rule in rules):
                return True
        return False

    def check(self, who: Identity, a: Attributes) -> None:
        """Raise the API server's 403 unless `who` may do `a`."""
        if not self.allowed(who, a):
            raise forbidden(who, a)


def forbidden(who: Identity, a: Attributes) -> Forbidden:
    where = (f'in the namespace "{a.namespace}"' if a.namespace else "at the cluster scope")
    reason = (f'User "{who.user}" cannot {a.verb} resource "{a.rbac_resource}" in API group '
              f'"{a.group}" {where}')
    qualified = f"{a.resource}.{a.group}" if a.group else a.resource
    subject = f'{qualified} "{a.name}"' if a.name else qualified
    return Forbidden(f"{subject} is forbidden: {reason}", name=a.name, group=a.group,
                     kind=a.resource)
