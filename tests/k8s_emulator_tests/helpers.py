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
