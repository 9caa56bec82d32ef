"""Results → the markdown table and the JSON file.

Owns the result model (medians per row and contender), the targets from the
performance issue and how each is judged. Never runs anything.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from benchlib import scale_report
from benchlib.wake import WakeResult
from benchlib.wrk import WrkResult

DIRECT = "direct"
NGINX_PROXY = "nginx-proxy"
FLOOR = "floor"  # benchmarks/floor_proxy.py: a flat CPython proxy with no features
CADDY = "caddy"  # Go net/http's reverse proxy, when `caddy` is installed
WAKEPROXY = "wakeproxy"
MANY_APPS = "wakeproxy-10k-apps"  # the same wakeproxy, configured with 10,000 apps
MAIN = (DIRECT, NGINX_PROXY, FLOOR, CADDY, WAKEPROXY)  # measured in every load row
CONTENDERS = (*MAIN, MANY_APPS)


@dataclass(frozen=True, slots=True)
class Row:
    key: str
    title: str
    path: str
    connections: int
    extra: tuple[str, ...] = ()  # contenders measured in this row besides MAIN

    @property
    def contenders(self) -> tuple[str, ...]:
        return (*MAIN, *self.extra)


@dataclass
class Cell:
    """One contender on one row: every round's wrk result, and the proxy's RSS around it."""

    runs: list[WrkResult] = field(default_factory=list)
    # CPU the contender's own process(es) used per request, per round (µs).
    cpu_us: list[float] = field(default_factory=list)
    rss_before_kib: int | None = None
    rss_after_kib: int | None = None

    def median(self, attr: str) -> float:
        return float(statistics.median(getattr(r, attr) for r in self.runs))

    @property
    def errors(self) -> int:
        return sum(r.socket_errors + r.status_errors for r in self.runs)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "rps": round(self.median("rps"), 1),
            "mb_per_s": round(self.median("mb_per_s"), 2),
            "p50_ms": round(self.median("p50_ms"), 3),
            "p99_ms": round(self.median("p99_ms"), 3),
            "errors": self.errors,
            "cpu_us_per_req": round(statistics.median(self.cpu_us), 2) if self.cpu_us else None,
            "rounds": [r.to_json() for r in self.runs],
            "cpu_us_per_req_rounds": [round(x, 2) for x in self.cpu_us],
        }
        if self.rss_before_kib is not None:
            out["rss_before_kib"] = self.rss_before_kib
            out["rss_after_kib"] = self.rss_after_kib
        return out


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 3) if b > 0 else None


def targets(
    cells: dict[str, dict[str, Cell]], wake: WakeResult | None, extra: dict[str, Any],
    many: int,
) -> list[dict[str, Any]]:
    """The performance issue's targets, judged from this run's medians (wakeproxy only)."""
    out: list[dict[str, Any]] = []

    def add(name: str, goal: str, measured: str, ok: bool) -> None:
        out.append({"target": name, "goal": goal, "measured": measured, "met": ok})

    def cell(row: str, who: str) -> Cell | None:
        c = cells.get(row, {}).get(who)
        return c if c is not None and c.runs else None

    for row in ("c50", "c200"):
        w, n = cell(row, WAKEPROXY), cell(row, NGINX_PROXY)
        if w and n:
            r = w.median("rps") / n.median("rps")
            add(f"throughput, {row[1:]} connections", ">= 0.85x nginx-proxy", f"{r:.2f}x",
                r >= 0.85)
    w, n = cell("c200", WAKEPROXY), cell("c200", NGINX_PROXY)
    if w and n:
        wp, npp = w.median("p99_ms"), n.median("p99_ms")
        add("p99, 200 connections", "<= 1.25x nginx-proxy", f"{wp:.2f} ms vs {npp:.2f} ms",
            wp <= 1.25 * npp)
    w, c = cell("c50", WAKEPROXY), cell("c50", CADDY)
    if w and c:
        r = w.median("rps") / c.median("rps")
        add("throughput vs Caddy, 50 connections", ">= 3.0x caddy", f"{r:.2f}x", r >= 3.0)
    w, d = cell("c10", WAKEPROXY), cell("c10", DIRECT)
    if w and d:
        added = w.median("p50_ms") - d.median("p50_ms")
        add("added p50, 10 connections", "<= direct + 0.3 ms", f"+{added:.3f} ms", added <= 0.3)
    w, n = cell("large", WAKEPROXY), cell("large", NGINX_PROXY)
    if w and n:
        r = w.median("mb_per_s") / n.median("mb_per_s")
        add("1 MB bodies, 50 connections", ">= 0.9x nginx-proxy", f"{r:.2f}x", r >= 0.9)
        if w.rss_before_kib is not None and w.rss_after_kib is not None:
            grew = (w.rss_after_kib - w.rss_before_kib) / 1024
            add("RSS during 1 MB bodies", "flat (grows < 10 MiB)", f"{grew:+.1f} MiB", grew < 10)
    if wake is not None and wake.ttfb_ms:
        o = wake.overhead_p50
        add("wake overhead", "<= 20 ms p50", f"{o:.1f} ms", o <= 20)
    w, m = cell("c50", WAKEPROXY), cell("c50", MANY_APPS)
    ratio = m.median("rps") / w.median("rps") if w and m else None
    cpu = (statistics.median(w.cpu_us) / statistics.median(m.cpu_us)
           if w and m and w.cpu_us and m.cpu_us else None)
    scale_report.judge(add, ratio, cpu, extra, many)
    return out


def to_json(
    machine: dict[str, Any], settings: dict[str, Any], rows: list[Row],
    cells: dict[str, dict[str, Cell]], wake: WakeResult | None, extra: dict[str, Any],
) -> dict[str, Any]:
    """The whole run as JSON; `extra` holds the scale rows (storm, sweeper, memory, imports)."""
    out_rows = []
    for row in rows:
        by = cells.get(row.key, {})
        contenders: dict[str, Any] = {}
        for who, c in by.items():
            if not c.runs:
                continue
            j = c.to_json()
            for base, name in ((NGINX_PROXY, "vs_nginx_proxy"), (DIRECT, "vs_direct")):
                b = by.get(base)
                metric = "mb_per_s" if row.key == "large" else "rps"
                j[name] = _ratio(c.median(metric), b.median(metric)) if b and b.runs else None
            contenders[who] = j
        out_rows.append({"row": row.key, "title": row.title, "path": row.path,
                         "connections": row.connections, "contenders": contenders})
    return {
        "machine": machine,
        "settings": settings,
        "rows": out_rows,
        "wake": wake.to_json() if wake is not None and wake.ttfb_ms else None,
        **extra,
        "targets": targets(cells, wake, extra, settings["many_apps"]),
    }


def _x(v: float | None) -> str:
    return "—" if v is None else f"{v:.2f}x"


def _us(v: float | None) -> str:
    return "—" if v is None else f"{v:.1f} µs"


def _runtime_line(rt: dict[str, Any] | None) -> list[str]:
    """Which interpreter wakeproxy ran on: it decides what the memory rows weigh."""
    if not rt:
        return []
    dev = ", ".join(rt.get("dev_only_present", [])) or "none"
    return [f"wakeproxy ran on: {rt['kind']} ({rt.get('executable', '?')}, Python "
            f"{rt.get('python', '?')}); development-only packages importable there: {dev}."]


def to_markdown(doc: dict[str, Any]) -> str:
    m, s = doc["machine"], doc["settings"]
    lines = [
        f"Run {m['date']} on {m['nproc']} x {m['cpu_model']} (Linux {m['kernel']}), "
        f"Python {m['python']}, nginx {m['nginx']}, {m['wrk']}; pinning: {m['pinning']}; "
        f"1-min load average {m['load_average_at_start'][0]} at start, "
        f"{m.get('load_average_at_end', ['?'])[0]} at end (other work on the machine adds noise).",
        f"{s['rounds']} round(s) x {s['duration_s']} s per contender and row, interleaved; "
        "each number is the median over rounds. wrk -t1, keep-alive GETs.",
        *_runtime_line(m.get("wakeproxy_runtime")),
        "",
        "| Row | Contender | req/s | MB/s | p50 | p99 | CPU/req | vs nginx-proxy | vs direct "
        "| errors |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in doc["rows"]:
        for who, c in row["contenders"].items():
            lines.append(
                f"| {row['title']} | {who} | {c['rps']:,.0f} | {c['mb_per_s']:,.1f} | "
                f"{c['p50_ms']:.2f} ms | {c['p99_ms']:.2f} ms | {_us(c.get('cpu_us_per_req'))} | "
                f"{_x(c['vs_nginx_proxy'])} | "
                f"{_x(c['vs_direct'])} | {c['errors']} |"
            )
    notes = []
    for row in doc["rows"]:
        cs = row["contenders"]
        if row["row"] == "c10" and DIRECT in cs:
            for who in (NGINX_PROXY, WAKEPROXY):
                if who in cs:
                    added = cs[who]["p50_ms"] - cs[DIRECT]["p50_ms"]
                    notes.append(f"- Added p50 latency at 10 connections, {who}: {added:+.3f} ms")
        for who, c in cs.items():
            if "rss_before_kib" in c:
                notes.append(
                    f"- {who} RSS around the 1 MB rows: {c['rss_before_kib'] / 1024:.1f} MiB → "
                    f"{c['rss_after_kib'] / 1024:.1f} MiB"
                )
    wake = doc.get("wake")
    if wake:
        notes.append(
            f"- Wake ({wake['samples']} samples): app start-up p50 "
            f"{wake['startup_p50_ms']:.1f} ms, "
            f"wakeproxy first byte for a sleeping app p50 {wake['ttfb_p50_ms']:.1f} ms → "
            f"overhead {wake['overhead_p50_ms']:.1f} ms"
        )
    notes += scale_report.markdown(doc, s["many_apps"])
    if notes:
        lines += ["", *notes]
    if doc["targets"]:
        lines += ["", "| Target (wakeproxy) | Goal | Measured | Met |", "|---|---|---|---|"]
        for t in doc["targets"]:
            lines.append(
                f"| {t['target']} | {t['goal']} | {t['measured']} | {'yes' if t['met'] else 'NO'} |"
            )
    return "\n".join(lines) + "\n"
