"""How long the emulated node takes to pull a pod's image, and whether the pull fails.

Owns the switches tests flip to make pods sit where a real node leaves them while it pulls:
phase Pending, container waiting `ContainerCreating`, but already given an IP (the pod
sandbox comes first), so the EndpointSlice lists it not ready long before anything listens.
A failing pull reports `ErrImagePull`, then `ImagePullBackOff` between retries, as the
kubelet does, and never starts the container. Applies to pods started after the switch is
set. Whatever the switches, a registry the node cannot resolve (a cluster DNS name, see
images.py) fails the same way. Never touches processes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from .images import pull_error


@dataclass
class ImagePulls:
    delay: float = 0.0  # every pull takes this long (a large image, a slow registry)
    failure: str | None = None  # then fails with this message (unknown image, no access)
    retry_interval: float = 0.2  # between a failed pull and the next attempt
    # Resolve the registry host as a node does (images.py): a cluster DNS name fails.
    resolve: bool = True

    async def pull(self, image: str, report: Callable[[str, str], bool],
                   stopping: Callable[[], bool]) -> bool:
        """Pull `image`, reporting each waiting reason; True once pulled, False if the pod
        is stopped (or gone) first."""
        unresolved = pull_error(image) if self.resolve else None
        if unresolved is not None:
            return await self._fail(image, unresolved, report, stopping)
        if self.delay <= 0 and self.failure is None:
            return True
        if not report("ContainerCreating", f"pulling image {image!r}"):
            return False
        attempt_ends = asyncio.get_running_loop().time() + self.delay
        while not stopping():
            left = attempt_ends - asyncio.get_running_loop().time()
            if left > 0:
                await asyncio.sleep(min(left, 0.05))
                continue
            if self.failure is None:
                return True
            return await self._fail(image, f"failed to pull image {image!r}: {self.failure}",
                                    report, stopping)
        return False

    async def _fail(self, image: str, message: str, report: Callable[[str, str], bool],
                    stopping: Callable[[], bool]) -> bool:
        """ErrImagePull, then ImagePullBackOff between retries, until the pod stops."""
        while not stopping():
            if not report("ErrImagePull", message):
                return False
            await asyncio.sleep(self.retry_interval)
            if not report("ImagePullBackOff", f'Back-off pulling image "{image}"'):
                return False
            await asyncio.sleep(self.retry_interval)
        return False
