"""The scale rows in the report: many apps, the wake storm, the sweeper, memory at idle.

Owns how those rows are judged against the performance issue's targets and how they
read in markdown. Works on the JSON-ready dicts of a run (`extra`), never runs anything.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

HELD_BYTES_GOAL = 5000  # "held-request memory <= 5 KB each"
SWEEP_MS_GOAL = 20.0
IDLE_GOALS_MIB = {10: 30.0, 10_000: 60.0}

Add = Callable[[str, str, str, bool], None]


def _case(sweeper: dict[str, Any], total: int, awake: int) -> dict[str, Any] | None:
    for c in sweeper.get("cases", []):
        if c["total"] == total and c["awake"] == awake:
            found: dict[str, Any] = c
            return found
    return None


def judge(
    add: Add, many_ratio: float | None, many_cpu_ratio: float | None, extra: dict[str, Any],
    many: int,
) -> None:
    """Add a verdict per scale target that this run measured.

    `many_ratio`: the many-app config's req/s over the small one's; `many_cpu_ratio`: the
    small config's CPU per request over the many-app one's (both 1.0 when equal), shown
    beside it because it is what throughput follows once the noise of the machine is out.
    """
    if many_ratio is not None:
        cpu = f" (CPU per request: {many_cpu_ratio:.2f}x)" if many_cpu_ratio else ""
        add(f"{many:,} apps configured, 50 connections", ">= 0.95x the small config",
            f"{many_ratio:.2f}x{cpu}", many_ratio >= 0.95)
    st = extra.get("storm")
    if st:
        n = st["requests"]
        add(f"wake storm: {n:,} concurrent requests", "all 200", f"{st['ok']:,} x 200",
            st["ok"] == n)
        add("wake storm: app starts", "exactly one", str(st["starts"]), st["starts"] == 1)
        per = st["per_held_bytes"]
        add("wake storm: memory per held request", f"<= {HELD_BYTES_GOAL / 1000:g} KB",
            f"{per / 1000:.1f} KB ({st['held_seen']:,} held at once)",
            per <= HELD_BYTES_GOAL and st["held_seen"] == n)
    sw = extra.get("sweeper")
    if sw:
        all_awake = _case(sw, many, many)
        if all_awake:
            ms = all_awake["median_ms"]
            add(f"sweeper tick over {many:,} apps (all awake)", f"<= {SWEEP_MS_GOAL:g} ms CPU",
                f"{ms:.2f} ms (max {all_awake['max_ms']:.2f})", ms <= SWEEP_MS_GOAL)
        big, small = _case(sw, many, 100), _case(sw, 100, 100)
        if big and small:
            a, b = big["median_ms"], small["median_ms"]
            # Equal within noise: sub-millisecond timings of a shared machine wobble.
            add("sweeper cost follows awake apps, not all apps",
                f"100 awake of {many:,} ~ 100 awake of 100",
                f"{a:.3f} ms vs {b:.3f} ms", a <= 1.5 * b + 0.02)
    mem = extra.get("memory") or {}
    for apps, goal in IDLE_GOALS_MIB.items():
        kib = mem.get(f"idle_rss_kib_{apps}_apps")
        if kib:
            add(f"RSS at idle, {apps:,} apps", f"<= {goal:g} MiB", f"{kib / 1024:.1f} MiB",
                kib / 1024 <= goal)


def markdown(extra: dict[str, Any], many: int) -> list[str]:
    """Notes under the load table for the scale rows."""
    notes: list[str] = []
    st = extra.get("storm")
    if st:
        other = ", ".join(f"{k}: {v}" for k, v in st["other"].items()) or "none"
        notes.append(
            f"- Wake storm: {st['requests']:,} requests to an app that takes "
            f"{st['startup_delay_s']:g} s to start; {st['held_seen']:,} held at once; "
            f"{st['ok']:,} answered 200 (other: {other}); app started {st['starts']} time(s); "
            f"RSS {st['rss_before_kib'] / 1024:.1f} → {st['rss_held_kib'] / 1024:.1f} MiB while "
            f"held = {st['per_held_bytes'] / 1000:.1f} KB per held request; answers "
            f"{st['first_answer_s']:.2f} to {st['last_answer_s']:.2f} s after the last was sent"
        )
    sw = extra.get("sweeper")
    if sw:
        cases = "; ".join(
            f"{c['awake']:,} awake of {c['total']:,}: {c['median_ms']:.3f} ms"
            for c in sw.get("cases", [])
        )
        notes.append(f"- Sweeper tick (CPU, median; real Sweeper and board in-process): {cases}")
    mem = extra.get("memory") or {}
    parts = [f"{k.split('_')[3]} apps {v / 1024:.1f} MiB" for k, v in mem.items() if v]
    if parts:
        notes.append(f"- wakeproxy RSS at idle (started, settled, nothing requested): "
                     f"{', '.join(parts)}")
    imp = extra.get("imports")
    if imp:
        steps = ", ".join(f"{s['module']} +{s['added_mib']:.1f}" for s in imp["steps"])
        rich = " (structlog loads `rich` here, a development tool)" if imp["rich_installed"] else ""
        notes.append(
            f"- What the imports weigh (MiB): bare interpreter {imp['bare_mib']:.1f}, {steps}; "
            f"total {imp['total_mib']:.1f}{rich}"
        )
    return notes
