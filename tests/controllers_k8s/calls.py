"""Every API call the Kubernetes controllers make, once: the builds list and the open
review apps read back, an app routed before its first deploy, a build of a branch
(succeeded, cancelled, and refused by Pod Security), its log read back, the first deploy
over the reserved Deployment and an update, its deletion, and webhook deliveries recorded
in the shared delivery log (created, then updated) (for the RBAC test)."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from tests.controllers.gitrepo import Repo
from tests.controllers_k8s.layout import BUILDS_NS, LEASE_NS, enforcing, pushing
from tests.e2e.harness import ECHO_APP
from tests.e2e_k8s.cluster import until
from tests.k8s_emulator import Emulator
from wakeproxy.controllers.builder import Source
from wakeproxy.controllers.cluster import KubernetesDeployer
from wakeproxy.controllers.cluster_builds import KubernetesBuilder
from wakeproxy.controllers.cluster_reviews import found_reviews
from wakeproxy.model.apps import AppPolicy
from wakeproxy.model.clock import SystemClock
from wakeproxy.model.stats import PlatformStats
from wakeproxy.platforms.kubernetes.api import Api
from wakeproxy.platforms.kubernetes.builds import BuildJobs
from wakeproxy.platforms.kubernetes.client import connect
from wakeproxy.platforms.kubernetes.delivery_log import LeaseDeliveryLog
from wakeproxy.platforms.kubernetes.deploys import Deploys
from wakeproxy.settings import KubernetesBuilds, LocalApp


async def controllers_calls(emulator: Emulator) -> None:
    client = await connect(kubeconfig=str(emulator.wakeproxy_kubeconfig), incluster=None,
                           pool_size=4)
    api = Api(client, timeout=5.0, stats=PlatformStats(leader=False))
    try:
        with tempfile.TemporaryDirectory() as tmp:
            await _calls(emulator, api, Repo(Path(tmp)))
    finally:
        await client.close()


async def _calls(emulator: Emulator, api: Api, repo: Repo) -> None:
    repo.commit("one")
    s = KubernetesBuilds(builder_command=pushing("echo ok"),
                         app_command=(sys.executable, str(ECHO_APP)))
    builder = KubernetesBuilder(jobs=BuildJobs(lambda: api, s), registry=s.registry,
                                pull_registry=s.pull_registry)
    await builder.restore()
    deploys = Deploys(lambda: api, s)
    await found_reviews(deploys)
    deployer = KubernetesDeployer(deploys=deploys, builder=builder)
    deployer.add_app(LocalApp(policy=AppPolicy(name="rbac", hosts=("rbac.example.com",)),
                              command=""))
    await deployer.start()  # reserved: routed, not deployed yet
    build = await builder.wait(builder.start("rbac", Source(repo=repo.url), "main"))
    await deployer.deploy("rbac", build)  # the first deploy: apply, then unmark
    await deployer.deploy("rbac", build)  # the update: an apply
    later = KubernetesBuilder(jobs=BuildJobs(lambda: api, s), registry=s.registry,
                              pull_registry=s.pull_registry)
    await later.restore()
    [found] = later.list()
    await later.load_log(found)
    slow = KubernetesBuilder(jobs=BuildJobs(lambda: api, KubernetesBuilds(
        builder_command=("sh", "-c", "exec sleep 5"))), registry="r")
    cancelled = slow.start("rbac", Source(repo=repo.url), "main")
    await until(lambda: [p for p in emulator.pods(BUILDS_NS) if "sleep" in str(p)], 10)
    slow.cancel(cancelled.id, "test")
    await slow.wait(cancelled)
    refused = KubernetesBuilder(jobs=BuildJobs(lambda: api, s, refused_grace=0.2),
                                registry=s.registry)
    with enforcing(emulator, BUILDS_NS, "restricted"):
        await refused.wait(refused.start("rbac", Source(repo=repo.url), "main"))
    await deployer.delete("rbac")
    deliveries = LeaseDeliveryLog(api=lambda: api, namespace=LEASE_NS, lease_name="rbac",
                                  clock=SystemClock())
    assert await deliveries.first_time("d-1") and await deliveries.first_time("d-2")
