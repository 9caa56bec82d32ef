"""README's table of the status codes wakeproxy makes itself is what the code sends."""

from __future__ import annotations

import re
from pathlib import Path

from tests.dataplane.conftest import parse_responses
from wakeproxy.dataplane.errors import STATUS, render
from wakeproxy.dataplane.waiting_page import render_waiting_page

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_statuses() -> dict[int, str]:
    """code → the row's "when" text, from the table under "Status codes wakeproxy makes"."""
    text = README.read_text()
    section = text[text.index("## Status codes wakeproxy makes itself"):]
    section = section[: section.index("\n## ", 1)]
    return {int(m[1]): m[2] for m in re.finditer(r"^\| (\d{3}) \| (.*?) \|", section, re.M)}


def test_the_table_lists_every_status_the_code_answers_and_no_other() -> None:
    assert set(readme_statuses()) == set(STATUS.values())


def test_retry_after_is_sent_exactly_where_the_table_says() -> None:
    table = readme_statuses()
    for error_type, status in STATUS.items():
        error = error_type(f"app 'shop': {error_type.__name__}", app="shop")
        (response,) = parse_responses(render(error, close=True))
        assert response.status == status
        promised = "Retry-After" in table[status]
        assert (response.header("Retry-After") is not None) == promised, error_type


def test_the_waiting_page_says_when_to_look_again() -> None:
    assert "Retry-After" in readme_statuses()[503]
    (response,) = parse_responses(render_waiting_page("shop", None, close=False))
    assert response.status == 503 and response.header("Retry-After") is not None
