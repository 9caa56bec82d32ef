"""Build Jobs on the emulator: a valid Job, its pod log streamed into the build log, the
outcome (exit code and last lines) from the Job's status, a branch or tag resolved to the
exact commit built, and the builds list read back from the Jobs after a restart."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from tests.controllers.gitrepo import Repo
from tests.controllers_k8s.layout import BUILDS_NS, digest_of, pushing
from tests.e2e_k8s.cluster import until
from tests.k8s_emulator import Emulator
from tests.k8s_emulator import resources as r
from wakeproxy.controllers.builder import Source
from wakeproxy.controllers.builds import BuildState
from wakeproxy.controllers.cluster_builds import KubernetesBuilder
from wakeproxy.model.redact import credentials
from wakeproxy.platforms.kubernetes.api import Api
from wakeproxy.platforms.kubernetes.builds import BuildJobs
from wakeproxy.settings import KubernetesBuilds

SHA = "3f2a9c1" + "0" * 33


def builder(api: Api, script: str, *, digest: bool = True) -> KubernetesBuilder:
    """Builds pushing to registry.test:5000, deployed from localhost:30500 (by digest)."""
    command = pushing(script) if digest else ("sh", "-c", script)
    settings = KubernetesBuilds(registry="registry.test:5000", pull_registry="localhost:30500",
                                deadline=30, builder_command=command)
    return KubernetesBuilder(jobs=BuildJobs(lambda: api, settings), registry=settings.registry,
                             pull_registry=settings.pull_registry)


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
    suffix = build.id.rsplit("-", 1)[1]
    assert build.commit == SHA
    assert f"pushing registry.test:5000/shop:{SHA}-{suffix}" in text
    pushed = f"registry.test:5000/shop:{SHA}-{suffix}"
    assert b.image(build) == f"localhost:30500/shop@{digest_of(pushed)}"
    assert build.reason is None and f"==> build succeeded: built {b.image(build)}" in \
        build.log.read(0)[0].decode()
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

    job = BuildJob(build_id="shop-abc123", repo="https://git.example/shop.git", ref="main",
                   commit=SHA, image=f"registry:5000/shop:{SHA}-abc123")
    manifest = job_manifest(job, dataclasses.replace(KubernetesBuilds()))
    [c] = manifest["spec"]["template"]["spec"]["containers"]
    assert c["command"][:2] == ["/bin/sh", "-c"] and "buildctl-daemonless.sh" in c["command"]
    assert f"context=https://git.example/shop.git#{SHA}" in c["args"]
    assert f"type=image,name=registry:5000/shop:{SHA}-abc123,push=true" in " ".join(c["args"])
    assert "--metadata-file" in c["args"]  # where the pushed digest is read from
    # The push credentials: a docker config from the build namespace's Secret.
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["DOCKER_CONFIG"] == mounts["push-credentials"]
    [secret] = [v["secret"] for v in manifest["spec"]["template"]["spec"]["volumes"]
                if "secret" in v]
    assert secret["secretName"] == "wakeproxy-registry-push"
    notes = manifest["metadata"]["annotations"]
    assert (notes["wakeproxy.io/ref"], notes["wakeproxy.io/commit"]) == ("main", SHA)
    assert c["securityContext"]["runAsUser"] == 1000
    import kubernetes_validate  # type: ignore[import-untyped]

    kubernetes_validate.validate(manifest, kubernetes_validate.latest_version(), strict=True)


def job_of(emulator: Emulator, build_id: str) -> dict[str, Any]:
    job = emulator.store.find(r.JOBS, BUILDS_NS, f"build-{build_id}")
    assert job is not None
    return job


async def test_a_branch_or_tag_is_resolved_to_the_commit_the_job_builds_and_tags(
    k8s_emulator: Emulator, api: Api, tmp_path: Path,
) -> None:
    repo = Repo(tmp_path / "git")
    first = repo.commit("one")
    repo.tag("v1")
    head = repo.commit("two")  # main moved on; v1 still names the first commit
    url = f"file://{repo.url}"
    b = builder(api, 'echo "building $WAKEPROXY_REF at $WAKEPROXY_COMMIT"')
    on_main = await b.wait(b.start("shop", Source(repo=url), "main"))
    on_tag = await b.wait(b.start("shop", Source(repo=url), "v1"))
    assert on_main.state is BuildState.SUCCEEDED, on_main.reason
    assert (on_main.ref, on_main.commit) == ("main", head)
    assert (on_tag.ref, on_tag.commit) == ("v1", first)
    assert on_main.view()["commit"] == head  # what `wakeproxy builds` shows
    assert f"building main at {head}" in on_main.log.read(0)[0].decode()
    suffix = on_main.id.rsplit("-", 1)[1]
    pushed = f"registry.test:5000/shop:{head}-{suffix}"
    assert b.image(on_main) == f"localhost:30500/shop@{digest_of(pushed)}"
    notes = job_of(k8s_emulator, on_main.id)["metadata"]["annotations"]
    assert (notes["wakeproxy.io/ref"], notes["wakeproxy.io/commit"]) == ("main", head)
    # A branch that does not exist fails at once, naming it; no Job is created.
    missing = await b.wait(b.start("shop", Source(repo=url), "no-such-branch"))
    assert missing.state is BuildState.FAILED
    assert missing.reason is not None
    assert "no branch or tag named 'no-such-branch'" in missing.reason
    assert k8s_emulator.store.find(r.JOBS, BUILDS_NS, f"build-{missing.id}") is None
    gone = await b.wait(b.start("shop", Source(repo=f"file://{tmp_path}/nowhere.git"), "main"))
    assert gone.state is BuildState.FAILED
    assert gone.reason is not None and "git ls-remote" in gone.reason


async def test_builds_are_read_back_from_their_jobs_after_a_restart(
    k8s_emulator: Emulator, api: Api, tmp_path: Path,
) -> None:
    repo = Repo(tmp_path / "git")
    sha = repo.commit("one")
    url = f"file://{repo.url}"
    before = builder(api, 'echo "building $WAKEPROXY_COMMIT"; '
                          'if [ "$WAKEPROXY_REF" = broken ]; then echo "boom"; exit 4; fi; '
                          'if [ "$WAKEPROXY_REF" = slow ]; then sleep 1; fi; echo pushed')
    repo.commit("broken", branch="broken")
    repo.commit("slow", branch="slow")
    ok = await before.wait(before.start("shop", Source(repo=url), "main"))
    bad = await before.wait(before.start("pr-7-shop", Source(repo=url), "broken"))
    assert (ok.state, bad.state) == (BuildState.SUCCEEDED, BuildState.FAILED)
    slow = before.start("shop", Source(repo=url), "slow")
    await until(lambda: k8s_emulator.store.find(r.JOBS, BUILDS_NS, f"build-{slow.id}"), 10)

    # A new wakeproxy (or another replica) reads the list back from the Jobs.
    after = builder(api, "exit 99")
    assert set(await after.restore()) == {ok.id, bad.id, slow.id}
    assert [b.id for b in after.list()] == [slow.id, bad.id, ok.id]  # newest first
    again = {b.id: b for b in after.list()}
    for earlier in (ok, bad):
        view, was = again[earlier.id].view(), earlier.view()
        for key in ("app", "ref", "commit", "state", "exit_code"):
            assert view[key] == was[key], key
        assert abs(view["created_at"] - was["created_at"]) < 1e-3
        for key in ("started_at", "finished_at"):  # the API keeps whole seconds
            assert abs(view[key] - was[key]) <= 1.5, key
    assert again[ok.id].commit == sha
    # Still deployable: its digest is read from its log when first needed.
    assert after.image(again[ok.id]) is None and after.has_image(again[ok.id])
    await after.load_log(again[ok.id])
    assert after.image(again[ok.id]) == before.image(ok)
    assert again[bad.id].reason == "the builder exited with code 4"
    await after.load_log(again[bad.id])
    text = again[bad.id].log.read(0)[0].decode()
    assert "boom" in text and "==> build failed: the builder exited with code 4" in text
    # A build still running is followed again to its end (never deleted from here).
    assert again[slow.id].state is BuildState.RUNNING
    await after.wait(again[slow.id])
    await before.wait(slow)
    assert again[slow.id].state is BuildState.SUCCEEDED
    assert "pushed" in again[slow.id].log.read(0)[0].decode()

    # Once the pod is gone, the log says so instead of failing.
    [pod] = [p for p in k8s_emulator.pods(BUILDS_NS)
             if p["metadata"]["labels"].get("wakeproxy.io/build") == ok.id]
    k8s_emulator.store.delete(r.PODS, BUILDS_NS, pod["metadata"]["name"])
    await until(lambda: not [p for p in k8s_emulator.pods(BUILDS_NS)
                             if p["metadata"]["labels"].get("wakeproxy.io/build") == ok.id], 10)
    later = builder(api, "exit 99")
    await later.restore()
    build = later.get(ok.id)
    assert build is not None and build.state is BuildState.SUCCEEDED
    await later.load_log(build)
    assert "no longer available: its pod is gone" in build.log.read(0)[0].decode()
    assert later.image(build) is None and not later.has_image(build)  # digest gone too


async def test_a_revision_is_refused_with_a_reason_and_no_job_on_kubernetes(
    k8s_emulator: Emulator, api: Api, tmp_path: Path,
) -> None:
    from wakeproxy.controllers.cluster import KubernetesControllers
    from wakeproxy.controllers.errors import InvalidRef
    from wakeproxy.model.apps import AppPolicy
    from wakeproxy.settings import LocalApp

    repo = Repo(tmp_path / "git")
    first = repo.commit("one")
    repo.commit("two")
    url = f"file://{repo.url}"
    settings = KubernetesBuilds(namespace="default", registry="registry.test:5000",
                                deadline=30, builder_command=("sh", "-c", "true"))
    shop = LocalApp(policy=AppPolicy(name="shop", hosts=("shop.example.com",)), command="",
                    repo=url)
    controllers = KubernetesControllers(apps=[shop], review=None, settings=settings,
                                        api=lambda: api, lease_namespace="default",
                                        lease_name="wakeproxy")
    for ref in ("HEAD~1", "main^", " --upload-pack=x"):
        with pytest.raises(InvalidRef) as e:
            controllers.build("shop", ref)
        assert "revision expression" in e.value.message or "is not a branch" in e.value.message
    # A short id is not a name git ls-remote knows: the build fails saying what to give.
    b = builder(api, "true")
    short = await b.wait(b.start("shop", Source(repo=url), first[:7]))
    assert short.state is BuildState.FAILED and short.reason is not None
    assert "a short commit id cannot be looked up there: give the full id" in short.reason
    assert k8s_emulator.store.items(r.JOBS) == []


async def test_a_build_that_reports_no_digest_is_failed_not_deployable(
    k8s_emulator: Emulator, api: Api,
) -> None:
    """A tag can be pushed over; a Deployment pins the digest the builder reports, so a
    builder that reports none (or one for another image) leaves nothing to deploy."""
    forged = 'echo "==> pushed registry.test:5000/other:1@sha256:' + "0" * 64 + '"'
    for script in ("echo built", forged):
        b = builder(api, script, digest=False)
        build = await b.wait(b.start("shop", Source(repo="https://git.example/shop.git"), SHA))
        assert build.state is BuildState.FAILED
        assert build.reason is not None and "reported no image digest" in build.reason
        assert b.image(build) is None


async def test_a_repo_url_with_a_token_shows_nowhere_but_in_the_builders_argument(
    k8s_emulator: Emulator, api: Api,
) -> None:
    token = "ghs_16C7e42F292c6912E7710c838347Ae178B4a"
    url = f"https://x-access-token:{token}@git.example/shop.git"
    # A builder that echoes what it was told, as a build's own output might.
    b = builder(api, f'echo "repo $WAKEPROXY_REPO"; echo "cloning {url}"')
    build = await b.wait(b.start("shop", Source(repo=url), SHA))
    assert build.state is BuildState.SUCCEEDED, build.reason
    text = build.log.read(0)[0].decode()
    assert token not in text
    assert "repo https://x-access-token:***@git.example/shop.git" in text
    assert "cloning https://x-access-token:***@git.example/shop.git" in text
    job = job_of(k8s_emulator, build.id)
    assert job["metadata"]["annotations"]["wakeproxy.io/repo"] == (
        "https://x-access-token:***@git.example/shop.git")
    [c] = job["spec"]["template"]["spec"]["containers"]
    assert token not in json.dumps(c["env"])
    # Read back after a restart: still without it.
    again = builder(api, "true")
    again = KubernetesBuilder(jobs=again._jobs, registry="registry.test:5000",
                              pull_registry="localhost:30500",
                              hidden=credentials(url))  # the config's repos
    await again.restore()
    restored = again.get(build.id)
    assert restored is not None
    await again.load_log(restored)
    assert token not in restored.log.read(0)[0].decode()


async def test_build_jobs_running_at_once_are_capped_and_the_rest_wait_queued(
    k8s_emulator: Emulator, api: Api,
) -> None:
    """Each running Job holds an API log stream: at most build_limits.concurrency run."""
    from tests.controllers_k8s.layout import pushing
    from wakeproxy.controllers.errors import CapReached
    from wakeproxy.settings import BuildLimits

    settings = KubernetesBuilds(registry="registry.test:5000", pull_registry="localhost:30500",
                                deadline=30, builder_command=pushing("sleep 0.4"))
    b = KubernetesBuilder(jobs=BuildJobs(lambda: api, settings), registry=settings.registry,
                          pull_registry=settings.pull_registry,
                          limits=BuildLimits(concurrency=2, max_queued=2))
    builds = [b.start("shop", Source(repo="https://git.example/shop.git"), SHA)
              for _ in range(4)]
    with pytest.raises(CapReached) as refused:
        b.start("shop", Source(repo="https://git.example/shop.git"), SHA)
    assert refused.value.cap == "build_limits.max_queued"
    most = 0
    while not all(x.done.is_set() for x in builds):
        jobs = [j for j in k8s_emulator.store.items(r.JOBS)
                if not (j.get("status") or {}).get("conditions")]
        most = max(most, len(jobs))
        assert sum(x.state is BuildState.RUNNING for x in builds) <= 2
        await asyncio.sleep(0.02)
    assert most == 2
    assert all(x.state is BuildState.SUCCEEDED for x in builds), [x.reason for x in builds]
