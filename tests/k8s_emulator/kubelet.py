"""The emulated nodes' kubelet: pods bound to a Node become real local processes.

Every Node of the cluster is served by this one kubelet (all on 127.0.0.1); a pod runs once
the scheduler has bound it to a Node that exists (a `spec.nodeName` naming no Node leaves
it Pending, as on a real cluster).
Owns: a `PodRunner` per pod on its nodes (started when the pod is bound), graceful termination
when a pod gets a deletionTimestamp (SIGTERM, SIGKILL after its grace period, capped so tests
stay fast) followed by the pod's final removal, killing processes of pods removed outright,
the per-container log buffers behind `pods/{name}/log`, and `shutdown()` which stops every
process it ever started. Never creates or deletes pods on its own (controllers do).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Hashable, Iterable

from . import resources as r
from .controller import Controller
from .errors import NotFound
from .fit import is_terminal, kubelet_rejection
from .history import Event
from .logs import LogBuffer
from .meta import JSON, dig, format_time, is_terminating, meta
from .pod_runner import PodRunner
from .processes import ContainerProcess
from .pulls import ImagePulls
from .scheduling import Scheduling
from .store import Store

Key = tuple[str, str]


class Kubelet(Controller):
    name = "kubelet"
    watches = (r.PODS, r.NODES)

    def __init__(self, store: Store, errors: list[BaseException], *, scheduling: Scheduling,
                 probe_interval: float, ready_probe_interval: float, restart_backoff: float,
                 max_grace_seconds: float, pull_images: bool = True) -> None:
        super().__init__(store, errors)
        self._probe_interval = probe_interval
        self._ready_interval = ready_probe_interval
        self._backoff = restart_backoff
        self._max_grace = max_grace_seconds
        self.runners: dict[Key, PodRunner] = {}
        self._runs: dict[Key, asyncio.Task[None]] = {}
        self._stopping: dict[Key, asyncio.Task[None]] = {}
        self._logs: dict[tuple[str, str, str], LogBuffer] = {}
        # Every process ever started here, so shutdown can prove none is left behind.
        self.processes: list[ContainerProcess] = []
        # Slow or failing image pulls (tests flip these; pods started afterwards obey).
        # `pull_images`: registries are resolved as a node does (cluster DNS names fail).
        self.pulls = ImagePulls(resolve=pull_images)
        # The "cluster is full" switch (the scheduler obeys it), kept next to the other
        # switches tests flip on the node.
        self.scheduling = scheduling
        self._closing = False

    def keys_for(self, event: Event) -> Iterable[Hashable]:
        if event.obj.get("kind") == "Node":
            # A node registered late: the pods already bound to it start now.
            node = meta(event.obj).get("name")
            for pod in self.store.items(r.PODS):
                if dig(pod, "spec", "nodeName") == node:
                    yield (str(meta(pod).get("namespace")), str(meta(pod).get("name")))
            return
        yield (str(meta(event.obj).get("namespace")), str(meta(event.obj).get("name")))

    def log_buffer(self, namespace: str, pod: str, container: str) -> LogBuffer | None:
        return self._logs.get((namespace, pod, container))

    async def reconcile(self, key: Hashable) -> None:
        assert isinstance(key, tuple)
        if self._closing:
            return
        ns, name = key
        pod = self.store.find(r.PODS, ns, name)
        runner = self.runners.get(key)
        if runner is not None and (pod is None or meta(pod).get("uid") != runner.uid):
            self._begin_stop(key, runner, 0.0, remove=False)
            runner = None
        node = dig(pod, "spec", "nodeName") if pod is not None else None
        if pod is None or not node or self.store.find(r.NODES, None, str(node)) is None:
            if pod is None:
                self._drop_logs(ns, name)
            return
        if is_terminating(pod):
            if runner is not None:
                grace = float(meta(pod).get("deletionGracePeriodSeconds") or 0)
                self._begin_stop(key, runner, min(grace, self._max_grace), remove=True)
            elif key not in self._stopping:
                self._remove(ns, name, str(meta(pod)["uid"]))
            return
        phase = dig(pod, "status", "phase")
        if (runner is None and key not in self._stopping
                and phase not in ("Succeeded", "Failed") and self._admit(key, pod, str(node))):
            self._start(key, pod)

    def _admit(self, key: Key, pod: JSON, node: str) -> bool:
        """Admission on the node: a pod that does not fit next to the ones running there is
        rejected (phase Failed, reason OutOfcpu, OutOfmemory, OutOfpods...)."""
        admitted = [p for k in {*self.runners, *self._stopping} if k != key
                    and (p := self.store.find(r.PODS, *k)) is not None
                    and dig(p, "spec", "nodeName") == node and not is_terminal(p)]
        rejection = kubelet_rejection(pod, self.store.get(r.NODES, None, node), admitted)
        if rejection is None:
            return True
        reason, message = rejection

        def reject(p: JSON) -> None:
            old = p.get("status") or {}
            p["status"] = {"phase": "Failed", "reason": reason, "message": message,
                           "startTime": old.get("startTime") or format_time(),
                           "qosClass": old.get("qosClass") or "BestEffort"}

        self.store.mutate(r.PODS, key[0], key[1], reject, subresource="status")
        return False

    def _start(self, key: Key, pod: JSON) -> None:
        ns, name = key
        container = str((dig(pod, "spec", "containers") or [{}])[0].get("name"))
        for c in dig(pod, "spec", "containers") or []:
            self._logs.setdefault((ns, name, str(c.get("name"))), LogBuffer())
        runner = PodRunner(
            self.store, pod, self._logs[(ns, name, container)],
            probe_interval=self._probe_interval, ready_probe_interval=self._ready_interval,
            restart_backoff=self._backoff, register=self.processes.append, pulls=self.pulls,
        )
        self.runners[key] = runner
        self._runs[key] = self.spawn(runner.run(), f"pod-{ns}-{name}")

    def _begin_stop(self, key: Key, runner: PodRunner, grace: float, *, remove: bool) -> None:
        if key in self._stopping:
            return
        self._stopping[key] = self.spawn(self._stop(key, runner, grace, remove), f"stop-{key}")

    async def _stop(self, key: Key, runner: PodRunner, grace: float, remove: bool) -> None:
        try:
            await runner.stop(grace)
            run = self._runs.pop(key, None)
            if run is not None:
                # The runner sees `stopping` after its current step (start, exit or back-off);
                # cancelling it mid-spawn could leak a process, so wait for it first.
                await asyncio.wait({run}, timeout=self._backoff + 5.0)
                run.cancel()
            if runner.process is not None:
                await runner.process.stop(0.0)
        finally:
            if self.runners.get(key) is runner:
                del self.runners[key]
            self._stopping.pop(key, None)
        if remove:
            self._remove(key[0], key[1], runner.uid)
        self.enqueue(key)

    def _remove(self, ns: str, name: str, uid: str) -> None:
        pod = self.store.find(r.PODS, ns, name)
        if pod is not None and meta(pod).get("uid") == uid:
            with contextlib.suppress(NotFound):
                self.store.remove(r.PODS, ns, name)

    def _drop_logs(self, ns: str, name: str) -> None:
        for key in [k for k in self._logs if k[:2] == (ns, name)]:
            del self._logs[key]

    async def shutdown(self) -> None:
        """Stop every process this kubelet started, then the kubelet itself."""
        self._closing = True  # from here on no pod starts
        runners = list(self.runners.values())
        for runner in runners:
            runner.stopping = True
        await asyncio.gather(*(runner.stop(0.5) for runner in runners), return_exceptions=True)
        runs = [task for task in self._runs.values() if not task.done()]
        if runs:
            # Each run ends after its current step once `stopping` is set; only a run still
            # busy after that is cancelled.
            await asyncio.wait(runs, timeout=self._backoff + 5.0)
        await self.stop()
        await asyncio.gather(*(p.stop(0.5) for p in self.processes), return_exceptions=True)

    def live_process_groups(self) -> list[int]:
        """Process groups started here that still have a member (none once stopped)."""
        return [p.pid for p in self.processes if p.group_alive()]
