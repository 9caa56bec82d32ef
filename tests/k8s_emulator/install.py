"""What an operator's `kubectl apply -k k8s/` puts in the cluster, as far as the API enforces it.

Owns: building the project's own manifests with `kubectl kustomize` (once per process) and
picking out what the API server enforces for wakeproxy: its Namespaces with their Pod
Security labels, its PriorityClasses, the RBAC objects, and the ServiceAccount wakeproxy's
pods run as. The
emulator creates those namespaces, authorizes wakeproxy's token with those rules, and
checks pods against those labels, so the manifests that ship are the ones under test.
Never creates anything itself.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

from .meta import JSON

K8S_DIR = Path(__file__).resolve().parents[2] / "k8s"
RBAC_KINDS = ("ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")


class InstallError(Exception):
    pass


@dataclass(frozen=True)
class Install:
    namespaces: tuple[JSON, ...]
    rbac: tuple[JSON, ...]
    # The ServiceAccount wakeproxy's own Deployment runs as: (namespace, name).
    service_account: tuple[str, str]
    # The namespace wakeproxy is installed in (its leases live there).
    namespace: str
    # Cluster-wide objects the install creates that pods refer to (their priorityClassName).
    priority_classes: tuple[JSON, ...] = ()


@functools.cache
def load(directory: Path = K8S_DIR) -> Install:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        raise InstallError("kubectl is needed to build the manifests in k8s/ "
                           "(kubectl kustomize): install it (apt-get install kubectl)")
    result = subprocess.run([kubectl, "kustomize", str(directory)], capture_output=True,
                            text=True, timeout=60, check=False)
    if result.returncode != 0:
        raise InstallError(f"kubectl kustomize {directory} failed: {result.stderr}")
    objects = [d for d in yaml.safe_load_all(result.stdout) if isinstance(d, dict)]
    proxies = [o for o in objects if o.get("kind") == "Deployment"
               and o["metadata"]["name"] == "wakeproxy"]
    if len(proxies) != 1:
        raise InstallError(f"{directory}: expected one Deployment named wakeproxy")
    [proxy] = proxies
    namespace = str(proxy["metadata"]["namespace"])
    account = str(proxy["spec"]["template"]["spec"].get("serviceAccountName") or "default")
    return Install(
        namespaces=tuple(o for o in objects if o.get("kind") == "Namespace"),
        rbac=tuple(o for o in objects if o.get("kind") in RBAC_KINDS),
        service_account=(namespace, account),
        namespace=namespace,
        priority_classes=tuple(o for o in objects if o.get("kind") == "PriorityClass"),
    )
