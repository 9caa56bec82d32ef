"""Server-side defaulting, applied on every write the way the real API server defaults objects.

Owns the defaults clients can observe on the kinds served (Deployment replicas and strategy, pod
spec defaults, Service type and port protocol, Job counts and generated selector, Namespace
phase, MicroTime normalisation). Pure functions on JSON; never allocates shared state.
"""

from __future__ import annotations

import contextlib
from typing import Any

from .meta import JSON, dig, format_micro_time, parse_micro_time
from .pod_resources import qos_class
from .quantity import QuantityError


def apply_defaults(kind: str, obj: JSON) -> None:
    fn = _BY_KIND.get(kind)
    if fn is not None:
        fn(obj)


def _spec(obj: JSON) -> JSON:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        spec = {}
        obj["spec"] = spec
    return spec


def _pod_spec(spec: Any, *, restart_policy: str | None = "Always") -> None:
    if not isinstance(spec, dict):
        return
    if restart_policy is not None:
        spec.setdefault("restartPolicy", restart_policy)
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    for container in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        if not isinstance(container, dict):
            continue
        image = str(container.get("image") or "")
        tag = image.rsplit("/", 1)[-1]
        latest = ":" not in tag or tag.endswith(":latest")
        container.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        container.setdefault("terminationMessagePolicy", "File")
        container.setdefault("resources", {})
        for port in container.get("ports") or []:
            if isinstance(port, dict):
                port.setdefault("protocol", "TCP")


def _deployment(obj: JSON) -> None:
    spec = _spec(obj)
    spec.setdefault("replicas", 1)
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)
    strategy = spec.setdefault("strategy", {"type": "RollingUpdate"})
    if isinstance(strategy, dict):
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            rolling = strategy.setdefault("rollingUpdate", {})
            if isinstance(rolling, dict):
                rolling.setdefault("maxUnavailable", "25%")
                rolling.setdefault("maxSurge", "25%")
    _pod_spec(dig(spec, "template", "spec"))


def _job(obj: JSON) -> None:
    spec = _spec(obj)
    spec.setdefault("parallelism", 1)
    spec.setdefault("completions", 1)
    spec.setdefault("backoffLimit", 6)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    spec.setdefault("podReplacementPolicy", "TerminatingOrFailed")
    uid = dig(obj, "metadata", "uid")
    name = dig(obj, "metadata", "name")
    template = spec.setdefault("template", {})
    if uid and name and isinstance(template, dict) and not spec.get("manualSelector"):
        # The server generates the selector from the Job's uid and labels the template with it.
        spec.setdefault("selector", {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}})
        labels = template.setdefault("metadata", {}).setdefault("labels", {})
        labels.setdefault("batch.kubernetes.io/controller-uid", uid)
        labels.setdefault("batch.kubernetes.io/job-name", name)
        labels.setdefault("controller-uid", uid)
        labels.setdefault("job-name", name)
    _pod_spec(template.get("spec") if isinstance(template, dict) else None, restart_policy=None)


def _pod(obj: JSON) -> None:
    spec = _spec(obj)
    _pod_spec(spec)
    spec.setdefault("enableServiceLinks", True)
    containers = [c for c in [*(spec.get("initContainers") or []),
                              *(spec.get("containers") or [])] if isinstance(c, dict)]
    for container in containers:
        _requests_from_limits(container)
    status = obj.setdefault("status", {})
    if isinstance(status, dict):
        status.setdefault("phase", "Pending")
        # A bad quantity is refused as undecodable right after defaulting (rules.py).
        with contextlib.suppress(QuantityError):
            status.setdefault("qosClass", qos_class(containers))


def _requests_from_limits(container: JSON) -> None:
    """A limit with no request is also the request: the server defaults it on Pods only
    (not on templates), so the scheduler sees what the container may use."""
    resources = container.get("resources")
    if not isinstance(resources, dict) or not isinstance(resources.get("limits"), dict) \
            or not resources["limits"]:
        return
    requests = resources.setdefault("requests", {})
    if isinstance(requests, dict):
        for name, amount in resources["limits"].items():
            requests.setdefault(name, amount)


def _service(obj: JSON) -> None:
    spec = _spec(obj)
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    spec.setdefault("internalTrafficPolicy", "Cluster")
    spec.setdefault("ipFamilies", ["IPv4"])
    spec.setdefault("ipFamilyPolicy", "SingleStack")
    for port in spec.get("ports") or []:
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")
            if "port" in port:
                port.setdefault("targetPort", port["port"])
    obj.setdefault("status", {"loadBalancer": {}})


def _namespace(obj: JSON) -> None:
    name = dig(obj, "metadata", "name")
    if name:
        labels = obj.setdefault("metadata", {}).setdefault("labels", {})
        labels["kubernetes.io/metadata.name"] = name
    _spec(obj).setdefault("finalizers", ["kubernetes"])
    status = obj.setdefault("status", {})
    if isinstance(status, dict):
        status.setdefault("phase", "Active")


def _endpoint_slice(obj: JSON) -> None:
    for port in obj.get("ports") or []:
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")


def _lease(obj: JSON) -> None:
    # The server re-serialises MicroTime in UTC; clients see `...Z` whatever zone they sent.
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    for field in ("acquireTime", "renewTime"):
        value = spec.get(field)
        parsed = parse_micro_time(value) if isinstance(value, str) else None
        if parsed is not None:
            spec[field] = format_micro_time(parsed)


def _priority_class(obj: JSON) -> None:
    obj.setdefault("preemptionPolicy", "PreemptLowerPriority")


_BY_KIND = {
    "PriorityClass": _priority_class,
    "Deployment": _deployment,
    "Job": _job,
    "Pod": _pod,
    "Service": _service,
    "Namespace": _namespace,
    "EndpointSlice": _endpoint_slice,
    "Lease": _lease,
}
