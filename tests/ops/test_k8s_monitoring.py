"""k8s/monitoring/ as kustomize builds it: ServiceMonitor, PrometheusRule, dashboard
ConfigMap, and the scrape-annotations component applied to a wakeproxy Deployment/Service."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml

from tests.ops.monitoring import DASHBOARD, MONITORING, SERVICE_MONITOR, load_yaml

SCRAPE = {"prometheus.io/scrape": "true", "prometheus.io/port": "9090",
          "prometheus.io/path": "/metrics"}


def kustomize(directory: Path) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    assert kubectl is not None, "kubectl is needed to build the kustomizations"
    r = subprocess.run([kubectl, "kustomize", str(directory)], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    return [d for d in yaml.safe_load_all(r.stdout) if d]


def test_service_monitor_scrapes_the_admin_port_of_the_wakeproxy_service() -> None:
    doc = load_yaml(SERVICE_MONITOR)
    assert (doc["apiVersion"], doc["kind"]) == ("monitoring.coreos.com/v1", "ServiceMonitor")
    assert doc["spec"]["selector"] == {"matchLabels": {"app.kubernetes.io/name": "wakeproxy"}}
    [endpoint] = doc["spec"]["endpoints"]
    assert endpoint["port"] == "admin" and endpoint["path"] == "/metrics"


def test_kustomize_builds_rules_monitor_and_dashboard() -> None:
    objects = {(o["kind"], o["metadata"]["name"]): o for o in kustomize(MONITORING)}
    assert set(objects) == {
        ("ServiceMonitor", "wakeproxy"), ("PrometheusRule", "wakeproxy"),
        ("ConfigMap", "wakeproxy-dashboard"),
    }
    assert {o["metadata"]["namespace"] for o in objects.values()} == {"wakeproxy"}
    dashboard = objects[("ConfigMap", "wakeproxy-dashboard")]
    kubernetes_validate.validate(dashboard, kubernetes_validate.latest_version(), strict=True)
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboard["data"]["wakeproxy.json"]) == json.loads(DASHBOARD.read_text())


def test_scrape_annotations_component_annotates_the_pods_and_the_service(tmp_path: Path) -> None:
    base = [
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "wakeproxy"},
         "spec": {"selector": {"matchLabels": {"app": "wakeproxy"}},
                  "template": {"metadata": {"labels": {"app": "wakeproxy"}},
                               "spec": {"containers": [{"name": "wakeproxy",
                                                        "image": "wakeproxy"}]}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "wakeproxy"},
         "spec": {"selector": {"app": "wakeproxy"},
                  "ports": [{"name": "admin", "port": 9090}]}},
    ]
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    shutil.copytree(MONITORING / "scrape-annotations", tmp_path / "scrape-annotations")
    (overlay / "base.yaml").write_text(yaml.safe_dump_all(base))
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump(
        {"resources": ["base.yaml"], "components": ["../scrape-annotations"]}))
    objects = {o["kind"]: o for o in kustomize(overlay)}
    for o in objects.values():
        kubernetes_validate.validate(o, kubernetes_validate.latest_version(), strict=True)
    pod_annotations = objects["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    assert pod_annotations == SCRAPE
    assert objects["Service"]["metadata"]["annotations"] == SCRAPE
