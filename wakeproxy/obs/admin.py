"""The admin server: health, readiness, /metrics, the app API (list, wake, sleep), savings.

Every error leaves as JSON `{"error": "..."}` with its status from `api_errors.STATUS`.
Every request must name this server as its Host and come from no foreign origin
(guard.py); writes must be JSON and need `Authorization: Bearer <token>` when a token
is configured, as do reads of build and app logs (`private_reads`).

Must never: send a traceback, let an admin timeout or a client hang-up cancel a wake or
sleep that is under way, or change app state other than through `commands`.
"""

from __future__ import annotations

import asyncio
import fnmatch
import hmac
from collections.abc import Awaitable, Callable
from typing import Protocol

from aiohttp import web
from aiohttp.typedefs import Middleware
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from wakeproxy import __version__
from wakeproxy.controlplane.errors import ShuttingDown
from wakeproxy.model.activity import ActivityLedger
from wakeproxy.model.board import AppState, FailureKind, ReadinessBoard
from wakeproxy.model.clock import Clock
from wakeproxy.model.routes import Routes, normalize_host
from wakeproxy.model.stats import HeadroomHeld
from wakeproxy.obs.api_errors import (
    BadRequest,
    CommandFailed,
    CommandTimedOut,
    NotFound,
    Unauthorized,
    Unavailable,
    error_middleware,
)
from wakeproxy.obs.guard import guard_middleware, require_json
from wakeproxy.obs.savings import BadPeriod, parse_period, savings_report
from wakeproxy.obs.shield import shielded
from wakeproxy.obs.views import Now, app_view, headroom_view
from wakeproxy.settings import Savings

# A wake is bounded by the app's own wake_timeout in the control plane; this margin only
# keeps an admin request from waiting forever if that bound were ever missing.
WAKE_GRACE = 5.0
_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class AppCommands(Protocol):
    """What the admin API asks of the control plane.

    `wake` returns once the app is ready; both raise LookupError (or a subclass) for an
    unknown app and ShuttingDown once wakeproxy is stopping; `wake` raises TimeoutError
    when the app did not get ready in time and any other exception, whose message is the
    reason, when the wake failed.
    """

    async def wake(self, app: str) -> None: ...

    async def sleep(self, app: str) -> None: ...


def _auth_middleware(
    token: str | None, open_paths: frozenset[str], private_reads: tuple[str, ...],
) -> Middleware:
    expected = None if token is None else token.encode()

    def private(path: str) -> bool:
        # An entry is a prefix ("/api/v1/builds") or a pattern ("/api/v1/apps/*/logs").
        return any(path == p or path.startswith(p + "/") or ("*" in p and
                   fnmatch.fnmatchcase(path, p)) for p in private_reads)

    @web.middleware
    async def middleware(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.path in open_paths:
            return await handler(request)
        write = request.method not in _READ_METHODS
        if expected is not None and (write or private(request.path)):
            scheme, _, given = request.headers.get("Authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not given.strip():
                what = "admin action" if write else "read"
                raise Unauthorized(
                    f"this {what} needs Authorization: Bearer <token>",
                    {"WWW-Authenticate": 'Bearer realm="wakeproxy"'},
                )
            if not hmac.compare_digest(given.strip().encode(), expected):
                raise Unauthorized(
                    "the bearer token is not valid",
                    {"WWW-Authenticate": 'Bearer realm="wakeproxy", error="invalid_token"'},
                )
        require_json(request)
        return await handler(request)

    return middleware


class _Api:
    def __init__(
        self,
        *,
        board: ReadinessBoard,
        ledger: ActivityLedger,
        routes: Routes | None,
        commands: AppCommands,
        registry: CollectorRegistry,
        ready: Callable[[], bool],
        clock: Clock,
        savings: Savings,
        held_asleep: Callable[[str], bool],
        headroom: Callable[[], HeadroomHeld | None],
    ) -> None:
        self.held_asleep = held_asleep
        self.headroom = headroom
        self.savings = savings
        self.board = board
        self.ledger = ledger
        self.routes = routes
        self.commands = commands
        self.registry = registry
        self.ready = ready
        self.clock = clock

    def _state(self, request: web.Request) -> AppState:
        name = request.match_info["name"]
        state = self.board.get(name)
        if state is None:
            raise NotFound(f"no app named {name!r}")
        return state

    def _view(self, name: str) -> web.Response:
        state = self.board.get(name)
        if state is None:  # removed while the command ran
            raise NotFound(f"no app named {name!r}")
        return web.json_response(app_view(state, self.ledger, Now(self.clock),
                                          held_asleep=self.held_asleep(name)))

    async def healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(self, request: web.Request) -> web.Response:
        if self.ready():
            return web.Response(text="ready\n")
        return web.Response(text="not ready\n", status=503)

    async def metrics(self, request: web.Request) -> web.Response:
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        return web.Response(body=encoder(self.registry), headers={"Content-Type": content_type})

    async def list_apps(self, request: web.Request) -> web.Response:
        now = Now(self.clock)
        apps = sorted(self.board, key=lambda s: s.name)
        return web.json_response([app_view(s, self.ledger, now,
                                           held_asleep=self.held_asleep(s.name)) for s in apps])

    async def get_savings(self, request: web.Request) -> web.Response:
        try:
            period = parse_period(request.query.get("period"))
        except BadPeriod as e:
            raise BadRequest(str(e)) from None
        return web.json_response(savings_report(self.board, self.clock, period, self.savings))

    async def get_app(self, request: web.Request) -> web.Response:
        return self._view(self._state(request).name)

    async def wake(self, request: web.Request) -> web.Response:
        state = self._state(request)
        name, timeout = state.name, state.policy.wake_timeout
        try:
            await asyncio.wait_for(shielded(self.commands.wake(name)), timeout + WAKE_GRACE)
        except LookupError:
            raise NotFound(f"no app named {name!r}") from None
        except ShuttingDown as e:
            raise Unavailable(f"{name}: {e}") from None
        except asyncio.CancelledError:
            if _cancelled_here():
                raise
            raise Unavailable(f"the wake of {name} was called off: wakeproxy stops") from None
        except TimeoutError:
            raise CommandTimedOut(
                f"{name} did not become ready within its wake timeout ({timeout:g}s)"
            ) from None
        except Exception as e:
            failure = state.failure.reason if state.failure is not None else None
            reason = str(e) or failure or type(e).__name__
            if state.failure is not None and state.failure.kind is FailureKind.UNAVAILABLE:
                # The platform could not be reached: trying again later is the answer.
                raise Unavailable(f"{name} cannot be woken now: {reason}") from None
            raise CommandFailed(f"{name} failed to wake: {reason}") from None
        return self._view(name)

    async def sleep(self, request: web.Request) -> web.Response:
        name = self._state(request).name
        try:
            await shielded(self.commands.sleep(name))
        except LookupError:
            raise NotFound(f"no app named {name!r}") from None
        except ShuttingDown as e:
            raise Unavailable(f"{name}: {e}") from None
        except asyncio.CancelledError:
            if _cancelled_here():
                raise
            raise Unavailable(f"the sleep of {name} was called off: wakeproxy stops") from None
        except Exception as e:
            raise CommandFailed(f"{name} failed to go to sleep: {e or type(e).__name__}") from None
        return self._view(name)

    async def get_headroom(self, request: web.Request) -> web.Response:
        held = self.headroom()
        if held is None:
            raise NotFound("this platform holds no headroom (Kubernetes only)")
        return web.json_response(headroom_view(held))

    async def resolve(self, request: web.Request) -> web.Response:
        raw = request.query.get("host")
        if not raw:
            raise BadRequest("pass the host to resolve: /api/v1/resolve?host=app.example.com")
        assert self.routes is not None
        host = normalize_host(raw)
        return web.json_response({"host": host, "app": self.routes.table.resolve(host)})


def _cancelled_here() -> bool:
    """Whether the handler itself is being cancelled (not the command's task)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def build_admin_app(
    *,
    board: ReadinessBoard,
    ledger: ActivityLedger,
    commands: AppCommands,
    registry: CollectorRegistry,
    cluster: str,
    token: str | None,
    ready: Callable[[], bool],
    clock: Clock,
    routes: Routes | None = None,
    savings: Savings | None = None,
    open_paths: frozenset[str] = frozenset(),
    admin_hosts: tuple[str, ...] = (),
    private_reads: tuple[str, ...] = (),
    held_asleep: Callable[[str], bool] = lambda app: False,
    headroom: Callable[[], HeadroomHeld | None] = lambda: None,
) -> web.Application:
    """The admin aiohttp application; run it with `access_log=None` (requests are not
    app traffic). `open_paths` take writes without the bearer token or the browser
    checks (guard.py): each must check its own credentials (a webhook's signature).
    `admin_hosts` are the names besides IP literals and localhost it is reached by;
    reads under `private_reads` (build logs) need the token too when one is set;
    `held_asleep` says which apps an operator's sleep holds asleep (Platform.held_asleep)."""
    api = _Api(
        board=board, ledger=ledger, routes=routes, commands=commands, registry=registry,
        ready=ready, clock=clock, savings=savings or Savings(), held_asleep=held_asleep,
        headroom=headroom,
    )
    app = web.Application(middlewares=[
        error_middleware, guard_middleware(admin_hosts, open_paths),
        _auth_middleware(token, open_paths, private_reads)])
    app.router.add_get("/healthz", api.healthz)
    app.router.add_get("/readyz", api.readyz)
    app.router.add_get("/metrics", api.metrics)
    app.router.add_get("/api/v1/apps", api.list_apps)
    app.router.add_get("/api/v1/apps/{name}", api.get_app)
    app.router.add_post("/api/v1/apps/{name}/wake", api.wake)
    app.router.add_post("/api/v1/apps/{name}/sleep", api.sleep)
    app.router.add_get("/api/v1/savings", api.get_savings)
    app.router.add_get("/api/v1/headroom", api.get_headroom)
    if routes is not None:
        app.router.add_get("/api/v1/resolve", api.resolve)

    async def identify(request: web.Request, response: web.StreamResponse) -> None:
        response.headers["X-Wakeproxy-Cluster"] = cluster
        response.headers["X-Wakeproxy-Version"] = __version__

    app.on_response_prepare.append(identify)
    return app
