"""App logs on Kubernetes: every pod of the app followed at once, through the emulator's
kubelet (pods as local processes) and its `pods/log`, as wakeproxy's ServiceAccount."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any

import aiohttp

from tests.e2e.harness import ECHO_APP
from tests.k8s_emulator import Emulator
from tests.platforms.kubernetes.support import World, app_deployment, until
from tests.platforms.kubernetes.test_platform import set_replicas
from wakeproxy.model.applog import ASLEEP, Follower
from wakeproxy.model.apps import Endpoint

MakeWorld = Callable[..., Coroutine[Any, Any, World]]
APP = "default.talk"


class Reader:
    """Collects what a follower yields, as the admin endpoint would."""

    def __init__(self, follower: Follower) -> None:
        self.follower = follower
        self.lines: list[str] = []
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        while (batch := await self.follower.next()) is not None:
            self.lines += batch

    async def wait(self, check: Callable[[list[str]], bool], within: float = 15.0) -> None:
        try:
            await until(lambda: check(self.lines), within)
        except TimeoutError:
            raise AssertionError(f"not seen; got {self.lines[-20:]}") from None


async def say(endpoint: Endpoint, n: int, tag: str) -> int:
    async with aiohttp.ClientSession() as s, s.get(
            f"http://{endpoint.host}:{endpoint.port}/say?n={n}&tag={tag}") as resp:
        await resp.read()
    async with aiohttp.ClientSession() as s, s.get(
            f"http://{endpoint.host}:{endpoint.port}/") as resp:
        return int((await resp.text()).rsplit("pid=", 1)[1])


async def answering(endpoint: Endpoint, within: float = 10.0) -> None:
    """Until the container at `endpoint` answers (a restarted one starts listening)."""
    async with asyncio.timeout(within), aiohttp.ClientSession() as s:
        while True:
            try:
                async with s.get(f"http://{endpoint.host}:{endpoint.port}/") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.02)


def talk() -> dict[str, Any]:
    return app_deployment("talk", hosts="talk.example.com",
                          command=[sys.executable, str(ECHO_APP)])


def pod_lines(lines: list[str], tag: str) -> list[str]:
    return [x.split("] ", 1)[1] for x in lines if "] " in x and x.split("] ", 1)[1]
            .startswith(tag + " ")]


async def test_every_pod_is_followed_tagged_and_joins_when_it_starts(
        k8s_emulator: Emulator, make_world: MakeWorld) -> None:
    k8s_emulator.create(talk())
    world = await make_world(k8s_emulator)
    reader = Reader(world.platform.follow_output(APP, 10, follow=True))
    await reader.wait(lambda lines: lines == [ASLEEP])  # no pod: the app sleeps

    (endpoint,) = await world.platform.wake(APP, timeout=10)  # a wake: its pod joins
    await say(endpoint, 3, "one")
    await reader.wait(lambda lines: len(pod_lines(lines, "one")) == 3)
    joined = [x for x in reader.lines if x.startswith("==> pod talk-") and x.endswith(" joined")]
    assert len(joined) == 1
    pod = joined[0].split()[2]
    assert f"[{pod}] one 0" in reader.lines

    set_replicas(k8s_emulator, "talk", 2)  # a second pod joins the same stream
    await reader.wait(lambda lines: sum(x.endswith(" joined") for x in lines) == 2)
    second = [x.split()[2] for x in reader.lines if x.endswith(" joined")][1]
    await reader.wait(lambda lines: any(x.startswith(f"[{second}] ") for x in lines))

    set_replicas(k8s_emulator, "talk", 0)  # asleep: the pods end, the stream says so
    await reader.wait(lambda lines: lines[-1] == ASLEEP and
                      sum(x.endswith(" ended") for x in lines) == 2)
    assert not reader.task.done()
    reader.follower.close()
    await asyncio.wait_for(reader.task, 5)
    await until(lambda: not world.platform._log_readers, 5)  # its streams went with it


async def test_a_restarted_pod_resumes_where_it_left_off(
        k8s_emulator: Emulator, make_world: MakeWorld) -> None:
    k8s_emulator.create(talk())
    world = await make_world(k8s_emulator)
    (endpoint,) = await world.platform.wake(APP, timeout=10)
    reader = Reader(world.platform.follow_output(APP, 100, follow=True))
    pid = await say(endpoint, 3, "before")
    await reader.wait(lambda lines: len(pod_lines(lines, "before")) == 3)
    os.kill(pid, signal.SIGKILL)  # the container dies; the kubelet restarts it
    # The restarted container's first line comes through the reopened stream.
    await reader.wait(lambda lines: sum(" listening on " in x for x in lines) == 2)
    # It prints that just before it listens. (The board's phase says nothing here: the
    # wake above went to the platform directly, so the lifecycle never saw the app awake,
    # and a crash within the readiness publication's lag changes nothing it reports.)
    await answering(endpoint)
    await say(endpoint, 2, "after")
    await reader.wait(lambda lines: len(pod_lines(lines, "after")) >= 2)
    # Nothing shown twice: the reopened stream skipped what came before the restart.
    assert pod_lines(reader.lines, "before") == ["before 0", "before 1", "before 2"]
    reader.follower.close()


async def test_without_follow_the_last_lines_of_all_pods_then_the_end(
        k8s_emulator: Emulator, make_world: MakeWorld) -> None:
    k8s_emulator.create(talk())
    world = await make_world(k8s_emulator)
    reader = Reader(world.platform.follow_output(APP, 10, follow=False))
    await asyncio.wait_for(reader.task, 10)
    assert reader.lines == [ASLEEP]
    (endpoint,) = await world.platform.wake(APP, timeout=10)
    await say(endpoint, 5, "x")
    await asyncio.sleep(0.2)
    reader = Reader(world.platform.follow_output(APP, 2, follow=False))
    await asyncio.wait_for(reader.task, 10)
    assert pod_lines(reader.lines, "x") == ["x 3", "x 4"] and len(reader.lines) == 2
