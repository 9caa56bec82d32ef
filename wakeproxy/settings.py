"""The cluster config file → frozen, grouped settings. Reads that one file; nothing else.

Every mistake is collected and reported together, each naming the file, the key path
and what was expected, e.g.::

    config/cluster.yaml: apps[2].idle_after: expected a duration like 30s or 5m, got 'five'
"""

from __future__ import annotations

import ipaddress
import json
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from wakeproxy.model.apps import AppPolicy
from wakeproxy.model.limits import Limits
from wakeproxy.model.routes import normalize_pattern

T = TypeVar("T")

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_APP_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_HOST_LABEL = re.compile(r"^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$")


class ConfigError(Exception):
    """One or more problems in a config file; `str()` lists them one per line."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


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


@dataclass(frozen=True, slots=True)
class LocalApp:
    """How the local platform runs an app: `command` with `/bin/sh -c`, `PORT` in env."""

    policy: AppPolicy
    command: str
    cwd: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    stop_grace: float = 10.0
    # Built from source: `repo` is fetched into a release directory where `build` runs and
    # `command` then runs (cwd is the release). None: `command` runs as configured.
    repo: str | None = None
    # `owner/name` of the GitHub repository whose pull requests get review apps of this app.
    github_repo: str | None = None
    build: str | None = None


@dataclass(frozen=True, slots=True)
class ReviewApps:
    """Review apps of pull requests: app `pr-<n>-<app>` at host `pr-<n>-<app>.<domain>`."""

    domain: str
    webhook_secret: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class Savings:
    """How the savings report turns replica-hours saved into money (0: not set)."""

    cost_per_replica_hour: float = 0.0
    currency: str = "USD"


@dataclass(frozen=True, slots=True)
class KubernetesBuilds:
    """Where the bundled controllers build images (Jobs) and deploy apps on Kubernetes."""

    # The namespace of build Jobs and of the Deployments and Services deploys create.
    namespace: str = "wakeproxy"
    # Host[:port] of the registry builds push to and Deployments pull from.
    registry: str = "wakeproxy-registry.wakeproxy.svc:5000"
    builder_image: str = "docker.io/moby/buildkit:v0.16.0-rootless"
    deadline: float = 900.0  # activeDeadlineSeconds of a build Job
    ttl: float = 3600.0  # a finished Job (and its pod and log) is kept this long
    # The port deployed images listen on (the Service and the readiness probe use it).
    port: int = 8080
    # Replace the builder's command (tests, or a builder wrapper); None: BuildKit.
    builder_command: tuple[str, ...] | None = None
    # Replace the deployed image's entrypoint (tests); None: the image's own.
    app_command: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class KubernetesSettings:
    """How the Kubernetes platform reaches the API and works with its peer replicas."""

    # None: the in-cluster service account (KUBERNETES_SERVICE_HOST, mounted token and CA).
    kubeconfig: str | None = None
    # Namespaces whose Deployments are apps; empty: every namespace.
    namespaces: tuple[str, ...] = ()
    # This replica's name as Lease holder and activity publisher; None: POD_NAME from the
    # downward API, else the host name plus a random suffix.
    identity: str | None = None
    lease_name: str = "wakeproxy"
    # None: POD_NAMESPACE from the downward API, else "default".
    lease_namespace: str | None = None
    lease_duration: float = 15.0
    # Every replica publishes its apps' activity once per interval (one write each).
    activity_interval: float = 5.0
    request_timeout: float = 10.0
    # The API server ends each watch after this long; it is resumed where it stopped.
    watch_timeout: float = 300.0
    # A watch with neither an event nor a bookmark for this long is presumed dead.
    watch_idle_timeout: float = 180.0
    builds: KubernetesBuilds = KubernetesBuilds()


@dataclass(frozen=True, slots=True)
class Settings:
    source: str
    cluster: str
    platform: str
    listen: tuple[str, int]
    admin_listen: tuple[str, int]
    admin_token: str | None
    log_format: str
    log_level: str
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
    sweep_interval: float
    drain_grace: float
    limits: Limits
    apps: tuple[LocalApp, ...]
    savings: Savings = Savings()
    kubernetes: KubernetesSettings | None = None
    # The `defaults:` section as a policy (name and hosts empty): what a platform that
    # discovers apps starts from before an app's own overrides.
    defaults: AppPolicy = field(default_factory=lambda: AppPolicy(name="-", hosts=()))
    review_apps: ReviewApps | None = None
    # Where builds fetch their release directories (an absolute path).
    builds_dir: str = ".wakeproxy/builds"

    @property
    def policies(self) -> tuple[AppPolicy, ...]:
        return tuple(a.policy for a in self.apps)


_TOP_KEYS = {
    "cluster", "platform", "listen", "admin_listen", "admin_token", "admin_token_file",
    "log", "trusted_proxies", "sweep_interval", "drain_grace", "limits", "defaults",
    "apps", "kubernetes", "review_apps", "savings", "builds_dir",
}
_POLICY_KEYS = {
    "idle_after", "wake_timeout", "max_held_requests", "waiting_page",
    "release_concurrency", "ignored_paths", "probe_interval", "readiness_path", "stop_grace",
}
_APP_KEYS = _POLICY_KEYS | {
    "name", "hosts", "command", "cwd", "env", "repo", "github_repo", "build",
}
_GITHUB_REPO = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_PLATFORMS = ("local", "kubernetes")


class _Reader:
    """Collects problems while walking the YAML tree, so all are reported at once."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[str] = []

    def fail(self, path: str, expected: str, got: object = ...) -> None:
        tail = "" if got is ... else f", got {got!r}"
        self.problems.append(f"{self.source}: {path}: expected {expected}{tail}")

    def mapping(self, value: object, path: str) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.fail(path, "a mapping of keys to values", value)
            return {}
        return value

    def unknown_keys(self, m: Mapping[str, Any], allowed: set[str], path: str) -> None:
        for key in m:
            if key not in allowed:
                where = f"{path}.{key}" if path else str(key)
                self.fail(where, "one of: " + ", ".join(sorted(allowed)), f"unknown key {key}")

    def get(
        self, m: Mapping[str, Any], key: str, path: str, conv: Callable[[object], T],
        expected: str, default: T,
    ) -> T:
        if key not in m or m[key] is None:
            return default
        try:
            return conv(m[key])
        except (ValueError, TypeError):
            self.fail(f"{path}{key}", expected, m[key])
            return default


def _positive_int(v: object) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ValueError(v)
    return v


def _bool(v: object) -> bool:
    if not isinstance(v, bool):
        raise ValueError(v)
    return v


def _str(v: object) -> str:
    if not isinstance(v, str) or not v.strip():
        raise ValueError(v)
    return v


def _positive_duration(v: object) -> float:
    d = parse_duration(v)
    if d <= 0:
        raise ValueError(v)
    return d


def _str_list(v: object) -> tuple[str, ...]:
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, list) or not all(isinstance(x, str) and x for x in v):
        raise ValueError(v)
    return tuple(v)


def _path_list(v: object) -> tuple[str, ...]:
    paths = _str_list(v)
    if not all(p.startswith("/") for p in paths):
        raise ValueError(v)
    return paths


def _readiness_path(v: object) -> str:
    s = _str(v)
    if not s.startswith("/"):
        raise ValueError(v)
    return s


def _host_pattern(v: str) -> str:
    p = v.strip().lower().rstrip(".")
    labels = p[2:].split(".") if p.startswith("*.") else p.split(".")
    if not p or not all(_HOST_LABEL.match(label) for label in labels):
        raise ValueError(v)
    return p


_DURATION = "a duration like 30s or 5m"
_POSITIVE_DURATION = "a duration above zero like 30s or 5m"


_POLICY_FIELDS: tuple[tuple[str, Callable[[object], Any], str], ...] = (
    ("idle_after", _positive_duration, _POSITIVE_DURATION),
    ("wake_timeout", _positive_duration, _POSITIVE_DURATION),
    ("max_held_requests", _positive_int, "a whole number above 0"),
    ("waiting_page", _bool, "true or false"),
    ("release_concurrency", _positive_int, "a whole number above 0"),
    ("ignored_paths", _path_list, "a list of paths starting with /"),
    ("probe_interval", _positive_duration, "a duration above zero like 5ms"),
    ("readiness_path", _readiness_path, "a path starting with /"),
    ("stop_grace", parse_duration, _DURATION),
)


def _policy_fields(
    r: _Reader, m: Mapping[str, Any], path: str, base: dict[str, Any],
) -> dict[str, Any]:
    out = dict(base)
    for key, conv, expected in _POLICY_FIELDS:
        out[key] = r.get(m, key, path, conv, expected, base[key])
    return out


def _read_limits(r: _Reader, raw: object) -> Limits:
    m = r.mapping(raw, "limits")
    d = Limits()
    r.unknown_keys(m, set(Limits.__dataclass_fields__), "limits")
    ints = ("max_head_bytes", "max_headers", "max_connections", "upstream_pool_size")
    kw: dict[str, Any] = {}
    for name in Limits.__dataclass_fields__:
        default = getattr(d, name)
        if name in ints:
            kw[name] = r.get(m, name, "limits.", _positive_int, "a whole number above 0", default)
        else:
            kw[name] = r.get(m, name, "limits.", _positive_duration, _POSITIVE_DURATION, default)
    return Limits(**kw)


def _cost(v: object) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v < math.inf:
        raise ValueError(v)
    return float(v)


def _currency(v: object) -> str:
    if not isinstance(v, str) or not re.fullmatch(r"[A-Z]{3}", v):
        raise ValueError(v)
    return v


def _read_savings(r: _Reader, raw: object) -> Savings:
    m = r.mapping(raw, "savings")
    d = Savings()
    r.unknown_keys(m, set(Savings.__dataclass_fields__), "savings")
    return Savings(
        cost_per_replica_hour=r.get(
            m, "cost_per_replica_hour", "savings.", _cost,
            "a cost of zero or more like 0.04", d.cost_per_replica_hour),
        currency=r.get(
            m, "currency", "savings.", _currency,
            "a three-letter currency code like USD or EUR", d.currency),
    )


_DNS_LABEL = _APP_NAME
_DNS_SUBDOMAIN = re.compile(
    r"^(?=.{1,253}$)[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$")


def _dns_label(v: object) -> str:
    if not isinstance(v, str) or not _DNS_LABEL.match(v):
        raise ValueError(v)
    return v


def _dns_subdomain(v: object) -> str:
    if not isinstance(v, str) or not _DNS_SUBDOMAIN.match(v):
        raise ValueError(v)
    return v


def _namespaces(v: object) -> tuple[str, ...]:
    if not isinstance(v, list) or not v:
        raise ValueError(v)
    names = tuple(_dns_label(x) for x in v)
    if len(set(names)) != len(names):
        raise ValueError(v)
    return names


def _lease_duration(v: object) -> float:
    d = parse_duration(v)
    if d < 1:  # the Lease stores whole seconds
        raise ValueError(v)
    return d


def _read_kubernetes(
    r: _Reader, raw: object, platform: str, base_dir: Path,
) -> KubernetesSettings | None:
    if raw is None and platform != "kubernetes":
        return None
    m = r.mapping(raw, "kubernetes")
    d = KubernetesSettings()
    r.unknown_keys(m, set(KubernetesSettings.__dataclass_fields__), "kubernetes")
    p = "kubernetes."
    kubeconfig = r.get(m, "kubeconfig", p, _str, "a kubeconfig file path", None)
    if kubeconfig is not None:
        path = base_dir / kubeconfig
        if not path.is_file():
            r.fail("kubernetes.kubeconfig", "a readable kubeconfig file", str(path))
        kubeconfig = str(path)
    label = "a lowercase DNS name of letters, digits and '-' (at most 63)"
    durations: dict[str, Any] = {
        key: r.get(m, key, p, _positive_duration, _POSITIVE_DURATION, getattr(d, key))
        for key in ("activity_interval", "request_timeout", "watch_timeout",
                    "watch_idle_timeout")
    }
    return KubernetesSettings(
        kubeconfig=kubeconfig,
        namespaces=r.get(m, "namespaces", p, _namespaces,
                         "a non-empty list of distinct namespace names", d.namespaces),
        identity=r.get(m, "identity", p, _dns_subdomain,
                       "a lowercase DNS name like wakeproxy-0", d.identity),
        lease_name=r.get(m, "lease_name", p, _dns_subdomain,
                         "a lowercase DNS name like wakeproxy", d.lease_name),
        lease_namespace=r.get(m, "lease_namespace", p, _dns_label, label, d.lease_namespace),
        lease_duration=r.get(m, "lease_duration", p, _lease_duration,
                             "a duration of at least 1s like 15s", d.lease_duration),
        builds=_read_kubernetes_builds(r, m.get("builds")),
        **durations,
    )


def _argv(v: object) -> tuple[str, ...]:
    if not isinstance(v, list) or not v or not all(isinstance(a, str) for a in v):
        raise ValueError(v)
    return tuple(v)


def _port(v: object) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 65535:
        raise ValueError(v)
    return v


def _read_kubernetes_builds(r: _Reader, raw: object) -> KubernetesBuilds:
    m = r.mapping(raw, "kubernetes.builds")
    d = KubernetesBuilds()
    r.unknown_keys(m, set(KubernetesBuilds.__dataclass_fields__), "kubernetes.builds")
    p = "kubernetes.builds."
    argv = "a non-empty list of strings like [sh, -c, ./build]"
    return KubernetesBuilds(
        namespace=r.get(m, "namespace", p, _dns_label,
                        "a namespace name like wakeproxy", d.namespace),
        registry=r.get(m, "registry", p, _str, "a registry host[:port]", d.registry),
        builder_image=r.get(m, "builder_image", p, _str, "an image reference",
                            d.builder_image),
        deadline=r.get(m, "deadline", p, _positive_duration, _POSITIVE_DURATION, d.deadline),
        ttl=r.get(m, "ttl", p, _positive_duration, _POSITIVE_DURATION, d.ttl),
        port=r.get(m, "port", p, _port, "a port number from 1 to 65535", d.port),
        builder_command=r.get(m, "builder_command", p, _argv, argv, d.builder_command),
        app_command=r.get(m, "app_command", p, _argv, argv, d.app_command),
    )


_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _read_networks(r: _Reader, raw: object) -> tuple[_Network, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        r.fail("trusted_proxies", "a list of addresses or CIDR ranges", raw)
        return ()
    nets = []
    for i, item in enumerate(raw):
        try:
            nets.append(ipaddress.ip_network(str(item), strict=False))
        except ValueError:
            r.fail(f"trusted_proxies[{i}]", "an address or CIDR range like 10.0.0.0/8", item)
    return tuple(nets)


def _read_token(r: _Reader, top: Mapping[str, Any], base_dir: Path) -> str | None:
    token = top.get("admin_token")
    token_file = top.get("admin_token_file")
    if token is not None and token_file is not None:
        r.fail("admin_token_file", "either admin_token or admin_token_file, not both")
        return None
    if token is not None:
        if not isinstance(token, str) or len(token) < 16:
            r.fail("admin_token", "a string of at least 16 characters", "<hidden>")
            return None
        return token
    if token_file is not None:
        if not isinstance(token_file, str):
            r.fail("admin_token_file", "a file path", token_file)
            return None
        path = base_dir / token_file
        try:
            text = path.read_text().strip()
        except OSError as e:
            r.fail("admin_token_file", "a readable file", f"{path}: {e.strerror}")
            return None
        if len(text) < 16:
            expected = "a file holding a token of at least 16 characters"
            r.fail("admin_token_file", expected, str(path))
            return None
        return text
    return None


def _repo(base_dir: Path) -> Callable[[object], str]:
    def conv(v: object) -> str:
        url = _str(v).strip()
        # A URL (scheme:// or scp-like user@host:path) is used as is; a bare path is
        # relative to the config file, like every other path in it.
        if "://" in url or ":" in url or url.startswith("/"):
            return url
        return str((base_dir / url).resolve())

    return conv


def _github_repo(v: object) -> str:
    if not isinstance(v, str) or not _GITHUB_REPO.match(v):
        raise ValueError(v)
    return v


def _read_source(
    r: _Reader, m: Mapping[str, Any], path: str, base_dir: Path,
) -> tuple[str | None, str | None, str | None]:
    """An app's `repo`, `github_repo` and `build` (all None for an app not built here)."""
    p = f"{path}."
    repo = r.get(m, "repo", p, _repo(base_dir), "a git URL or repository path", None)
    github = r.get(m, "github_repo", p, _github_repo, "a GitHub repository like acme/shop", None)
    build = r.get(m, "build", p, _str, "a shell command run in the checkout", None)
    if repo is None:
        for key, value in (("github_repo", github), ("build", build)):
            if value is not None:
                r.fail(f"{path}.{key}", "to be set only with repo (the git URL it builds from)")
    elif m.get("cwd") is not None:
        r.fail(f"{path}.cwd", "no cwd with repo (commands run in the release checkout)")
    return repo, github, build


def _read_review_apps(r: _Reader, raw: object, base_dir: Path) -> ReviewApps | None:
    if raw is None:
        return None
    m = r.mapping(raw, "review_apps")
    r.unknown_keys(m, {"enabled", "domain", "webhook_secret_file"}, "review_apps")
    if not r.get(m, "enabled", "review_apps.", _bool, "true or false", True):
        return None
    domain = r.get(m, "domain", "review_apps.", lambda v: _host_pattern(_str(v)),
                   "a domain like review.example.com", None)
    if domain is None or domain.startswith("*."):
        r.fail("review_apps.domain", "a domain like review.example.com", m.get("domain"))
        domain = None
    secret_file = m.get("webhook_secret_file")
    if not isinstance(secret_file, str) or not secret_file:
        r.fail("review_apps.webhook_secret_file", "a file holding the GitHub webhook secret",
               secret_file)
        return None
    path = base_dir / secret_file
    try:
        secret = path.read_bytes().strip()
    except OSError as e:
        r.fail("review_apps.webhook_secret_file", "a readable file", f"{path}: {e.strerror}")
        return None
    if not secret:
        r.fail("review_apps.webhook_secret_file", "a file holding a non-empty secret", str(path))
        return None
    if domain is None:
        return None
    return ReviewApps(domain=domain, webhook_secret=secret)


def _read_app(
    r: _Reader, raw: object, i: int, base: dict[str, Any], platform: str,
    base_dir: Path = Path("."),
) -> LocalApp | None:
    path = f"apps[{i}]"
    if raw is None or raw == {}:
        r.fail(path, "an app with at least name and hosts", raw)
        return None
    m = r.mapping(raw, path)
    if not m:
        return None
    r.unknown_keys(m, _APP_KEYS, path)
    name = m.get("name")
    ok = True
    if not isinstance(name, str) or not _APP_NAME.match(name):
        r.fail(f"{path}.name", "a lowercase name of letters, digits and '-' (at most 63)", name)
        ok = False
    hosts_raw = m.get("hosts")
    hosts: list[str] = []
    if not isinstance(hosts_raw, list) or not hosts_raw:
        r.fail(f"{path}.hosts", "a non-empty list of host names or *.domain wildcards", hosts_raw)
        ok = False
    else:
        for j, h in enumerate(hosts_raw):
            try:
                if not isinstance(h, str):
                    raise ValueError(h)
                hosts.append(_host_pattern(h))
            except ValueError:
                r.fail(f"{path}.hosts[{j}]", "a host name like app.example.com or *.example.com", h)
                ok = False
    command = m.get("command")
    if platform == "local" and (not isinstance(command, str) or not command.strip()):
        r.fail(f"{path}.command", "a shell command that listens on $PORT", command)
        ok = False
    cwd = m.get("cwd")
    if cwd is not None and not isinstance(cwd, str):
        r.fail(f"{path}.cwd", "a directory path", cwd)
        ok = False
    env_raw = r.mapping(m.get("env"), f"{path}.env")
    env: dict[str, str] = {}
    for k, v in env_raw.items():
        if not isinstance(k, str) or isinstance(v, dict | list) or v is None:
            r.fail(f"{path}.env.{k}", "a string value", v)
            ok = False
        else:
            env[k] = str(v).lower() if isinstance(v, bool) else str(v)
    fields = _policy_fields(r, m, f"{path}.", base)
    repo, github_repo, build = _read_source(r, m, path, base_dir)
    if not ok:
        return None
    stop_grace = fields.pop("stop_grace")
    policy = AppPolicy(name=str(name), hosts=tuple(hosts), **fields)
    return LocalApp(
        policy=policy, command=str(command or ""), cwd=cwd, env=env, stop_grace=stop_grace,
        repo=repo, github_repo=github_repo, build=build,
    )


def _check_unique(r: _Reader, entries: list[tuple[int, LocalApp]]) -> None:
    """Each name used once, each host or wildcard claimed by one app (as RouteTable needs).

    `entries` pair each valid app with its index in the file, so errors point at the
    right `apps[i]` even when an earlier app was invalid.
    """
    names: dict[str, int] = {}
    claims: dict[str, tuple[int, str]] = {}
    for i, app in entries:
        name = app.policy.name
        if name in names:
            r.fail(f"apps[{i}].name", f"a name not already used by apps[{names[name]}]", name)
        else:
            names[name] = i
        for j, host in enumerate(app.policy.hosts):
            key = normalize_pattern(host)
            owner = claims.get(key)
            if owner is None:
                claims[key] = (i, name)
            elif owner[0] != i:
                r.fail(
                    f"apps[{i}].hosts[{j}]",
                    f"a host not already claimed by apps[{owner[0]}] ({owner[1]})", host,
                )


def _same_socket(a: tuple[str, int], b: tuple[str, int]) -> bool:
    """Whether two listen addresses would collide on bind (port 0 never does)."""
    (host_a, port_a), (host_b, port_b) = a, b
    if port_a != port_b or port_a == 0:
        return False
    if host_a == host_b or "::" in (host_a, host_b):
        return True
    v4 = ":" not in host_a and ":" not in host_b
    return v4 and "0.0.0.0" in (host_a, host_b)


def _as_json(doc: object) -> str | None:
    """`doc` as JSON text when JSON carries it exactly (plain data, string keys), else None."""

    def plain(v: object) -> bool:
        if isinstance(v, dict):
            return all(type(k) is str and plain(x) for k, x in v.items())
        if isinstance(v, list):
            return all(plain(x) for x in v)
        return v is None or type(v) in (str, int, float, bool)

    try:
        return json.dumps(doc) if plain(doc) else None
    except RecursionError:  # absurdly deep nesting: keep the document as parsed
        return None


def parse_settings(text: str, source: str, base_dir: Path | None = None) -> Settings:
    """Parse config text; `source` names the file in every error. Raises ConfigError."""
    r = _Reader(source)
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "?"
        problem = getattr(e, "problem", None) or e
        raise ConfigError([f"{source}: {where}: expected valid YAML ({problem})"]) from None
    plain = _as_json(doc)
    if plain is not None:
        # PyYAML's node graph (~60 MB for 10,000 apps) is gone now, but the document
        # built alongside it is scattered through that memory and would keep most of it
        # resident for the life of the process; rebuilt from JSON it is compact.
        doc = None
        doc = json.loads(plain)
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise ConfigError(
            [f"{source}: (top level): expected a mapping of keys to values, got {doc!r}"])
    top: dict[str, Any] = doc
    r.unknown_keys(top, _TOP_KEYS, "")

    cluster = r.get(top, "cluster", "", _str, "a cluster name", "default")
    platform = top.get("platform", "local")
    if platform not in _PLATFORMS:
        r.fail("platform", "one of: " + ", ".join(_PLATFORMS), platform)
        platform = "local"
    listen = r.get(
        top, "listen", "", parse_address, "an address like 127.0.0.1:8080", ("127.0.0.1", 8080))
    admin = r.get(
        top, "admin_listen", "", parse_address, "an address like 127.0.0.1:9090",
        ("127.0.0.1", 9090))
    if _same_socket(listen, admin):
        given = top.get("admin_listen") or f"{admin[0]}:{admin[1]} (the default)"
        r.fail("admin_listen", "an address other than listen's", given)
    token = _read_token(r, top, base_dir or Path("."))

    log = r.mapping(top.get("log"), "log")
    r.unknown_keys(log, {"format", "level"}, "log")
    log_format = log.get("format", "json")
    if log_format not in ("json", "console"):
        r.fail("log.format", "json or console", log_format)
        log_format = "json"
    log_level = str(log.get("level", "info")).lower()
    if log_level not in ("debug", "info", "warning", "error"):
        r.fail("log.level", "one of: debug, info, warning, error", log.get("level"))
        log_level = "info"

    trusted = _read_networks(r, top.get("trusted_proxies"))
    sweep_interval = r.get(top, "sweep_interval", "", _positive_duration, _POSITIVE_DURATION, 1.0)
    drain_grace = r.get(top, "drain_grace", "", parse_duration, _DURATION, 30.0)
    limits = _read_limits(r, top.get("limits"))
    savings = _read_savings(r, top.get("savings"))
    kubernetes = _read_kubernetes(r, top.get("kubernetes"), platform, base_dir or Path("."))

    d = AppPolicy(name="-", hosts=())
    base: dict[str, Any] = {
        "idle_after": d.idle_after, "wake_timeout": d.wake_timeout,
        "max_held_requests": d.max_held_requests, "waiting_page": d.waiting_page,
        "release_concurrency": d.release_concurrency, "ignored_paths": d.ignored_paths,
        "probe_interval": d.probe_interval, "readiness_path": d.readiness_path,
        "stop_grace": 10.0,
    }
    defaults = r.mapping(top.get("defaults"), "defaults")
    r.unknown_keys(defaults, _POLICY_KEYS, "defaults")
    base = _policy_fields(r, defaults, "defaults.", base)

    apps_raw = top.get("apps")
    entries: list[tuple[int, LocalApp]] = []
    if apps_raw is not None and not isinstance(apps_raw, list):
        r.fail("apps", "a list of apps", apps_raw)
    elif apps_raw:
        for i, raw in enumerate(apps_raw):
            app = _read_app(r, raw, i, base, platform, base_dir or Path("."))
            if app is not None:
                entries.append((i, app))
    _check_unique(r, entries)
    apps = [app for _, app in entries]
    review_apps = _read_review_apps(r, top.get("review_apps"), base_dir or Path("."))
    builds_dir = r.get(top, "builds_dir", "", _str, "a directory path", ".wakeproxy/builds")
    builds_dir = str(((base_dir or Path(".")) / builds_dir).resolve())

    if r.problems:
        raise ConfigError(r.problems)
    return Settings(
        source=source, cluster=cluster, platform=platform, listen=listen, admin_listen=admin,
        admin_token=token, log_format=log_format, log_level=log_level, trusted_proxies=trusted,
        sweep_interval=sweep_interval, drain_grace=drain_grace, limits=limits, apps=tuple(apps),
        savings=savings, kubernetes=kubernetes, review_apps=review_apps, builds_dir=builds_dir,
        defaults=AppPolicy(name="-", hosts=(),
                           **{k: v for k, v in base.items() if k != "stop_grace"}),
    )


def load_settings(path: str | os.PathLike[str]) -> Settings:
    """Read and parse one config file. Raises ConfigError naming the file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError([f"{p}: expected a readable config file ({e.strerror})"]) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{p}: expected UTF-8 text"]) from None
    return parse_settings(text, str(p), base_dir=p.parent)
