"""Side by side with real sockets: nginx, the floor, the featured floor and wakeproxy.

    python benchmarks/probes/featured_compare.py .venv/bin/python [--rounds 5] [--seconds 6]
        [--conns 50,200] [--off log]

Every contender proxies the same upstream (nginx, one worker, a fixed 100-byte body). wrk and
the upstream share core 0; each proxy runs alone on core 1 (taskset). Rounds are interleaved
and the order rotates, so that machine noise hits every contender alike: read the ratios to
nginx in the same run and the CPU per request (from /proc/PID/stat), not the absolute req/s.

  nginx      1 worker, upstream keep-alive pool 512           the C reference
  floor      benchmarks/floor_proxy.py                          a flat CPython proxy, no features
  featured   benchmarks/featured_floor.py                       the floor plus wakeproxy's
                                                                common-path work, written flat
  featured-off-X  the same with FEATURED_OFF=X (--off, repeatable; default: log)
  wakeproxy  `PYTHON -m wakeproxy serve`, local platform, one   as shipped: access log on
             always-awake app whose command starts the upstream

Every proxy's stdout (the access lines) goes to /dev/null.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent
UP = """worker_processes 1; daemon off; pid {d}/{n}.pid; error_log {d}/{n}.err warn;
worker_rlimit_nofile 20000; events {{ worker_connections 10000; }}
http {{ access_log off; keepalive_requests 1000000; keepalive_timeout 300s;
  client_body_temp_path {d}/cb; proxy_temp_path {d}/pt; fastcgi_temp_path {d}/ft;
  uwsgi_temp_path {d}/ut; scgi_temp_path {d}/st;
  {upstream}
  server {{ listen 127.0.0.1:{port} backlog=4096; location / {{ {loc} }} }} }}
"""
BODY = 'default_type text/plain; return 200 "' + "x" * 99 + '\\n";'
Result = tuple[float, float, float, int, float]  # req/s, p50 ms, p99 ms, non-2xx, CPU µs/req


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), 1) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: bench.test\r\nConnection: close\r\n\r\n")
            return s.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def wait(check: Callable[[], bool], seconds: float) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if check():
            return True
        time.sleep(0.1)
    return False


def wrk(port: int, conns: int, seconds: int) -> tuple[float, float, float, int]:
    out = subprocess.run(
        ["taskset", "-c", "0", "wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "--latency",
         "-H", "Host: bench.test", f"http://127.0.0.1:{port}/"],
        capture_output=True, text=True, timeout=seconds + 30,
    ).stdout  # fmt: skip
    unit = {"us": 0.001, "ms": 1.0, "s": 1000.0}

    def pct(p: str) -> float:
        m = re.search(p + r"%\s+([\d.]+)(us|ms|s)", out)
        return float(m.group(1)) * unit[m.group(2)] if m else float("nan")

    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if m is None:
        sys.exit(f"wrk gave no rate:\n{out}")
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return float(m.group(1)), pct("50"), pct("99"), int(bad.group(1)) if bad else 0


def cpu_seconds(pids: list[int]) -> float:
    ticks = 0
    for pid in pids:
        f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(f[11]) + int(f[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def workers(p: subprocess.Popen[bytes]) -> list[int]:
    kids = Path(f"/proc/{p.pid}/task/{p.pid}/children").read_text().split()
    return [int(k) for k in kids] or [p.pid]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("python", help="an interpreter with wakeproxy installed")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=int, default=6)
    ap.add_argument("--conns", default="50,200")
    ap.add_argument("--off", action="append", help="a FEATURED_OFF value to run as well")
    a = ap.parse_args()
    for tool in ("nginx", "wrk", "taskset"):
        if not shutil.which(tool) and not Path(f"/usr/sbin/{tool}").exists():
            sys.exit(f"{tool} missing: apt-get install nginx-light wrk")
    wd = Path(tempfile.mkdtemp(prefix="featured-compare-"))
    for sub in ("cb", "pt", "ft", "ut", "st"):
        (wd / sub).mkdir()
    procs: list[subprocess.Popen[bytes]] = []
    contenders: dict[str, tuple[int, subprocess.Popen[bytes], bool]] = {}

    def start(name: str, port: int, cmd: list[str], nginx_like: bool = False,
              env: dict[str, str] | None = None) -> None:  # fmt: skip
        with open(wd / f"{name}.log", "w") as err:
            p = subprocess.Popen(["taskset", "-c", "1", *cmd], stdout=subprocess.DEVNULL,
                                 stderr=err, env=env, start_new_session=True)  # fmt: skip
        procs.append(p)
        contenders[name] = (port, p, nginx_like)

    up = free_port()
    (wd / "up.conf").write_text(UP.format(d=wd, n="up", upstream="", port=up, loc=BODY))
    procs.append(subprocess.Popen(
        ["taskset", "-c", "0", "nginx", "-p", str(wd), "-c", str(wd / "up.conf")],
        start_new_session=True,
    ))  # fmt: skip
    try:
        port = free_port()
        (wd / "ngx.conf").write_text(UP.format(
            d=wd, n="ngx", port=port,
            upstream=f"upstream up {{ server 127.0.0.1:{up}; keepalive 512; "
                     "keepalive_requests 1000000; }",
            loc='proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection "";',
        ))  # fmt: skip
        start("nginx", port, ["nginx", "-p", str(wd), "-c", str(wd / "ngx.conf")], nginx_like=True)
        for name, script, off in [
            ("floor", "floor_proxy.py", None),
            ("featured", "featured_floor.py", ""),
            *[(f"featured-off-{o}", "featured_floor.py", o) for o in (a.off or ["log"])],
        ]:
            port = free_port()
            env = None if off is None else {**os.environ, "FEATURED_OFF": off}
            start(name, port, [a.python, str(BENCH / script), str(port), "127.0.0.1", str(up)],
                  env=env)  # fmt: skip
        port, admin = free_port(), free_port()
        (wd / "up2.tmpl").write_text(UP.format(d=wd, n="up2", upstream="", port="@PORT@", loc=BODY))
        app = (f'sed "s/@PORT@/$PORT/" {wd}/up2.tmpl > {wd}/up2.conf && '
               f"exec taskset -c 0 nginx -p {wd} -c {wd}/up2.conf")  # fmt: skip
        (wd / "wakeproxy.yaml").write_text(  # a JSON string is a valid YAML scalar
            f"cluster: compare\nplatform: local\nlisten: 127.0.0.1:{port}\n"
            f"admin_listen: 127.0.0.1:{admin}\ndefaults:\n  idle_after: 1h\napps:\n"
            f"  - name: bench\n    hosts: [bench.test]\n    command: {json.dumps(app)}\n"
        )
        start("wakeproxy", port,
              [a.python, "-m", "wakeproxy", "serve", "--config", str(wd / "wakeproxy.yaml")])
        for name, (p, _, _) in contenders.items():
            if not wait(lambda p=p: answers(p), 30):  # type: ignore[misc]
                sys.exit(f"{name} does not answer; its log: {wd / (name + '.log')}")
        res: dict[tuple[str, int], list[Result]] = {}
        for conns in [int(c) for c in a.conns.split(",")]:
            for p, _, _ in contenders.values():
                wrk(p, conns, 1)  # warm pools
            for r in range(a.rounds):
                names = list(contenders)
                names = names[r % len(names):] + names[: r % len(names)]  # rotate who goes first
                for name in names:
                    p, proc, nginx_like = contenders[name]
                    pids = workers(proc) if nginx_like else [proc.pid]
                    # taskset execs the proxy, so the PID is the proxy's own
                    c0, t0 = cpu_seconds(pids), time.monotonic()
                    rps, p50, p99, bad = wrk(p, conns, a.seconds)
                    us = (cpu_seconds(pids) - c0) / max(rps * (time.monotonic() - t0), 1) * 1e6
                    res.setdefault((name, conns), []).append((rps, p50, p99, bad, us))
                    print(f"c={conns:<4} round {r + 1} {name:18s} {rps:9.0f} req/s  "
                          f"p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  CPU/req {us:5.1f} us  "
                          f"non-2xx {bad}", flush=True)
        print("\nmedians (ratio = req/s vs nginx in the same run; spread = (max-min)/median "
              "of the per-round ratio)")
        for conns in [int(c) for c in a.conns.split(",")]:
            base = res[("nginx", conns)]
            for name in contenders:
                rs = res[(name, conns)]
                ratios = [x[0] / b[0] for x, b in zip(rs, base, strict=True)]
                med = statistics.median(x[0] for x in rs)
                print(f"c={conns:<4} {name:18s} {med:9.0f} req/s  ratio "
                      f"{med / statistics.median(b[0] for b in base):4.2f}  per-round ratio "
                      f"{min(ratios):4.2f}-{max(ratios):4.2f}  "
                      f"p99 {statistics.median(x[2] for x in rs):6.2f} ms  "
                      f"CPU/req {statistics.median(x[4] for x in rs):5.1f} us  "
                      f"non-2xx {sum(x[3] for x in rs)}")  # fmt: skip
    finally:
        for p in reversed(procs):
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(wd, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
