"""Real processes for end-to-end tests: `wakeproxy serve` and nginx as the ingress.

Both listen on port 0 or free ports on 127.0.0.1; both are stopped by PID.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

APPS_DIR = Path(__file__).parent / "apps"
ECHO_APP = APPS_DIR / "echo_app.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def echo_command(name: str, **env: str) -> str:
    """A shell command that runs the echo app as `name` (env vars set inline)."""
    assigns = " ".join(f"{k}={v}" for k, v in {"APP_NAME": name, **env}.items())
    return f"{assigns} exec {sys.executable} {ECHO_APP}"


class Wakeproxy:
    """`wakeproxy serve` in a subprocess, its JSON log lines collected as dicts."""

    def __init__(self, tmp: Path, config: dict[str, Any]) -> None:
        config = {
            "cluster": "test",
            "listen": "127.0.0.1:0",
            "admin_listen": "127.0.0.1:0",
            "log": {"format": "json", "level": "info"},
            "sweep_interval": "100ms",
            "drain_grace": "10s",
            **config,
        }
        self.config_path = tmp / "wakeproxy.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        token = config.get("admin_token")
        # Build logs need the token when one is set; admin writes are JSON.
        self.admin_headers = {"Content-Type": "application/json",
                              **({"Authorization": f"Bearer {token}"} if token else {})}
        self.logs: list[dict[str, Any]] = []
        self.raw: list[str] = []
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0
        self.admin_port = 0
        self._lock = threading.Lock()

    def start(self, timeout: float = 20.0) -> Wakeproxy:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "NO_PROXY": "127.0.0.1,localhost"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "wakeproxy", "serve", "--config", str(self.config_path)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        )
        threading.Thread(target=self._read, daemon=True).start()
        started = self.wait_log(lambda e: e.get("event") == "started", timeout)
        self.port = int(started["listen"].rsplit(":", 1)[1])
        self.admin_port = int(started["admin"].rsplit(":", 1)[1])
        return self

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._lock:
                self.raw.append(line)
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if isinstance(entry, dict):
                    self.logs.append(entry)

    def events(self, event: str) -> list[dict[str, Any]]:
        with self._lock:
            return [e for e in self.logs if e.get("event") == event]

    def wait_log(self, match: Any, timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                for e in self.logs:
                    if match(e):
                        return e
            if self.proc is not None and self.proc.poll() is not None:
                time.sleep(0.2)
                raise AssertionError(f"wakeproxy exited {self.proc.returncode}:\n{self.output()}")
            time.sleep(0.01)
        raise AssertionError(f"no matching log line within {timeout}s:\n{self.output()}")

    def output(self) -> str:
        with self._lock:
            return "".join(self.raw[-200:])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def api(self, path: str, method: str = "GET") -> Any:
        data = b"{}" if method != "GET" else None  # admin writes are JSON
        req = urllib.request.Request(self.admin + path, method=method, data=data,
                                     headers=self.admin_headers)
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())

    def app_state(self, name: str) -> str:
        return str(self.api(f"/api/v1/apps/{name}")["state"])

    def wait_state(self, name: str, state: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.app_state(name) == state:
                return
            time.sleep(0.02)
        raise AssertionError(f"{name} not {state} within {timeout}s (is {self.app_state(name)})")

    def rss_kib(self) -> int:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def terminate(self, timeout: float = 20.0) -> int:
        """SIGTERM, wait for a clean exit; SIGKILL only as a last resort (a failure)."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"wakeproxy ignored SIGTERM:\n{self.output()}") from None
        return self.proc.returncode


NGINX_CONF = """
worker_processes 1;
error_log {dir}/error.log warn;
pid {dir}/nginx.pid;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  map $http_upgrade $connection_upgrade {{ default upgrade; '' ''; }}
  upstream wakeproxy {{ server 127.0.0.1:{upstream}; keepalive 32; }}
  server {{
    listen 127.0.0.1:{port};
    client_max_body_size 0;
    proxy_request_buffering off;
    proxy_buffering off;
    proxy_read_timeout 120s;
    location / {{
      proxy_pass http://wakeproxy;
      proxy_http_version 1.1;
      proxy_set_header Host $http_host;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    }}
  }}
}}
"""


def nginx_binary() -> str:
    found = shutil.which("nginx")
    if found is None and Path("/usr/sbin/nginx").exists():
        found = "/usr/sbin/nginx"
    if found is None:
        raise AssertionError("nginx is required for end-to-end tests: apt-get install nginx-light")
    return found


class Nginx:
    """nginx in the foreground as the ingress in front of wakeproxy."""

    def __init__(self, tmp: Path, upstream_port: int) -> None:
        self.dir = tmp / "nginx"
        self.dir.mkdir()
        self.port = free_port()
        (self.dir / "nginx.conf").write_text(
            NGINX_CONF.format(dir=self.dir, port=self.port, upstream=upstream_port))
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Nginx:
        self.proc = subprocess.Popen(
            [nginx_binary(), "-p", str(self.dir), "-c", str(self.dir / "nginx.conf"),
             "-g", "daemon off;"], stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                if self.proc.poll() is not None:
                    err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                    raise AssertionError(f"nginx failed to start: {err}") from None
                time.sleep(0.02)
        raise AssertionError("nginx did not start listening")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def pids_alive(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        # A zombie still answers kill(0); it has exited for our purposes.
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0]
        except (OSError, IndexError):
            continue
        if state != "Z":
            alive.append(pid)
    return alive
