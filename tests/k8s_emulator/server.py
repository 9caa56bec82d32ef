"""The emulator as a whole: the HTTP(S) server, its dispatch, and the parts it wires together.

Owns the listening site (and taking it down/up on the same port), authentication by bearer
token (the admin's, or wakeproxy's ServiceAccount's), RBAC authorization of every resource
request (rbac.py, with the rules of the project's manifests: install.py), recording every
request, applying fault rules before a request is served, dispatch by
verb and subresource, rendering every failure as a Status (an unexpected exception is also
kept in `errors` so the test fails), and the start/close order of store, controllers and
kubelet. Never implements a verb itself.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import secrets
from pathlib import Path
from typing import Any

from aiohttp import web

from . import discovery, pod_security, priority, routing
from . import resources as r
from .config import EmulatorConfig
from .controller import Controller
from .deployments import DeploymentController
from .endpointslices import EndpointSliceController
from .errors import ApiError, BadRequest, InternalError, Unauthorized, error_for_code
from .faults import Faults, Rule
from .gc import GarbageCollector
from .handlers import ResourceHandlers, _dry_run
from .httpio import read_body, respond, respond_error
from .install import Install, load
from .jobs import JobController
from .kubeconfig import InClusterFiles, write_incluster, write_kubeconfig
from .kubelet import Kubelet
from .logs import pick_container, serve_log
from .meta import JSON, labels_of, meta
from .nodes import NodeSpec, node_object
from .podspec import assign_port
from .rbac import ADMIN, AUTHORIZE, Attributes, Authorize, Authorizer, Identity
from .recorder import RecordedRequest, Recorder
from .routing import ApiRequest, GroupVersionPath, Parsed, VersionPath
from .scale import ScaleSubresource
from .scheduler import Scheduler
from .scheduling import Scheduling
from .schema import SchemaValidator
from .store import Store
from .tls import ServerCertificate, generate
from .watch import WatchSettings, serve_watch

log = logging.getLogger("k8s_emulator")


class _ResetConnection(Exception):
    """A fault rule asked for the connection to be aborted."""


class Emulator:
    def __init__(self, config: EmulatorConfig | None = None, *, workdir: Path) -> None:
        self.config = config or EmulatorConfig()
        self.workdir = workdir
        validator = (SchemaValidator(self.config.kube_version, self.config.oldest_kube_version)
                     if self.config.kube_version else None)
        self.store = Store(history_size=self.config.history_size, validator=validator)
        self.faults = Faults(self.store)
        self.recorder = Recorder()
        self.errors: list[BaseException] = []
        self.token = secrets.token_urlsafe(24)  # the admin's: the tests' own identity
        self.install: Install | None = (load(self.config.install_dir)
                                        if self.config.install_dir is not None else None)
        self._authorizer = Authorizer(self.install.rbac if self.install else ())
        # wakeproxy's ServiceAccount token: what its pods would have mounted.
        self.wakeproxy_token = secrets.token_urlsafe(24)
        account = self.install.service_account if self.install else ("wakeproxy", "wakeproxy")
        self.wakeproxy_identity = (Identity.service_account(*account) if self.install
                                   else ADMIN)
        self._identities = {self.token: ADMIN, self.wakeproxy_token: self.wakeproxy_identity}
        self._handlers = ResourceHandlers(self.store)
        self._scale = ScaleSubresource(self.store, validator)
        c = self.config
        # The "cluster is full" switch tests flip; the scheduler obeys it.
        self.scheduling = Scheduling(self.store)
        self.kubelet = Kubelet(
            self.store, self.errors, scheduling=self.scheduling, probe_interval=c.probe_interval,
            ready_probe_interval=c.ready_probe_interval, restart_backoff=c.restart_backoff,
            max_grace_seconds=c.max_grace_seconds, pull_images=c.image_pulls,
        )
        self._controllers: list[Controller] = [
            GarbageCollector(self.store, self.errors),
            DeploymentController(self.store, self.errors),
            JobController(self.store, self.errors),
            EndpointSliceController(self.store, self.errors, node_name=c.node_name,
                                    publish_delay=c.endpoint_publish_delay),
            Scheduler(self.store, self.errors, switch=self.scheduling,
                      add_node=self._autoscale),
        ]
        self._autoscaled = 0
        self.store.admission.append(assign_port())
        # Priority is a mutating plugin: it runs before Pod Security's validation.
        def classes() -> list[JSON]:
            return self.store.items(r.PRIORITY_CLASSES)

        self.store.admission.append(priority.admit_pod(classes))
        self.store.update_admission.append(priority.keep_pod_priority)
        admit_class = priority.admit_class(classes)
        self.store.admission.append(lambda rt, obj: admit_class(rt, obj, None))
        self.store.update_admission.append(admit_class)
        self.store.delete_admission.append(priority.refuse_built_in_delete)
        if c.pod_security:
            self.store.admission.append(pod_security.admission(
                lambda ns: self.store.find(r.NAMESPACES, None, ns)))
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._certs: ServerCertificate | None = None
        self.port = 0
        self.kubeconfig = workdir / "kubeconfig.yaml"  # the admin's
        # Give this one (or `incluster`) to wakeproxy: it acts as its ServiceAccount.
        self.wakeproxy_kubeconfig = workdir / "wakeproxy-kubeconfig.yaml"
        self.incluster: InClusterFiles | None = None

    # -- lifecycle -----------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"{'https' if self.config.tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def wakeproxy_namespace(self) -> str:
        """The namespace wakeproxy is installed in (k8s/): where its Leases may be written."""
        return self.install.namespace if self.install else "default"

    @property
    def ca_file(self) -> Path | None:
        return self._certs.ca_cert if self._certs else None

    async def start(self) -> None:
        for ns in self.config.namespaces:
            self.store.create(r.NAMESPACES, {"metadata": {"name": ns}})
        for node in self.config.node_specs:
            self.add_node(node)
        for pc in [*priority.BUILT_IN, *(self.install.priority_classes if self.install else ())]:
            self.store.create(r.PRIORITY_CLASSES, pc)
        for namespace in self.install.namespaces if self.install else ():
            self.store.create(r.NAMESPACES, {"metadata": {
                "name": namespace["metadata"]["name"],
                "labels": dict(namespace["metadata"].get("labels") or {})}})
        if self.config.tls:
            self._certs = await asyncio.to_thread(generate, self.workdir / "tls")
        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._serve)
        self._runner = web.AppRunner(app, handler_cancellation=True, access_log=None,
                                     shutdown_timeout=1.0)
        await self._runner.setup()
        await self.up()
        for controller in self._controllers:
            controller.start()
        self.kubelet.start()
        write_kubeconfig(self.kubeconfig, server=self.base_url, token=self.token,
                         ca_file=self.ca_file)
        write_kubeconfig(self.wakeproxy_kubeconfig, server=self.base_url,
                         token=self.wakeproxy_token, ca_file=self.ca_file)
        if self._certs is not None:
            self.incluster = write_incluster(self.workdir / "serviceaccount", port=self.port,
                                             token=self.wakeproxy_token,
                                             ca_file=self._certs.ca_cert)

    async def up(self) -> None:
        """Listen again (on the same port once it has been chosen)."""
        assert self._runner is not None
        if self._site is not None:
            return
        ssl_context = self._certs.server_context() if self._certs else None
        self._site = web.TCPSite(self._runner, "127.0.0.1", self.port, ssl_context=ssl_context)
        await self._site.start()
        server = self._site._server  # the bound port is only known to the site's server
        assert isinstance(server, asyncio.base_events.Server)
        self.port = int(server.sockets[0].getsockname()[1])

    async def down(self) -> None:
        """The API goes away: stop listening (connections are refused) and drop every
        open connection, watches included, as a crashed API server would."""
        if self._site is None or self._runner is None:
            return
        await self._site.stop()
        self._site = None
        for handler in self._runner.server.connections if self._runner.server else []:
            if handler.transport is not None:
                handler.transport.abort()
            handler.force_close()

    async def close(self) -> None:
        # Controllers first, so nothing creates pods while the kubelet stops the ones it runs.
        for controller in self._controllers:
            await controller.stop()
        await self.kubelet.shutdown()
        self.faults.end_watches()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
            self._site = None

    # -- direct access for tests ---------------------------------------------------------------
    def add_node(self, node: NodeSpec | str, **capacity: Any) -> JSON:
        """Register a node (as a kubelet joining, or the cluster autoscaler adding one):
        `add_node("big", cpu="16", memory="64Gi", pods=110)` or `add_node(NodeSpec(...))`.
        Pending pods that fit are placed on it."""
        spec = node if isinstance(node, NodeSpec) else NodeSpec(node, **capacity)
        return self.store.create(r.NODES, node_object(spec, self.config.kube_version))

    def nodes(self) -> list[JSON]:
        return self.store.select(r.NODES)

    def _autoscale(self) -> None:
        """The cluster autoscaler's answer to pods the switch holds: a node like the first."""
        self._autoscaled += 1
        first = self.config.node_specs[0]
        name = f"{first.name}-autoscaled-{self._autoscaled}"
        self.add_node(dataclasses.replace(first, name=name))

    def create(self, obj: JSON, namespace: str | None = None) -> JSON:
        """Create an object without going through HTTP (same validation and events)."""
        rt = r.by_kind(str(obj.get("apiVersion")), str(obj.get("kind")))
        if rt is None:
            raise ValueError(f"the emulator does not serve {obj.get('apiVersion')} "
                             f"{obj.get('kind')}")
        return self.store.create(rt, obj, namespace)

    def endpoint_slices(self, service: str, namespace: str = "default") -> list[JSON]:
        return [s for s in self.store.items(r.ENDPOINT_SLICES)
                if meta(s).get("namespace") == namespace
                and labels_of(s).get("kubernetes.io/service-name") == service]

    def ready_ports(self, service: str, namespace: str = "default") -> list[int]:
        """Ports of the ready, not terminating endpoints published for `service`."""
        return [p["port"] for s in self.endpoint_slices(service, namespace)
                for e in s.get("endpoints") or []
                if e["conditions"].get("ready") and not e["conditions"].get("terminating")
                for p in s.get("ports") or []]

    def pods(self, namespace: str = "default", app: str | None = None) -> list[JSON]:
        return [p for p in self.store.items(r.PODS) if meta(p).get("namespace") == namespace
                and (app is None or labels_of(p).get("app") == app)]

    # -- serving -------------------------------------------------------------------------------
    async def _serve(self, request: web.Request) -> web.StreamResponse:
        parsed: Parsed | None = None
        record: RecordedRequest | None = None
        status = 500
        try:
            try:
                unroutable: ApiError | None = None
                try:
                    parsed = routing.parse(request.method, request.path, request.query)
                except ApiError as err:
                    unroutable = err
                # Recorded on arrival so open watches show up while they last.
                record = self._record(request, parsed)
                # Authentication before anything else, then authorization, as the real
                # server's filters do.
                who = self._authenticate(request)
                record.user = who.user
                if unroutable is not None:
                    raise unroutable
                assert parsed is not None
                if isinstance(parsed, ApiRequest):
                    request[AUTHORIZE] = self._authorize_for(who, parsed, record)
                    request[AUTHORIZE](parsed.verb)
                await self._apply_faults(parsed, request)
                resp = await self._dispatch(parsed, request)
            except ApiError as err:
                resp = respond_error(err)
            except _ResetConnection:
                # The transport is already aborted; this answer is never written.
                resp = web.Response(status=499)
            except ConnectionResetError:
                # The client closed its connection (a watch it stopped) while we wrote.
                resp = web.Response(status=499)
            except Exception as exc:  # an emulator bug: fail the test, answer the client
                log.exception("emulator failed on %s %s", request.method, request.path)
                self.errors.append(exc)
                resp = respond_error(InternalError(f"emulator error: {exc!r}"))
            status = resp.status
            return resp
        finally:
            if record is not None:
                record.status = status

    def _authenticate(self, request: web.Request) -> Identity:
        header = request.headers.get("Authorization", "")
        token = header[len("Bearer "):] if header.startswith("Bearer ") else None
        who = self._identities.get(token) if token else None
        if who is not None:
            return who
        if self.config.require_token:
            raise Unauthorized("Unauthorized")
        return ADMIN

    def _authorize_for(self, who: Identity, req: ApiRequest,
                       record: RecordedRequest | None) -> Authorize:
        """The check of one request, by verb: the request's own verb first, and `create`
        too when a server-side apply turns out to create its object."""
        def authorize(verb: str) -> None:
            if record is not None and verb not in record.verbs:
                record.verbs.append(verb)
            self._authorizer.check(who, Attributes(verb, req.rt.group, req.resource,
                                                   req.subresource, req.namespace, req.name))

        return authorize

    async def _apply_faults(self, parsed: Parsed,
                            request: web.Request) -> None:
        if not isinstance(parsed, ApiRequest):
            return
        rules: list[Rule] = self.faults.match(parsed.verb, parsed.resource, parsed.subresource,
                                              parsed.namespace, parsed.name)
        for rule in rules:
            if rule.action == "stall":
                await asyncio.sleep(rule.seconds)
            elif rule.action == "reset":
                if request.transport is not None:
                    request.transport.abort()
                raise _ResetConnection()
            else:
                raise error_for_code(rule.status, rule.message, retry_after=rule.retry_after)

    def _record(self, request: web.Request,
                parsed: Parsed | None) -> RecordedRequest:
        api = parsed if isinstance(parsed, ApiRequest) else None
        record = RecordedRequest(
            method=request.method, path=request.path_qs,
            verb=api.verb if api else None, group=api.rt.group if api else None,
            resource=api.resource if api else None, subresource=api.subresource if api else None,
            namespace=api.namespace if api else None, name=api.name if api else None,
            user_agent=request.headers.get("User-Agent", ""),
        )
        self.recorder.add(record)
        return record

    async def _dispatch(self, parsed: Parsed,
                        request: web.Request) -> web.StreamResponse:
        if isinstance(parsed, VersionPath):
            return respond(discovery.version(self.config.kube_version or "1.36"))
        if isinstance(parsed, GroupVersionPath):
            return respond(discovery.document(parsed.group, parsed.version))
        req, h = parsed, self._handlers
        if req.verb == "watch":
            settings = WatchSettings(self.config.bookmark_interval, self.config.watch_timeout,
                                     self.faults.watch_gone_as_http)
            return await serve_watch(request, req, self.store, settings)
        if req.verb == "list":
            return await h.list(req, request)
        if req.subresource == "scale":
            return await self._serve_scale(req, request)
        if req.subresource == "log":
            return await self._serve_log(req, request)
        if req.verb == "get":
            return h.get(req, request)
        if req.verb == "create":
            return await h.create(req, request)
        if req.verb == "update":
            return await h.update(req, request)
        if req.verb == "patch":
            return await h.patch(req, request)
        if req.verb == "delete":
            return await h.delete(req, request)
        return await h.delete_collection(req, request)

    async def _serve_scale(self, req: ApiRequest, request: web.Request) -> web.Response:
        assert req.name is not None
        if req.verb == "get":
            return respond(self._scale.get(req.namespace, req.name))
        dry_run = _dry_run(request.query)
        body = await read_body(request, allow_yaml=req.verb == "update")
        if req.verb == "update":
            return respond(self._scale.update(req.namespace, req.name, body, dry_run=dry_run))
        content_type = request.headers.get("Content-Type", "")
        return respond(self._scale.patch(req.namespace, req.name, content_type, body,
                                         dry_run=dry_run))

    async def _serve_log(self, req: ApiRequest, request: web.Request) -> web.StreamResponse:
        assert req.name is not None
        pod = self.store.get(r.PODS, req.namespace, req.name)
        container = pick_container(pod, request.query)
        buffer = self.kubelet.log_buffer(str(req.namespace), req.name, container)
        if buffer is None or (not buffer.running and buffer.count == 0 and
                              (pod.get("status") or {}).get("phase") == "Pending"):
            raise BadRequest(f'container "{container}" in pod "{req.name}" is waiting to start: '
                             "ContainerCreating")
        return await serve_log(request, buffer)
