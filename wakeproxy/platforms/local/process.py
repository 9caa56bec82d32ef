"""One running local app: its process group, its output, and how it is stopped.

The command runs as `/bin/sh -c COMMAND` in a new session, so the shell leads a process
group holding everything the command starts; stopping signals the whole group and waits
until no live member is left, not just the shell. Output lines become log lines tagged
with the app and the stream, and go to the app's `AppLog` (what `wakeproxy app-logs`
follows), what one read of a pipe brought as one block of whole lines: decoded, echoed
and kept without a Python object per line. It never decides when to start or stop: the
platform does.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Protocol, runtime_checkable

import structlog

from wakeproxy.controlplane.tasks import spawn
from wakeproxy.model.applog import AppLog
from wakeproxy.platforms.local.sandbox import RunAs, clean_env
from wakeproxy.settings import LocalApp

log = structlog.get_logger("wakeproxy.app")

# Where output lines go in wakeproxy's own log: (app, stream, lines joined by newlines).
# The composition root passes a cheaper, batched one (obs.logging.app_output_log).
Echo = Callable[[str, str, str], None]


def log_lines(app: str, stream: str, text: str) -> None:
    for line in text.split("\n"):
        log.info(line, app=app, stream=stream)

_STDERR_TAIL = 20  # lines of this process's stderr kept for failure reports
_MAX_LINE = 64 * 1024  # a longer line is logged in pieces instead of buffered forever
_READ = 65536  # bytes of output read at once
_GATHER = 0.005  # seconds output gathers in an emptied pipe before the next read
_KILL_WAIT = 5.0  # after SIGKILL, how long to wait for the group to vanish


class AppProcess:
    __slots__ = (
        "_exit", "_group_gone", "_proc", "_pumps", "_stop_task", "_tail", "app", "pgid",
        "port", "ready", "stopping",
    )

    def __init__(
        self, app: str, proc: asyncio.subprocess.Process, port: int, ring: deque[str],
        output: AppLog | None = None, echo: Echo = log_lines,
    ) -> None:
        self.app = app
        self.port = port
        self.pgid = proc.pid  # a new session: the shell leads its own group
        self.ready = False
        self.stopping = False  # we asked it to exit, so its exit is not news
        self._proc = proc
        self._tail: deque[str] = deque(maxlen=_STDERR_TAIL)
        self._group_gone = False
        self._stop_task: asyncio.Task[None] | None = None
        assert proc.stdout is not None and proc.stderr is not None
        self._pumps = (
            spawn(_pump(proc.stdout, app, "stdout", (), output, echo),
                  name=f"output:{app}:stdout"),
            spawn(_pump(proc.stderr, app, "stderr", (self._tail, ring), output, echo),
                  name=f"output:{app}:stderr"),
        )
        self._exit: asyncio.Task[int] = spawn(proc.wait(), name=f"exit:{app}")

    @classmethod
    async def start(
        cls, local: LocalApp, port: int, ring: deque[str], *,
        environ: Mapping[str, str], run_as: RunAs | None = None, output: AppLog | None = None,
        echo: Echo = log_lines,
    ) -> AppProcess:
        """Spawn `local.command` with PORT set, in a clean environment (the basics of
        `environ` and the app's `env`), as `run_as` if given. Raises OSError when it
        cannot be started."""
        env = clean_env(environ, local.env, {"PORT": str(port)}, run_as=run_as)
        argv = ["/bin/sh", "-c", local.command]
        proc = await asyncio.create_subprocess_exec(
            *(run_as.wrap(argv) if run_as is not None else argv),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=local.cwd,
            env=env,
            start_new_session=True,
        )
        return cls(local.policy.name, proc, port, ring, output, echo)

    @property
    def pid(self) -> int:
        return self.pgid

    @property
    def returncode(self) -> int | None:
        return self._exit.result() if self._exit.done() and not self._exit.cancelled() else None

    @property
    def exit_task(self) -> asyncio.Task[int]:
        return self._exit

    def describe_exit(self) -> str:
        code = self.returncode
        if code is None:
            return "is running"
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = str(-code)
            return f"was killed by {name}"
        return f"exited with code {code}"

    def stderr_tail(self) -> list[str]:
        return list(self._tail)

    async def output_done(self, *, within: float) -> None:
        """Wait (bounded) for the output pipes to reach EOF so the last lines are in."""
        await asyncio.wait(self._pumps, timeout=within)

    async def stop(self, grace: float) -> None:
        """SIGTERM the group, SIGKILL what is left after `grace`; return once all are gone.

        Concurrent callers share one stop; cancelling a caller does not abort it.
        """
        self.stopping = True
        if self._stop_task is None:
            self._stop_task = spawn(self._terminate(grace), name=f"stop:{self.app}")
        await asyncio.shield(self._stop_task)

    async def _terminate(self, grace: float) -> None:
        loop = asyncio.get_running_loop()
        self._signal(signal.SIGTERM)
        if not await self._gone_by(loop.time() + grace):
            if grace > 0:
                log.warning("app did not stop within its grace period; killing it",
                            app=self.app, grace=grace)
            self._signal(signal.SIGKILL)
            if not await self._gone_by(loop.time() + _KILL_WAIT):
                log.error("app process group survived SIGKILL", app=self.app, pgid=self.pgid)
        # Output still buffered in the pipes is worth logging; a grandchild that left the
        # group could hold them open forever, so the wait is bounded.
        await self.output_done(within=0.5)
        for pump in self._pumps:
            pump.cancel()

    async def _gone_by(self, deadline: float) -> bool:
        loop = asyncio.get_running_loop()
        await asyncio.wait([self._exit], timeout=max(0.0, deadline - loop.time()))
        if not self._exit.done():
            return False
        delay = 0.002
        while _group_alive(self.pgid):
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            await asyncio.sleep(min(delay, remaining))
            delay = min(delay * 2, 0.1)
        self._group_gone = True
        return True

    def _signal(self, sig: signal.Signals) -> None:
        # Once the group is known to be gone its id may be reused: never signal it again.
        if self._group_gone:
            return
        try:
            os.killpg(self.pgid, sig)
        except ProcessLookupError:
            pass
        except PermissionError:
            log.warning("not allowed to signal app process group", app=self.app,
                        pgid=self.pgid, signal=sig.name)


def _group_alive(pgid: int) -> bool:
    """True while a process of the group is alive (zombies do not count)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # Members whose parent died become zombies of init, and init does not reap promptly
    # everywhere (containers); they are dead, so look for a member that is not a zombie.
    return _has_live_member(pgid)


def _has_live_member(pgid: int) -> bool:
    try:
        entries = os.listdir("/proc")
    except OSError:
        return True  # no /proc: trust killpg
    for name in entries:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
            return True
    return False


@runtime_checkable
class _Pausable(Protocol):
    """A read transport (uvloop's is no asyncio.ReadTransport subclass)."""

    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...


def _newest(text: str, keep: int | None) -> list[str]:
    """The lines of `text` a ring of `keep` lines holds after taking them all: only those
    are split out."""
    if keep is None:
        return text.split("\n")
    return text.rsplit("\n", keep)[-keep:] if keep > 0 else []


async def _pump(
    stream: asyncio.StreamReader, app: str, name: str, sinks: Iterable[deque[str]],
    output: AppLog | None, echo: Echo,
) -> None:
    sinks = tuple(sinks)

    def emit(raw: bytes) -> None:
        """Hand on whole lines: `raw` without its last newline."""
        # A newline never occurs inside a UTF-8 sequence: one decode of the block reads
        # each line as its own decode would.
        text = raw.decode("utf-8", "replace")
        if "\r" in text:
            text = "\n".join(line.rstrip("\r") for line in text.split("\n"))
        echo(app, name, text)
        for sink in sinks:
            sink.extend(_newest(text, sink.maxlen))
        if output is not None:
            output.write(text + "\n", text.count("\n") + 1)

    # The stream's pipe transport, to pause between reads (not in StreamReader's public
    # API; without it, each write of the app is read as it comes).
    transport = getattr(stream, "_transport", None)
    pipe = transport if isinstance(transport, _Pausable) else None
    buf = b""
    with contextlib.suppress(ConnectionError):
        while read := await stream.read(_READ):
            chunk = buf + read if buf else read
            end = chunk.rfind(b"\n")
            if end >= 0:
                emit(chunk[:end])
                buf = chunk[end + 1 :]
            else:
                buf = chunk
            while len(buf) > _MAX_LINE:
                emit(buf[:_MAX_LINE])
                buf = buf[_MAX_LINE:]
            if len(read) >= _READ:
                # More may be waiting: let the readers of these lines run before the next
                # read, or a burst read back to back would fill their queues however fast
                # they are.
                await asyncio.sleep(0)
            elif pipe is not None:
                # The pipe is empty: let output gather in it a moment instead of waking
                # for every write of a chatty app (an app printing every millisecond
                # cost a wake-up, a read and a log item each time). Only an app writing
                # more than the pipe holds (64 KiB) within the pause waits for it.
                pipe.pause_reading()
                await asyncio.sleep(_GATHER)
                pipe.resume_reading()
    if buf:
        emit(buf)
