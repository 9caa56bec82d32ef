"""What can go wrong in a build, deploy or webhook, as types (the API maps them to statuses).

Must never: carry a traceback or internal state in a message; messages are for users.
"""

from __future__ import annotations


class ControllerError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UnknownApp(ControllerError, LookupError):
    def __init__(self, app: str) -> None:
        super().__init__(f"no app named {app!r}")
        self.app = app


class UnknownBuild(ControllerError, LookupError):
    def __init__(self, build_id: str) -> None:
        super().__init__(f"no build {build_id!r}")


class NotBuildable(ControllerError):
    """The app has no `repo` to build from."""


class DeclaredInConfig(ControllerError):
    """The app is declared in the config file: only removing it there deletes it for good
    (a runtime delete would last until the next restart, which reads the file again)."""

    def __init__(self, app: str, config_file: str) -> None:
        super().__init__(
            f"{app} is declared in {config_file}: remove it from apps: there and restart "
            "wakeproxy to delete it (wakeproxy delete removes apps made at run time, such "
            "as review apps)")


class NoNextStage(ControllerError):
    """`wakeproxy promote` of an app with no `promote_to` (not a stage of a pipeline)."""

    def __init__(self, app: str, config_file: str) -> None:
        super().__init__(f"{app} has no next stage to promote to: give it promote_to (the "
                         f"app it promotes to) in {config_file}")


class NotManaged(ControllerError):
    """The app is a Deployment someone else deploys (declared by its annotations alone):
    wakeproxy neither deploys onto it nor promotes from it."""

    def __init__(self, app: str) -> None:
        super().__init__(
            f"{app} is a Deployment wakeproxy does not deploy (an app declared by its "
            "annotations): wakeproxy promotes only apps it deploys (apps of its config file "
            f"built from a repo, with promote_to there); promote {app} with the tool that "
            "deploys it")


class NotDeployable(ControllerError):
    """The build cannot be deployed (failed, still running, or of another app)."""


class DeployFailed(ControllerError):
    """The new release did not get ready, or its hosts clash; the previous one serves."""


class WebhookRefused(ControllerError):
    """The delivery is not signed with our secret (or review apps are not configured)."""


class BadWebhook(ControllerError):
    """A webhook delivery that is not what GitHub sends."""


class InvalidRef(ControllerError):
    """A ref to build that is not a branch, tag, commit or revision (or not one this
    platform can resolve)."""


class CapReached(ControllerError):
    """A cap that protects memory and the cluster was reached (review apps per repository,
    builds waiting); `cap` is its config key."""

    def __init__(self, cap: str, message: str) -> None:
        super().__init__(message)
        self.cap = cap
