"""k8s/: every manifest valid for the real schemas (strict), the kustomization builds, the
Deployment is what production needs, and RBAC grants exactly what the code calls."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.controllers_k8s.calls import controllers_calls
from tests.k8s_emulator import Emulator
from tests.k8s_emulator.errors import Invalid
from tests.k8s_emulator.pod_security import violations
from tests.k8s_emulator.schema import SchemaValidator
from tests.platforms.kubernetes.support import World, app_deployment, until
from wakeproxy.model.board import Phase
from wakeproxy.settings import ConfigError, KubernetesBuilds, parse_settings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
OWN_DIRS = (K8S, K8S / "examples", K8S / "registry")  # k8s/monitoring/: tests of its own
VERSION = kubernetes_validate.latest_version()
OLDEST = "1.29"  # the oldest Kubernetes wakeproxy supports (k8s/README.md)


def kubectl() -> str:
    found = shutil.which("kubectl")
    if found is None:
        pytest.fail("kubectl is needed to build k8s/ with kustomize: install it "
                    "(https://kubernetes.io/docs/tasks/tools/) or apt-get install kubectl")
    return found


def kustomize(directory: Path) -> list[dict[str, Any]]:
    r = subprocess.run([kubectl(), "kustomize", str(directory)], capture_output=True, text=True,
                       timeout=60, check=False)
    assert r.returncode == 0, r.stderr
    return [d for d in yaml.safe_load_all(r.stdout) if d]


def manifests() -> list[tuple[Path, dict[str, Any]]]:
    out = []
    for directory in OWN_DIRS:
        for path in sorted(directory.glob("*.yaml")):
            if path.name == "kustomization.yaml":
                continue
            out.extend((path, doc) for doc in yaml.safe_load_all(path.read_text()) if doc)
    return out


def built() -> dict[tuple[str, str], dict[str, Any]]:
    return {(o["kind"], o["metadata"]["name"]): o for o in kustomize(K8S)}


def test_every_manifest_passes_strict_schema_validation() -> None:
    found = manifests()
    assert len(found) >= 12
    for path, doc in found:
        try:
            kubernetes_validate.validate(doc, VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            pytest.fail(f"{path.relative_to(ROOT)}: {doc['kind']} {doc['metadata']['name']}: {e}")


def test_no_manifest_relies_on_a_field_the_oldest_supported_version_drops() -> None:
    """Kubernetes 1.29 drops `lifecycle.preStop.sleep` (off by default before 1.30) and
    does not know the `appArmorProfile` field (1.30+), which `kubectl apply`'s strict
    field validation turns into a refusal: the manifests use neither."""
    validator = SchemaValidator(kubernetes_validate.latest_version(), OLDEST, fallbacks=False)
    for path, doc in manifests():
        try:
            validator.validate(doc, doc["apiVersion"].rpartition("/")[0])
        except Invalid as e:
            pytest.fail(f"{path.relative_to(ROOT)}: {e.message}")


def test_kustomize_builds_the_install_and_the_examples() -> None:
    objects = built()
    assert set(objects) == {
        ("Namespace", "wakeproxy"), ("ServiceAccount", "wakeproxy"),
        ("ClusterRole", "wakeproxy"), ("ClusterRoleBinding", "wakeproxy"),
        ("Role", "wakeproxy-leases"), ("RoleBinding", "wakeproxy-leases"),
        ("Role", "wakeproxy-controllers"), ("RoleBinding", "wakeproxy-controllers"),
        ("Namespace", "wakeproxy-builds"), ("Role", "wakeproxy-builds"),
        ("RoleBinding", "wakeproxy-builds"),
        ("ConfigMap", "wakeproxy-config"), ("Deployment", "wakeproxy"),
        ("Service", "wakeproxy"), ("PodDisruptionBudget", "wakeproxy"),
        ("Service", "wakeproxy-webhook"), ("NetworkPolicy", "wakeproxy"),
        ("Role", "wakeproxy-headroom"), ("RoleBinding", "wakeproxy-headroom"),
        ("PriorityClass", "wakeproxy-headroom"),
    }
    for (kind, name), obj in objects.items():
        kubernetes_validate.validate(obj, VERSION, strict=True)
        if kind not in ("Namespace", "ClusterRole", "ClusterRoleBinding", "PriorityClass"):
            expected = "wakeproxy-builds" if name == "wakeproxy-builds" else "wakeproxy"
            assert obj["metadata"]["namespace"] == expected, (kind, name)
        assert obj["metadata"]["labels"]["app.kubernetes.io/name"] == "wakeproxy"
    examples = {(o["kind"], o["metadata"]["name"]) for o in kustomize(K8S / "examples")}
    assert ("Ingress", "wakeproxy") in examples and ("Deployment", "hello") in examples
    assert ("Ingress", "wakeproxy-webhook") in examples


def mounted_files(obj: dict[str, Any]) -> dict[str, tuple[str, str, bool]]:
    """Mount path → (kind, source name, optional) of the wakeproxy container's volumes."""
    pod = obj["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    [c] = pod["containers"]
    out = {}
    for m in c["volumeMounts"]:
        v = volumes[m["name"]]
        kind = "secret" if "secret" in v else "configMap" if "configMap" in v else "other"
        src = v.get(kind) or {}
        out[m["mountPath"]] = (kind, src.get("secretName") or src.get("name", ""),
                               bool(src.get("optional")))
    return out


def test_the_config_in_the_configmap_is_a_valid_kubernetes_config(tmp_path: Path) -> None:
    """As the pod sees it: the admin token from its Secret, mounted where the config
    says; without the token the config is refused (the admin port is not loopback)."""
    objects = built()
    text = objects[("ConfigMap", "wakeproxy-config")]["data"]["cluster.yaml"]
    mounts = mounted_files(objects[("Deployment", "wakeproxy")])
    token_dir = "/var/run/secrets/wakeproxy/admin"
    assert mounts[token_dir] == ("secret", "wakeproxy-admin-token", False)
    assert mounts["/var/run/secrets/wakeproxy/github"] == (
        "secret", "wakeproxy-github-webhook", True)
    (tmp_path / "token").write_text("0123456789abcdef" * 4)
    s = parse_settings(text.replace(token_dir, str(tmp_path)), "k8s/configmap.yaml")
    assert s.platform == "kubernetes" and s.kubernetes is not None
    assert (s.listen[1], s.admin_listen[1]) == (8080, 9090)
    assert s.admin_token == "0123456789abcdef" * 4
    assert s.webhook_listen == ("0.0.0.0", 9091)
    assert "wakeproxy.wakeproxy.svc" in s.admin_hosts
    with pytest.raises(ConfigError, match="admin_token_file: expected a readable file"):
        parse_settings(text, "k8s/configmap.yaml", base_dir=tmp_path)


def test_only_http_and_the_webhook_are_open_the_admin_port_is_not() -> None:
    objects = built()
    policy = objects[("NetworkPolicy", "wakeproxy")]["spec"]
    labels = objects[("Deployment", "wakeproxy")]["spec"]["template"]["metadata"]["labels"]
    assert policy["podSelector"]["matchLabels"].items() <= labels.items()
    assert policy["policyTypes"] == ["Ingress"]
    open_ports, limited = set(), {}
    for rule in policy["ingress"]:
        ports = {p["port"] for p in rule["ports"]}
        if "from" in rule:
            for port in ports:
                limited[port] = rule["from"]
        else:
            open_ports |= ports
    assert open_ports == {"http", "webhook"}
    assert set(limited) == {"admin"}
    sources = limited["admin"]
    # Never a bare namespace selector (every pod of a namespace: review apps, builds).
    assert all("podSelector" in s for s in sources), sources
    assert {"kubernetes.io/metadata.name": "monitoring"} in [
        s.get("namespaceSelector", {}).get("matchLabels") for s in sources]
    webhook = objects[("Service", "wakeproxy-webhook")]["spec"]
    assert [p["targetPort"] for p in webhook["ports"]] == ["webhook"]
    [ingress] = [o for o in kustomize(K8S / "examples")
                 if o["metadata"]["name"] == "wakeproxy-webhook"]
    [path] = ingress["spec"]["rules"][0]["http"]["paths"]
    assert (path["path"], path["pathType"]) == ("/hooks/github", "Exact")
    assert path["backend"]["service"]["name"] == "wakeproxy-webhook"


def test_the_deployment_is_ready_for_production() -> None:
    objects = built()
    dep = objects[("Deployment", "wakeproxy")]
    spec = dep["spec"]
    pod = spec["template"]["spec"]
    [c] = pod["containers"]
    assert spec["replicas"] == 2
    assert pod["serviceAccountName"] == "wakeproxy"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "admin"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "admin"}
    assert {"cpu", "memory"} <= c["resources"]["requests"].keys()
    assert "memory" in c["resources"]["limits"]
    env = {e["name"]: e for e in c["env"]}
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    anti = pod["affinity"]["podAntiAffinity"]
    assert anti["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"][
        "topologyKey"] == "kubernetes.io/hostname"
    labels = spec["template"]["metadata"]["labels"]
    pdb = objects[("PodDisruptionBudget", "wakeproxy")]
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    service = objects[("Service", "wakeproxy")]
    assert service["spec"]["selector"].items() <= labels.items()
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"http": 8080, "admin": 9090, "webhook": 9091}
    assert {p["name"]: p["targetPort"] for p in service["spec"]["ports"]} == {
        "http": "http", "admin": "admin"}
    mounts = {m["mountPath"] for m in c["volumeMounts"]}
    assert "/etc/wakeproxy" in mounts and c["args"][-1].startswith("/etc/wakeproxy/")


def test_the_dockerfile_runs_wakeproxy_as_non_root() -> None:
    text = (ROOT / "Dockerfile").read_text()
    lines = [line.split(None, 1) for line in text.splitlines() if line and line[0] != "#"]
    instructions = [(words[0], words[1] if len(words) > 1 else "") for words in lines
                    if words[0].isupper()]
    users = [arg for op, arg in instructions if op == "USER"]
    assert users and not users[-1].startswith(("0", "root"))
    assert ("ENTRYPOINT", '["wakeproxy"]') in instructions


def rbac_rules() -> set[tuple[str, str, str]]:
    objects = built()
    rules = set()
    for kind in ("ClusterRole", "Role"):
        for obj in (o for (k, _), o in objects.items() if k == kind):
            for rule in obj["rules"]:
                for group in rule["apiGroups"]:
                    for resource in rule["resources"]:
                        rules.update((group, resource, verb) for verb in rule["verbs"])
    return rules


async def test_rbac_grants_exactly_the_calls_wakeproxy_makes(
    k8s_emulator: Emulator, make_world: Callable[..., Coroutine[Any, Any, World]],
) -> None:
    k8s_emulator.create(app_deployment("web", hosts="web.example.com", idle_after="200ms"))
    world = await make_world(k8s_emulator, sweep=True)
    peer = await make_world(k8s_emulator, identity="wp-1")
    await until(world.platform.leader, 5)
    await world.lifecycle.wake("default.web")
    # `wakeproxy app-logs --follow`: the app's pods watched, its pod's log followed.
    follower = world.platform.follow_output("default.web", 10, follow=True)
    await until(lambda: any(r.subresource == "log" and r.status == 200
                            for r in k8s_emulator.recorder.requests), 5)
    follower.close()
    await until(lambda: world.state("default.web").phase is Phase.ASLEEP, 5)  # swept
    await peer.close()
    await world.close()  # hands back the lease, deletes its activity record
    await controllers_calls(k8s_emulator)
    used = k8s_emulator.recorder.rbac_rules()
    assert used == rbac_rules()
    # And per namespace: a Role grants in its own namespace, the ClusterRole everywhere
    # ("*"); nothing is granted that no call of wakeproxy's ServiceAccount needs there.
    granted = scoped_rbac_rules()
    calls = k8s_emulator.recorder.scoped_rules(k8s_emulator.wakeproxy_identity.user)
    assert calls, "wakeproxy made no call as its ServiceAccount"
    used_scoped = {rule if rule in granted else ("*", *rule[1:]) for rule in calls}
    assert used_scoped == granted


def scoped_rbac_rules() -> set[tuple[str, str, str, str]]:
    """{(namespace, or "*" for a ClusterRole bound cluster-wide, apiGroup, resource, verb)}."""
    objects = built()
    bound = {o["roleRef"]["name"] for (k, _), o in objects.items() if k == "ClusterRoleBinding"}
    rules = set()
    for (kind, name), obj in objects.items():
        if kind not in ("Role", "ClusterRole") or (kind == "ClusterRole" and name not in bound):
            continue
        scope = obj["metadata"]["namespace"] if kind == "Role" else "*"
        for rule in obj["rules"]:
            rules.update((scope, group, resource, verb) for group in rule["apiGroups"]
                         for resource in rule["resources"] for verb in rule["verbs"])
    return rules


def test_the_registry_takes_pushes_from_builds_only_and_serves_nodes_read_only() -> None:
    objects = {(o["kind"], o["metadata"]["name"]): o for o in kustomize(K8S / "registry")}
    builds = KubernetesBuilds()
    pod = objects[("Deployment", "wakeproxy-registry")]["spec"]["template"]
    assert violations("restricted", pod) == []  # wakeproxy's namespace is restricted
    containers = {c["name"]: c for c in pod["spec"]["containers"]}
    push_env = {e["name"]: e.get("value") for e in containers["registry"]["env"]}
    assert push_env["REGISTRY_AUTH"] == "htpasswd"
    pull_env = {e["name"]: e.get("value") for e in containers["registry-pull"]["env"]}
    assert pull_env["REGISTRY_STORAGE_MAINTENANCE_READONLY_ENABLED"] == "true"
    assert "REGISTRY_AUTH" not in pull_env
    assert all(m.get("readOnly") for m in containers["registry-pull"]["volumeMounts"])
    # Builds push to the in-cluster name; nodes pull at localhost:<NodePort>.
    push = objects[("Service", "wakeproxy-registry")]
    host, port = builds.registry.split(":")
    assert host.split(".")[:2] == [push["metadata"]["name"], push["metadata"]["namespace"]]
    assert [p["port"] for p in push["spec"]["ports"]] == [int(port)]
    assert push["spec"].get("type", "ClusterIP") == "ClusterIP"
    pull = objects[("Service", "wakeproxy-registry-pull")]
    assert pull["spec"]["type"] == "NodePort"
    assert builds.pull_registry == f"localhost:{pull['spec']['ports'][0]['nodePort']}"
    assert pull["spec"]["ports"][0]["targetPort"] == "pull"
    policy = objects[("NetworkPolicy", "wakeproxy-registry")]["spec"]
    [from_builds, from_nodes] = policy["ingress"]
    assert from_builds["ports"] == [{"port": "push"}]
    assert from_builds["from"] == [{"namespaceSelector": {"matchLabels": {
        "kubernetes.io/metadata.name": builds.job_namespace}}}]
    assert from_nodes["ports"] == [{"port": "pull"}] and "from" not in from_nodes
