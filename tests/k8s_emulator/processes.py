"""Real local processes for containers: start in their own process group, capture output, stop.

Owns: spawning argv with an environment and working directory in a new session (so the whole
group — a shell and its children — can be signalled), piping merged stdout/stderr into a
`LogBuffer`, and stopping with SIGTERM then SIGKILL after a grace period. Every process it
starts is tracked until reaped. Never decides when to start or stop (the kubelet does).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
from collections.abc import Mapping

from .logs import LogBuffer


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ContainerProcess:
    def __init__(self, proc: asyncio.subprocess.Process, logs: LogBuffer) -> None:
        self.proc = proc
        self.pid = proc.pid
        self.logs = logs
        self._stopped = False
        self._pump = asyncio.create_task(self._read_output(), name=f"logs-{proc.pid}")

    @classmethod
    async def start(
        cls, argv: list[str], env: Mapping[str, str], cwd: str | None, logs: LogBuffer
    ) -> ContainerProcess:
        proc = await asyncio.create_subprocess_exec(
            *argv, env=dict(env), cwd=cwd, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
        logs.started()
        return cls(proc, logs)

    async def _read_output(self) -> None:
        stream = self.proc.stdout
        assert stream is not None
        while True:
            try:
                line = await stream.readline()
            except ValueError:  # a line longer than the stream limit: take what is there
                line = await stream.read(65536)
            if not line:
                return
            self.logs.append(line)

    async def wait(self) -> int:
        code = await self.proc.wait()
        # Output written just before exit is still in the pipe; read it before reporting.
        with contextlib.suppress(asyncio.TimeoutError):
            async with asyncio.timeout(2.0):
                await asyncio.shield(self._pump)
        self.logs.exited()
        return code

    def signal_group(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    async def stop(self, grace: float) -> int:
        """SIGTERM the process group, SIGKILL it after `grace` seconds; returns the exit code."""
        if self._stopped:
            return await self.wait()
        self._stopped = True
        if self.proc.returncode is None:
            self.signal_group(signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(grace):
                    await self.proc.wait()
        # Children of a shell may outlive it: the group gets SIGKILL whatever the leader did.
        self.signal_group(signal.SIGKILL)
        code = await self.wait()
        self._pump.cancel()
        await asyncio.wait({self._pump})
        return code

    def group_alive(self) -> bool:
        try:
            os.killpg(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
