"""Every API call the Kubernetes controllers make, once: a build (succeeded and cancelled),
a deploy creating and then updating an app, and its deletion (for the RBAC test)."""

from __future__ import annotations

import sys

from tests.e2e.harness import ECHO_APP
from tests.k8s_emulator import Emulator
from wakeproxy.controllers.builder import Source
from wakeproxy.controllers.cluster import KubernetesDeployer
from wakeproxy.controllers.cluster_builds import KubernetesBuilder
from wakeproxy.model.apps import AppPolicy
from wakeproxy.model.stats import PlatformStats
from wakeproxy.platforms.kubernetes.api import Api
from wakeproxy.platforms.kubernetes.builds import BuildJobs
from wakeproxy.platforms.kubernetes.client import connect
from wakeproxy.platforms.kubernetes.deploys import Deploys
from wakeproxy.settings import KubernetesBuilds, LocalApp


async def controllers_calls(emulator: Emulator) -> None:
    client = await connect(kubeconfig=str(emulator.kubeconfig), incluster=None, pool_size=4)
    api = Api(client, timeout=5.0, stats=PlatformStats(leader=False))
    try:
        s = KubernetesBuilds(namespace="default", builder_command=("sh", "-c", "echo ok"),
                             app_command=(sys.executable, str(ECHO_APP)))
        builder = KubernetesBuilder(jobs=BuildJobs(lambda: api, s), registry=s.registry)
        deployer = KubernetesDeployer(deploys=Deploys(lambda: api, s), builder=builder)
        deployer.add_app(LocalApp(policy=AppPolicy(name="rbac", hosts=("rbac.example.com",)),
                                  command=""))
        build = await builder.wait(builder.start("rbac", Source(repo="https://g/r.git"), "main"))
        await deployer.deploy("rbac", build)
        await deployer.deploy("rbac", build)  # the update: an apply
        slow = KubernetesBuilder(jobs=BuildJobs(lambda: api, KubernetesBuilds(
            namespace="default", builder_command=("sh", "-c", "sleep 5"))), registry="r")
        cancelled = slow.start("rbac", Source(repo="https://g/r.git"), "main")
        while not emulator.pods():
            await __import__("asyncio").sleep(0.05)
        slow.cancel(cancelled.id, "test")
        await slow.wait(cancelled)
        await deployer.delete("rbac")
    finally:
        await client.close()
