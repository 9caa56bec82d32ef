"""Whose pull requests are built: the one decision between a webhook and running code.

A review app runs a pull request's build script and app on our machines. A pull request
whose head is in the repository itself was pushed by someone with write access, so it
is built. One from a fork can come from anyone on GitHub: it is built only if its author
is trusted (a login in `trusted_authors`, or an `author_association` in
`trusted_associations`: by default OWNER, MEMBER, COLLABORATOR), or as `forks` says:

- `never` (the default): not built.
- `label`: built when a maintainer adds `fork_label` (only people with triage or write
  access can label), and only the commit that was the head then: a later push is not
  built until the label is added again (removed and re-added), so an approved pull
  request cannot be swapped for other code afterwards.
- `always`: built like any other (only for private repositories whose forks are trusted).

`closed` is always handled (it only deletes). Must never: let a fork's commit through
without one of the above, or treat a pull request with no head repository as not a fork.
"""

from __future__ import annotations

from dataclasses import dataclass

from wakeproxy.controllers.webhook import PullRequestEvent
from wakeproxy.settings import ReviewApps as ReviewSettings


@dataclass(frozen=True, slots=True)
class Verdict:
    build: bool
    reason: str = ""  # why not, for the webhook's 202 answer and the log


def judge(event: PullRequestEvent, s: ReviewSettings) -> Verdict:
    """Whether `event` may build (or, for `closed`, delete) its review apps."""
    if event.action == "closed":
        return Verdict(True)
    trusted = (not event.from_fork or event.author in s.trusted_authors
               or event.association in s.trusted_associations)
    if event.action == "labeled":
        if event.label != s.fork_label:
            return Verdict(False, f"label {event.label!r} is not review_apps.fork_label")
        if trusted or s.forks != "label":
            return Verdict(False, "the label changes nothing: this pull request is built "
                           "on its pushes" if trusted or s.forks == "always" else
                           "the label builds nothing: review_apps.forks is never")
        return Verdict(True)
    if trusted or s.forks == "always":
        return Verdict(True)
    origin = event.head_repo or "a deleted fork"
    if s.forks == "label":
        return Verdict(False, f"pull request #{event.number} is from a fork ({origin}) by "
                       f"{event.author or 'an unknown author'}: a maintainer adds the label "
                       f"{s.fork_label!r} to build this commit (again after each push)")
    return Verdict(False, f"pull request #{event.number} is from a fork ({origin}) by "
                   f"{event.author or 'an unknown author'}: forks are not built "
                   "(review_apps.forks: never; trusted_authors lists exceptions)")
