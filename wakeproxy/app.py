"""Composition root: builds every part from Settings, runs them, drains on SIGTERM.

The only module that knows every concrete class. Nothing below it reads files,
environment variables or globals; it hands each part exactly what that part needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import secrets
import signal
import socket
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
from aiohttp import web

from wakeproxy import __version__
from wakeproxy.allocator import tune_allocator
from wakeproxy.controllers.api import (
    PRIVATE_READS,
    WEBHOOK_PATH,
    add_controller_routes,
    webhook_app,
)
from wakeproxy.controlplane.always_awake import AlwaysAwake
from wakeproxy.controlplane.apps import install_apps
from wakeproxy.controlplane.lifecycle import Lifecycle
from wakeproxy.controlplane.platform import Platform
from wakeproxy.controlplane.schedule import ScheduledWakes
from wakeproxy.controlplane.sweeper import Sweeper
from wakeproxy.dataplane.server import DataPlane
from wakeproxy.model.activity import ActivityLedger
from wakeproxy.model.board import ReadinessBoard
from wakeproxy.model.clock import Clock, SystemClock
from wakeproxy.model.demand import WakeDemand
from wakeproxy.model.peers import PeerActivity
from wakeproxy.model.routes import Routes
from wakeproxy.model.stats import CapStats, PlatformStats, RequestStats, WakeStats
from wakeproxy.obs.admin import build_admin_app
from wakeproxy.obs.applogs import PRIVATE_READ as APP_LOGS_PRIVATE
from wakeproxy.obs.applogs import AppOutput, add_app_log_routes
from wakeproxy.obs.logging import access_sink, app_output_log, configure_logging
from wakeproxy.obs.metrics import build_registry
from wakeproxy.settings import Settings

if TYPE_CHECKING:
    from wakeproxy.controllers.ports import Controllers
    from wakeproxy.platforms.local.sandbox import RunAs

log = structlog.get_logger("wakeproxy")


class StartupError(Exception):
    """wakeproxy cannot start (a port is taken, a platform cannot be reached)."""


def replica_identity(configured: str | None, environ: Mapping[str, str]) -> str:
    """This replica's name among its peers: the config, POD_NAME, or host + random suffix."""
    if configured:
        return configured
    pod = environ.get("POD_NAME", "").strip()
    if pod:
        return pod
    host = socket.gethostname().lower().split(".")[0] or "wakeproxy"
    return f"{host}-{secrets.token_hex(3)}"


@dataclass
class Daemon:
    """Every long-lived part of one running wakeproxy."""

    settings: Settings
    clock: Clock = field(default_factory=SystemClock)
    ready: bool = False
    # The process environment, read here and nowhere below (tests pass their own).
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))

    def _lease_namespace(self) -> str:
        """Where the Leases go (the platform's, and the controllers' delivery log)."""
        k = self.settings.kubernetes
        configured = k.lease_namespace if k is not None else None
        return configured or self.environ.get("POD_NAMESPACE") or "default"

    def _run_as(self) -> RunAs | None:
        """The user builds and local apps run as (`run_as`); None: wakeproxy's own."""
        from wakeproxy.platforms.local.sandbox import RunAs

        return RunAs.named(self.settings.run_as) if self.settings.run_as else None

    def _build_platform(self) -> Platform:
        s = self.settings
        if s.platform == "local":
            from wakeproxy.platforms.local.platform import LocalPlatform

            return LocalPlatform(s.apps, environ=self.environ, run_as=self._run_as(),
                                 echo=app_output_log())
        from wakeproxy.platforms.kubernetes import InCluster, KubernetesPlatform
        from wakeproxy.settings import KubernetesSettings

        k = s.kubernetes or KubernetesSettings()
        env = self.environ
        incluster = None
        if env.get("KUBERNETES_SERVICE_HOST") and env.get("KUBERNETES_SERVICE_PORT"):
            incluster = InCluster(env["KUBERNETES_SERVICE_HOST"], env["KUBERNETES_SERVICE_PORT"])
        if any(a.repo is None for a in s.apps):
            log.warning("apps: without repo ignored on Kubernetes, where Deployments declare "
                        "the apps (apps with repo are built and deployed by the controllers)",
                        apps=len(s.apps))
        return KubernetesPlatform(
            k, defaults=s.defaults, identity=replica_identity(k.identity, env),
            lease_namespace=self._lease_namespace(),
            incluster=incluster, board=self.board, ledger=self.ledger, peers=self.peers,
            stats=self.platform_stats, clock=self.clock,
        )


    def __post_init__(self) -> None:
        s = self.settings
        self.routes = Routes()
        self.board = ReadinessBoard(self.clock)
        self.ledger = ActivityLedger(self.clock)
        self.demand = WakeDemand()
        self.request_stats = RequestStats()
        self.cap_stats = CapStats()
        self.wake_stats = WakeStats()
        # The local platform has no peers: it always holds the lead (and runs the sweeper).
        # On Kubernetes the platform flips it with its Lease.
        self.platform_stats = PlatformStats(leader=s.platform == "local")
        interval = s.kubernetes.activity_interval if s.kubernetes is not None else 5.0
        # A peer whose record missed about three publications is presumed gone.
        self.peers = PeerActivity(stale_after=3 * interval + 1.0)
        self.platform = self._build_platform()
        if s.platform == "local":
            install_apps(s.policies, self.board, self.routes)
        self.access_log = access_sink()
        self.dataplane = DataPlane(
            routes=self.routes, board=self.board, ledger=self.ledger, demand=self.demand,
            stats=self.request_stats, access_log=self.access_log, limits=s.limits,
            trusted_proxies=s.trusted_proxies, clock=self.clock,
        )
        self.lifecycle = Lifecycle(
            board=self.board, demand=self.demand, platform=self.platform,
            stats=self.wake_stats, clock=self.clock, routes=self.routes,
            app_removed=(self.dataplane.app_removed,),
        )
        self.scheduled = ScheduledWakes(
            board=self.board, wake=self.lifecycle.wake, clock=self.clock,
            leader=self.platform.leader, interval=min(1.0, s.sweep_interval),
        )
        self.always_awake = AlwaysAwake(
            board=self.board, wake=self.lifecycle.wake, held=self.platform.held_asleep,
            clock=self.clock, leader=self.platform.leader, interval=min(1.0, s.sweep_interval),
        )
        self.sweeper = Sweeper(
            board=self.board, ledger=self.ledger, lifecycle=self.lifecycle,
            clock=self.clock, interval=s.sweep_interval, leader=self.platform.leader,
            peers=self.peers, kept_awake=self.scheduled.kept_awake,
        )
        self.registry = build_registry(
            board=self.board, ledger=self.ledger, request_stats=self.request_stats,
            wake_stats=self.wake_stats, clock=self.clock, cluster=s.cluster, version=__version__,
            platform_stats=self.platform_stats, savings=s.savings, cap_stats=self.cap_stats,
        )
        self.controllers = self._build_controllers()
        self._tasks: list[asyncio.Task[None]] = []
        self._admin_runner: web.AppRunner | None = None
        self._webhook_runner: web.AppRunner | None = None

    def _build_controllers(self) -> Controllers | None:
        """Builds, deploys and review apps, on the platform in use."""
        from wakeproxy.controllers.local import LocalControllers
        from wakeproxy.platforms.local.platform import LocalPlatform

        s = self.settings
        if not isinstance(self.platform, LocalPlatform):
            from wakeproxy.controllers.cluster import KubernetesControllers
            from wakeproxy.platforms.kubernetes import KubernetesPlatform
            from wakeproxy.settings import KubernetesSettings

            if not isinstance(self.platform, KubernetesPlatform):
                return None
            platform = self.platform
            k = s.kubernetes or KubernetesSettings()
            return KubernetesControllers(apps=s.apps, review=s.review_apps,
                                         settings=k.builds, api=lambda: platform.controllers_api,
                                         lease_namespace=self._lease_namespace(),
                                         lease_name=k.lease_name, clock=self.clock,
                                         config_file=s.source, limits=s.build_limits,
                                         caps=self.cap_stats, refused_grace=k.refused_grace,
                                         foreign=platform.foreign_app)
        return LocalControllers(
            apps=s.apps, review=s.review_apps, builds_dir=Path(s.builds_dir),
            platform=self.platform, lifecycle=self.lifecycle, board=self.board,
            environ=self.environ, config_file=s.source, run_as=self._run_as(),
            limits=s.build_limits, caps=self.cap_stats,
        )

    async def start(self) -> None:
        """Listen first, then start the parts that may wait on a slow platform.

        `/healthz` answers from the first moment on (a pod's startupProbe must not kill a
        replica whose API server is slow); `/readyz` only once requests can be routed:
        the platform's apps are installed and the controllers have read back their work.
        """
        s = self.settings
        self._check_user()
        admin = build_admin_app(
            board=self.board, ledger=self.ledger, commands=self.lifecycle,
            registry=self.registry, cluster=s.cluster, token=s.admin_token,
            ready=lambda: self.ready, clock=self.clock, savings=s.savings,
            open_paths=frozenset({WEBHOOK_PATH}), admin_hosts=s.admin_hosts,
            private_reads=(*PRIVATE_READS, APP_LOGS_PRIVATE),
            held_asleep=self.platform.held_asleep,
            headroom=lambda: self.platform_stats.headroom,
        )
        if isinstance(self.platform, AppOutput):
            add_app_log_routes(admin, self.board, self.platform)
        if self.controllers is not None:
            add_controller_routes(admin, self.controllers)
        runner = await self._listen(admin, "admin_listen", s.admin_listen)
        self._admin_runner = runner
        webhook_bound = None
        if s.webhook_listen is not None and self.controllers is not None:
            hooks = await self._listen(webhook_app(self.controllers), "webhook_listen",
                                       s.webhook_listen)
            self._webhook_runner = hooks
            webhook_bound = hooks.addresses[0][:2] if hooks.addresses else s.webhook_listen
        try:
            await self.platform.start()  # no API call: it connects and spawns its watches
        except Exception as e:
            from wakeproxy.platforms.kubernetes import ClientConfigError

            if isinstance(e, ClientConfigError):
                raise StartupError(f"cannot reach Kubernetes: {e}") from None
            raise
        try:
            bound = await self.dataplane.start(*s.listen)
        except OSError as e:
            raise StartupError(f"cannot listen on listen {_fmt(s.listen)}: {e.strerror}") from None
        admin_bound = runner.addresses[0][:2] if runner.addresses else s.admin_listen
        self._spawn(self.lifecycle.run(), "lifecycle")
        self._spawn(self.sweeper.run(), "sweeper")
        self._spawn(self.scheduled.run(), "scheduled-wakes")
        self._spawn(self.always_awake.run(), "never-sleep-wakes")
        self._spawn(self._become_ready(), "start-up")
        log.info(
            "started", cluster=s.cluster, listen=_fmt(bound), admin=_fmt(admin_bound),
            apps=len(s.apps), platform=s.platform, version=__version__,
            **({"webhook": _fmt(webhook_bound)} if webhook_bound else {}),
        )

    def _check_user(self) -> None:
        """`run_as` needs root; root without it runs pull requests' code as root."""
        if self.settings.platform != "local":
            return
        if self.settings.run_as and os.geteuid() != 0:
            raise StartupError(f"run_as {self.settings.run_as}: wakeproxy must run as root to "
                               "start builds and apps as another user (or remove run_as)")
        if not self.settings.run_as and os.geteuid() == 0:
            log.warning("builds and apps run as root: set run_as to a user of their own "
                        "(SECURITY.md)")

    async def _listen(self, app: web.Application, key: str,
                      where: tuple[str, int]) -> web.AppRunner:
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        try:
            await web.TCPSite(runner, where[0], where[1]).start()
        except OSError as e:
            await runner.cleanup()
            raise StartupError(f"cannot listen on {key} {_fmt(where)}: {e.strerror}") from None
        return runner

    async def _become_ready(self) -> None:
        """Start the controllers (sequential API calls, each up to the request timeout),
        wait for the platform's first app set, then report ready."""
        if self.controllers is not None:
            # Before ready: review apps and deployed releases of the last run are known
            # before the first webhook or build request is taken.
            await self.controllers.start()
        if self.settings.platform != "local":
            # A request routed before the discovered apps are installed would find none.
            await self.lifecycle.apps_synced.wait()
            log.info("apps synced", apps=len(self.board))
        self.ready = True
        log.info("ready")
        await asyncio.Event().wait()  # a background part: it ends only when cancelled

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        self._tasks.append(asyncio.get_running_loop().create_task(coro, name=name))

    async def wait_for_failure(self) -> None:
        """Return when a background part died: the daemon cannot do its job without it."""
        if not self._tasks:
            await asyncio.Event().wait()
        done, _ = await asyncio.wait(self._tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            exc = None if task.cancelled() else task.exception()
            log.error("background task stopped", task=task.get_name(), error=repr(exc))

    async def stop(self) -> None:
        """Stop accepting, drain in-flight requests, stop the apps, close the admin port."""
        self.ready = False
        self.dataplane.stop_accepting()
        log.info(
            "draining", connections=self.dataplane.open_connections,
            grace=self.settings.drain_grace,
        )
        await self.dataplane.drain(self.settings.drain_grace)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.scheduled.close()
        await self.always_awake.close()
        if self.controllers is not None:
            await self.controllers.close()
        await self.lifecycle.close()
        for runner in (self._webhook_runner, self._admin_runner):
            if runner is not None:
                await runner.cleanup()
        log.info("stopped")


def _fmt(addr: tuple[str, int]) -> str:
    host, port = addr
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def serve(settings: Settings) -> int:
    daemon = Daemon(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    code = 0
    try:
        try:
            await daemon.start()
        except StartupError as e:
            log.error("cannot start", reason=str(e))
            code = 1
            return code
        # What start-up built lives as long as the process: frozen, it is never traversed
        # again by the cyclic collector, so no full collection pauses the data plane long.
        gc.collect()
        gc.freeze()
        stopped = loop.create_task(stop.wait(), name="signal")
        failed = loop.create_task(daemon.wait_for_failure(), name="watchdog")
        await asyncio.wait({stopped, failed}, return_when=asyncio.FIRST_COMPLETED)
        if failed.done():
            code = 1
        stopped.cancel()
        failed.cancel()
    finally:
        await daemon.stop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    return code


def run(settings: Settings) -> int:
    """Run wakeproxy until SIGTERM/SIGINT; returns the process exit code."""
    configure_logging(settings.log_format, settings.log_level, cluster=settings.cluster,
                      access_lines=settings.log_access)
    tune_allocator()
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency; the default loop still works
        return asyncio.run(serve(settings))
    return uvloop.run(serve(settings))
