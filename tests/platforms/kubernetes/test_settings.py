"""The `kubernetes:` config section and the replica identity."""

from __future__ import annotations

from pathlib import Path

import pytest

from wakeproxy.app import replica_identity
from wakeproxy.settings import ConfigError, parse_settings


def test_kubernetes_section_is_parsed_with_defaults(tmp_path: Path) -> None:
    (tmp_path / "kube.yaml").write_text("apiVersion: v1\n")
    s = parse_settings(
        "platform: kubernetes\n"
        "defaults: {idle_after: 2m}\n"
        "kubernetes:\n  kubeconfig: kube.yaml\n  namespaces: [apps, review]\n"
        "  lease_duration: 10s\n  activity_interval: 2s\n",
        "cluster.yaml", base_dir=tmp_path)
    k = s.kubernetes
    assert k is not None
    assert k.kubeconfig == str(tmp_path / "kube.yaml")
    assert k.namespaces == ("apps", "review")
    assert (k.lease_duration, k.activity_interval, k.lease_name) == (10.0, 2.0, "wakeproxy")
    assert s.defaults.idle_after == 120.0
    bare = parse_settings("platform: kubernetes\n", "cluster.yaml").kubernetes
    assert bare is not None and bare.kubeconfig is None and bare.namespaces == ()


def test_kubernetes_mistakes_name_file_and_key() -> None:
    with pytest.raises(ConfigError) as e:
        parse_settings(
            "platform: kubernetes\nkubernetes:\n  namespaces: [Apps]\n  lease_duration: 500ms\n"
            "  kubeconfig: missing.yaml\n  leader: yes\n", "cluster.yaml")
    text = str(e.value)
    assert "cluster.yaml: kubernetes.namespaces: expected" in text
    assert "cluster.yaml: kubernetes.lease_duration: expected a duration of at least 1s" in text
    assert "cluster.yaml: kubernetes.kubeconfig: expected a readable kubeconfig file" in text
    assert "cluster.yaml: kubernetes.leader: expected one of" in text


def test_apps_need_no_command_on_kubernetes() -> None:
    s = parse_settings("platform: kubernetes\napps:\n  - {name: a, hosts: [a.example.com]}\n",
                       "cluster.yaml")
    assert s.platform == "kubernetes"


def test_identity_is_config_then_pod_name_then_unique_host_name() -> None:
    assert replica_identity("fixed", {"POD_NAME": "wp-1"}) == "fixed"
    assert replica_identity(None, {"POD_NAME": "wp-1"}) == "wp-1"
    first, second = replica_identity(None, {}), replica_identity(None, {})
    assert first != second  # two replicas on one host never share an identity
