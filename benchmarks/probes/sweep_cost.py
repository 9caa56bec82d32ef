"""CPU per sweeper tick, measured in-process with the real Sweeper, board and ledger.

    python benchmarks/probes/sweep_cost.py [--total 10000] [--ticks 50]

Builds a ReadinessBoard of `total` apps, wakes some of them (recently used, so none is
due and a tick is pure decision work), and times `Sweeper.sweep()` with
`time.process_time`. Prints one JSON object: per case (total apps, awake apps), the
median and max CPU milliseconds of a tick. Run by `benchmarks/run.py` with the
interpreter that runs wakeproxy; it imports wakeproxy, nothing else in benchmarks does.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from typing import Any

from wakeproxy.controlplane.sweeper import Sweeper
from wakeproxy.model.activity import ActivityLedger
from wakeproxy.model.apps import AppPolicy, Endpoint
from wakeproxy.model.board import ReadinessBoard
from wakeproxy.model.clock import SystemClock
from wakeproxy.model.peers import PeerActivity


class _NoSleep:
    """The lifecycle a tick would ask to put apps to sleep: in these cases none is due."""

    def begin_sleep(self, app: str) -> Any:
        raise AssertionError(f"{app} was due; the probe keeps every app busy or fresh")


def tick_cost(total: int, awake: int, ticks: int) -> dict[str, Any]:
    clock = SystemClock()
    board, ledger = ReadinessBoard(clock), ActivityLedger(clock)
    for i in range(total):
        board.put(AppPolicy(name=f"app{i:05d}", hosts=(f"app{i:05d}.test",), idle_after=3600))
    endpoint = Endpoint("127.0.0.1", 1)
    for i in range(awake):
        name = f"app{i:05d}"
        board.mark_waking(name)
        board.mark_ready(name, (endpoint,))
        ledger.begin(name)
        if i % 2:  # half of them idle (but not for long), half serving a request
            ledger.end(name)
    sweeper = Sweeper(board=board, ledger=ledger, lifecycle=_NoSleep(),  # type: ignore[arg-type]
                      clock=clock, interval=1.0, peers=PeerActivity(stale_after=16.0))
    costs = []
    for _ in range(ticks):
        started = time.process_time()
        swept = sweeper.sweep()
        costs.append((time.process_time() - started) * 1000)
        assert not swept
    return {"total": total, "awake": awake, "ticks": ticks,
            "median_ms": round(statistics.median(costs), 4), "max_ms": round(max(costs), 4)}


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--total", type=int, default=10000)
    p.add_argument("--ticks", type=int, default=50)
    a = p.parse_args(argv)
    cases = [(a.total, 0), (a.total, 100), (a.total, a.total // 10), (a.total, a.total),
             (100, 100), (a.total // 10, a.total // 10)]
    out = [tick_cost(total, awake, a.ticks) for total, awake in dict.fromkeys(cases)]
    print(json.dumps({"cases": out}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
