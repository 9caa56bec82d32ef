"""How long a new pod waits for a node: no room until the cluster autoscaler adds one.

Owns the switch tests flip to leave pods where a real scheduler leaves them when no node
fits: phase Pending, condition PodScheduled False with reason Unschedulable and the
scheduler's message, no IP (so no EndpointSlice lists them), no container status. After
`delay` seconds (a node was added) the pod goes on to its image pull and start; with
`delay=None` it never does. Applies to pods started after the switch is set. Never
touches processes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

MESSAGE = "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available"


@dataclass
class Scheduling:
    delay: float | None = 0.0  # seconds before a node fits the pod; None: never

    async def wait(self, report: Callable[[str], bool], stopping: Callable[[], bool]) -> bool:
        """Wait for a node, reporting the pod unschedulable meanwhile; True once it has
        one, False if the pod is stopped (or gone) first."""
        if self.delay is not None and self.delay <= 0:
            return True
        if not report(MESSAGE):
            return False
        loop = asyncio.get_running_loop()
        fits_at = None if self.delay is None else loop.time() + self.delay
        while not stopping():
            if fits_at is not None and loop.time() >= fits_at:
                return True
            await asyncio.sleep(0.05)
        return False
