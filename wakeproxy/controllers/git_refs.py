"""A branch or tag name → the commit it names now, with `git ls-remote` (no clone).

Builds on Kubernetes run in a Job that fetches the source itself; resolving the ref here
first lets the build record, the Job and the image tag name the exact commit built, and a
branch that moves while the Job starts cannot change what is built. A full commit id is
taken as it is (no call). Names resolve as `git fetch` resolves them on the local
platform: the exact ref, then `refs/<ref>`, `refs/tags/<ref>` (an annotated tag peeled to
its commit), `refs/heads/<ref>`. Must never: prompt for credentials, or wait without end.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from collections.abc import Mapping

_COMMIT = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
_TIMEOUT = 60.0
_STDERR_LINES = 3


class Unresolved(Exception):
    """The ref names no commit in the repository, or the repository could not be read."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def is_commit(ref: str) -> bool:
    return _COMMIT.match(ref.lower()) is not None


def pick(ref: str, listing: str) -> str | None:
    """The commit `ref` names among `git ls-remote` output lines (`<sha>\\t<refname>`)."""
    refs: dict[str, str] = {}
    for line in listing.splitlines():
        sha, _, name = line.partition("\t")
        if name and _COMMIT.match(sha):
            refs[name.strip()] = sha
    for name in (ref, f"refs/{ref}", f"refs/tags/{ref}", f"refs/heads/{ref}"):
        # An annotated tag's own id is not a commit: its peeled line (`^{}`) is.
        found = refs.get(f"{name}^{{}}") or refs.get(name)
        if found is not None:
            return found
    return None


async def resolve(repo: str, ref: str, *, environ: Mapping[str, str] | None = None,
                  timeout: float = _TIMEOUT) -> str:  # noqa: ASYNC109
    """The commit `ref` names in `repo` now. Raises Unresolved with a reason for people."""
    if is_commit(ref):
        return ref.lower()
    env = {**(os.environ if environ is None else environ), "GIT_TERMINAL_PROMPT": "0"}
    try:
        proc = await asyncio.create_subprocess_exec(
            # `<ref>^{}` too: a pattern alone does not match an annotated tag's peeled line.
            "git", "ls-remote", "--", repo, ref, f"{ref}^{{}}", stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env)
    except OSError as e:
        raise Unresolved(f"git ls-remote could not start: {e.strerror}") from None
    try:
        async with asyncio.timeout(timeout):
            out, err = await proc.communicate()
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        raise Unresolved(f"git ls-remote {repo} did not answer within {timeout:g}s") from None
    if proc.returncode != 0:
        lines = [x for x in err.decode(errors="replace").splitlines() if x.strip()]
        why = " | ".join(lines[-_STDERR_LINES:]) or f"exit code {proc.returncode}"
        raise Unresolved(f"git ls-remote {repo} failed: {why}")
    commit = pick(ref, out.decode(errors="replace"))
    if commit is None:
        raise Unresolved(f"{repo} has no branch or tag named {ref!r} (give a branch, a tag "
                         "or a full commit id)")
    return commit
