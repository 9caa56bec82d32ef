"""Finished builds' logs on disk, so `wakeproxy logs` still shows them after a restart.

A log lives at `<root>/.logs/<app>/<build id>.log` (app names never start with a dot, so
this never meets a release directory). It is written once, when its build finishes, and
read back the first time a restored build's log is asked for. Must never: raise on a
file-system error (a warning says the log will not survive a restart), or write a log of
a running build.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import structlog

from wakeproxy.controllers.builds import Build

log = structlog.get_logger("wakeproxy.builds")

_GONE = b"(the log of this build is no longer on disk)\n"


class LogFiles:
    def __init__(self, root: Path) -> None:
        self._root = root / ".logs"

    def path(self, build: Build) -> Path:
        return self._root / build.app / f"{build.id}.log"

    def save(self, build: Build) -> None:
        path = self.path(build)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(build.log.read(0)[0])
        except OSError as e:
            log.warning("cannot save a build log; it will not survive a restart",
                        build=build.id, file=str(path), error=str(e))

    def load(self, build: Build) -> None:
        """Fill a restored build's (closed, empty) log from its file."""
        try:
            data = self.path(build).read_bytes()
        except OSError:
            data = _GONE
        build.log.restore(data, max(build.log.end, len(data)))

    def forget(self, build: Build) -> None:
        self.path(build).unlink(missing_ok=True)

    def discard(self, app: str) -> None:
        shutil.rmtree(self._root / app, ignore_errors=True)
