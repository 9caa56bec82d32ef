"""Client-side access files: a kubeconfig, and the in-cluster service-account files.

Owns writing a kubeconfig (one cluster/user/context, bearer token, CA file in TLS mode) and the
token + ca.crt pair and environment that `load_incluster_config` reads inside a pod. Never
starts anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml


def write_kubeconfig(path: Path, *, server: str, token: str, ca_file: Path | None,
                     namespace: str = "default") -> Path:
    cluster: dict[str, str] = {"server": server}
    if ca_file is not None:
        cluster["certificate-authority"] = str(ca_file)
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "emulator", "cluster": cluster}],
        "users": [{"name": "emulator", "user": {"token": token}}],
        "contexts": [{"name": "emulator",
                      "context": {"cluster": "emulator", "user": "emulator",
                                  "namespace": namespace}}],
        "current-context": "emulator",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@dataclass(frozen=True)
class InClusterFiles:
    """What a pod would find: pass these to `load_incluster_config(token_filename=...,
    cert_filename=..., environ=...)` or export `environ` and mount the files."""

    token_path: Path
    ca_path: Path
    environ: dict[str, str]


def write_incluster(directory: Path, *, port: int, token: str, ca_file: Path) -> InClusterFiles:
    directory.mkdir(parents=True, exist_ok=True)
    token_path = directory / "token"
    token_path.write_text(token)
    ca_path = directory / "ca.crt"
    ca_path.write_bytes(ca_file.read_bytes())
    environ = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(port)}
    return InClusterFiles(token_path, ca_path, environ)
