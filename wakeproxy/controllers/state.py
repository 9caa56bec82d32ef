"""What the controllers remember across restarts, and the one file it lives in.

`<builds_dir>/state.json` holds, per app, its deployed release and the one before it; the
open review apps; every remembered build's outcome (logs stay in their own files); and the
ids of recent GitHub webhook deliveries (so a redelivery after a restart is ignored).
`StateStore` reads and writes it: a write goes to a temporary file that is flushed to
disk and renamed over the old one, so a crash leaves either the old file or the new one.
`StateWriter` coalesces change notifications into background writes (one at a time, the
latest snapshot wins), so no caller waits on the disk.

Must never: raise on a missing, unreadable or corrupt file (it warns, naming the file,
and the controllers start empty), or have more than one writer of the file.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import structlog

from wakeproxy.controlplane.tasks import spawn

log = structlog.get_logger("wakeproxy.state")

VERSION = 1
STATE_FILE = "state.json"


@dataclass(frozen=True, slots=True)
class ReleaseRecord:
    """A release an app was switched to: the build, its commit, its checkout."""

    build: str
    commit: str | None
    directory: str
    # The app the build was made for, when not this one: a release promoted from the
    # stage before (its directory is that app's).
    built_for: str | None = None


@dataclass(frozen=True, slots=True)
class ReviewRecord:
    """An open review app and the pull request it was made for."""

    name: str
    number: int
    base: str  # the configured app it is a review app of
    head_sha: str
    host: str


@dataclass(frozen=True, slots=True)
class BuildRecord:
    """A build's outcome as the API shows it (its log is in its own file)."""

    id: str
    app: str
    repo: str
    ref: str
    state: str
    created_at: float
    commit: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    exit_code: int | None = None
    reason: str | None = None
    release_dir: str | None = None
    deployed_at: float | None = None
    log_bytes: int = 0
    deploy_outcome: str | None = None  # how a deploy asked with the build ended
    deploy_error: str | None = None


@dataclass(frozen=True, slots=True)
class ControllerState:
    # app → its releases, oldest first: [previous, deployed] (or just [deployed]).
    releases: Mapping[str, tuple[ReleaseRecord, ...]] = field(default_factory=dict)
    reviews: tuple[ReviewRecord, ...] = ()
    builds: tuple[BuildRecord, ...] = ()  # oldest first
    # (X-GitHub-Delivery id, wall-clock time it arrived), oldest first; bounded by webhook.
    deliveries: tuple[tuple[str, float], ...] = ()


class _Corrupt(Exception):
    pass


def _get(doc: Mapping[str, Any], key: str, kind: type | tuple[type, ...], optional: bool = False,
         ) -> Any:
    value = doc.get(key)
    if value is None and optional:
        return None
    # bool is an int to Python; never accept it where a number is meant.
    if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise _Corrupt(f"{key} has the wrong type")
    if not isinstance(value, kind):
        raise _Corrupt(f"{key} is missing or has the wrong type")
    return value


def _obj(value: object, what: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise _Corrupt(f"{what} is not an object")
    return value


def _list(value: object, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise _Corrupt(f"{what} is not a list")
    return value


_NUM = (int, float)


def _release(raw: object) -> ReleaseRecord:
    d = _obj(raw, "a release")
    return ReleaseRecord(_get(d, "build", str), _get(d, "commit", str, True),
                         _get(d, "directory", str), _get(d, "built_for", str, True))


def _review(raw: object) -> ReviewRecord:
    d = _obj(raw, "a review app")
    return ReviewRecord(_get(d, "name", str), _get(d, "number", int), _get(d, "base", str),
                        _get(d, "head_sha", str), _get(d, "host", str))


def _build(raw: object) -> BuildRecord:
    d = _obj(raw, "a build")
    return BuildRecord(
        id=_get(d, "id", str), app=_get(d, "app", str), repo=_get(d, "repo", str),
        ref=_get(d, "ref", str), state=_get(d, "state", str),
        created_at=float(_get(d, "created_at", _NUM)), commit=_get(d, "commit", str, True),
        started_at=_get(d, "started_at", _NUM, True),
        finished_at=_get(d, "finished_at", _NUM, True),
        exit_code=_get(d, "exit_code", int, True), reason=_get(d, "reason", str, True),
        release_dir=_get(d, "release_dir", str, True),
        deployed_at=_get(d, "deployed_at", _NUM, True),
        log_bytes=_get(d, "log_bytes", int, True) or 0,
        deploy_outcome=_get(d, "deploy_outcome", str, True),
        deploy_error=_get(d, "deploy_error", str, True),
    )


def _deliveries(raw: object) -> tuple[tuple[str, float], ...]:
    d = _obj(raw, "webhook_deliveries")
    return tuple((delivery, float(_get(d, delivery, _NUM))) for delivery in d)


def parse(text: str) -> ControllerState:
    """The file's text → the state it holds. Raises ValueError saying what is wrong."""
    try:
        doc = _obj(json.loads(text), "the file")
        if doc.get("version") != VERSION:
            raise _Corrupt(f"version is {doc.get('version')!r}, expected {VERSION}")
        apps = _obj(doc.get("apps", {}), "apps")
        releases = {
            name: tuple(_release(r) for r in _list(_obj(a, name).get("releases", []), name))
            for name, a in apps.items()
        }
        reviews = tuple(_review(r) for r in _list(doc.get("review_apps", []), "review_apps"))
        builds = tuple(_build(b) for b in _list(doc.get("builds", []), "builds"))
        deliveries = _deliveries(doc.get("webhook_deliveries", {}))
    except _Corrupt as e:
        raise ValueError(str(e)) from None
    except ValueError as e:  # JSON syntax, including a file cut short
        raise ValueError(f"not valid JSON ({e})") from None
    return ControllerState(releases=releases, reviews=reviews, builds=builds,
                           deliveries=deliveries)


def render(state: ControllerState) -> str:
    doc = {
        "version": VERSION,
        "saved_at": time.time(),
        "apps": {name: {"releases": [asdict(r) for r in rs]}
                 for name, rs in sorted(state.releases.items()) if rs},
        "review_apps": [asdict(r) for r in state.reviews],
        "builds": [asdict(b) for b in state.builds],
        # An object, one line per id: the file stays small with thousands of them.
        "webhook_deliveries": dict(state.deliveries),
    }
    return json.dumps(doc, indent=1) + "\n"


class StateStore:
    """The state file. `load` never raises; `save` raises OSError."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.loaded = False  # True once a load found a valid file

    def load(self) -> ControllerState:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            log.info("no saved controller state; starting empty", file=str(self.path))
            return ControllerState()
        except (OSError, UnicodeDecodeError) as e:
            log.warning("controller state file unreadable; starting empty (builds, releases "
                        "and review apps of earlier runs are not restored)",
                        file=str(self.path), error=str(e))
            return ControllerState()
        try:
            state = parse(text)
        except ValueError as e:
            aside = self._set_aside()
            log.warning("controller state file is corrupt; starting empty (builds, releases "
                        "and review apps of earlier runs are not restored)",
                        file=str(self.path), error=str(e), kept_as=aside)
            return ControllerState()
        self.loaded = True
        return state

    def save(self, state: ControllerState) -> None:
        """Replace the file with `state` atomically (temp file, fsync, rename, fsync dir)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        data = render(state).encode()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # the rename itself survives a power cut
        finally:
            os.close(dir_fd)

    def _set_aside(self) -> str | None:
        """Keep a corrupt file for a person to look at, out of the way of the next save."""
        aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
        try:
            os.replace(self.path, aside)
        except OSError:
            return None
        return str(aside)


class StateWriter:
    """Saves `snapshot()` in the background after each `changed()`; one write at a time."""

    def __init__(self, store: StateStore, snapshot: Callable[[], ControllerState]) -> None:
        self._store = store
        self._snapshot = snapshot
        self._dirty = False
        self._task: asyncio.Task[None] | None = None
        self._failing = False

    def changed(self) -> None:
        self._dirty = True
        if self._task is None or self._task.done():
            self._task = spawn(self._run(), name="controller-state")

    async def flush(self) -> None:
        """Return once every change so far is on disk (or its write failed)."""
        while self._task is not None and not self._task.done():
            with contextlib.suppress(Exception):
                await asyncio.shield(self._task)

    async def _run(self) -> None:
        while self._dirty:
            self._dirty = False
            state = self._snapshot()  # taken in the loop: no one writes it meanwhile
            try:
                await asyncio.to_thread(self._store.save, state)
            except OSError as e:
                # Serving goes on; only a restart would lose what changed since.
                if not self._failing:
                    log.warning("cannot save controller state; it will not survive a restart "
                                "until this is fixed", file=str(self._store.path),
                                error=str(e))
                self._failing = True
                continue
            if self._failing:
                log.info("controller state saved again", file=str(self._store.path))
            self._failing = False
