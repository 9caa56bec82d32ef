"""What the shipped install trusts and requires, beyond what its schemas check."""

from __future__ import annotations

import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.version import Version

from tests.deploy.conftest import parse_shipped

ROOT = Path(__file__).resolve().parents[2]


def test_the_shipped_config_trusts_no_forwarded_headers_until_set() -> None:
    # A CNI's pod range is no safe default: `10.0.0.0/8` would let every pod of the
    # cluster forge any client address. Nobody is trusted until the operator lists the
    # ingress controller's range (k8s/README.md, "Client addresses").
    docs = yaml.safe_load_all((ROOT / "k8s" / "configmap.yaml").read_text())
    configmap = next(d for d in docs if d and d["kind"] == "ConfigMap")
    settings = parse_shipped(configmap["data"]["cluster.yaml"])
    assert settings.trusted_proxies == ()
    readme = (ROOT / "k8s" / "README.md").read_text()
    assert "## Client addresses (`trusted_proxies`)" in readme


def test_no_admitted_kubernetes_client_release_breaks_server_side_apply() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirement = next(Requirement(r) for r in project["dependencies"]
                       if Requirement(r).name == "kubernetes_asyncio")
    # 30.1.0's REST client refuses apply-patch bodies (only JSON content types are sent):
    # every deploy fails. 30.1.1 restored it.
    assert not requirement.specifier.contains(Version("30.1.0"))
    assert requirement.specifier.contains(Version("30.1.1"))
