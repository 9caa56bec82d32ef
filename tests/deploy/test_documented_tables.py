"""The docs' annotation and port tables say exactly what the code and manifests do.

Annotations: every row of an annotation table in README.md, k8s/README.md or
docs/OPERATIONS.md is read by the parser with its example value (and, for a setting,
changes it from the default), and every annotation the parser reads has a row. Ports:
every row of a port table names a port of the shipped Service and Deployment with the
same numbers, and every port they expose has a row.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.conftest import parse_shipped
from tests.deploy.test_k8s_manifests import built
from wakeproxy.model.apps import AppPolicy
from wakeproxy.platforms.kubernetes.annotations import (
    ANNOTATIONS,
    HOSTS,
    MANAGED_BY,
    POLICY_ANNOTATIONS,
    PORT,
    AppSpec,
    parse_deployment,
)

ROOT = Path(__file__).resolve().parents[2]
DOCS = (ROOT / "README.md", ROOT / "k8s" / "README.md", ROOT / "docs" / "OPERATIONS.md")
DEFAULTS = AppPolicy(name="-", hosts=())


def tables(header_first: str) -> list[tuple[Path, list[str], list[list[str]]]]:
    """Every markdown table whose first header cell is `header_first`: (file, header, rows)."""
    found = []
    for path in DOCS:
        lines = path.read_text().splitlines()
        for i, line in enumerate(lines):
            cells = _cells(line)
            if not cells or cells[0].lower() != header_first:
                continue
            rows = []
            for row in lines[i + 2:]:
                if not row.startswith("|"):
                    break
                rows.append(_cells(row))
            found.append((path, [c.lower() for c in cells], rows))
    return found


def _cells(line: str) -> list[str]:
    if not line.startswith("|"):
        return []
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _code(cell: str) -> str:
    m = re.fullmatch(r"`([^`]*)`", cell)
    assert m, f"expected a `code` cell, got {cell!r}"
    return m.group(1)


def _parse(notes: dict[str, Any]) -> AppSpec | str:
    # A Deployment wakeproxy deploys: every annotation is read there (promote-to only there).
    obj: dict[str, Any] = {"metadata": {"name": "shop", "namespace": "apps",
                                        "labels": {MANAGED_BY: "wakeproxy"},
                                        "annotations": notes}}
    return parse_deployment(obj, DEFAULTS)


def test_every_documented_annotation_is_read_and_every_read_one_is_documented() -> None:
    documented: set[str] = set()
    found = tables("annotation")
    assert found, "no annotation table in the docs"
    for path, header, rows in found:
        assert "example" in header, f"{path}: the annotation table needs an example column"
        example_at = header.index("example")
        for row in rows:
            key, example = _code(row[0]), _code(row[example_at])
            documented.add(key)
            where = f"{path.relative_to(ROOT)}: {key}: {example!r}"
            assert key in ANNOTATIONS, f"{where}: the parser does not read it"
            notes = {HOSTS: "shop.example.com", PORT: "http", key: example}
            parsed = _parse(notes)
            assert isinstance(parsed, AppSpec), f"{where}: refused: {parsed}"
            plain = _parse({HOSTS: "shop.example.com", PORT: "http"})
            assert isinstance(plain, AppSpec)
            if key in POLICY_ANNOTATIONS:
                field = POLICY_ANNOTATIONS[key]
                assert getattr(parsed.policy, field) != getattr(plain.policy, field), (
                    f"{where}: the example changes nothing")
    undocumented = set(ANNOTATIONS) - documented
    assert not undocumented, f"annotations read but not in any doc table: {undocumented}"


def test_the_annotations_in_the_operations_guide_example_are_accepted() -> None:
    text = (ROOT / "docs" / "OPERATIONS.md").read_text()
    section = text[text.index("## Put an app behind wakeproxy"):]
    block = section[section.index("```yaml") + 7:]
    notes = yaml.safe_load(block[:block.index("```")])["metadata"]["annotations"]
    assert set(notes) <= set(ANNOTATIONS)
    parsed = _parse(notes)
    assert isinstance(parsed, AppSpec), parsed
    assert dataclasses.replace(parsed.policy, idle_after=DEFAULTS.idle_after) != parsed.policy


def test_every_documented_port_is_the_manifests_and_every_exposed_port_is_documented() -> None:
    objects = built()
    service = {p["name"]: p for p in objects[("Service", "wakeproxy")]["spec"]["ports"]}
    [container] = objects[("Deployment", "wakeproxy")]["spec"]["template"]["spec"]["containers"]
    pod = {p["name"]: p["containerPort"] for p in container["ports"]}
    cm = objects[("ConfigMap", "wakeproxy-config")]
    settings = parse_shipped(cm["data"]["cluster.yaml"])
    listening = {"http": settings.listen[1], "admin": settings.admin_listen[1]}
    found = [t for first in ("service port", "port") for t in tables(first)]
    assert found, "no port table in the docs"
    for path, header, rows in found:
        name_at = header.index("name")
        documented = set()
        for row in rows:
            name = _code(row[name_at])
            documented.add(name)
            where = f"{path.relative_to(ROOT)}: port {name}"
            assert name in service, f"{where}: the Service has no such port"
            if "service port" in header:
                assert int(row[header.index("service port")]) == service[name]["port"], where
            pod_col = "pod port" if "pod port" in header else "port"
            if pod_col in header:
                assert int(row[header.index(pod_col)]) == pod[service[name]["targetPort"]], where
            if name in listening:
                assert pod[service[name]["targetPort"]] == listening[name], (
                    f"{where}: the shipped config listens elsewhere")
        assert documented == set(service), f"{path.relative_to(ROOT)}: ports {set(service)}"
