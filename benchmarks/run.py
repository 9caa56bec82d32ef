"""wakeproxy benchmark: direct nginx vs nginx as a reverse proxy vs wakeproxy, one command.

    /work/venv/bin/python benchmarks/run.py [--quick] [--duration 10] [--out benchmarks/results]

Starts an nginx upstream, nginx as a reverse proxy in front of it and wakeproxy in front
of an identical nginx it runs as its app; loads each with wrk in interleaved rounds;
times a cold wake; writes `latest.md` and `latest.json`. Every process it starts is
stopped by PID at the end, also on Ctrl-C, and its temp dir is removed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from benchlib import nginx, procs, report, wake, wakeproxy, wrk
from benchlib.procs import Processes, StartFailed
from benchlib.report import DIRECT, NGINX_PROXY, WAKEPROXY, Cell, Row

HERE = Path(__file__).resolve().parent
ROWS = (
    Row("c50", "50 conns", nginx.SMALL_PATH, 50),
    Row("c200", "200 conns", nginx.SMALL_PATH, 200),
    Row("c10", "10 conns", nginx.SMALL_PATH, 10),
    Row("large", "1 MB, 50 conns", nginx.LARGE_PATH, 50),
)
QUICK_ROWS = ("c50", "large")
LOAD_CORE, PROXY_CORE = 0, 1


class Interrupted(Exception):
    """SIGTERM arrived; unwinds like Ctrl-C so every `finally` runs."""


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="one round, 2 s each, fewer rows and wake samples (CI smoke)")
    p.add_argument("--duration", type=float, help="seconds per wrk run (default 10, quick 2)")
    p.add_argument("--rounds", type=int, help="interleaved rounds (default 3, quick 1)")
    p.add_argument("--wake-samples", type=int, help="cold wakes to time (default 10, quick 3)")
    p.add_argument("--out", type=Path, default=HERE / "results", help="where latest.* go")
    p.add_argument("--contenders", default=",".join(report.CONTENDERS),
                   help="comma-separated subset of: " + ", ".join(report.CONTENDERS))
    p.add_argument("--python", default=sys.executable, help="interpreter that runs wakeproxy")
    p.add_argument("--install", action="store_true",
                   help="apt-get install nginx-light wrk when missing (root only)")
    args = p.parse_args(argv)
    args.duration = args.duration or (2.0 if args.quick else 10.0)
    args.rounds = args.rounds or (1 if args.quick else 3)
    args.wake_samples = args.wake_samples or (3 if args.quick else 10)
    args.contenders = [c.strip() for c in args.contenders.split(",") if c.strip()]
    unknown = set(args.contenders) - set(report.CONTENDERS)
    if unknown or not args.contenders:
        p.error(f"--contenders: unknown {sorted(unknown)}; choose from {report.CONTENDERS}")
    return args


def preflight(install: bool) -> tuple[str, str]:
    """(nginx, wrk) paths, or exit saying exactly how to get them."""
    ng, wr = nginx.nginx_binary(), wrk.wrk_binary()
    if (ng is None or wr is None) and install:
        if os.geteuid() != 0:
            sys.exit("--install needs root: run `sudo apt-get install -y nginx-light wrk` instead")
        subprocess.run(["apt-get", "update"], check=False)
        subprocess.run(["apt-get", "install", "-y", "nginx-light", "wrk"], check=True)
        ng, wr = nginx.nginx_binary(), wrk.wrk_binary()
    missing = [name for name, path in (("nginx", ng), ("wrk", wr)) if path is None]
    if missing or ng is None or wr is None:
        sys.exit(
            f"missing: {', '.join(missing)}. Install with `sudo apt-get install -y nginx-light wrk`"
            " (or rerun this script as root with --install)."
        )
    return ng, wr


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise Interrupted


class Bench:
    """One run: the temp dir, the processes in it, and the numbers they produce."""

    def __init__(self, args: argparse.Namespace, ng: str, wr: str) -> None:
        self.args = args
        self.nginx, self.wrk = ng, wr
        self.pin = (os.cpu_count() or 1) >= 2 and shutil.which("taskset") is not None
        self.base = Path(tempfile.mkdtemp(prefix="wakeproxy-bench-"))
        os.chmod(self.base, 0o755)  # nginx workers run as an unprivileged user when root
        self.pid_dir = self.base / "pids"
        self.pid_dir.mkdir()
        os.chmod(self.pid_dir, 0o777)
        self.procs = Processes(pin=self.pin, pid_dir=self.pid_dir)
        self.www = self.base / "www"
        self.reporter = wrk.write_reporter(self.base)
        self.targets: dict[str, int] = {}
        # Whose RSS to read: (pid, whether to read its children instead of it).
        self.rss_of: dict[str, tuple[int, bool]] = {}
        self.wp: wakeproxy.Wakeproxy | None = None
        self.app_command = ""

    def core(self, which: int) -> int | None:
        return which if self.pin else None

    def start_nginx(
        self, name: str, conf_for: Callable[[str, int], str], core: int,
    ) -> tuple[int, procs.Started]:
        """An nginx from `conf_for(prefix, port)` on a free port; returns (port, process)."""
        port = procs.free_port()
        prefix = self.base / name
        prefix, conf = nginx.write_instance(self.base, name, conf_for(str(prefix), port))
        started = self.procs.start(name, nginx.nginx_argv(self.nginx, prefix, conf),
                                   core=self.core(core), log_path=self.base / f"{name}.log")
        procs.wait_for_port("127.0.0.1", port, 10, started)
        return port, started

    def setup(self) -> None:
        nginx.write_site(self.www)
        up_port, _ = self.start_nginx(
            "upstream", lambda pre, port: nginx.upstream_conf(pre, f"127.0.0.1:{port}", self.www),
            LOAD_CORE)
        self.targets[DIRECT] = up_port
        script = nginx.write_app_script(self.base, self.nginx, self.www, self.pid_dir,
                                        self.core(LOAD_CORE))
        self.app_command = f"/bin/sh {script}"
        if NGINX_PROXY in self.args.contenders:
            port, started = self.start_nginx(
                "nginx-proxy", lambda pre, p: nginx.proxy_conf(pre, p, up_port), PROXY_CORE)
            self.targets[NGINX_PROXY] = port
            # The worker does the proxying; the master only supervises it.
            self.rss_of[NGINX_PROXY] = (started.pid, True)
        if WAKEPROXY in self.args.contenders:
            self.start_wakeproxy()

    def start_wakeproxy(self) -> None:
        listen, admin, token = procs.free_port(), procs.free_port(), wakeproxy.new_token()
        config = self.base / "wakeproxy.yaml"
        wakeproxy.write_config(config, listen_port=listen, admin_port=admin, token=token,
                               app_command=self.app_command)
        self.wp = wakeproxy.Wakeproxy(
            self.procs, python=self.args.python, config=config,
            log_path=self.base / "wakeproxy.log", listen_port=listen, admin_port=admin,
            token=token, pid_dir=self.pid_dir, core=self.core(PROXY_CORE))
        self.wp.start()
        self.wp.warm(wakeproxy.BENCH_HOST, nginx.SMALL_PATH)
        self.targets[WAKEPROXY] = listen
        self.rss_of[WAKEPROXY] = (self.wp.pid, False)

    def rss(self, who: str) -> int | None:
        if who not in self.rss_of:
            return None
        pid, of_children = self.rss_of[who]
        values = [procs.rss_kib(p) for p in (procs.children(pid) if of_children else [pid])]
        known = [v for v in values if v is not None]
        return sum(known) if known else None

    def load(self, who: str, path: str, connections: int, duration: float) -> wrk.WrkResult:
        url = f"http://127.0.0.1:{self.targets[who]}{path}"
        prefix = ["taskset", "-c", str(LOAD_CORE)] if self.pin else []
        try:
            return wrk.run_wrk(self.wrk, url, host=wakeproxy.BENCH_HOST, connections=connections,
                               duration=duration, reporter=self.reporter, prefix=prefix)
        except wrk.WrkFailed:
            if who == WAKEPROXY and self.wp is not None:
                raise self.wp.fail(f"could not be loaded at {url}") from None
            raise

    def measure(self) -> dict[str, dict[str, Cell]]:
        a = self.args
        rows = [r for r in ROWS if not a.quick or r.key in QUICK_ROWS]
        order = [c for c in report.CONTENDERS if c in a.contenders]
        cells: dict[str, dict[str, Cell]] = {r.key: {c: Cell() for c in order} for r in rows}
        if not a.quick:  # fill pools and caches before anything is counted
            for who in order:
                self.load(who, nginx.SMALL_PATH, 50, 1)
        for rnd in range(a.rounds):
            # Rotate who goes first each round, so no contender always follows the same one.
            turn = order[rnd % len(order):] + order[: rnd % len(order)]
            for row in rows:
                for who in turn:
                    cell = cells[row.key][who]
                    if row.key == "large" and cell.rss_before_kib is None:
                        cell.rss_before_kib = self.rss(who)
                    res = self.load(who, row.path, row.connections, a.duration)
                    cell.runs.append(res)
                    if row.key == "large" and cell.rss_before_kib is not None:
                        cell.rss_after_kib = self.rss(who)
                    print(f"  round {rnd + 1}/{a.rounds}  {row.title:<15} {who:<12} "
                          f"{res.rps:>10,.0f} req/s  p50 {res.p50_ms:6.2f} ms  "
                          f"p99 {res.p99_ms:6.2f} ms", flush=True)
        return cells

    def measure_wake(self) -> wake.WakeResult | None:
        if self.wp is None:
            return None
        return wake.measure_wake(
            self.procs, self.wp, command=["/bin/sh", "-c", f"{self.app_command} probe"],
            app=wakeproxy.WAKE_APP, host=wakeproxy.WAKE_HOST, path=nginx.SMALL_PATH,
            samples=self.args.wake_samples, log_path=self.base / "startup-probe.log")

    def wakeproxy_log_bytes(self) -> int | None:
        if self.wp is None:
            return None
        try:
            return self.wp.log_path.stat().st_size
        except OSError:
            return None

    def keep_logs(self, out: Path) -> Path:
        """Copy every log of this run out of the temp dir before it is removed."""
        dest = out / "failed-run-logs"
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(parents=True)
        for log in self.base.rglob("*.log"):
            shutil.copy(log, dest / str(log.relative_to(self.base)).replace("/", "-"))
        return dest

    def close_processes(self) -> None:
        if self.wp is not None:
            self.wp.stop()
            self.wp = None
        self.procs.stop_all()

    def close(self) -> None:
        self.close_processes()
        shutil.rmtree(self.base, ignore_errors=True)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    ng, wr = preflight(args.install)
    signal.signal(signal.SIGTERM, _on_sigterm)
    bench = Bench(args, ng, wr)
    started_at = time.monotonic()
    try:
        machine = report.machine_info(nginx.nginx_version(ng), wr, bench.pin)
        print(f"benchmark: {', '.join(args.contenders)}; {args.rounds} round(s) x "
              f"{args.duration:g} s; temp dir {bench.base}", flush=True)
        bench.setup()
        cells = bench.measure()
        wake_result = bench.measure_wake()
        log_bytes = bench.wakeproxy_log_bytes()
    except (StartFailed, wrk.WrkFailed, wake.WakeMeasureFailed) as e:
        bench.close_processes()
        kept = bench.keep_logs(args.out)
        print(f"error: {e}\n(every log of this run is kept in {kept})", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, Interrupted):
        print("interrupted; stopping everything", file=sys.stderr)
        return 130
    finally:
        bench.close()
    rows = [r for r in ROWS if r.key in cells]
    machine["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    settings = {"quick": args.quick, "duration_s": args.duration, "rounds": args.rounds,
                "wake_samples": args.wake_samples, "contenders": args.contenders,
                "wall_seconds": round(time.monotonic() - started_at, 1),
                # Evidence that the access log was on (one JSON line per request).
                "wakeproxy_log_bytes": log_bytes}
    doc = report.to_json(machine, settings, rows, cells, wake_result)
    text = report.to_markdown(doc)
    args.out.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(args.out / "failed-run-logs", ignore_errors=True)  # stale once a run succeeds
    (args.out / "latest.json").write_text(json.dumps(doc, indent=2) + "\n")
    (args.out / "latest.md").write_text(text)
    print()
    print(text, end="")
    print(f"\nwritten: {args.out / 'latest.md'}, {args.out / 'latest.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
