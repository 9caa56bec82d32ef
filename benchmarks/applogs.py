#!/usr/bin/env python3
"""App logs streamed fast: latency, throughput of one follower, and the data plane's cost.

One run, one wakeproxy (`serve`, platform local, JSON access log on, to a file), two apps:
`bench` (the nginx upstream of run.py) and `talk` (a small Python app that prints lines
`L <seq> <wall ns>` at the rate it is asked for). One `wakeproxy app-logs talk --follow`
(the real CLI) reads the stream; this script timestamps each line as it arrives.

- latency: from the app's write (the time in the line) to the CLI printing it, p50/p99,
  at 1,000 and at 10,000 lines/s;
- throughput: the rates one follower keeps up with (every line, no drop marker), up to
  the highest asked for;
- data plane: wrk req/s against `bench` with no log stream, then while `talk` prints
  10,000 lines/s to a follower, alternated over `--rounds`, side by side; with each
  run wakeproxy's CPU time, so `per_core` (req/s per core wakeproxy used) is the rate it
  reaches CPU-bound, whatever bounded this run (wrk and nginx on a shared core, other
  load), and its change is what streaming costs a saturated data plane.

wakeproxy runs alone on core 0; everything else (wrk, nginx, the talking app, the CLI,
this script) on core 1, so the data-plane row shows what streaming costs wakeproxy
itself, not what the extra processes take from a shared core (`--no-pin` to share).

Run: `python benchmarks/applogs.py [--rounds 3] [--duration 5] [--python PATH]`; it
prints a summary and writes `results/applogs.json`. Needs nginx and wrk.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from benchlib.nginx import SMALL_PATH, nginx_binary, write_app_script, write_site
from benchlib.procs import Processes, cpu_seconds, free_port, wait_for_port
from benchlib.wakeproxy import BENCH_HOST, request
from benchlib.wrk import run_wrk, write_reporter, wrk_binary

REPO = Path(__file__).resolve().parent.parent
TALK_HOST = "talk.localhost"
TOKEN = "applogs-benchmark-token"

# The talking app: GET /talk?rate=R&seconds=S prints R lines a second for S seconds
# (in a thread, in 1 ms slices) and answers at once; /done says whether it finished.
TALK_APP = r'''
import os, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit
state = {"busy": False, "seq": 0}
def talk(rate, seconds):
    out = sys.stdout
    start = time.monotonic()
    sent = 0
    while True:
        elapsed = time.monotonic() - start
        if elapsed >= seconds:
            break
        due = int(rate * elapsed) - sent
        if due > 0:
            now = time.time_ns()
            out.write("".join(f"L {state['seq'] + i} {now}\n" for i in range(due)))
            out.flush()
            state["seq"] += due
            sent += due
        time.sleep(0.001)
    state["busy"] = False
class H(BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        u = urlsplit(self.path)
        q = {k: v[0] for k, v in parse_qs(u.query).items()}
        if u.path == "/talk":
            state["busy"] = True
            threading.Thread(target=talk, args=(float(q["rate"]), float(q["seconds"])),
                             daemon=True).start()
            body = b"ok\n"
        else:
            body = (b"busy\n" if state["busy"] else b"idle\n")
        self.send_response(200); self.send_header("Content-Length", str(len(body)))
        self.end_headers(); self.wfile.write(body)
ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
'''


class Follower:
    """`wakeproxy app-logs talk --follow` in a subprocess; arrival times of its lines."""

    def __init__(self, python: str, admin_port: int, pin: list[str]) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO), "NO_PROXY": "127.0.0.1"}
        self.proc = subprocess.Popen(
            [*pin, python, "-m", "wakeproxy", "app-logs", "talk", "--follow", "--lines", "0",
             "--admin", f"http://127.0.0.1:{admin_port}", "--token", TOKEN],
            stdout=subprocess.PIPE, env=env)
        self.lock = threading.Lock()
        self.latencies_ns: list[int] = []
        self.seqs: list[int] = []
        self.dropped = 0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            arrived = time.time_ns()
            if raw.startswith(b"L "):
                _, seq, sent = raw.split()
                with self.lock:
                    self.latencies_ns.append(arrived - int(sent))
                    self.seqs.append(int(seq))
            elif b"lines dropped" in raw:
                with self.lock:
                    self.dropped += int(raw.split()[1])

    def take(self) -> tuple[list[int], list[int], int]:
        with self.lock:
            out = (self.latencies_ns, self.seqs, self.dropped)
            self.latencies_ns, self.seqs, self.dropped = [], [], 0
        return out

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def talk(port: int, rate: int, seconds: float) -> None:
    reply = request(port, "GET", f"/talk?rate={rate}&seconds={seconds}", host=TALK_HOST)
    assert reply.status == 200, reply


def wait_quiet(port: int, follower: Follower, timeout: float = 30.0) -> None:
    """Until the app finished talking and no line arrived for 0.5 s."""
    deadline = time.monotonic() + timeout
    while request(port, "GET", "/done", host=TALK_HOST).body != b"idle\n":
        if time.monotonic() > deadline:
            raise RuntimeError("the talking app did not finish")
        time.sleep(0.05)
    last = -1
    while time.monotonic() < deadline:
        with follower.lock:
            count = len(follower.seqs) + follower.dropped
        if count == last:
            return
        last = count
        time.sleep(0.5)


def cpu_share(pid: int, seconds: float) -> float:
    """The share of one core the process used over the next `seconds`."""
    before, start = cpu_seconds(pid) or 0.0, time.monotonic()
    time.sleep(seconds)
    return ((cpu_seconds(pid) or 0.0) - before) / (time.monotonic() - start)


def percentile(values: list[int], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1e6


def timed_wrk(pid: int, wrk: str, url: str, args: argparse.Namespace, reporter: Path,
              pin: list[str]) -> tuple[float, float]:
    """One wrk run: (req/s, req/s per core of wakeproxy's CPU time during it)."""
    before, start = cpu_seconds(pid) or 0.0, time.monotonic()
    result = run_wrk(wrk, url, host=BENCH_HOST, connections=args.connections,
                     duration=args.duration, reporter=reporter, prefix=pin)
    share = ((cpu_seconds(pid) or 0.0) - before) / (time.monotonic() - start)
    return result.rps, result.rps / share if share > 0 else 0.0


def measure_rate(port: int, follower: Follower, rate: int, seconds: float) -> dict[str, Any]:
    follower.take()
    talk(port, rate, seconds)
    wait_quiet(port, follower)
    lat, seqs, dropped = follower.take()
    expected = int(rate * seconds)
    return {"rate": rate, "seconds": seconds, "received": len(seqs), "expected": expected,
            "dropped": dropped, "kept_up": dropped == 0 and len(seqs) >= expected * 0.98,
            "p50_ms": round(percentile(lat, 0.5), 2) if lat else None,
            "p99_ms": round(percentile(lat, 0.99), 2) if lat else None}


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run")
    p.add_argument("--connections", type=int, default=50)
    p.add_argument("--rates", default="10000,25000,50000,100000",
                   help="lines/s asked of one follower (comma-separated)")
    p.add_argument("--python", default=sys.executable, help="runs wakeproxy and the CLI")
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    p.add_argument("--no-pin", dest="pin", action="store_false",
                   help="do not give wakeproxy a core of its own")
    p.add_argument("--quick", action="store_true",
                   help="1 round of 1 s, 1 s per rate, 10,000 lines/s only: does it run?")
    args = p.parse_args(argv)
    args.sample = 3.0
    if args.quick:
        args.rounds, args.duration, args.rates, args.sample = 1, 1.0, "10000", 1.0
    if args.pin and (os.cpu_count() or 1) < 2:
        args.pin = False
    nginx, wrk = nginx_binary(), wrk_binary()
    if nginx is None or wrk is None:
        print("needs nginx and wrk (apt-get install nginx-light wrk)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="wakeproxy-applogs-") as tmp_name:
        tmp = Path(tmp_name)
        pid_dir = tmp / "pids"
        pid_dir.mkdir()
        procs = Processes(pin=args.pin, pid_dir=pid_dir)
        if args.pin:
            os.sched_setaffinity(0, {1})  # this script and what it starts: core 1
        try:
            return run(args, tmp, procs, nginx, wrk)
        finally:
            procs.stop_all()


def run(args: argparse.Namespace, tmp: Path, procs: Processes, nginx: str, wrk: str) -> int:
    write_site(tmp / "www")
    others = 1 if args.pin else None  # the core of everything but wakeproxy
    pin = ["taskset", "-c", "1"] if args.pin else []
    script = write_app_script(tmp, nginx, tmp / "www", procs.pid_dir, others)
    (tmp / "talk.py").write_text(TALK_APP)
    port, admin = free_port(), free_port()
    q = json.dumps
    (tmp / "wakeproxy.yaml").write_text(f"""cluster: applogs-bench
platform: local
listen: 127.0.0.1:{port}
admin_listen: 127.0.0.1:{admin}
admin_token: {q(TOKEN)}
log: {{format: json, level: info}}
drain_grace: 1s
defaults: {{idle_after: 24h, wake_timeout: 30s}}
apps:
  - name: bench
    hosts: [{q(BENCH_HOST)}]
    command: {q(f"/bin/sh {script} bench")}
  - name: talk
    hosts: [{q(TALK_HOST)}]
    command: {q(f"exec {' '.join(pin)} {args.python} {tmp / 'talk.py'}")}
""")
    wp = procs.start("wakeproxy", [args.python, "-m", "wakeproxy", "serve", "--config",
                                   str(tmp / "wakeproxy.yaml")], core=0,
                     log_path=tmp / "wakeproxy.log", env={"PYTHONPATH": str(REPO)})
    wait_for_port("127.0.0.1", port, 30, wp)
    for host, path in ((BENCH_HOST, SMALL_PATH), (TALK_HOST, "/done")):
        assert request(port, "GET", path, host=host, timeout=30).status == 200
    follower = Follower(args.python, admin, pin)
    time.sleep(0.5)
    reporter = write_reporter(tmp)
    url = f"http://127.0.0.1:{port}{SMALL_PATH}"
    result: dict[str, Any] = {"latency": [], "throughput": [], "dataplane": []}
    try:
        # What streaming costs wakeproxy on its own: its CPU time while idle, then while
        # the app prints 10,000 lines a second to one follower (no other load).
        idle = cpu_share(wp.pid, args.sample)
        talk(port, 10_000, args.sample + 1)
        time.sleep(0.5)
        streaming = cpu_share(wp.pid, args.sample)
        wait_quiet(port, follower)
        follower.take()
        result["cpu"] = {"idle_core_share": round(idle, 4),
                         "streaming_10k_core_share": round(streaming, 4)}
        for rate in (1000, 10_000):
            result["latency"].append(measure_rate(port, follower, rate, args.sample))
        for rate in (int(r) for r in args.rates.split(",")):
            result["throughput"].append(measure_rate(port, follower, rate, args.sample))
        for _ in range(args.rounds):
            quiet, quiet_core = timed_wrk(wp.pid, wrk, url, args, reporter, pin)
            follower.take()
            talk(port, 10_000, args.duration + 2)
            time.sleep(0.5)
            busy, busy_core = timed_wrk(wp.pid, wrk, url, args, reporter, pin)
            wait_quiet(port, follower)
            _, seqs, dropped = follower.take()
            result["dataplane"].append({"quiet_rps": round(quiet), "busy_rps": round(busy),
                                        "quiet_per_core": round(quiet_core),
                                        "busy_per_core": round(busy_core),
                                        "lines": len(seqs), "dropped": dropped})
    finally:
        follower.stop()
    quiet_rps = statistics.median(r["quiet_rps"] for r in result["dataplane"])
    busy_rps = statistics.median(r["busy_rps"] for r in result["dataplane"])
    quiet_core = statistics.median(r["quiet_per_core"] for r in result["dataplane"])
    busy_core = statistics.median(r["busy_per_core"] for r in result["dataplane"])
    kept = [r["rate"] for r in result["throughput"] if r["kept_up"]]
    result["summary"] = {
        "latency_p50_ms_1k": result["latency"][0]["p50_ms"],
        "latency_p99_ms_1k": result["latency"][0]["p99_ms"],
        "latency_p50_ms_10k": result["latency"][1]["p50_ms"],
        "latency_p99_ms_10k": result["latency"][1]["p99_ms"],
        "follower_keeps_up_lines_per_s": max(kept) if kept else 0,
        "dataplane_rps_quiet": quiet_rps, "dataplane_rps_streaming_10k": busy_rps,
        "dataplane_change": round(busy_rps / quiet_rps - 1, 4),
        "dataplane_per_core_quiet": quiet_core, "dataplane_per_core_streaming_10k": busy_core,
        "dataplane_per_core_change": round(busy_core / quiet_core - 1, 4) if quiet_core else None,
        "wakeproxy_core_share_idle": result["cpu"]["idle_core_share"],
        "wakeproxy_core_share_streaming_10k": result["cpu"]["streaming_10k_core_share"],
        "targets": {"follower_10k": bool(kept) and max(kept) >= 10_000,
                    "dataplane_within_5pct": busy_rps >= 0.95 * quiet_rps,
                    "dataplane_per_core_within_5pct": busy_core >= 0.95 * quiet_core},
        "machine": {"nproc": os.cpu_count(), "python": args.python, "pinned": args.pin},
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "applogs.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
