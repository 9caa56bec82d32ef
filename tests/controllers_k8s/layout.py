"""Where the controllers work in these tests: the namespaces of the shipped install (k8s/),
with the defaults of `kubernetes.builds`, so the RBAC and Pod Security of the manifests
that ship are the ones the tests meet."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tests.k8s_emulator import Emulator
from tests.k8s_emulator import resources as r
from tests.k8s_emulator.pod_security import ENFORCE
from wakeproxy.platforms.kubernetes.builds import BUILD_LABEL
from wakeproxy.platforms.kubernetes.deploys import APP_LABEL
from wakeproxy.settings import KubernetesBuilds

JSON = dict[str, Any]

# Deployments and Services of deployed apps (kubernetes.builds.namespace), and the Leases
# (wakeproxy's own namespace).
APPS_NS = KubernetesBuilds().namespace
LEASE_NS = "wakeproxy"
# Build Jobs and their pods (kubernetes.builds.job_namespace: Pod Security `privileged`).
BUILDS_NS = KubernetesBuilds().job_namespace


@contextmanager
def enforcing(emulator: Emulator, namespace: str, level: str) -> Iterator[None]:
    """The namespace enforces Pod Security `level` meanwhile (an operator relabelled it)."""
    def label(value: str | None) -> None:
        def change(ns: JSON) -> None:
            labels = ns["metadata"].setdefault("labels", {})
            if value is None:
                labels.pop(ENFORCE, None)
            else:
                labels[ENFORCE] = value
        emulator.store.mutate(r.NAMESPACES, None, namespace, change)

    before = (emulator.store.get(r.NAMESPACES, None, namespace)["metadata"].get("labels")
              or {}).get(ENFORCE)
    label(level)
    try:
        yield
    finally:
        label(before)


def app_pods(emulator: Emulator, app: str) -> list[JSON]:
    """The pods of a deployed app (labelled with its name by every deploy), not its builds'."""
    return [p for p in emulator.pods(APPS_NS)
            if (p["metadata"].get("labels") or {}).get(APP_LABEL) == app
            and BUILD_LABEL not in p["metadata"]["labels"]]

# What the production builder prints last (BuildKit's digest from its metadata file); a
# test builder stands in a digest of its own: the image name's sha256.
PUSHED = ('echo "==> pushed $WAKEPROXY_IMAGE@sha256:'
          '$(printf %s "$WAKEPROXY_IMAGE" | sha256sum | cut -c1-64)"')


def pushing(script: str) -> tuple[str, str, str]:
    """A builder command: `script`, then (if it succeeded) the pushed-digest line."""
    return ("sh", "-c", f"( {script} ) && {PUSHED}")


def digest_of(image: str) -> str:
    """The digest a `pushing` builder reports for `image`."""
    return "sha256:" + hashlib.sha256(image.encode()).hexdigest()
