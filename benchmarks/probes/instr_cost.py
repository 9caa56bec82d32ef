"""User-space instructions per proxied request, counted by Valgrind's callgrind.

    python benchmarks/probes/instr_cost.py [--requests 2000] [--no-access-log]

Starts wakeproxy (`python -m wakeproxy serve`, local platform, access log on unless
told otherwise) under `valgrind --tool=callgrind --instr-atstart=no`, its one app an
nginx serving a 100-byte body; sends 500 keep-alive GETs on 10 connections to warm up,
switches counting on (`callgrind_control -i on`) for `--requests` more, off again, and
prints the instructions counted per request. Counts repeat within ~1 % from run to run
on a loaded machine, where wall-clock numbers move by tens of percent: the A/B measure
for the hot path. Needs valgrind and nginx; run from the working tree to measure it.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NGINX = """worker_processes 1; daemon off; pid {d}/up.pid; error_log {d}/up.err warn;
events {{ worker_connections 1024; }}
http {{ access_log off; keepalive_requests 1000000; keepalive_timeout 300s;
  client_body_temp_path {d}; proxy_temp_path {d}; fastcgi_temp_path {d};
  uwsgi_temp_path {d}; scgi_temp_path {d};
  server {{ listen 127.0.0.1:@PORT@; location / {{
    default_type text/plain; return 200 "{body}\\n"; }} }} }}
"""
REQUEST = b"GET / HTTP/1.1\r\nHost: bench.test\r\nUser-Agent: probe\r\n\r\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def exchange(conns: list[socket.socket], n: int) -> None:
    """`n` GETs, round robin over the connections, each answer read whole (100 bytes)."""
    for i in range(n):
        s = conns[i % len(conns)]
        s.sendall(REQUEST)
        buf = b""
        while b"\r\n\r\n" not in buf or len(buf.split(b"\r\n\r\n", 1)[1]) < 100:
            chunk = s.recv(65536)
            if not chunk:
                sys.exit("wakeproxy closed a connection")
            buf += chunk


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--no-access-log", action="store_true")
    a = ap.parse_args()
    wd = Path(tempfile.mkdtemp(prefix="instr-cost-"))
    port, admin = free_port(), free_port()
    (wd / "up.tmpl").write_text(NGINX.format(d=wd, body="x" * 99))
    app = f'sed "s/@PORT@/$PORT/" {wd}/up.tmpl > {wd}/up.conf && exec nginx -p {wd} -c {wd}/up.conf'
    log = "log:\n  access: false\n" if a.no_access_log else ""
    (wd / "w.yaml").write_text(
        f"platform: local\nlisten: 127.0.0.1:{port}\nadmin_listen: 127.0.0.1:{admin}\n{log}"
        "defaults:\n  idle_after: 1h\napps:\n  - name: bench\n    hosts: [bench.test]\n"
        f"    command: {json.dumps(app)}\n"
    )
    proc = subprocess.Popen(
        ["valgrind", "--tool=callgrind", "--instr-atstart=no",
         f"--callgrind-out-file={wd}/cg.out.%p",
         sys.executable, "-m", "wakeproxy", "serve", "--config", str(wd / "w.yaml")],
        stdout=subprocess.DEVNULL, stderr=open(wd / "wakeproxy.log", "w"),  # noqa: SIM115
        start_new_session=True,
    )  # fmt: skip
    try:
        conns: list[socket.socket] = []
        deadline = time.monotonic() + 120
        while len(conns) < 10:
            try:
                conns.append(socket.create_connection(("127.0.0.1", port), 1))
            except OSError:
                if time.monotonic() > deadline:
                    sys.exit((wd / "wakeproxy.log").read_text()[-3000:])
                time.sleep(0.2)
        exchange(conns, 500)
        control = ["callgrind_control"]
        subprocess.run([*control, "-z", str(proc.pid)], capture_output=True, check=True)
        subprocess.run([*control, "-i", "on", str(proc.pid)], capture_output=True, check=True)
        exchange(conns, a.requests)
        subprocess.run([*control, "-i", "off", str(proc.pid)], capture_output=True, check=True)
        subprocess.run([*control, "-d", str(proc.pid)], capture_output=True, check=True)
        total = 0
        for path in glob.glob(f"{wd}/cg.out.*.*"):  # the dump, not the end-of-run file
            for line in Path(path).read_text().splitlines():
                if line.startswith(("totals:", "summary:")):
                    total = max(total, int(line.split()[1]))
        access = "off" if a.no_access_log else "on"
        print(f"{total / a.requests:,.0f} instructions per request "
              f"({a.requests} requests, access log {access})")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        shutil.rmtree(wd, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
