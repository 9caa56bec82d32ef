"""Label and field selectors on lists, through the real client, and the parser's rules."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client import ApiClient

from tests.k8s_emulator import Emulator
from tests.k8s_emulator.errors import BadRequest
from tests.k8s_emulator.manifests import config_map
from tests.k8s_emulator.selectors import (
    from_label_selector_object,
    parse_label_selector,
    to_string,
)

LABELS = {
    "a": {"tier": "front", "env": "prod"},
    "b": {"tier": "back", "env": "prod"},
    "c": {"tier": "back"},
    "d": {},
}


@pytest.fixture
async def labelled(k8s_emulator: Emulator) -> Emulator:
    for name, labels in LABELS.items():
        body = config_map(name, {})
        body["metadata"]["labels"] = labels
        k8s_emulator.create(body)
    return k8s_emulator


@pytest.mark.parametrize(("selector", "names"), [
    ("tier=back", ["b", "c"]),
    ("tier==back", ["b", "c"]),
    ("tier!=back", ["a", "d"]),  # != also matches objects without the label
    ("tier in (front, back)", ["a", "b", "c"]),
    ("tier notin (front)", ["b", "c", "d"]),
    ("env", ["a", "b"]),
    ("!env", ["c", "d"]),
    ("tier=back,env=prod", ["b"]),
    ("", ["a", "b", "c", "d"]),
])
async def test_label_selector_on_list(
    labelled: Emulator, k8s_api: ApiClient, selector: str, names: list[str]
) -> None:
    listed = await client.CoreV1Api(k8s_api).list_namespaced_config_map(
        "default", label_selector=selector)
    assert [c.metadata.name for c in listed.items] == names


async def test_field_selector_on_metadata_name(labelled: Emulator, k8s_api: ApiClient) -> None:
    core: Any = client.CoreV1Api(k8s_api)
    only = await core.list_namespaced_config_map("default", field_selector="metadata.name=b")
    assert [c.metadata.name for c in only.items] == ["b"]
    others = await core.list_config_map_for_all_namespaces(field_selector="metadata.name!=b")
    assert "b" not in {c.metadata.name for c in others.items}


def test_parser_rejects_garbage() -> None:
    for bad in ("tier in front", "=x", "a b", "tier in ()", "n>x"):
        with pytest.raises(BadRequest):
            parse_label_selector(bad)


def test_numeric_comparisons_and_object_form() -> None:
    assert parse_label_selector("n>3").matches({"n": "4"})
    assert not parse_label_selector("n<3").matches({"n": "4"})
    obj = {"matchLabels": {"app": "web"},
           "matchExpressions": [{"key": "track", "operator": "NotIn", "values": ["canary"]}]}
    selector = from_label_selector_object(obj)
    assert selector.matches({"app": "web"}) and not selector.matches({"app": "web",
                                                                      "track": "canary"})
    assert to_string(selector) == "app=web,track notin (canary)"
