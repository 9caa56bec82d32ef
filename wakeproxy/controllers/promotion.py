"""Promotion: the release one stage of a pipeline runs, deployed onto the next stage.

Owns what a promotion reports (`Promotion`) and which app is an app's next stage (its
`promote_to` in the config file). A promotion never builds: locally the next stage runs
the very build directory, on Kubernetes the very image reference the stage's Deployment
runs. Must never: deploy anything itself (the platform's deployer does).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from wakeproxy.controllers.errors import NoNextStage
from wakeproxy.model.apps import AppPolicy


@dataclass(frozen=True, slots=True)
class Promotion:
    app: str  # the stage promoted from
    to: str  # the next stage, which now runs the release
    build: str  # the build id of the release ("" for a prebuilt image)
    commit: str | None
    outcome: str  # what the deploy did, in words
    image: str | None = None  # on Kubernetes: the image reference promoted

    def view(self) -> dict[str, Any]:
        return {"app": self.app, "to": self.to, "build": self.build, "commit": self.commit,
                "outcome": self.outcome, "image": self.image}


class Stages:
    """Each app's next stage, as the config file declares them (a review app, made at run
    time, has none)."""

    def __init__(self, policies: Iterable[AppPolicy], config_file: str) -> None:
        self._next = {p.name: p.promote_to for p in policies if p.promote_to}
        self._config_file = config_file

    def next_of(self, app: str) -> str:
        """The app `app` promotes to. Raises NoNextStage."""
        target = self._next.get(app)
        if target is None:
            raise NoNextStage(app, self._config_file)
        return target
