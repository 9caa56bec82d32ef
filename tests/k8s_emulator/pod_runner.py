"""One pod's life on the emulated node: run its container as a process, probe it, report status.

Owns, for a single pod: starting the first container's command, the pod and container status
the real kubelet reports (Pending → Running, Ready only after a readiness probe passes, restart
counts, Succeeded/Failed for run-to-completion pods), restarts per `restartPolicy`, continued
readiness probing, and stopping on request. Other containers of the pod are reported running
and ready without a process. Never deletes the pod object (the kubelet does once stopped).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from . import resources as r
from .errors import NotFound
from .logs import LogBuffer
from .meta import JSON, dig, format_time, meta
from .podspec import ContainerConfigError, container_argv, container_env, probed_port
from .probes import probe
from .processes import ContainerProcess
from .pulls import ImagePulls
from .store import Store

IP = "127.0.0.1"
_KUBELET_CONDITIONS = ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady",
                       "PodScheduled")


class PodRunner:
    def __init__(self, store: Store, pod: JSON, logs: LogBuffer, *, probe_interval: float,
                 ready_probe_interval: float, restart_backoff: float,
                 register: Callable[[ContainerProcess], None],
                 pulls: ImagePulls | None = None) -> None:
        self.store = store
        self._register = register
        self.namespace = str(meta(pod)["namespace"])
        self.name = str(meta(pod)["name"])
        self.uid = str(meta(pod)["uid"])
        self.logs = logs
        self.process: ContainerProcess | None = None
        self.stopping = False
        self._probe_interval = probe_interval
        self._ready_interval = ready_probe_interval
        self._backoff = restart_backoff
        self._restarts = 0
        self._ready = False
        self._started_at = format_time()
        self._pulls = pulls or ImagePulls()

    # -- status --------------------------------------------------------------------------------
    def _write(self, change: Callable[[JSON], None]) -> bool:
        """Apply a status change to the pod; False once the pod is gone or no longer ours."""
        pod = self.store.find(r.PODS, self.namespace, self.name)
        if pod is None or meta(pod).get("uid") != self.uid:
            return False
        try:
            self.store.mutate(r.PODS, self.namespace, self.name, change, subresource="status")
        except NotFound:
            return False
        return True

    def _status(self, phase: str, first_state: JSON, *, ready: bool) -> Callable[[JSON], None]:
        def change(pod: JSON) -> None:
            old = pod.get("status") or {}
            at = format_time()
            containers = dig(pod, "spec", "containers") or []
            statuses = []
            for i, c in enumerate(containers):
                state = first_state if i == 0 else {"running": {"startedAt": self._started_at}}
                c_ready = ready if i == 0 else True
                statuses.append({
                    "name": c["name"], "image": c.get("image") or "emulated",
                    "imageID": "", "containerID": f"emulator://{self.uid}/{c['name']}",
                    "ready": c_ready, "started": "running" in state,
                    "restartCount": self._restarts if i == 0 else 0, "state": state,
                })
            running = phase == "Running"
            pod["status"] = {
                "phase": phase,
                "conditions": [
                    _cond(old, "PodReadyToStartContainers", True, at),
                    _cond(old, "Initialized", True, at),
                    _cond(old, "Ready", ready and running, at),
                    _cond(old, "ContainersReady", ready and running, at),
                    _cond(old, "PodScheduled", True, at),
                    # Conditions others own (the scheduler's DisruptionTarget) are kept.
                    *[c for c in old.get("conditions") or []
                      if c.get("type") not in _KUBELET_CONDITIONS],
                ],
                "hostIP": IP, "hostIPs": [{"ip": IP}], "podIP": IP, "podIPs": [{"ip": IP}],
                "startTime": old.get("startTime") or self._started_at,
                "containerStatuses": statuses,
                "qosClass": old.get("qosClass") or "BestEffort",
            }

        return change

    # -- life ----------------------------------------------------------------------------------
    async def run(self) -> None:
        pod = self.store.find(r.PODS, self.namespace, self.name)
        if pod is None:
            return
        container = (dig(pod, "spec", "containers") or [{}])[0]
        policy = str(dig(pod, "spec", "restartPolicy") or "Always")
        try:
            env = container_env(self.store, pod, container)
            argv = container_argv(container, env)
        except ContainerConfigError as err:
            waiting = {"waiting": {"reason": err.reason, "message": err.message}}
            self._write(self._status("Pending", waiting, ready=False))
            return

        def waiting(reason: str, message: str) -> bool:
            state = {"waiting": {"reason": reason, "message": message}}
            return self._write(self._status("Pending", state, ready=False))

        for c in [*(dig(pod, "spec", "initContainers") or []),
                  *(dig(pod, "spec", "containers") or [])]:
            if not await self._pulls.pull(str(c.get("image") or ""), waiting,
                                          self.stop_requested):
                return
        port = probed_port(pod)
        cwd = container.get("workingDir")
        while not self.stop_requested():
            try:
                self.process = await ContainerProcess.start(argv, env, cwd, self.logs)
                self._register(self.process)
            except OSError as err:
                waiting = {"waiting": {"reason": "StartError", "message": str(err)}}
                self._write(self._status("Pending", waiting, ready=False))
                return
            if self.stop_requested():  # stop() came while the process was starting
                await self.process.stop(0.5)
                return
            started = format_time()
            running = {"running": {"startedAt": started}}
            if not self._write(self._status("Running", running, ready=False)):
                return
            prober = asyncio.create_task(self._probe_loop(port, container, running))
            code = await self.process.wait()
            prober.cancel()
            # asyncio.wait, not `await prober` under suppress(CancelledError): a cancellation
            # of this task itself must not be swallowed here.
            await asyncio.wait({prober})
            self._ready = False
            if self.stop_requested():
                return
            terminated = {"terminated": {
                "exitCode": code, "reason": "Completed" if code == 0 else "Error",
                "startedAt": started, "finishedAt": format_time(),
            }}
            if policy == "Never" or (policy == "OnFailure" and code == 0):
                self._write(self._status("Succeeded" if code == 0 else "Failed", terminated,
                                         ready=False))
                return
            self._restarts += 1
            waiting = {"waiting": {"reason": "CrashLoopBackOff",
                                   "message": f"back-off restarting failed container, exit {code}"}}
            if not self._write(self._status("Running", waiting, ready=False)):
                return
            await asyncio.sleep(self._backoff)

    async def _probe_loop(self, port: int | None, container: JSON, running: JSON) -> None:
        while True:
            ok = port is None or await probe(port, container)
            if ok != self._ready:
                self._ready = ok
                if not self._write(self._status("Running", running, ready=ok)):
                    return
            await asyncio.sleep(self._ready_interval if self._ready else self._probe_interval)

    def stop_requested(self) -> bool:
        # A method, not a bare attribute read, because stop() flips it between awaits.
        return self.stopping

    async def stop(self, grace: float) -> None:
        self.stopping = True
        if self.process is not None:
            await self.process.stop(grace)

    def alive(self) -> bool:
        return self.process is not None and self.process.group_alive()


def _cond(old: JSON, kind: str, value: bool, at: str) -> JSON:
    status = "True" if value else "False"
    for c in old.get("conditions") or []:
        if c.get("type") == kind and c.get("status") == status:
            return {"type": kind, "status": status, "lastTransitionTime": c["lastTransitionTime"],
                    "lastProbeTime": None}
    return {"type": kind, "status": status, "lastTransitionTime": at, "lastProbeTime": None}
