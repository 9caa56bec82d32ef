"""Credentials out of repository URLs before they are shown anywhere.

A repo URL may carry a token (`https://x-access-token:<token>@github.com/acme/shop`,
`https://<token>@github.com/...`): builds need it to fetch, but build logs, API answers,
the CLI and log lines must never show it. `redact` hides the password (or, for http(s),
a lone user name, which GitHub takes as a token) and keeps the rest readable;
`credentials` are the hidden strings, for scrubbing output that may echo them (git's own
messages).
Must never: hide anything but credentials, or raise on a string that is not a URL.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<info>[^/@\s]*)@")
HIDDEN = "***"


def _hide(scheme: str, info: str) -> str:
    user, colon, _ = info.partition(":")
    if colon:
        return f"{user}:{HIDDEN}"
    return HIDDEN if scheme.lower().startswith("http") else info


def redact(text: str) -> str:
    """`text` with the credentials of every URL in it replaced by ***."""
    return _USERINFO.sub(
        lambda m: f"{m['scheme']}{_hide(m['scheme'], m['info'])}@", text)


def credentials(url: str) -> tuple[str, ...]:
    """The credential strings `redact` hides in `url` (as written and URL-decoded)."""
    found: list[str] = []
    for m in _USERINFO.finditer(url):
        user, colon, password = m["info"].partition(":")
        hidden = password if colon else (user if m["scheme"].lower().startswith("http")
                                         else "")
        for s in (hidden, unquote(hidden)):
            if len(s) >= 4 and s not in found:
                found.append(s)
    return tuple(found)
