"""Deploys and review apps on the emulator: server-side-applied Deployment + Service that
the platform routes, a review app woken through a real `wakeproxy serve`, and `closed`
deleting exactly the review app's objects."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import sys
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.controllers_k8s.layout import APPS_NS, LEASE_NS, app_pods, pushing
from tests.e2e.harness import ECHO_APP, Wakeproxy
from tests.e2e_k8s.cluster import start, until
from tests.k8s_emulator import Emulator
from tests.k8s_emulator import resources as r
from wakeproxy.controllers.cluster import KubernetesDeployer
from wakeproxy.controllers.cluster_builds import KubernetesBuilder
from wakeproxy.controllers.errors import NotDeployable, UnknownApp
from wakeproxy.model.apps import AppPolicy
from wakeproxy.platforms.kubernetes.api import Api
from wakeproxy.platforms.kubernetes.builds import BuildJobs
from wakeproxy.platforms.kubernetes.deploys import Deploys, Release
from wakeproxy.settings import KubernetesBuilds, LocalApp

SECRET = b"review-secret-for-tests"
SHA = "a" * 40
TOKEN = "admin-token-for-tests-0123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def deployment(emulator: Emulator, name: str) -> dict[str, object] | None:
    return emulator.store.find(r.DEPLOYMENTS, APPS_NS, name)


async def test_apply_creates_asleep_and_never_resets_replicas(
    k8s_emulator: Emulator, api: Api,
) -> None:
    s = KubernetesBuilds(app_command=(sys.executable, str(ECHO_APP)))
    deploys = Deploys(lambda: api, s)
    release = Release(name="shop", image="reg:5000/shop:1", hosts=("shop.example.com",),
                      build_id="shop-1", labels={"wakeproxy.io/app-name": "shop"})
    assert "asleep" in await deploys.apply(release)
    dep = deployment(k8s_emulator, "shop")
    assert dep is not None
    assert dep["spec"]["replicas"] == 0  # type: ignore[index]
    notes = dep["metadata"]["annotations"]  # type: ignore[index]
    assert notes["wakeproxy.io/hosts"] == "shop.example.com"
    assert dep["metadata"]["labels"]["wakeproxy.io/enabled"] == "true"  # type: ignore[index]
    k8s_emulator.store.mutate(r.DEPLOYMENTS, APPS_NS, "shop",
                              lambda d: d["spec"].update(replicas=1))
    await deploys.apply(Release(name="shop", image="reg:5000/shop:2", hosts=release.hosts,
                                build_id="shop-2"))
    dep = deployment(k8s_emulator, "shop")
    assert dep is not None and dep["spec"]["replicas"] == 1  # type: ignore[index]
    [c] = dep["spec"]["template"]["spec"]["containers"]  # type: ignore[index]
    assert c["image"] == "reg:5000/shop:2"
    applies = [q for q in k8s_emulator.recorder.matching(verb="patch")
               if "fieldManager=wakeproxy" in q.path or q.status in (200, 201)]
    assert applies


async def test_a_prebuilt_image_deploys_as_the_app_and_a_bad_reference_is_refused(
    k8s_emulator: Emulator, api: Api,
) -> None:
    s = KubernetesBuilds(app_command=(sys.executable, str(ECHO_APP)))
    deployer = KubernetesDeployer(
        deploys=Deploys(lambda: api, s),
        builder=KubernetesBuilder(jobs=BuildJobs(lambda: api, s), registry=s.registry))
    with pytest.raises(UnknownApp):
        await deployer.deploy_image("shop", "registry.example.com/shop:1.2")
    deployer.add_app(LocalApp(policy=AppPolicy(name="shop", hosts=("shop.example.com",)),
                              command=""))
    with pytest.raises(NotDeployable, match="not an image reference"):
        await deployer.deploy_image("shop", "shop:1; rm -rf /")
    assert deployment(k8s_emulator, "shop") is None
    assert "asleep" in await deployer.deploy_image("shop", "registry.example.com/shop:1.2")
    dep = deployment(k8s_emulator, "shop")
    assert dep is not None and dep["spec"]["replicas"] == 0  # type: ignore[index]
    [c] = dep["spec"]["template"]["spec"]["containers"]  # type: ignore[index]
    assert c["image"] == "registry.example.com/shop:1.2"
    notes = dep["metadata"]["annotations"]  # type: ignore[index]
    assert notes["wakeproxy.io/hosts"] == "shop.example.com"


def marked(emulator: Emulator, name: str) -> bool | None:
    """Whether the app's Deployment is marked not deployed yet; None without one."""
    dep = deployment(emulator, name)
    if dep is None:
        return None
    return "wakeproxy.io/not-deployed" in dep["metadata"].get("annotations", {})  # type: ignore[attr-defined,index]


async def visit(session: aiohttp.ClientSession, wp: Wakeproxy, host: str, *,
                unless: int | None = None) -> tuple[int, str, str | None] | None:
    """(status, body, Retry-After) of a GET to `host`; None when the status is `unless`."""
    async with session.get(wp.url + "/", headers={"Host": host},
                           timeout=aiohttp.ClientTimeout(total=30)) as resp:
        if resp.status == unless:
            return None
        return resp.status, await resp.text(), resp.headers.get("Retry-After")


def signed(body: bytes) -> dict[str, str]:
    return {"X-GitHub-Event": "pull_request", "X-GitHub-Delivery": str(uuid.uuid4()),
            "X-Hub-Signature-256": "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest(),
            "Content-Type": "application/json"}


def review_config(emulator: Emulator, token: str, build_script: str) -> dict[str, Any]:
    """wakeproxy on the emulator with app `shop` (built from a repo) and review apps."""
    return {
        "platform": "kubernetes", "admin_token": token,
        "defaults": {"wake_timeout": "20s"},
        "review_apps": {"domain": "review.localhost", "webhook_secret_file": "secret"},
        "apps": [{"name": "shop", "hosts": ["shop.localhost"],
                  "repo": "https://git.example/shop.git", "github_repo": "acme/shop",
                  # The base app's secret; its review apps get review_env instead.
                  "env": {"DATABASE_PASSWORD": "base-secret"},
                  "review_env": {"REVIEW": "yes"}}],
        "kubernetes": {
            "kubeconfig": str(emulator.wakeproxy_kubeconfig), "namespaces": [APPS_NS],
            "lease_namespace": LEASE_NS, "request_timeout": "2s",
            "builds": {"builder_command": list(pushing(build_script)),
                       "app_command": [sys.executable, str(ECHO_APP)]},
        },
    }


def event(action: str) -> bytes:
    return json.dumps({"action": action, "number": 1,
                       "pull_request": {"number": 1, "head": {
                           "sha": SHA, "repo": {"full_name": "acme/shop"}}},
                       "repository": {"full_name": "acme/shop"}}).encode()


async def test_a_review_app_is_built_deployed_woken_and_deleted_on_close(
    k8s_emulator: Emulator, tmp_path: Path, monkeypatch: object,
) -> None:
    (tmp_path / "secret").write_bytes(SECRET)
    other = k8s_emulator.store.create(r.SERVICES, {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "other", "labels": {"wakeproxy.io/app-name": "other"}},
        "spec": {"ports": [{"port": 80}]}}, APPS_NS)
    config = review_config(k8s_emulator, TOKEN,
                           "sleep 1.5; echo building $WAKEPROXY_REF")
    wp = Wakeproxy(tmp_path, config)
    await start(wp)
    try:
        async with aiohttp.ClientSession() as s:
            async with s.post(wp.admin + "/hooks/github", data=event("opened"),
                              headers=signed(event("opened"))) as resp:
                assert resp.status == 202
            # Opened, built but not deployed yet: routed at once, with a clear 503 (as on
            # the local platform), never a 404 "unknown host" and never a wake.
            await until(lambda: deployment(k8s_emulator, "pr-1-shop") is not None, 15)
            dep = deployment(k8s_emulator, "pr-1-shop")
            assert dep is not None and dep["spec"]["replicas"] == 0  # type: ignore[index]
            status, text, retry = await until(
                lambda: visit(s, wp, "pr-1-shop.review.localhost", unless=404), 15)
            assert status == 503 and retry is not None, text
            assert "no release deployed yet" in text
            # The configured app with a repo is routed the same way from the start on.
            status, text, retry = await visit(s, wp, "shop.localhost")
            assert status == 503 and retry is not None and "no release deployed yet" in text
            assert "wakeproxy build shop --deploy" in text
            assert not app_pods(k8s_emulator, "pr-1-shop")
            await until(lambda: marked(k8s_emulator, "pr-1-shop") is False, 20)
            # Code from the pull request never gets the base app's env.
            for name, env in (("pr-1-shop", {"REVIEW": "yes"}),
                              ("shop", {"DATABASE_PASSWORD": "base-secret"})):
                dep = deployment(k8s_emulator, name)
                assert dep is not None
                [c] = dep["spec"]["template"]["spec"]["containers"]  # type: ignore[index]
                assert {e["name"]: e["value"] for e in c.get("env", [])} == env, name
            async with s.get(wp.url + "/", headers={"Host": "pr-1-shop.review.localhost"},
                             timeout=aiohttp.ClientTimeout(total=30)) as resp:
                assert resp.status == 200, await resp.text()
            async with s.get(wp.admin + "/api/v1/builds", headers=AUTH) as resp:
                [build] = await resp.json()
            async with s.get(wp.admin + f"/api/v1/builds/{build['id']}/log",
                             headers=AUTH) as resp:
                assert f"building {SHA}" in await resp.text()
            async with s.post(wp.admin + "/hooks/github", data=event("closed"),
                              headers=signed(event("closed"))) as resp:
                assert resp.status == 202
            await until(lambda: deployment(k8s_emulator, "pr-1-shop") is None, 15)
            await until(lambda: not k8s_emulator.store.items(r.JOBS), 5)
            names = {o["metadata"]["name"] for o in k8s_emulator.store.items(r.SERVICES)}
            assert "pr-1-shop" not in names and "other" in names
            assert other["metadata"]["uid"] == k8s_emulator.store.find(
                r.SERVICES, APPS_NS, "other")["metadata"]["uid"]  # type: ignore[index]
    finally:
        await asyncio.to_thread(wp.terminate)
