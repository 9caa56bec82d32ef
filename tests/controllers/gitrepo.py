"""A real bare git repository holding a tiny web app, for build and review app tests.

Each commit's app answers every GET with the content of `content.txt`, which its build
(`sh build.sh`) makes from `content.src`; a commit can instead carry a build that fails.
The app writes its pid into PID_DIR so tests can check that no process is left.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

APP = """\
import http.server, os, pathlib

body = pathlib.Path("content.txt").read_bytes()
pid_dir = os.environ.get("PID_DIR")
if pid_dir:
    pathlib.Path(pid_dir, str(os.getpid())).touch()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"""

GOOD_BUILD = 'echo "building $WAKEPROXY_COMMIT"\ncp content.src content.txt\necho built\n'
BAD_BUILD = 'echo "compiling assets"\necho "boom: missing dependency" >&2\nexit 3\n'

_ENV = {
    "GIT_AUTHOR_NAME": "Test", "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test", "GIT_COMMITTER_EMAIL": "test@example.com",
    "GIT_CONFIG_NOSYSTEM": "1",
}


def _git(*args: str, cwd: Path) -> str:
    env = {**os.environ, **_ENV}
    out = subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True,
                         text=True)
    return out.stdout.strip()


class Repo:
    """A bare repository (`url`) and a work tree the test commits from."""

    def __init__(self, root: Path) -> None:
        self.url = str(root / "shop.git")
        self.work = root / "shop-work"
        root.mkdir(parents=True, exist_ok=True)
        _git("init", "-q", "--bare", "-b", "main", self.url, cwd=root)
        _git("init", "-q", "-b", "main", str(self.work), cwd=root)
        (self.work / "app.py").write_text(APP)

    def commit(self, content: str, *, build: str = GOOD_BUILD, branch: str = "main") -> str:
        """Commit an app answering `content`; push it to `branch`; return the sha."""
        (self.work / "content.src").write_text(content)
        (self.work / "build.sh").write_text(build)
        _git("add", "-A", cwd=self.work)
        _git("commit", "-q", "--allow-empty", "-m", content, cwd=self.work)
        _git("push", "-q", "--force", self.url, f"HEAD:refs/heads/{branch}", cwd=self.work)
        return _git("rev-parse", "HEAD", cwd=self.work)

    def tag(self, name: str) -> None:
        """An annotated tag of the last commit (its own id is not the commit's), pushed."""
        _git("tag", "-a", "-m", name, name, cwd=self.work)
        _git("push", "-q", self.url, f"refs/tags/{name}", cwd=self.work)


def app_command() -> str:
    return f"exec {sys.executable} app.py"
