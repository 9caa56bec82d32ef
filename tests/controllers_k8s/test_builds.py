"""Build Jobs on the emulator: a valid Job, its pod log streamed into the build log, the
outcome (exit code and last lines) from the Job's status."""

from __future__ import annotations

import dataclasses

from tests.k8s_emulator import Emulator
from tests.k8s_emulator import resources as r
from wakeproxy.controllers.builder import Source
from wakeproxy.controllers.builds import BuildState
from wakeproxy.controllers.cluster_builds import KubernetesBuilder
from wakeproxy.platforms.kubernetes.api import Api
from wakeproxy.platforms.kubernetes.builds import BuildJobs
from wakeproxy.settings import KubernetesBuilds

SHA = "3f2a9c1" + "0" * 33


def builder(api: Api, script: str) -> KubernetesBuilder:
    settings = KubernetesBuilds(namespace="default", registry="registry.test:5000",
                                deadline=30, builder_command=("sh", "-c", script))
    return KubernetesBuilder(jobs=BuildJobs(lambda: api, settings), registry=settings.registry)


async def test_a_build_is_a_job_whose_log_streams_into_the_build(
    k8s_emulator: Emulator, api: Api,
) -> None:
    b = builder(api, 'echo "fetching $WAKEPROXY_REF"; sleep 0.3; echo "pushing $WAKEPROXY_IMAGE"')
    build = b.start("shop", Source(repo="https://git.example/shop.git"), SHA)
    seen_running = False
    while not build.done.is_set():  # the log grows while the Job still runs
        grown = build.log.grown()
        data, _ = build.log.read(0)
        if b"fetching " + SHA.encode() in data and not build.done.is_set():
            seen_running = True
        await grown.wait()
    assert seen_running
    assert build.state is BuildState.SUCCEEDED, build.reason
    text = build.log.read(0)[0].decode()
    assert f"pushing registry.test:5000/shop:{build.id}" in text
    assert b.image(build) == f"registry.test:5000/shop:{build.id}"
    [job] = k8s_emulator.store.items(r.JOBS)  # stored: valid for the strict schemas
    spec = job["spec"]
    assert spec["backoffLimit"] == 0 and spec["activeDeadlineSeconds"] == 30
    assert spec["ttlSecondsAfterFinished"] == 3600
    [c] = spec["template"]["spec"]["containers"]
    assert c["resources"]["limits"]["memory"] and c["securityContext"]["runAsNonRoot"]
    assert job["metadata"]["labels"]["wakeproxy.io/app-name"] == "shop"


async def test_a_failing_job_is_a_failed_build_with_exit_code_and_last_lines(
    k8s_emulator: Emulator, api: Api,
) -> None:
    b = builder(api, "echo step one; echo 'error: no Dockerfile at this commit'; exit 3")
    build = await b.wait(b.start("pr-7-shop", Source(repo="https://git.example/shop.git"), SHA))
    assert build.state is BuildState.FAILED
    assert build.exit_code == 3
    assert build.reason is not None and "exited with code 3" in build.reason
    assert "no Dockerfile at this commit" in build.reason
    assert b.image(build) is None
    [job] = k8s_emulator.store.items(r.JOBS)
    labels = job["metadata"]["labels"]
    assert labels["wakeproxy.io/review-app"] == "pr-7-shop"
    assert labels["wakeproxy.io/pull-request"] == "7"


def test_the_production_job_runs_rootless_buildkit_on_the_commit() -> None:
    from wakeproxy.platforms.kubernetes.builds import BuildJob, job_manifest

    job = BuildJob(build_id="shop-abc123", repo="https://git.example/shop.git", ref=SHA,
                   image="registry:5000/shop:shop-abc123")
    manifest = job_manifest(job, dataclasses.replace(KubernetesBuilds()))
    [c] = manifest["spec"]["template"]["spec"]["containers"]
    assert c["command"] == ["buildctl-daemonless.sh"]
    assert f"context=https://git.example/shop.git#{SHA}" in c["args"]
    assert "type=image,name=registry:5000/shop:shop-abc123,push=true" in " ".join(c["args"])
    assert c["securityContext"]["runAsUser"] == 1000
    import kubernetes_validate  # type: ignore[import-untyped]

    kubernetes_validate.validate(manifest, kubernetes_validate.latest_version(), strict=True)
