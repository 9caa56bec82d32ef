"""Small helpers shared by the emulator's tests."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes_asyncio.client.exceptions import ApiException


def status_of(exc: ApiException) -> dict[str, Any]:
    """The Status object the server sent with an error."""
    body = json.loads(exc.body)
    assert body["kind"] == "Status" and body["apiVersion"] == "v1"
    assert body["status"] == "Failure"
    assert body["code"] == exc.status
    return dict(body)


def expect_status(exc_info: pytest.ExceptionInfo[ApiException], code: int, reason: str) -> None:
    assert exc_info.value.status == code, exc_info.value.body
    assert status_of(exc_info.value)["reason"] == reason
