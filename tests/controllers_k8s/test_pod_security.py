"""Every pod the controllers make is admitted by its namespace's Pod Security level, as
shipped in k8s/: deployed apps in `restricted` kubernetes.builds.namespace, build Jobs in
their own `privileged` kubernetes.builds.job_namespace."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from tests.controllers.gitrepo import Repo
from tests.controllers_k8s.layout import APPS_NS, BUILDS_NS, app_pods, enforcing, pushing
from tests.e2e.harness import ECHO_APP
from tests.e2e_k8s.cluster import until
from tests.k8s_emulator import Emulator
from tests.k8s_emulator import resources as r
from tests.k8s_emulator.pod_security import level_of, violations
from wakeproxy.controllers.builder import Source
from wakeproxy.controllers.builds import BuildState
from wakeproxy.controllers.cluster import KubernetesDeployer
from wakeproxy.controllers.cluster_builds import KubernetesBuilder
from wakeproxy.model.apps import AppPolicy
from wakeproxy.platforms.kubernetes.api import Api
from wakeproxy.platforms.kubernetes.builds import BuildJob, BuildJobs, job_manifest
from wakeproxy.platforms.kubernetes.deploys import Deploys, Release, deployment_manifest
from wakeproxy.settings import KubernetesBuilds, LocalApp


def pod_of(template: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": template.get("metadata") or {}, "spec": template["spec"]}


def failure(emulator: Emulator, name: str) -> str | None:
    dep = emulator.store.get(r.DEPLOYMENTS, APPS_NS, name)
    for c in (dep.get("status") or {}).get("conditions") or []:
        if c["type"] == "ReplicaFailure":
            return str(c["message"])
    return None


async def test_a_deployed_app_is_admitted_in_the_restricted_namespace(
    k8s_emulator: Emulator, api: Api,
) -> None:
    assert level_of(k8s_emulator.store.get(r.NAMESPACES, None, APPS_NS)) == "restricted"
    s = KubernetesBuilds(app_command=(sys.executable, str(ECHO_APP)))
    deployer = KubernetesDeployer(
        deploys=Deploys(lambda: api, s),
        builder=KubernetesBuilder(jobs=BuildJobs(lambda: api, s), registry=s.registry))
    deployer.add_app(LocalApp(policy=AppPolicy(name="shop", hosts=("shop.localhost",)),
                              command=""))
    await deployer.deploy_image("shop", "registry.example.com/shop:1.2")
    k8s_emulator.store.mutate(r.DEPLOYMENTS, APPS_NS, "shop",
                              lambda d: d["spec"].update(replicas=1))  # a wake
    await until(lambda: app_pods(k8s_emulator, "shop")
                or failure(k8s_emulator, "shop"), 10)
    assert failure(k8s_emulator, "shop") is None
    [pod] = app_pods(k8s_emulator, "shop")
    assert violations("restricted", pod) == []


def test_without_its_security_context_an_app_pod_would_be_refused() -> None:
    """What the emulator refuses is what a restricted namespace refuses: the manifest's
    securityContext is what makes the pod pass."""
    release = Release(name="shop", image="registry.example.com/shop:1", hosts=("shop.x",),
                      build_id="b")
    template = deployment_manifest(release, KubernetesBuilds(), replicas=0)["spec"]["template"]
    assert violations("restricted", pod_of(template)) == []
    del template["spec"]["securityContext"]
    del template["spec"]["containers"][0]["securityContext"]
    found = violations("restricted", pod_of(template))
    assert [v.split(" (")[0] for v in found] == [
        "allowPrivilegeEscalation != false", "unrestricted capabilities",
        "runAsNonRoot != true", "seccompProfile"]


async def test_a_build_job_runs_in_its_privileged_namespace(
    k8s_emulator: Emulator, api: Api, tmp_path: Path,
) -> None:
    """Rootless BuildKit's unconfined seccomp and AppArmor pass neither `baseline` nor
    `restricted`: its pod is admitted in the build namespace only."""
    assert level_of(k8s_emulator.store.get(r.NAMESPACES, None, BUILDS_NS)) == "privileged"
    manifest = job_manifest(BuildJob(build_id="b-1", repo="r", ref="main", commit="c" * 40,
                                     image="i"), KubernetesBuilds())
    template = manifest["spec"]["template"]
    assert {v.split(" (")[0] for v in violations("baseline", pod_of(template))} == {
        "forbidden AppArmor profile", "seccompProfile"}
    repo = Repo(tmp_path / "git")
    repo.commit("one")
    s = KubernetesBuilds(builder_command=pushing("echo built"), deadline=20)
    builder = KubernetesBuilder(jobs=BuildJobs(lambda: api, s), registry=s.registry)
    build = await builder.wait(builder.start("shop", Source(repo=repo.url), "main"))
    assert build.state is BuildState.SUCCEEDED, build.reason
    [pod] = k8s_emulator.pods(BUILDS_NS)
    assert pod["metadata"]["annotations"][
        "container.apparmor.security.beta.kubernetes.io/buildkit"] == "unconfined"


async def test_a_build_job_whose_pod_is_refused_fails_with_the_refusal_long_before_its_deadline(
    k8s_emulator: Emulator, api: Api, tmp_path: Path,
) -> None:
    """An operator labelled the build namespace `baseline`: BuildKit's pod is refused, the
    Job stays without a pod; the build fails with why, not at its deadline."""
    repo = Repo(tmp_path / "git")
    repo.commit("one")
    s = KubernetesBuilds(builder_command=pushing("echo built"), deadline=60)
    builder = KubernetesBuilder(jobs=BuildJobs(lambda: api, s, refused_grace=1.0),
                                registry=s.registry)
    with enforcing(k8s_emulator, BUILDS_NS, "baseline"):
        started = time.monotonic()
        build = await builder.wait(builder.start("shop", Source(repo=repo.url), "main"))
        took = time.monotonic() - started
    assert build.state is BuildState.FAILED
    assert build.reason is not None and "refused at creation (FailedCreate)" in build.reason
    assert 'violates PodSecurity "baseline:latest"' in build.reason
    assert 1.0 <= took < 8, took  # the grace, not the 60 s deadline
    # The Job is gone: it would otherwise start by itself, unwatched, if relabelled.
    assert not [j for j in k8s_emulator.store.items(r.JOBS)
                if j["metadata"]["namespace"] == BUILDS_NS]
    assert not k8s_emulator.pods(BUILDS_NS)
