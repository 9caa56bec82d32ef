"""nginx as the benchmark's upstream and as the reference reverse proxy.

Owns the generated nginx configs, the static site they serve and the shell script
that wakeproxy runs as its app's `command`. Never touches a system-wide nginx: every
instance runs in the foreground from its own prefix directory under the run's temp dir.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path

NGINX = "/usr/sbin/nginx"
SMALL_PATH = "/small"
LARGE_PATH = "/large"
SMALL_BODY_BYTES = 100
LARGE_BODY_BYTES = 1024 * 1024


def nginx_binary() -> str | None:
    if os.access(NGINX, os.X_OK):
        return NGINX
    return shutil.which("nginx")


def nginx_version(binary: str) -> str:
    out = subprocess.run([binary, "-v"], capture_output=True, text=True, check=False)
    text = (out.stderr or out.stdout).strip()
    return text.split("/", 1)[-1] if "/" in text else text


def write_site(www: Path) -> None:
    """The 1 MB body; the 100-byte one is inlined in the config (`return 200`)."""
    www.mkdir(parents=True, exist_ok=True)
    os.chmod(www, 0o755)
    block = bytes(range(256)) * 4
    large = www / LARGE_PATH.lstrip("/")
    large.write_bytes(block * (LARGE_BODY_BYTES // len(block)))
    os.chmod(large, 0o644)


def _common(prefix: str) -> str:
    # One worker and no access log: the upstream must be cheap and steady, so that what
    # differs between contenders is the proxy in front of it.
    return f"""worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
"""


def upstream_conf(prefix: str, listen: str, www: Path) -> str:
    """The app: `listen` is `127.0.0.1:PORT` (or `127.0.0.1:${PORT}` inside a shell script)."""
    body = "x" * SMALL_BODY_BYTES
    return _common(prefix) + f"""http {{
    access_log off;
    keepalive_requests 10000000;
    keepalive_timeout 300s;
    server {{
        listen {listen} backlog=4096;
        location = {SMALL_PATH} {{
            default_type text/plain;
            return 200 "{body}";
        }}
        location = {LARGE_PATH} {{
            root {www};
            default_type application/octet-stream;
        }}
    }}
}}
"""


def proxy_conf(prefix: str, port: int, upstream_port: int, pool: int) -> str:
    """nginx as the reference reverse proxy: pooled keep-alive connections to the upstream.

    `pool` idle connections are kept: at least the most client connections of any row, or
    nginx closes and reopens upstream connections under load (a pool of 64 with 200 client
    connections did, which made every proxy look better against it at 200)."""
    return _common(prefix) + f"""http {{
    access_log off;
    keepalive_requests 10000000;
    keepalive_timeout 300s;
    upstream app {{
        server 127.0.0.1:{upstream_port};
        keepalive {pool};
        keepalive_requests 10000000;
        keepalive_timeout 300s;
    }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""


def nginx_argv(binary: str, prefix: Path, conf: Path) -> list[str]:
    return [binary, "-p", str(prefix), "-c", str(conf), "-e", f"{prefix}/error.log",
            "-g", "daemon off;"]


def write_instance(base: Path, name: str, conf_text: str) -> tuple[Path, Path]:
    """A prefix dir holding one config; returns (prefix, conf path)."""
    prefix = base / name
    prefix.mkdir(parents=True, exist_ok=True)
    os.chmod(prefix, 0o755)
    conf = prefix / "nginx.conf"
    conf.write_text(conf_text)
    return prefix, conf


def write_app_script(
    base: Path, binary: str, www: Path, pid_dir: Path, pin_core: int | None,
) -> Path:
    """`/bin/sh SCRIPT NAME`: an nginx upstream on $PORT in the foreground, as an app command.

    It records its PID (which `exec` hands on to nginx) in `pid_dir` for end-of-run
    cleanup, and in `pid_dir/NAME.pid` so the harness can tell when that app has stopped;
    each start appends a line to `pid_dir/NAME.starts`. With `$BENCH_STARTUP_DELAY`
    (seconds) it sleeps that long first: a slow-starting app.
    """
    prefix = f"{base}/app-${{PORT}}"
    conf = upstream_conf(prefix, "127.0.0.1:${PORT}", www)
    if "$" in conf.replace("${PORT}", ""):
        raise ValueError("the upstream config must not use nginx variables inside a heredoc")
    pin = f"taskset -c {pin_core} " if pin_core is not None else ""
    script = f"""#!/bin/sh
# An nginx upstream on $PORT, in the foreground, for the wakeproxy benchmark.
set -e
: "${{PORT:?PORT must be set}}"
d="{prefix}"
mkdir -p "$d"
cat > "$d/nginx.conf" <<EOF
{conf}EOF
echo $$ > {shlex.quote(str(pid_dir))}/$$
echo $$ > {shlex.quote(str(pid_dir))}/"${{1:-app}}.pid"
echo $$ >> {shlex.quote(str(pid_dir))}/"${{1:-app}}.starts"
if [ -n "${{BENCH_STARTUP_DELAY:-}}" ]; then sleep "$BENCH_STARTUP_DELAY"; fi
exec {pin}{shlex.quote(binary)} -p "$d" -c "$d/nginx.conf" -e "$d/error.log" -g 'daemon off;'
"""
    path = base / "upstream-app.sh"
    path.write_text(script)
    os.chmod(path, 0o755)
    return path
