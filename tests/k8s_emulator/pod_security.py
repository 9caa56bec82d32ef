"""Pod Security admission: a pod is checked against its namespace's enforced level when created.

Owns the Pod Security Standards checks (`baseline`, `restricted`; `privileged` checks
nothing) as the built-in admission plugin applies them, the namespace label that picks the
level (`pod-security.kubernetes.io/enforce`, no label: privileged), and the 403 the API
server answers (`violates PodSecurity "restricted:latest": ...`), worded as the real one.
Pods are what is checked, not Deployments or Jobs: those are accepted and their controllers'
pod creations are refused (they report FailedCreate). Never mutates a pod.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import resources as r
from .errors import Forbidden
from .meta import JSON, dig, meta
from .resources import ResourceType

ENFORCE = "pod-security.kubernetes.io/enforce"
LEVELS = ("privileged", "baseline", "restricted")
_APPARMOR_ANNOTATION = "container.apparmor.security.beta.kubernetes.io/"
_BASELINE_CAPS = frozenset({
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
    "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
})
_RESTRICTED_VOLUMES = frozenset({
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
    "projected", "secret",
})
_SAFE_SYSCTLS = frozenset({
    "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
})
_SELINUX_TYPES = frozenset({"", "container_t", "container_init_t", "container_kvm_t",
                            "container_engine_t"})


def _containers(spec: JSON) -> list[JSON]:
    return [c for key in ("initContainers", "containers", "ephemeralContainers")
            for c in spec.get(key) or [] if isinstance(c, dict)]


def _names(containers: list[JSON]) -> str:
    quoted = ", ".join(f'"{c.get("name")}"' for c in containers)
    return f"container{'s' if len(containers) > 1 else ''} {quoted}"


def _sc(obj: JSON) -> JSON:
    value = obj.get("securityContext")
    return value if isinstance(value, dict) else {}


def _baseline(pod: JSON) -> list[str]:
    spec: JSON = pod.get("spec") or {}
    containers = _containers(spec)
    pod_sc = _sc(spec)
    out = []
    host = [f"{k}={str(spec[k]).lower()}" for k in ("hostNetwork", "hostPID", "hostIPC")
            if spec.get(k)]
    if host:
        out.append(f"host namespaces ({', '.join(host)})")
    privileged = [c for c in containers if _sc(c).get("privileged")]
    if privileged:
        out.append(f"privileged ({_names(privileged)} must not set "
                   "securityContext.privileged=true)")
    added = [c for c in containers
             if set(dig(_sc(c), "capabilities", "add") or []) - _BASELINE_CAPS]
    if added:
        out.append(f"non-default capabilities ({_names(added)} must not include "
                   "capabilities beyond the default set in securityContext.capabilities.add)")
    host_paths = [v.get("name") for v in spec.get("volumes") or [] if "hostPath" in v]
    if host_paths:
        out.append(f"hostPath volumes ({', '.join(map(str, host_paths))})")
    ports = [c for c in containers for p in c.get("ports") or [] if p.get("hostPort")]
    if ports:
        out.append(f"hostPort ({_names(ports)} uses hostPort)")
    apparmor = [c for c in containers
                if dig(_sc(c), "appArmorProfile", "type") == "Unconfined"
                or (meta(pod).get("annotations") or {}).get(
                    _APPARMOR_ANNOTATION + str(c.get("name"))) == "unconfined"]
    if apparmor or dig(pod_sc, "appArmorProfile", "type") == "Unconfined":
        what = _names(apparmor) if apparmor else "pod"
        out.append(f'forbidden AppArmor profile ({what} must not set AppArmor profile type '
                   'to "Unconfined")')
    selinux = [c for c in [spec, *containers]
               if (o := dig(_sc(c), "seLinuxOptions") or {})
               and (o.get("type", "") not in _SELINUX_TYPES or o.get("user") or o.get("role"))]
    if selinux:
        out.append("seLinuxOptions (pod or containers must not set forbidden "
                   "securityContext.seLinuxOptions)")
    proc = [c for c in containers if _sc(c).get("procMount") not in (None, "Default")]
    if proc:
        out.append(f"procMount ({_names(proc)} must not set securityContext.procMount)")
    unconfined = [c for c in containers
                  if dig(_sc(c), "seccompProfile", "type") == "Unconfined"]
    if unconfined or dig(pod_sc, "seccompProfile", "type") == "Unconfined":
        what = (_names(unconfined) if unconfined else "pod")
        out.append(f'seccompProfile ({what} must not set securityContext.seccompProfile.type '
                   'to "Unconfined")')
    sysctls = [s.get("name") for s in pod_sc.get("sysctls") or []
               if s.get("name") not in _SAFE_SYSCTLS]
    if sysctls:
        out.append(f"forbidden sysctls ({', '.join(map(str, sysctls))})")
    return out


def _restricted(pod: JSON) -> list[str]:
    spec: JSON = pod.get("spec") or {}
    containers = _containers(spec)
    pod_sc = _sc(spec)
    out = []
    volumes = [(v.get("name"), k) for v in spec.get("volumes") or []
               for k in v if k != "name" and k not in _RESTRICTED_VOLUMES]
    if volumes:
        out.append("restricted volume types (" + ", ".join(
            f'volume "{name}" uses restricted volume type "{kind}"' for name, kind in volumes)
            + ")")
    escalate = [c for c in containers if _sc(c).get("allowPrivilegeEscalation") is not False]
    if escalate:
        out.append(f"allowPrivilegeEscalation != false ({_names(escalate)} must set "
                   "securityContext.allowPrivilegeEscalation=false)")
    caps = [c for c in containers
            if "ALL" not in (dig(_sc(c), "capabilities", "drop") or [])
            or set(dig(_sc(c), "capabilities", "add") or []) - {"NET_BIND_SERVICE"}]
    if caps:
        out.append(f'unrestricted capabilities ({_names(caps)} must set '
                   'securityContext.capabilities.drop=["ALL"])')
    pod_nonroot = pod_sc.get("runAsNonRoot")
    root = [c for c in containers
            if _sc(c).get("runAsNonRoot") is False
            or (_sc(c).get("runAsNonRoot") is None and pod_nonroot is not True)]
    if root or pod_nonroot is False:
        who = f"pod or {_names(root)}" if root else "pod"
        out.append(f"runAsNonRoot != true ({who} must set securityContext.runAsNonRoot=true)")
    zero = [c for c in containers if _sc(c).get("runAsUser") == 0]
    if zero or pod_sc.get("runAsUser") == 0:
        out.append("runAsUser=0 (pod and containers must not set runAsUser=0)")
    pod_seccomp = dig(pod_sc, "seccompProfile", "type")
    seccomp = [c for c in containers
               if (t := dig(_sc(c), "seccompProfile", "type")) not in ("RuntimeDefault",
                                                                        "Localhost")
               and (t is not None or pod_seccomp not in ("RuntimeDefault", "Localhost"))]
    if seccomp:
        out.append(f"seccompProfile (pod or {_names(seccomp)} must set "
                   'securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")')
    return out


def violations(level: str, pod: JSON) -> list[str]:
    if level == "privileged":
        return []
    found = _baseline(pod)
    if level == "restricted":
        found += _restricted(pod)
    return found


def level_of(namespace: JSON | None) -> str:
    """The enforced level of a namespace (no label, or an unknown one: privileged, as the
    admission plugin's default configuration has it)."""
    labels = (meta(namespace).get("labels") or {}) if namespace else {}
    level = str(labels.get(ENFORCE) or "privileged")
    return level if level in LEVELS else "privileged"


def admission(namespace_of: Callable[[str], JSON | None]) -> Callable[[ResourceType, Any], None]:
    """The admission hook: refuse a pod its namespace's enforced level does not allow."""

    def admit(rt: ResourceType, pod: JSON) -> None:
        if rt is not r.PODS:
            return
        ns = str(meta(pod).get("namespace") or "default")
        level = level_of(namespace_of(ns))
        found = violations(level, pod)
        if found:
            name = str(meta(pod).get("name") or "")
            raise Forbidden(f'pods "{name}" is forbidden: violates PodSecurity '
                            f'"{level}:latest": {", ".join(found)}', name=name, kind="pods")

    return admit
