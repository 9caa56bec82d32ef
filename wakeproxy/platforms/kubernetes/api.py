"""Calls to the Kubernetes API: raw JSON in and out, a timeout on each, failures as types.

Every call goes through `Api.call` (a request and its JSON answer), `Api.text` (a request
and its other answer: a pod's log) or `Api.stream` (a watch or a followed log: the open
response, read as it comes). JSON answers stay plain dicts:
the generated model classes are skipped, which keeps large lists and watch streams cheap
and the fields exactly as the server wrote them. Each failure is counted by status in
PlatformStats and raised as an ApiError subclass. Never retries: callers own their
backoff (see `backoff`).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from kubernetes_asyncio import client
from kubernetes_asyncio.client import ApiClient
from kubernetes_asyncio.client.exceptions import ApiException

from wakeproxy.model.stats import PlatformStats
from wakeproxy.platforms.kubernetes.errors import ApiError, Unreachable, error_from_status

JSON = dict[str, Any]
ApiFunction = Callable[..., Awaitable[Any]]


class Api:
    """The typed API groups wakeproxy uses, over one client, with one request timeout."""

    def __init__(self, api_client: ApiClient, *, timeout: float, stats: PlatformStats) -> None:
        self.client = api_client
        self.timeout = timeout
        self._stats = stats
        self.apps = client.AppsV1Api(api_client)
        self.discovery = client.DiscoveryV1Api(api_client)
        self.coordination = client.CoordinationV1Api(api_client)
        self.core = client.CoreV1Api(api_client)

    async def call(self, fn: ApiFunction, *args: Any, **kwargs: Any) -> JSON:
        """Make one request; its JSON answer, or an ApiError."""
        status, body = await self._read(fn, args, kwargs)
        try:
            doc = json.loads(body)
        except ValueError:
            doc = None
        if not isinstance(doc, dict):
            raise ApiError("the API answered something other than a JSON object",
                           status=status)
        return doc

    async def text(self, fn: ApiFunction, *args: Any, **kwargs: Any) -> bytes:
        """Make one request whose answer is not JSON (a pod's log); its body, or an
        ApiError."""
        return (await self._read(fn, args, kwargs))[1]

    async def _read(self, fn: ApiFunction, args: tuple[Any, ...],
                    kwargs: dict[str, Any]) -> tuple[int, bytes]:
        """One request read whole: its 2xx status and body, or an ApiError."""
        kwargs["_preload_content"] = False
        kwargs["_request_timeout"] = self.timeout
        resp = await self._send(fn, args, kwargs)
        try:
            try:
                body = await resp.read()
            except (TimeoutError, aiohttp.ClientError, OSError) as e:
                raise self._unreachable(e) from None
            if not 200 <= resp.status < 300:
                raise self._failed(resp.status, body, resp.headers)
        finally:
            resp.release()
        return resp.status, body

    async def stream(self, fn: ApiFunction, *args: Any, idle_timeout: float,
                     **kwargs: Any) -> aiohttp.ClientResponse:
        """Open a watch; the caller reads its lines and must `release()` the response.

        A read that waits longer than `idle_timeout` fails, so a silent dead stream is
        noticed even when the connection looks open.
        """
        kwargs["_preload_content"] = False
        kwargs["_request_timeout"] = aiohttp.ClientTimeout(
            connect=self.timeout, sock_connect=self.timeout, sock_read=idle_timeout)
        resp = await self._send(fn, args, kwargs)
        if not 200 <= resp.status < 300:
            try:
                body = await resp.read()
            except (TimeoutError, aiohttp.ClientError, OSError):
                body = b""
            finally:
                resp.release()
            raise self._failed(resp.status, body, resp.headers)
        return resp

    def failed_event(self, status_object: JSON) -> ApiError:
        """The error an ERROR watch event carries (its object is a Status)."""
        code = status_object.get("code")
        status = code if isinstance(code, int) and not isinstance(code, bool) else 500
        return self._failed(status, json.dumps(status_object).encode(), None)

    def unreachable(self, error: BaseException) -> Unreachable:
        return self._unreachable(error)

    async def _send(self, fn: ApiFunction, args: tuple[Any, ...],
                    kwargs: dict[str, Any]) -> aiohttp.ClientResponse:
        try:
            resp: aiohttp.ClientResponse = await fn(*args, **kwargs)
        except ApiException as e:
            raise self._failed(int(e.status or 0), e.body, e.headers) from None
        except (TimeoutError, aiohttp.ClientError, OSError) as e:
            raise self._unreachable(e) from None
        return resp

    def _failed(self, status: int, body: str | bytes | None, headers: Any) -> ApiError:
        self._stats.api_error(status)
        if status == 0:
            return Unreachable("the API gave no answer")
        return error_from_status(status, body, headers)

    def _unreachable(self, error: BaseException) -> Unreachable:
        self._stats.api_error(0)
        what = str(error) or type(error).__name__
        return Unreachable(f"the Kubernetes API could not be reached: {what}")
