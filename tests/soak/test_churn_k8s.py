"""Sleep/wake churn soak on the Kubernetes emulator, with two wakeproxy replicas.

Two real `wakeproxy serve` processes share one Lease: the leader sweeps, both serve. A
client fleet per replica sends GETs, POSTs whose bodies must come back byte for byte and
WebSocket messages to a few Deployments whose `idle-after` is tiny, so the leader scales
them to zero and either replica scales them up again, over and over, while traffic flows
through both. The leader decides a sleep on activity records up to an interval old, so
requests on the follower regularly start after the last record it read: the sleep is
therefore two-phase (the leader proposes it, the follower holds the app and answers once
nothing of it is open there, and only then the leader scales to zero). Through either
replica, every request must get its own correct answer: no POST answered 502 by a dying
pod, no WebSocket cut.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import pytest

from tests.e2e_k8s.cluster import Cluster, until
from tests.k8s_emulator.fixtures import EmulatorFactory
from tests.soak.fleet import REQUEST_TIMEOUT, Fleet, Shape, Tally
from tests.soak.k8s_fleet import (
    EMULATOR,
    create_fast_app,
    replica_config,
    scale_writes,
    start_replica,
    stop,
)
from tests.soak.support import LeanWakeproxy, figure, scrape, started_pids

APPS = ("alpha", "bravo", "charlie", "delta", "echo")
# Through the leader, through the follower; "charlie" through both, so it is woken by one
# replica and used on the other.
ROUTES = (("alpha", "bravo", "charlie"), ("charlie", "delta", "echo"))
MIN_REQUESTS = 20_000
MIN_WAKES = 200
TIME_LIMIT = 80.0  # seconds of traffic at most


@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_churn_on_kubernetes_with_two_replicas_loses_no_request(
    tmp_path: Path, make_k8s_emulator: EmulatorFactory,
) -> None:
    emulator = await make_k8s_emulator(**EMULATOR)
    cluster = await Cluster(emulator.kubeconfig, "default", emulator).open()
    logs = {app: tmp_path / f"{app}.starts" for app in APPS}
    replicas: list[LeanWakeproxy] = []
    try:
        for app in APPS:
            await create_fast_app(cluster, app, logs[app], idle_after="200ms")
        a = await start_replica(tmp_path, replica_config(cluster, "wp-a"))
        replicas.append(a)
        await until(lambda: _leading(a), 15)
        b = await start_replica(tmp_path, replica_config(cluster, "wp-b"))
        replicas.append(b)

        def wakes() -> int:
            return sum(len(started_pids(p)) for p in logs.values())

        connector = aiohttp.TCPConnector(limit=64)
        timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            fleets = [Fleet(session, a.url, seed=61), Fleet(session, b.url, seed=62)]
            shape = Shape(workers=2, burst=(0.02, 0.2), gap=(0.1, 0.9))
            started = time.monotonic()
            drivers = [asyncio.create_task(f.drive(app, shape))
                       for f, apps in zip(fleets, ROUTES, strict=True) for app in apps]
            try:
                while sum(f.tally.total for f in fleets) < MIN_REQUESTS or wakes() < MIN_WAKES:
                    if time.monotonic() - started > TIME_LIMIT or any(d.done() for d in drivers):
                        break
                    await asyncio.sleep(0.25)
            finally:
                for f in fleets:
                    f.stop.set()
                await asyncio.gather(*drivers)
            seconds = time.monotonic() - started
            # Let the last bursts' apps go to sleep, so every wake has its sleep.
            await until(lambda: _all_asleep(cluster), 15, every=0.1)
            scrapes = [await scrape(session, wp) for wp in replicas]
            leader_now = [wp for wp, m in zip(replicas, scrapes, strict=True)
                          if m.total("wakeproxy_leader") == 1]

        tally = _sum([f.tally for f in fleets])
        per_replica = [f.tally.total for f in fleets]
        woke = sum(int(m.total("wakeproxy_wakes_total", result="ready")) for m in scrapes)
        failed_wakes = sum(int(m.total("wakeproxy_wakes_total")) for m in scrapes) - woke
        slept = sum(int(m.total("wakeproxy_sleeps_total")) for m in scrapes)
        held = sum(int(m.total("wakeproxy_held_duration_seconds_count")) for m in scrapes)
        ok_scales = sum(int(m.total("wakeproxy_scale_calls_total", result="ok"))
                        for m in scrapes)
        proposals = {r: sum(int(m.total("wakeproxy_sleep_proposals_total", result=r))
                            for m in scrapes) for r in ("agreed", "wanted", "unanswered")}
        figures = (
            f"k8s soak (2 replicas): {tally.total} requests sent ({tally.sent['get']} GET, "
            f"{tally.sent['post']} POST, {tally.sent['ws_upgrade']} WebSocket upgrades, "
            f"{tally.sent['ws_message']} WebSocket messages; {per_replica[0]} via wp-a, "
            f"{per_replica[1]} via wp-b) in {seconds:.1f}s; answered {tally.answered}, "
            f"lost {tally.lost}, 5xx {tally.server_errors}, wrong {tally.wrong}; "
            f"{wakes()} pods started (wakes), {slept} sleeps, {woke} wakes seen by the "
            f"replicas, {failed_wakes} failed wakes, {held} requests held; "
            f"{scale_writes(emulator)} scale writes recorded by the API "
            f"({ok_scales} ok); sleep proposals {proposals}; leader at the end: "
            f"{[wp.config_path.parent.name for wp in leader_now]}; via the leader: "
            f"{_brief(fleets[0].tally)}; via the follower: {_brief(fleets[1].tally)}"
        )
        figure("soak", figures)
        print(figures)

        assert tally.problems == [], figures + "\n" + "\n".join(tally.problems[:20])
        assert tally.lost == tally.server_errors == tally.wrong == 0, figures
        for wp in replicas:
            assert wp.server_errors == [], wp.server_errors[:5]
        assert tally.total >= MIN_REQUESTS, figures
        assert wakes() >= MIN_WAKES, figures
        assert failed_wakes == 0, figures
        assert slept >= MIN_WAKES, figures
        assert proposals["agreed"] >= MIN_WAKES // 2, figures  # the sleeps went two-phase
    finally:
        for wp in replicas:
            await asyncio.to_thread(stop, wp)
        await cluster.close()


async def _leading(wp: LeanWakeproxy) -> bool:
    async with aiohttp.ClientSession() as session:
        return (await scrape(session, wp)).total("wakeproxy_leader") == 1


async def _all_asleep(cluster: Cluster) -> bool:
    for app in APPS:
        if await cluster.replicas(app) != 0 or await cluster.running_pods(app) != 0:
            return False
    return True


def _brief(t: Tally) -> str:
    return (f"{t.total} sent, {t.lost} lost, {t.server_errors} 5xx, {t.wrong} wrong "
            f"({sum(' ws message ' in p for p in t.problems)} WebSocket messages cut)")


def _sum(tallies: list[Tally]) -> Tally:
    out = Tally()
    for t in tallies:
        out.sent.update(t.sent)
        out.answered += t.answered
        out.lost += t.lost
        out.server_errors += t.server_errors
        out.wrong += t.wrong
        out.problems.extend(t.problems)
    return out
