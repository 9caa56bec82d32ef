"""What a build may be asked to build, and a branch or tag name → the commit it names now.

`check_ref` is the one gate for refs that come from users (the admin API, the CLI): a ref
reaches git only after it passed, and always after `--end-of-options`, so it can never
be read as an option (`--upload-pack=CMD` would run CMD). `kind` tells a full commit id,
a plain name (branch, tag, HEAD) and a revision expression (`HEAD~1`, `main^`, a short
commit id), which only a fetched repository can resolve (`git rev-parse`).

`resolve` turns a name into a commit with `git ls-remote` (no clone).

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

from wakeproxy.model.redact import redact

_COMMIT = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
# A name as git allows it in a ref (no space, control character, ~ ^ : ? * [ or a
# backslash), then
# any number of `~N` / `^N` steps. `..` (a range) and `@{` (the reflog) are refused below.
_NAME_CHARS = r"[^\x00-\x20\x7f~^:?*\[\\]"
_REVISION = re.compile(rf"(?!-)(?!/){_NAME_CHARS}+(?:[~^][0-9]*)*")
_SHORT = re.compile(r"[0-9a-fA-F]{4,39}")
MAX_REF = 255
COMMIT, NAME, REVISION = "commit", "name", "revision"
_TIMEOUT = 60.0
_STDERR_LINES = 3


class Unresolved(Exception):
    """The ref names no commit in the repository, or the repository could not be read."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class BadRef(ValueError):
    """A ref that is not a branch, tag, commit or revision git may be given."""


def check_ref(raw: str) -> str:
    """The ref to build, stripped, once it is safe to hand to git. Raises BadRef."""
    ref = raw.strip()
    if (not ref or len(ref) > MAX_REF or not _REVISION.fullmatch(ref) or ".." in ref
            or "@{" in ref or ref.endswith((".", "/", ".lock")) or "//" in ref):
        raise BadRef(f"{ref[:80]!r} is not a branch, tag, commit or revision like main, "
                     "v1.2, 3f2a9c1 or HEAD~1")
    return ref


def is_commit(ref: str) -> bool:
    return _COMMIT.match(ref.lower()) is not None


def kind(ref: str) -> str:
    """COMMIT (a full id), NAME (a branch, a tag, HEAD) or REVISION (`main~2`, `v1^`, a
    short commit id: only `git rev-parse` in a fetched repository can resolve it)."""
    if is_commit(ref):
        return COMMIT
    if "~" in ref or "^" in ref or _SHORT.fullmatch(ref):
        return REVISION
    return NAME


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
    if "~" in ref or "^" in ref:
        raise Unresolved(f"{ref!r} is a revision expression; on Kubernetes builds resolve "
                         "names with git ls-remote, which lists branches and tags only: give "
                         "a branch, a tag or a full commit id")
    env = {**(os.environ if environ is None else environ), "GIT_TERMINAL_PROMPT": "0"}
    try:
        proc = await asyncio.create_subprocess_exec(
            # `<ref>^{}` too: a pattern alone does not match an annotated tag's peeled line.
            "git", "ls-remote", "--end-of-options", repo, ref, f"{ref}^{{}}",
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=env)
    except OSError as e:
        raise Unresolved(f"git ls-remote could not start: {e.strerror}") from None
    try:
        async with asyncio.timeout(timeout):
            out, err = await proc.communicate()
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        raise Unresolved(f"git ls-remote {redact(repo)} did not answer within "
                         f"{timeout:g}s") from None
    if proc.returncode != 0:
        lines = [x for x in err.decode(errors="replace").splitlines() if x.strip()]
        why = " | ".join(lines[-_STDERR_LINES:]) or f"exit code {proc.returncode}"
        raise Unresolved(redact(f"git ls-remote {repo} failed: {why}"))
    commit = pick(ref, out.decode(errors="replace"))
    if commit is None:
        short = (" (a short commit id cannot be looked up there: give the full id)"
                 if _SHORT.fullmatch(ref) else "")
        raise Unresolved(f"{redact(repo)} has no branch or tag named {ref!r}{short} (give a "
                         "branch, a tag or a full commit id)")
    return commit
