"""The `kubernetes:` section → KubernetesSettings, including where builds and deploys run.

Owns KubernetesSettings and KubernetesBuilds and their defaults. Never talks to a cluster
and never reads the kubeconfig: it only checks that the named file exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wakeproxy.model.images import nodes_resolve
from wakeproxy.settings.headroom import Headroom, read_headroom
from wakeproxy.settings.reader import Reader
from wakeproxy.settings.values import (
    POSITIVE_DURATION,
    dns_label,
    dns_subdomain,
    nonblank,
    parse_duration,
    positive_duration,
)

DEFAULT_PUSH_REGISTRY = "wakeproxy-registry.wakeproxy.svc:5000"
NODE_REGISTRY = "localhost:30500"  # the bundled registry's NodePort, on every node


@dataclass(frozen=True, slots=True)
class KubernetesBuilds:
    """Where the bundled controllers build images (Jobs) and deploy apps on Kubernetes."""

    # The namespace of the Deployments and Services deploys create (Pod Security
    # `restricted`: app pods get a securityContext that passes it).
    namespace: str = "wakeproxy"
    # The namespace build Jobs run in: rootless BuildKit needs unconfined seccomp and
    # AppArmor, which only a `privileged` namespace admits (k8s/builds.yaml).
    job_namespace: str = "wakeproxy-builds"
    # Host[:port] builds push to, from a pod: cluster DNS works (k8s/registry/).
    registry: str = DEFAULT_PUSH_REGISTRY
    # Host[:port] the same images are pulled from by nodes, which Deployments name (by
    # digest): nodes do not resolve cluster DNS names, so the bundled registry is also a
    # NodePort seen by every node as localhost:30500. Default: `registry` when nodes
    # resolve it, localhost:30500 for the bundled registry.
    pull_registry: str = NODE_REGISTRY
    # The Secret (in job_namespace, type kubernetes.io/dockerconfigjson) with the push
    # credentials build Jobs mount; None: pushes without credentials.
    push_secret: str | None = "wakeproxy-registry-push"
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
    # A scale-up is given up (scaled back) once a pod of it has failed to pull its image
    # this long, or could not be scheduled this long (an autoscaler adding a node takes
    # minutes), or its pods have been refused at creation this long (the Deployment's
    # ReplicaFailure: Pod Security admission, which no retry fixes, but also a quota or an
    # admission webhook, which a pod ending or a retry can; the ReplicaSet retries within
    # seconds, so 10 s lets a passing refusal clear without holding requests for minutes);
    # a crash loop gives up at once. Otherwise the app's `give_up_after` rules. A build Job
    # whose pod is refused `refused_grace` long fails (not at its deadline).
    image_pull_grace: float = 120.0
    unschedulable_grace: float = 600.0
    refused_grace: float = 10.0
    builds: KubernetesBuilds = KubernetesBuilds()
    # Placeholder pods holding room for sleeping apps' wakes (settings/headroom.py).
    headroom: Headroom = Headroom()  # noqa: RUF009 - frozen, one shared default is safe


def _namespaces(v: object) -> tuple[str, ...]:
    if not isinstance(v, list) or not v:
        raise ValueError(v)
    names = tuple(dns_label(x) for x in v)
    if len(set(names)) != len(names):
        raise ValueError(v)
    return names


def _lease_duration(v: object) -> float:
    d = parse_duration(v)
    if d < 1:  # the Lease stores whole seconds
        raise ValueError(v)
    return d


def read_kubernetes(
    r: Reader, raw: object, platform: str, base_dir: Path,
) -> KubernetesSettings | None:
    if raw is None and platform != "kubernetes":
        return None
    m = r.mapping(raw, "kubernetes")
    d = KubernetesSettings()
    r.unknown_keys(m, set(KubernetesSettings.__dataclass_fields__), "kubernetes")
    p = "kubernetes."
    kubeconfig = r.get(m, "kubeconfig", p, nonblank, "a kubeconfig file path", None)
    if kubeconfig is not None:
        path = base_dir / kubeconfig
        if not path.is_file():
            r.fail("kubernetes.kubeconfig", "a readable kubeconfig file", str(path))
        kubeconfig = str(path)
    label = "a lowercase DNS name of letters, digits and '-' (at most 63)"
    durations: dict[str, Any] = {
        key: r.get(m, key, p, positive_duration, POSITIVE_DURATION, getattr(d, key))
        for key in ("activity_interval", "request_timeout", "watch_timeout",
                    "watch_idle_timeout", "image_pull_grace", "unschedulable_grace",
                    "refused_grace")
    }
    return KubernetesSettings(
        kubeconfig=kubeconfig,
        namespaces=r.get(m, "namespaces", p, _namespaces,
                         "a non-empty list of distinct namespace names", d.namespaces),
        identity=r.get(m, "identity", p, dns_subdomain,
                       "a lowercase DNS name like wakeproxy-0", d.identity),
        lease_name=r.get(m, "lease_name", p, dns_subdomain,
                         "a lowercase DNS name like wakeproxy", d.lease_name),
        lease_namespace=r.get(m, "lease_namespace", p, dns_label, label, d.lease_namespace),
        lease_duration=r.get(m, "lease_duration", p, _lease_duration,
                             "a duration of at least 1s like 15s", d.lease_duration),
        builds=_read_kubernetes_builds(r, m.get("builds")),
        headroom=read_headroom(r, m.get("headroom")),
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


def _registry(v: object) -> str:
    host = nonblank(v)
    if "/" in host or any(c.isspace() for c in host):
        raise ValueError(v)
    return host


def _pull_registry(r: Reader, raw: object, registry: str) -> str:
    """Where nodes pull built images from: given, or `registry` when nodes resolve it, or
    the bundled registry's NodePort for the bundled registry. Never a cluster DNS name."""
    key, node = "kubernetes.builds.pull_registry", "a registry host[:port] nodes resolve"
    if raw is not None:
        try:
            host = _registry(raw)
        except ValueError:
            r.fail(key, node + " like localhost:30500", raw)
            return NODE_REGISTRY
        if not nodes_resolve(host):
            r.fail(key, node + " (nodes pull with their own DNS, which does not resolve "
                   "cluster names like *.svc or *.cluster.local), like localhost:30500", raw)
        return host
    if nodes_resolve(registry):
        return registry
    if registry == DEFAULT_PUSH_REGISTRY:
        return NODE_REGISTRY
    r.fail(key, f"the address nodes pull kubernetes.builds.registry's images from, as "
           f"{registry} is a cluster DNS name nodes cannot resolve (like localhost:30500 for "
           "a NodePort)")
    return NODE_REGISTRY


def _read_kubernetes_builds(r: Reader, raw: object) -> KubernetesBuilds:
    m = r.mapping(raw, "kubernetes.builds")
    d = KubernetesBuilds()
    r.unknown_keys(m, set(KubernetesBuilds.__dataclass_fields__), "kubernetes.builds")
    p = "kubernetes.builds."
    argv = "a non-empty list of strings like [sh, -c, ./build]"
    registry = r.get(m, "registry", p, _registry, "a registry host[:port]", d.registry)
    return KubernetesBuilds(
        namespace=r.get(m, "namespace", p, dns_label,
                        "a namespace name like wakeproxy", d.namespace),
        job_namespace=r.get(m, "job_namespace", p, dns_label,
                            "a namespace name like wakeproxy-builds", d.job_namespace),
        registry=registry,
        pull_registry=_pull_registry(r, m.get("pull_registry"), registry),
        # Present and null: no credentials (a registry that takes anonymous pushes).
        push_secret=None if "push_secret" in m and m["push_secret"] is None else r.get(
            m, "push_secret", p, dns_subdomain,
            "a Secret name like wakeproxy-registry-push, or null", d.push_secret),
        builder_image=r.get(m, "builder_image", p, nonblank, "an image reference",
                            d.builder_image),
        deadline=r.get(m, "deadline", p, positive_duration, POSITIVE_DURATION, d.deadline),
        ttl=r.get(m, "ttl", p, positive_duration, POSITIVE_DURATION, d.ttl),
        port=r.get(m, "port", p, _port, "a port number from 1 to 65535", d.port),
        builder_command=r.get(m, "builder_command", p, _argv, argv, d.builder_command),
        app_command=r.get(m, "app_command", p, _argv, argv, d.app_command),
    )
