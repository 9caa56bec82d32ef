"""What a build step or an app process on this host gets: a clean environment and,
when configured, another user.

wakeproxy's own environment holds what code from a pull request must never see (tokens,
cloud credentials, whatever the operator's shell exported). So a build command or an app
gets only a few basics from it (`BASICS`: PATH, HOME, LANG, ...) plus what the config
gives that app (`env`, or `review_env` for review apps) plus what wakeproxy sets (PORT,
WAKEPROXY_COMMIT). git, which wakeproxy runs itself and which runs no code of the
repository, also keeps its own settings and credentials helpers (`GIT_*`, `SSH_*`).

`RunAs` (`run_as` in the config) runs them as another user (through setpriv), which
only root can do; its HOME, USER and LOGNAME replace wakeproxy's. Must never: pass
wakeproxy's environment on whole, or start a process as another user without dropping
supplementary groups.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

BASICS = ("PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "LC_ALL",
          "LC_CTYPE", "TZ", "TMPDIR", "TERM")
_GIT_PREFIXES = ("GIT_", "SSH_")
_DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"


@dataclass(frozen=True, slots=True)
class RunAs:
    user: str
    uid: int
    gid: int
    home: str

    @classmethod
    def named(cls, user: str) -> RunAs:
        """Raises KeyError for a user this host does not know."""
        pw = pwd.getpwnam(user)
        return cls(user, pw.pw_uid, pw.pw_gid, pw.pw_dir)

    def wrap(self, argv: Sequence[str]) -> list[str]:
        """`argv` started as this user, with no supplementary groups and no way back to
        more privileges (setuid binaries do not elevate). setpriv (util-linux) execs the
        command: the pid, and so the process group, stay the same. Not the subprocess
        module's user/group arguments: uvloop's subprocesses do not take them."""
        return ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--clear-groups",
                "--no-new-privs", "--", *argv]

    def chown_tree(self, root: Path) -> None:
        """Give `root` and everything in it to this user (a checkout its build writes to)."""
        os.chown(root, self.uid, self.gid, follow_symlinks=False)
        for parent, dirs, files in os.walk(root):
            for name in (*dirs, *files):
                os.chown(os.path.join(parent, name), self.uid, self.gid,
                         follow_symlinks=False)


def clean_env(environ: Mapping[str, str], *layers: Mapping[str, str],
              run_as: RunAs | None = None) -> dict[str, str]:
    """The basics of `environ`, then each of `layers` over them."""
    env = {k: environ[k] for k in BASICS if k in environ}
    env.setdefault("PATH", _DEFAULT_PATH)
    if run_as is not None:
        env.update(HOME=run_as.home, USER=run_as.user, LOGNAME=run_as.user)
    for layer in layers:
        env.update(layer)
    return env


def git_env(environ: Mapping[str, str]) -> dict[str, str]:
    """What git runs with: the basics, git's and ssh's own settings, never a prompt."""
    env = clean_env(environ, {k: v for k, v in environ.items()
                              if k.startswith(_GIT_PREFIXES)})
    env["GIT_TERMINAL_PROMPT"] = "0"
    return env
