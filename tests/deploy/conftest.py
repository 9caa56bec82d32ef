from __future__ import annotations

import tempfile
from pathlib import Path

from tests.k8s_emulator.fixtures import k8s_emulator, make_k8s_emulator
from tests.platforms.kubernetes.conftest import make_world
from wakeproxy.settings import Settings, parse_settings

__all__ = ["k8s_emulator", "make_k8s_emulator", "make_world"]


ADMIN_TOKEN_DIR = "/var/run/secrets/wakeproxy/admin"


def parse_shipped(text: str, source: str = "k8s/configmap.yaml") -> Settings:
    """The shipped config as a pod parses it: with the admin token its Secret mounts
    (a token file in a temporary directory standing in for the Secret's mount)."""
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "token").write_text("0123456789abcdef" * 4)
        return parse_settings(text.replace(ADMIN_TOKEN_DIR, tmp), source)
