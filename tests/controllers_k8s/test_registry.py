"""Every image a Deployment carries is one a node can pull: nodes resolve names with their
own DNS, not the cluster's, so builds push to the registry's in-cluster name and
Deployments name it as nodes reach it (kubernetes.builds.pull_registry), by digest."""

from __future__ import annotations

import sys

import pytest

from tests.controllers_k8s.layout import APPS_NS, app_pods
from tests.e2e.harness import ECHO_APP
from tests.e2e_k8s.cluster import until
from tests.k8s_emulator import Emulator
from tests.k8s_emulator import resources as r
from wakeproxy.controllers.cluster import KubernetesDeployer
from wakeproxy.controllers.cluster_builds import KubernetesBuilder
from wakeproxy.controllers.errors import NotDeployable
from wakeproxy.model.apps import AppPolicy
from wakeproxy.platforms.kubernetes.api import Api
from wakeproxy.platforms.kubernetes.builds import BuildJobs
from wakeproxy.platforms.kubernetes.deploys import Deploys
from wakeproxy.settings import ConfigError, KubernetesBuilds, LocalApp, parse_settings

DIGEST = "sha256:" + "12" * 32


def deployer(api: Api) -> KubernetesDeployer:
    s = KubernetesBuilds(app_command=(sys.executable, str(ECHO_APP)))
    d = KubernetesDeployer(
        deploys=Deploys(lambda: api, s),
        builder=KubernetesBuilder(jobs=BuildJobs(lambda: api, s), registry=s.registry,
                                  pull_registry=s.pull_registry))
    d.add_app(LocalApp(policy=AppPolicy(name="shop", hosts=("shop.localhost",)), command=""))
    return d


def image_of(emulator: Emulator) -> str:
    dep = emulator.store.get(r.DEPLOYMENTS, APPS_NS, "shop")
    return str(dep["spec"]["template"]["spec"]["containers"][0]["image"])


async def test_an_image_named_by_the_registry_setting_is_deployed_as_nodes_pull_it(
    k8s_emulator: Emulator, api: Api,
) -> None:
    d = deployer(api)
    await d.deploy_image("shop", f"wakeproxy-registry.wakeproxy.svc:5000/shop@{DIGEST}")
    assert image_of(k8s_emulator) == f"localhost:30500/shop@{DIGEST}"
    k8s_emulator.store.mutate(r.DEPLOYMENTS, APPS_NS, "shop",
                              lambda dep: dep["spec"].update(replicas=1))  # a wake

    def running() -> bool:
        return any(s["state"].get("running") for p in app_pods(k8s_emulator, "shop")
                   for s in (p.get("status") or {}).get("containerStatuses") or [])

    await until(running, 10)  # pulled: the node resolves localhost


async def test_an_image_from_another_cluster_dns_name_is_refused(
    k8s_emulator: Emulator, api: Api,
) -> None:
    d = deployer(api)
    for image in ("registry.tools.svc:5000/shop:1", "registry.tools.svc.cluster.local/shop:1"):
        with pytest.raises(NotDeployable, match="cluster DNS name the nodes cannot resolve"):
            await d.deploy_image("shop", image)
    assert k8s_emulator.store.find(r.DEPLOYMENTS, APPS_NS, "shop") is None


def builds(text: str) -> KubernetesBuilds:
    s = parse_settings("platform: kubernetes\nkubernetes:\n  builds:\n" + text, "cluster.yaml")
    assert s.kubernetes is not None
    return s.kubernetes.builds


def test_the_pull_registry_is_never_a_cluster_dns_name() -> None:
    default = builds("    port: 8080\n")
    assert (default.registry, default.pull_registry) == (
        "wakeproxy-registry.wakeproxy.svc:5000", "localhost:30500")
    real = builds("    registry: registry.example.com\n")
    assert real.pull_registry == "registry.example.com"
    both = builds("    registry: reg.tools.svc:5000\n    pull_registry: 10.0.0.5:30500\n")
    assert both.pull_registry == "10.0.0.5:30500"
    with pytest.raises(ConfigError) as e:
        builds("    pull_registry: wakeproxy-registry.wakeproxy.svc:5000\n")
    assert ("cluster.yaml: kubernetes.builds.pull_registry: expected a registry host[:port] "
            "nodes resolve") in str(e.value)
    with pytest.raises(ConfigError) as e:
        builds("    registry: reg.tools.svc.cluster.local:5000\n")
    assert "reg.tools.svc.cluster.local:5000 is a cluster DNS name nodes cannot resolve" in str(
        e.value)
