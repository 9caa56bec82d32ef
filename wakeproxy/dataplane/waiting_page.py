"""The self-refreshing "waking up" page browsers get while their app wakes (when enabled).

Owns the page's bytes only. It never holds a request or asks for a wake itself.
"""

from __future__ import annotations

from html import escape

from wakeproxy.dataplane.errors import render_own

REFRESH_SECONDS = 2

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="refresh" content="{refresh}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Waking up {app}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 20vh auto; max-width: 32em;
       text-align: center; color: #333; }}
.note {{ color: #a33; }}
</style>
</head>
<body>
<h1>Waking up {app}&hellip;</h1>
<p>This app was asleep to save resources. It is starting now;
this page reloads by itself every {refresh} seconds.</p>
{note}
</body>
</html>
"""


def render_waiting_page(
    app: str, failure: str | None, *, close: bool, request_id: bytes = b"", head_only: bool = False
) -> bytes:
    """A complete 503 response whose page reloads itself until the app answers."""
    note = ""
    if failure:
        note = (
            f'<p class="note">The last attempt to wake it failed: {escape(failure)}.'
            " Trying again.</p>"
        )
    body = _PAGE.format(app=escape(app), refresh=REFRESH_SECONDS, note=note).encode("utf-8")
    return render_own(
        503, b"text/html; charset=utf-8", body, retry_after=REFRESH_SECONDS, close=close,
        request_id=request_id, head_only=head_only,
    )
