"""k8s/registry/: the in-cluster registry builds push to is valid (strict schemas), builds
with kustomize, keeps its images on a volume and runs locked down like wakeproxy."""

from __future__ import annotations

import kubernetes_validate  # type: ignore[import-untyped]
import yaml

from tests.deploy.test_k8s_manifests import K8S, VERSION, kustomize

REGISTRY = K8S / "registry"


def test_each_file_and_the_kustomize_build_pass_strict_validation() -> None:
    for path in sorted(REGISTRY.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            kubernetes_validate.validate(doc, VERSION, strict=True)
    objects = {(o["kind"], o["metadata"]["name"]): o for o in kustomize(REGISTRY)}
    assert set(objects) == {
        ("Deployment", "wakeproxy-registry"), ("Service", "wakeproxy-registry"),
        ("Service", "wakeproxy-registry-pull"), ("NetworkPolicy", "wakeproxy-registry"),
        ("PersistentVolumeClaim", "wakeproxy-registry"),
    }
    for obj in objects.values():
        kubernetes_validate.validate(obj, VERSION, strict=True)
        assert obj["metadata"]["namespace"] == "wakeproxy"


def test_the_registry_stores_images_on_its_claim_and_is_reachable() -> None:
    objects = {(o["kind"], o["metadata"]["name"]): o for o in kustomize(REGISTRY)}
    dep = objects[("Deployment", "wakeproxy-registry")]
    pod = dep["spec"]["template"]["spec"]
    assert dep["spec"]["strategy"]["type"] == "Recreate"  # ReadWriteOnce volume
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["images"]["persistentVolumeClaim"]["claimName"] == "wakeproxy-registry"
    assert pod["securityContext"]["runAsNonRoot"] is True
    # Both sides (push with credentials, pull read-only) serve the same stored images.
    for c in pod["containers"]:
        mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
        assert mounts["images"] == "/var/lib/registry"
        assert c["securityContext"]["readOnlyRootFilesystem"] is True
        assert "memory" in c["resources"]["limits"]
        assert c["readinessProbe"]
    labels = dep["spec"]["template"]["metadata"]["labels"]
    for name in ("wakeproxy-registry", "wakeproxy-registry-pull"):
        service = objects[("Service", name)]
        assert service["spec"]["selector"].items() <= labels.items()
    assert objects[("Service", "wakeproxy-registry")]["spec"]["ports"][0]["port"] == 5000
