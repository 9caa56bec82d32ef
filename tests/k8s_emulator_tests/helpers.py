"""Small helpers shared by the emulator's tests."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio.client import ApiClient
from kubernetes_asyncio.client.exceptions import ApiException
from kubernetes_asyncio.config import new_client_from_config

from tests.k8s_emulator import Emulator
from tests.k8s_emulator.manifests import deployment
from tests.k8s_emulator.meta import JSON, condition


def status_of(exc: ApiException) -> dict[str, Any]:
    """The Status object the server sent with an error."""
    body = json.loads(exc.body or b"{}")
    assert body["kind"] == "Status" and body["apiVersion"] == "v1"
    assert body["status"] == "Failure"
    assert body["code"] == exc.status
    return dict(body)


def expect_status(exc_info: pytest.ExceptionInfo[ApiException], code: int, reason: str) -> None:
    assert exc_info.value.status == code, exc_info.value.body
    assert status_of(exc_info.value)["reason"] == reason


@contextlib.asynccontextmanager
async def api_for(emulator: Emulator, kubeconfig: Path | None = None) -> AsyncIterator[ApiClient]:
    """A real client for an emulator made with a custom configuration (the admin's
    kubeconfig unless another is given)."""
    api = await new_client_from_config(config_file=str(kubeconfig or emulator.kubeconfig))
    try:
        yield api
    finally:
        await api.close()


def asking(name: str, *, replicas: int = 1, requests: dict[str, str] | None = None,
           limits: dict[str, str] | None = None, init: dict[str, str] | None = None,
           image: str | None = None, command: list[str] | None = None) -> JSON:
    """A Deployment whose containers ask for `requests`/`limits` (an init container `init`)."""
    dep = deployment(name, replicas=replicas, command=command)
    spec = dep["spec"]["template"]["spec"]
    container = spec["containers"][0]
    if image is not None:
        container["image"] = image
    resources: dict[str, Any] = {}
    if requests:
        resources["requests"] = requests
    if limits:
        resources["limits"] = limits
    container["resources"] = resources
    if init is not None:
        spec["initContainers"] = [{"name": "init", "image": "emulated/init:1",
                                   "command": ["true"], "resources": {"requests": init}}]
    return dep


def scheduled(pod: JSON) -> JSON | None:
    return condition(pod.get("status") or {}, "PodScheduled")


def unschedulable(emulator: Emulator, app: str) -> list[JSON]:
    return [p for p in emulator.pods(app=app)
            if (c := scheduled(p)) and c["status"] == "False" and c["reason"] == "Unschedulable"]


def placed(emulator: Emulator, app: str) -> dict[str, str]:
    """pod name → node, for the app's pods the scheduler bound."""
    return {p["metadata"]["name"]: p["spec"]["nodeName"] for p in emulator.pods(app=app)
            if p["spec"].get("nodeName")}
