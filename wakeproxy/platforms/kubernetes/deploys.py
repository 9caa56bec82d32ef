"""Deploys as server-side apply: a Deployment + Service that the platform then discovers.

The Deployment carries the `wakeproxy.io/*` annotations and the enabled label, so the
platform's watch routes it like any app a user declared. Everything a deploy creates is
labelled `wakeproxy.io/app-name: <name>` (review apps also `wakeproxy.io/review-app` and
`wakeproxy.io/pull-request`), and `delete` removes exactly what carries that label. A
deployed build's commit is annotated too (`wakeproxy.io/commit`), and `found` lists the
Deployments carrying a label, so what the controllers made can be read back after a
restart.

Replicas: a new Deployment is created asleep (`replicas: 0`, by a plain create); every
later write is an apply (field manager `wakeproxy`) that never mentions `spec.replicas`,
so the apply never owns the count and a deploy neither wakes nor puts to sleep an app
(the scale subresource, written by the platform, owns it). Must never: scale anything.

Before its first deploy, an app the controllers know (a configured app with a repo, a
review app once its pull request is opened) has a Deployment too, created asleep and
annotated `wakeproxy.io/not-deployed` (see `reserve`): the platform routes it like any
app, so a request gets 503 "no release deployed yet" with Retry-After, not 404 "unknown
host", on every replica — the annotation lives in the cluster, not in one replica's
memory. The first deploy applies the real release over it and then removes the
annotation (a merge patch: an apply cannot drop a field another write set).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import structlog
from kubernetes_asyncio import client

from wakeproxy.platforms.kubernetes.annotations import (
    ENABLED_LABEL,
    HOSTS,
    MANAGED_BY,
    NOT_DEPLOYED,
    PORT,
    SERVICE,
)
from wakeproxy.platforms.kubernetes.api import JSON, Api
from wakeproxy.platforms.kubernetes.errors import Conflict, NotFound
from wakeproxy.settings import KubernetesBuilds

log = structlog.get_logger("wakeproxy.kubernetes.deploys")

FIELD_MANAGER = "wakeproxy"
APP_LABEL = "wakeproxy.io/app-name"
BUILD_ANNOTATION = "wakeproxy.io/build"
COMMIT_ANNOTATION = "wakeproxy.io/commit"
# What Pod Security `restricted` asks of every pod (kubernetes.builds.namespace is labelled
# so in k8s/): no privilege escalation, no capabilities, not root, the runtime's seccomp
# profile. The image must run as a non-root user given by number (`USER 10001`): the
# kubelet refuses to start an image whose user is root or a name.
POD_SECURITY: JSON = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
CONTAINER_SECURITY: JSON = {"allowPrivilegeEscalation": False,
                            "capabilities": {"drop": ["ALL"]}}
_APPLY = "application/apply-patch+yaml"
_MERGE = "application/merge-patch+json"


@dataclass(frozen=True, slots=True)
class Release:
    """What one app runs: its image, hosts and settings; `labels` go on every object."""

    name: str  # the Deployment's and the Service's name (a DNS label)
    image: str
    hosts: tuple[str, ...]
    build_id: str
    labels: Mapping[str, str] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)
    stop_grace: float = 10.0
    commit: str = ""  # the commit the image was built from; "" for a prebuilt image


def _labels(release: Release) -> dict[str, str]:
    return {**release.labels, APP_LABEL: release.name, MANAGED_BY: "wakeproxy"}


def deployment_manifest(release: Release, s: KubernetesBuilds, *, replicas: int | None) -> JSON:
    selector = {APP_LABEL: release.name}
    container: JSON = {
        "name": "app", "image": release.image,
        "ports": [{"name": "http", "containerPort": s.port}],
        "readinessProbe": {"tcpSocket": {"port": "http"}, "periodSeconds": 1},
        "securityContext": CONTAINER_SECURITY,
    }
    if release.env:
        container["env"] = [{"name": k, "value": v} for k, v in sorted(release.env.items())]
    if s.app_command is not None:
        container["command"] = list(s.app_command)
    spec: JSON = {
        "selector": {"matchLabels": selector},
        "template": {
            "metadata": {"labels": {**_labels(release), **selector}},
            "spec": {"containers": [container], "securityContext": POD_SECURITY,
                     "terminationGracePeriodSeconds": max(1, int(release.stop_grace))},
        },
    }
    if replicas is not None:
        spec["replicas"] = replicas
    notes = {HOSTS: ",".join(release.hosts), PORT: "http", SERVICE: release.name,
             BUILD_ANNOTATION: release.build_id}
    if release.commit:
        # Metadata, not the pod template: it never rolls the pods by itself. Left out
        # of a later apply (a prebuilt image), server-side apply removes it.
        notes[COMMIT_ANNOTATION] = release.commit
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {
            "name": release.name, "namespace": s.namespace,
            "labels": {**_labels(release), ENABLED_LABEL: "true"},
            "annotations": notes,
        },
        "spec": spec,
    }


def service_manifest(release: Release, s: KubernetesBuilds) -> JSON:
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": release.name, "namespace": s.namespace,
                     "labels": _labels(release)},
        "spec": {"selector": {APP_LABEL: release.name},
                 "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
    }


class Deploys:
    """Applies releases to, and deletes apps from, one namespace."""

    def __init__(self, api: Callable[[], Api], settings: KubernetesBuilds) -> None:
        self._api = api
        self._s = settings

    async def reserve(self, release: Release, reason: str) -> bool:
        """Route an app before its first deploy: create its Deployment asleep, marked
        not deployed yet with `reason` (`release.image` is never run: it stays at zero
        replicas, and the platform never wakes a marked app). True if created; an app
        that already has a Deployment (deployed, or reserved by another replica) is
        left as it is."""
        api = self._api()
        apps = client.AppsV1Api(api.client)
        manifest = deployment_manifest(release, self._s, replicas=0)
        manifest["metadata"]["annotations"][NOT_DEPLOYED] = reason
        try:
            await api.call(apps.create_namespaced_deployment, self._s.namespace, manifest,
                           field_manager=FIELD_MANAGER)
        except Conflict:
            return False
        log.info("deployment reserved: routed, not deployed yet", app=release.name)
        return True

    async def apply(self, release: Release) -> str:
        """Create or update the app's Service and Deployment; returns what happened."""
        api = self._api()
        apps, core = client.AppsV1Api(api.client), client.CoreV1Api(api.client)
        ns = self._s.namespace
        # The Service first: once the Deployment shows up, its slices have a port name.
        await api.call(core.patch_namespaced_service, release.name, ns,
                       service_manifest(release, self._s), field_manager=FIELD_MANAGER,
                       force=True, _content_type=_APPLY)
        try:
            current = await api.call(apps.read_namespaced_deployment, release.name, ns)
        except NotFound:
            try:
                await api.call(apps.create_namespaced_deployment, ns,
                               deployment_manifest(release, self._s, replicas=0),
                               field_manager=FIELD_MANAGER)
                log.info("deployment created asleep", app=release.name, image=release.image)
                return "created asleep; the first request wakes it"
            except Conflict:
                current = {}  # created meanwhile by another replica: apply over it
        await api.call(apps.patch_namespaced_deployment, release.name, ns,
                       deployment_manifest(release, self._s, replicas=None),
                       field_manager=FIELD_MANAGER, force=True, _content_type=_APPLY)
        notes = (current.get("metadata") or {}).get("annotations") or {}
        if NOT_DEPLOYED in notes or not current:
            # After the apply, so the app is never woken on the reserved image. Absent
            # already is fine (a merge patch removing a missing key changes nothing).
            unmark = {"metadata": {"annotations": {NOT_DEPLOYED: None}}}
            await api.call(apps.patch_namespaced_deployment, release.name, ns, unmark,
                           field_manager=FIELD_MANAGER, _content_type=_MERGE)
            log.info("deployment applied: first release", app=release.name,
                     image=release.image)
            return "deployed asleep; the first request wakes it"
        log.info("deployment applied", app=release.name, image=release.image)
        return "applied; replicas unchanged (awake pods roll to the new image)"

    async def found(self, selector: str) -> list[JSON]:
        """The Deployments of the namespace whose labels match `selector`, made by us
        (`app.kubernetes.io/managed-by: wakeproxy`). Raises ApiError."""
        api = self._api()
        apps = client.AppsV1Api(api.client)
        found = await api.call(apps.list_namespaced_deployment, self._s.namespace,
                               label_selector=f"{selector},{MANAGED_BY}=wakeproxy")
        return [item for item in found.get("items") or [] if isinstance(item, dict)]

    async def running(self, name: str) -> Release | None:
        """What the app's Deployment runs (image, build, commit; hosts left empty), or None
        when it has none or is not deployed yet. Raises ApiError."""
        api = self._api()
        apps = client.AppsV1Api(api.client)
        try:
            dep = await api.call(apps.read_namespaced_deployment, name, self._s.namespace)
        except NotFound:
            return None
        notes = (dep.get("metadata") or {}).get("annotations") or {}
        containers = (((dep.get("spec") or {}).get("template") or {}).get("spec")
                      or {}).get("containers") or []
        if NOT_DEPLOYED in notes or not containers or not containers[0].get("image"):
            return None
        return Release(name=name, image=str(containers[0]["image"]), hosts=(),
                       build_id=str(notes.get(BUILD_ANNOTATION) or ""),
                       commit=str(notes.get(COMMIT_ANNOTATION) or ""))

    async def live_builds(self) -> dict[str, str]:
        """Each deployed app's build, as its Deployment says (apps not deployed yet, or
        running a prebuilt image, have none). Raises ApiError."""
        live = {}
        for item in await self.found(APP_LABEL):
            meta = item.get("metadata") or {}
            notes = meta.get("annotations") or {}
            build = notes.get(BUILD_ANNOTATION)
            app = (meta.get("labels") or {}).get(APP_LABEL)
            if build and app and NOT_DEPLOYED not in notes:
                live[str(app)] = str(build)
        return live

    async def delete(self, name: str) -> list[str]:
        """Delete every Deployment, Service and Job labelled as `name`'s; their kinds/names.

        Deployments and Services in kubernetes.builds.namespace, build Jobs in
        kubernetes.builds.job_namespace."""
        api = self._api()
        apps, core = client.AppsV1Api(api.client), client.CoreV1Api(api.client)
        batch = client.BatchV1Api(api.client)
        selector = f"{APP_LABEL}={name}"
        kinds = (
            ("Deployment", self._s.namespace, apps.list_namespaced_deployment,
             apps.delete_namespaced_deployment),
            ("Service", self._s.namespace, core.list_namespaced_service,
             core.delete_namespaced_service),
            ("Job", self._s.job_namespace, batch.list_namespaced_job,
             batch.delete_namespaced_job),
        )
        deleted = []
        for kind, ns, list_fn, delete_fn in kinds:
            found = await api.call(list_fn, ns, label_selector=selector)
            for item in found.get("items") or []:
                obj = str(item["metadata"]["name"])
                try:
                    # Background: the Job's pods and the Deployment's pods go with them.
                    await api.call(delete_fn, obj, ns, propagation_policy="Background")
                except NotFound:
                    continue
                deleted.append(f"{kind}/{obj}")
        log.info("app deleted", app=name, objects=deleted)
        return deleted
