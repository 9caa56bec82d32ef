"""From a pod's first container to a command line and environment, as a container runtime would.

Owns: `command` + `args` with `$(VAR)` expansion, `env` values (plain, downward API fieldRef,
ConfigMap keys), `envFrom` ConfigMaps, the `PORT` the emulator assigned, and the pod-creation
admission that assigns that port (all pods share 127.0.0.1, so each gets its own port), and
the pause image (`registry.k8s.io/pause:*`), run as a process that waits to be killed.
Raises `ContainerConfigError` for what cannot be run. Never starts processes.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from . import resources as r
from .meta import JSON, dig, meta
from .processes import free_port
from .resources import ResourceType
from .store import Admission, Store

# The images whose entrypoint only waits to be killed (placeholders, sandboxes).
_PAUSE_REGISTRIES = ("registry.k8s.io/", "k8s.gcr.io/")
PAUSE_COMMAND = ("sleep", "infinity")
_VAR_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


class ContainerConfigError(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def expand(text: str, env: Mapping[str, str]) -> str:
    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1)
        return env[name] if name in env else m.group(0)

    return _VAR_REF.sub(sub, text)


def port_of(pod: JSON) -> int | None:
    """The port the pod's first container listens on: its PORT variable."""
    containers = dig(pod, "spec", "containers") or []
    if not containers or not isinstance(containers[0], dict):
        return None
    for var in containers[0].get("env") or []:
        if var.get("name") == "PORT" and str(var.get("value", "")).isdigit():
            return int(var["value"])
    return None


def probed_port(pod: JSON) -> int | None:
    """The port readiness is probed on: PORT when the first container declares a port or a
    readinessProbe; None when it declares neither (ready once running, as the kubelet
    treats a container without a readinessProbe)."""
    containers = dig(pod, "spec", "containers") or []
    first = containers[0] if containers and isinstance(containers[0], dict) else {}
    if not first.get("ports") and not first.get("readinessProbe"):
        return None
    return port_of(pod)


def assign_port() -> Admission:
    """Pod admission: give the first container a free PORT (all pods share 127.0.0.1)."""

    def admit(rt: ResourceType, pod: JSON) -> None:
        if rt is not r.PODS:
            return
        spec = pod.setdefault("spec", {})
        containers = spec.get("containers") or []
        if not containers or not isinstance(containers[0], dict) or port_of(pod) is not None:
            return
        first = containers[0]
        port = free_port()
        first.setdefault("env", []).append({"name": "PORT", "value": str(port)})
        ports = first.get("ports") or []
        if ports and isinstance(ports[0], dict):
            ports[0]["containerPort"] = port

    return admit


def _field(pod: JSON, path: str) -> str:
    m = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
    if m:
        return str((meta(pod).get(m.group(1)) or {}).get(m.group(2), ""))
    simple = {
        "metadata.name": dig(pod, "metadata", "name"),
        "metadata.namespace": dig(pod, "metadata", "namespace"),
        "metadata.uid": dig(pod, "metadata", "uid"),
        "spec.nodeName": dig(pod, "spec", "nodeName"),
        "spec.serviceAccountName": dig(pod, "spec", "serviceAccountName") or "default",
        "status.podIP": "127.0.0.1",
        "status.hostIP": "127.0.0.1",
    }
    if path not in simple:
        raise ContainerConfigError("CreateContainerConfigError", f"unsupported fieldRef {path!r}")
    return str(simple[path] or "")


def _config_map(store: Store, namespace: str, name: str, optional: bool) -> dict[str, str]:
    cm = store.find(r.CONFIGMAPS, namespace, name)
    if cm is None:
        if optional:
            return {}
        raise ContainerConfigError("CreateContainerConfigError", f'configmap "{name}" not found')
    return {str(k): str(v) for k, v in (cm.get("data") or {}).items()}


def container_env(store: Store, pod: JSON, container: JSON) -> dict[str, str]:
    namespace = str(meta(pod).get("namespace"))
    declared: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        ref = source.get("configMapRef")
        if not ref:
            raise ContainerConfigError("CreateContainerConfigError", "only configMapRef envFrom "
                                       "is emulated")
        data = _config_map(store, namespace, ref["name"], bool(ref.get("optional")))
        prefix = source.get("prefix") or ""
        declared.update({f"{prefix}{k}": v for k, v in data.items()})
    for var in container.get("env") or []:
        name = str(var.get("name"))
        if "value" in var or "valueFrom" not in var:
            declared[name] = expand(str(var.get("value") or ""), declared)
            continue
        source = var["valueFrom"]
        if "fieldRef" in source:
            declared[name] = _field(pod, str(source["fieldRef"].get("fieldPath")))
        elif "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            data = _config_map(store, namespace, ref["name"], bool(ref.get("optional")))
            if ref["key"] not in data and not ref.get("optional"):
                raise ContainerConfigError("CreateContainerConfigError",
                                           f"couldn't find key {ref['key']} in ConfigMap")
            if ref["key"] in data:
                declared[name] = data[ref["key"]]
        else:
            raise ContainerConfigError(
                "CreateContainerConfigError",
                f"env {name}: only fieldRef and configMapKeyRef are emulated",
            )
    # The host environment (PATH, the Python in use) stays available to the process.
    return {**os.environ, **declared}


def _is_pause(image: str) -> bool:
    name = re.split(r"[:@]", image.rsplit("/", 1)[-1])[0]
    return name == "pause" and image.startswith(_PAUSE_REGISTRIES)


def container_argv(container: JSON, env: Mapping[str, str]) -> list[str]:
    command = [str(c) for c in container.get("command") or []]
    args = [str(a) for a in container.get("args") or []]
    if not command and _is_pause(str(container.get("image") or "")):
        # The pause image's entrypoint does nothing until it is signalled.
        command = list(PAUSE_COMMAND)
    if not command:
        raise ContainerConfigError(
            "CreateContainerError",
            "the emulated kubelet has no images: a container needs a `command` to run",
        )
    return [expand(part, env) for part in command + args]
