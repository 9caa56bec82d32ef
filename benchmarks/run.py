"""wakeproxy benchmark: direct nginx vs nginx as a reverse proxy vs wakeproxy, one command.

    /work/venv/bin/python benchmarks/run.py [--quick] [--duration 10] [--out benchmarks/results]

Starts an nginx upstream, nginx as a reverse proxy in front of it and wakeproxy in front
of an identical nginx it runs as its app (plus a second wakeproxy configured with 10,000
apps); loads each with wrk in interleaved rounds; times a cold wake; sends a storm of
concurrent requests to a sleeping app; weighs wakeproxy at idle; times the sweeper's
tick in-process; writes `latest.md` and `latest.json`. Every process it starts is
stopped by PID at the end, also on Ctrl-C, and its temp dir is removed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from benchlib import (
    machine,
    nginx,
    options,
    procs,
    report,
    runtime,
    scale,
    storm,
    wake,
    wakeproxy,
    wrk,
)
from benchlib.procs import Processes, StartFailed
from benchlib.report import CADDY, DIRECT, FLOOR, MANY_APPS, NGINX_PROXY, WAKEPROXY, Cell, Row

HERE = Path(__file__).resolve().parent
ROWS = (
    # The 10,000-app wakeproxy is measured in this row only: its ratio to the small one.
    Row("c50", "50 conns", nginx.SMALL_PATH, 50, extra=(MANY_APPS,)),
    Row("c200", "200 conns", nginx.SMALL_PATH, 200),
    Row("c10", "10 conns", nginx.SMALL_PATH, 10),
    Row("large", "1 MB, 50 conns", nginx.LARGE_PATH, 50),
)
QUICK_ROWS = ("c50", "large")
LOAD_CORE, PROXY_CORE = 0, 1
MANY = 10_000  # apps configured in the MANY_APPS contender
IDLE_APPS = 10  # apps configured in the instance weighed at idle


class Interrupted(Exception):
    """SIGTERM arrived; unwinds like Ctrl-C so every `finally` runs."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise Interrupted


class Bench:
    """One run: the temp dir, the processes in it, and the numbers they produce."""

    def __init__(self, args: argparse.Namespace, ng: str, wr: str, rt: runtime.Runtime) -> None:
        self.args = args
        # Every wakeproxy process and probe runs on this interpreter (see benchlib/runtime.py).
        self.rt = rt
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
        self.wps: dict[str, wakeproxy.Wakeproxy] = {}
        self.app_command = ""
        self.memory: dict[str, Any] = {}

    @property
    def wp(self) -> wakeproxy.Wakeproxy | None:
        return self.wps.get(WAKEPROXY)

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
        up_port, upstream = self.start_nginx(
            "upstream", lambda pre, port: nginx.upstream_conf(pre, f"127.0.0.1:{port}", self.www),
            LOAD_CORE)
        self.targets[DIRECT] = up_port
        self.rss_of[DIRECT] = (upstream.pid, True)
        script = nginx.write_app_script(self.base, self.nginx, self.www, self.pid_dir,
                                        self.core(LOAD_CORE))
        self.app_command = f"/bin/sh {script}"
        if NGINX_PROXY in self.args.contenders:
            pool = max(512, 2 * max(r.connections for r in ROWS))
            port, started = self.start_nginx(
                "nginx-proxy", lambda pre, p: nginx.proxy_conf(pre, p, up_port, pool), PROXY_CORE)
            self.targets[NGINX_PROXY] = port
            # The worker does the proxying; the master only supervises it.
            self.rss_of[NGINX_PROXY] = (started.pid, True)
        if FLOOR in self.args.contenders:
            port = procs.free_port()
            started = self.procs.start(
                FLOOR, [self.rt.python, str(HERE / "floor_proxy.py"), str(port), "127.0.0.1",
                        str(up_port)],
                core=self.core(PROXY_CORE), log_path=self.base / "floor.log", env=self.rt.env)
            procs.wait_for_port("127.0.0.1", port, 10, started)
            self.targets[FLOOR] = port
            self.rss_of[FLOOR] = (started.pid, False)
        caddy = shutil.which("caddy")
        if CADDY in self.args.contenders and caddy is None:
            print("  caddy is not installed: skipping that contender", flush=True)
        elif CADDY in self.args.contenders and caddy is not None:
            port = procs.free_port()
            caddyfile = self.base / "Caddyfile"
            caddyfile.write_text("{\n\tadmin off\n\tauto_https off\n}\n"
                                 f":{port} {{\n\tbind 127.0.0.1\n"
                                 f"\treverse_proxy 127.0.0.1:{up_port}\n}}\n")
            started = self.procs.start(
                CADDY, [caddy, "run", "--config", str(caddyfile), "--adapter", "caddyfile"],
                core=self.core(PROXY_CORE), log_path=self.base / "caddy.log",
                # One core's worth of Go, like every other contender here.
                env={"GOMAXPROCS": "1", "HOME": str(self.base)})
            procs.wait_for_port("127.0.0.1", port, 30, started)
            self.targets[CADDY] = port
            self.rss_of[CADDY] = (started.pid, False)
        if WAKEPROXY in self.args.contenders:
            self.start_wakeproxy(WAKEPROXY, storm_delay=self.args.storm_delay)
            many = self.start_wakeproxy(MANY_APPS, extra_apps=MANY - 2, warm=False)
            # Idle: started, settled, nothing requested yet.
            self.memory[f"idle_rss_kib_{MANY}_apps"] = scale.settled_rss_kib(many.pid)
            many.warm(wakeproxy.BENCH_HOST, nginx.SMALL_PATH)

    def start_wakeproxy(self, who: str, *, extra_apps: int = 0, storm_delay: float | None = None,
                        warm: bool = True) -> wakeproxy.Wakeproxy:
        listen, admin, token = procs.free_port(), procs.free_port(), wakeproxy.new_token()
        config = self.base / f"{who}.yaml"
        wakeproxy.write_config(config, listen_port=listen, admin_port=admin, token=token,
                               app_command=self.app_command, extra_apps=extra_apps,
                               storm_delay=storm_delay)
        wp = self.wps[who] = wakeproxy.Wakeproxy(
            self.procs, python=self.rt.python, config=config,
            log_path=self.base / f"{who}.log", listen_port=listen, admin_port=admin,
            token=token, pid_dir=self.pid_dir, core=self.core(PROXY_CORE), env=self.rt.env)
        wp.start(timeout=120)
        if warm:
            wp.warm(wakeproxy.BENCH_HOST, nginx.SMALL_PATH)
        self.targets[who] = listen
        self.rss_of[who] = (wp.pid, False)
        return wp

    def pids(self, who: str) -> list[int]:
        """The processes doing `who`'s work (nginx: its workers, not the master)."""
        if who not in self.rss_of:
            return []
        pid, of_children = self.rss_of[who]
        return procs.children(pid) if of_children else [pid]

    def rss(self, who: str) -> int | None:
        known = [v for v in map(procs.rss_kib, self.pids(who)) if v is not None]
        return sum(known) if known else None

    def cpu(self, who: str) -> float | None:
        known = [v for v in map(procs.cpu_seconds, self.pids(who)) if v is not None]
        return sum(known) if known else None

    def load(self, who: str, path: str, connections: int, duration: float) -> wrk.WrkResult:
        url = f"http://127.0.0.1:{self.targets[who]}{path}"
        prefix = ["taskset", "-c", str(LOAD_CORE)] if self.pin else []
        try:
            return wrk.run_wrk(self.wrk, url, host=wakeproxy.BENCH_HOST, connections=connections,
                               duration=duration, reporter=self.reporter, prefix=prefix)
        except wrk.WrkFailed:
            if who in self.wps:
                raise self.wps[who].fail(f"could not be loaded at {url}") from None
            raise

    def measure(self) -> dict[str, dict[str, Cell]]:
        a = self.args
        rows = [r for r in ROWS if not a.quick or r.key in QUICK_ROWS]
        order = [c for c in report.CONTENDERS if c in self.targets]
        cells: dict[str, dict[str, Cell]] = {
            r.key: {c: Cell() for c in order if c in r.contenders} for r in rows}
        if not a.quick:  # fill pools and caches before anything is counted
            for who in order:
                self.load(who, nginx.SMALL_PATH, 50, 1)
        for rnd in range(a.rounds):
            # Rotate who goes first each round, so no contender always follows the same one.
            turn = order[rnd % len(order):] + order[: rnd % len(order)]
            for row in rows:
                for who in (w for w in turn if w in cells[row.key]):
                    cell = cells[row.key][who]
                    if row.key == "large" and cell.rss_before_kib is None:
                        cell.rss_before_kib = self.rss(who)
                    cpu_before = self.cpu(who)
                    res = self.load(who, row.path, row.connections, a.duration)
                    cpu_after = self.cpu(who)
                    cell.runs.append(res)
                    if cpu_before is not None and cpu_after is not None and res.requests:
                        cell.cpu_us.append((cpu_after - cpu_before) / res.requests * 1e6)
                    if row.key == "large" and cell.rss_before_kib is not None:
                        cell.rss_after_kib = self.rss(who)
                    cpu = f"  CPU {cell.cpu_us[-1]:5.1f} µs/req" if cell.cpu_us else ""
                    print(f"  round {rnd + 1}/{a.rounds}  {row.title:<15} {who:<18} "
                          f"{res.rps:>10,.0f} req/s  p50 {res.p50_ms:6.2f} ms  "
                          f"p99 {res.p99_ms:6.2f} ms{cpu}", flush=True)
        return cells

    def measure_wake(self) -> wake.WakeResult | None:
        if self.wp is None:
            return None
        return wake.measure_wake(
            self.procs, self.wp, command=["/bin/sh", "-c", f"{self.app_command} probe"],
            app=wakeproxy.WAKE_APP, host=wakeproxy.WAKE_HOST, path=nginx.SMALL_PATH,
            samples=self.args.wake_samples, log_path=self.base / "startup-probe.log")

    def measure_storm(self) -> storm.StormResult | None:
        if self.wp is None:
            return None
        print(f"  wake storm: {self.args.storm} requests to an app that takes "
              f"{self.args.storm_delay:g} s to start", flush=True)
        return storm.run_storm(
            self.wp, app=wakeproxy.STORM_APP, host=wakeproxy.STORM_HOST, path=nginx.SMALL_PATH,
            n=self.args.storm, starts_file=self.pid_dir / f"{wakeproxy.STORM_APP}.starts",
            startup_delay=self.args.storm_delay)

    def measure_scale(self) -> dict[str, Any]:
        """Idle memory with a few apps, the sweeper's tick, and what the imports weigh."""
        out: dict[str, Any] = {"memory": self.memory}
        if WAKEPROXY in self.args.contenders:
            idle = self.start_wakeproxy("wakeproxy-idle", extra_apps=IDLE_APPS - 2, warm=False)
            self.memory[f"idle_rss_kib_{IDLE_APPS}_apps"] = scale.settled_rss_kib(idle.pid)
            idle.stop()
            del self.wps["wakeproxy-idle"]
        print("  sweeper tick, in-process", flush=True)
        ticks = "20" if self.args.quick else "50"
        out["sweeper"] = scale.run_probe(self.rt.python, "sweep_cost", "--total", str(MANY),
                                         "--ticks", ticks, env=self.rt.env)
        # About a second: run in quick runs too, so `--quick` reproduces every memory figure.
        out["imports"] = scale.run_probe(self.rt.python, "import_cost", env=self.rt.env)
        return out

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
        for wp in self.wps.values():
            wp.stop()
        self.wps.clear()
        self.procs.stop_all()

    def close(self) -> None:
        self.close_processes()
        shutil.rmtree(self.base, ignore_errors=True)


def main(argv: list[str]) -> int:
    args = options.parse_args(argv, description=__doc__.split("\n\n")[0],
                              results=HERE / "results")
    ng, wr = options.preflight(args.install)
    try:
        rt = runtime.resolve(args.python, args.out)
    except runtime.RuntimeUnavailable as e:
        print(f"error: no interpreter to run wakeproxy on: {e}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _on_sigterm)
    bench = Bench(args, ng, wr, rt)
    started_at = time.monotonic()
    try:
        info = machine.machine_info(nginx.nginx_version(ng), wr, bench.pin)
        info["wakeproxy_runtime"] = runtime.describe(rt)
        print(f"benchmark: {', '.join(args.contenders)}; {args.rounds} round(s) x "
              f"{args.duration:g} s; temp dir {bench.base}", flush=True)
        bench.setup()
        cells = bench.measure()
        wake_result = bench.measure_wake()
        storm_result = bench.measure_storm()
        extra = bench.measure_scale()
        log_bytes = bench.wakeproxy_log_bytes()
    except (StartFailed, wrk.WrkFailed, wake.WakeMeasureFailed, storm.StormFailed,
            scale.ProbeFailed) as e:
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
    info["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    settings = {"quick": args.quick, "duration_s": args.duration, "rounds": args.rounds,
                "wake_samples": args.wake_samples, "contenders": args.contenders,
                "storm": args.storm, "storm_delay_s": args.storm_delay, "many_apps": MANY,
                "wall_seconds": round(time.monotonic() - started_at, 1),
                # Evidence that the access log was on (one JSON line per request).
                "wakeproxy_log_bytes": log_bytes}
    extra["storm"] = storm_result.to_json() if storm_result is not None else None
    doc = report.to_json(info, settings, rows, cells, wake_result, extra)
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
