"""The state file: what is saved comes back; a missing, cut-short or corrupt file gives a
clear warning naming it and an empty start, never an error; writes replace it whole."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import structlog

from wakeproxy.controllers.state import (
    BuildRecord,
    ControllerState,
    ReleaseRecord,
    ReviewRecord,
    StateStore,
    StateWriter,
    render,
)

STATE = ControllerState(
    releases={"shop": (ReleaseRecord("shop-aaaaaa", "1" * 40, "/b/shop/shop-aaaaaa"),
                       ReleaseRecord("shop-bbbbbb", "2" * 40, "/b/shop/shop-bbbbbb"))},
    reviews=(ReviewRecord("pr-3-shop", 3, "shop", "3" * 40, "pr-3-shop.review.localhost"),),
    builds=(
        BuildRecord("shop-aaaaaa", "shop", "/git/shop.git", "main", "succeeded", 1.5,
                    commit="1" * 40, started_at=2.0, finished_at=3.25, exit_code=None,
                    deployed_at=4.0, release_dir="/b/shop/shop-aaaaaa", log_bytes=120),
        BuildRecord("shop-cccccc", "shop", "/git/shop.git", "feature", "failed", 5.0,
                    exit_code=3, reason="the build command exited with code 3"),
    ),
    deliveries=(("72d3162e-cc78-11e3-81ab-4c9367dc0958", 1.7e9), ("d-2", 1.7e9 + 0.5)),
)


def test_what_is_saved_loads_back_the_same(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "builds" / "state.json")
    store.save(STATE)  # creates the directory too
    loaded = StateStore(store.path)
    assert loaded.load() == STATE
    assert loaded.loaded
    assert [p.name for p in store.path.parent.iterdir()] == ["state.json"]  # no temp left


def test_a_missing_file_is_an_empty_start_and_is_not_created(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.json")
    assert store.load() == ControllerState()
    assert not store.loaded and not store.path.exists()


@pytest.mark.parametrize("content", [
    '{"version": 1, "builds": [{"id": "shop-aaaaaa", "app": "sh',  # cut short mid-write
    "not json at all",
    "[]",
    '{"version": 99}',
    '{"version": 1, "builds": [{"id": 7}]}',
    '{"version": 1, "apps": {"shop": {"releases": [{"build": "x", "directory": true}]}}}',
    '{"version": 1, "review_apps": [{"name": "pr-1-shop", "number": true, "base": "shop",'
    ' "head_sha": "a", "host": "h"}]}',
    '{"version": 1, "webhook_deliveries": ["d-1"]}',
    '{"version": 1, "webhook_deliveries": {"d-1": "yesterday"}}',
])
def test_a_corrupt_file_warns_naming_it_and_starts_empty(tmp_path: Path, content: str) -> None:
    path = tmp_path / "state.json"
    path.write_text(content)
    with structlog.testing.capture_logs() as logs:
        state = StateStore(path).load()
    assert state == ControllerState()
    warning = next(e for e in logs if e["log_level"] == "warning")
    assert "corrupt" in warning["event"] and warning["file"] == str(path)
    # Kept aside for a person to look at; the next save does not overwrite it.
    assert not path.exists()
    assert Path(warning["kept_as"]).read_text() == content


def test_an_unreadable_file_warns_and_starts_empty(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with structlog.testing.capture_logs() as logs:
        assert StateStore(path).load() == ControllerState()
    assert any(e["log_level"] == "warning" and e["file"] == str(path) for e in logs)


def test_the_file_is_plain_json_a_person_can_read(tmp_path: Path) -> None:
    doc = json.loads(render(STATE))
    assert doc["version"] == 1
    assert doc["apps"]["shop"]["releases"][-1]["build"] == "shop-bbbbbb"
    assert doc["review_apps"][0]["number"] == 3
    assert doc["builds"][1]["exit_code"] == 3
    assert doc["webhook_deliveries"] == {"72d3162e-cc78-11e3-81ab-4c9367dc0958": 1.7e9,
                                         "d-2": 1.7e9 + 0.5}


def test_a_file_saved_before_deliveries_were_kept_still_loads(tmp_path: Path) -> None:
    doc = json.loads(render(STATE))
    del doc["webhook_deliveries"]
    path = tmp_path / "state.json"
    path.write_text(json.dumps(doc))
    store = StateStore(path)
    assert store.load() == ControllerState(STATE.releases, STATE.reviews, STATE.builds)
    assert store.loaded


async def test_the_writer_coalesces_changes_and_saves_the_latest(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.json")
    current = [ControllerState()]
    snapshots = 0

    def snapshot() -> ControllerState:
        nonlocal snapshots
        snapshots += 1
        return current[0]

    writer = StateWriter(store, snapshot)
    for n in range(50):
        current[0] = ControllerState(reviews=(ReviewRecord(f"pr-{n + 1}-shop", n + 1, "shop",
                                                           "a" * 40, "h"),))
        writer.changed()
    await writer.flush()
    assert StateStore(store.path).load() == current[0]
    assert snapshots <= 2  # fifty changes in one loop step: one or two writes, not fifty


async def test_a_failing_write_warns_once_and_serving_goes_on(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    store = StateStore(blocker / "state.json")  # its directory cannot be made
    writer = StateWriter(store, lambda: STATE)
    with structlog.testing.capture_logs() as logs:
        for _ in range(3):
            writer.changed()
            await writer.flush()
            await asyncio.sleep(0)
    warnings = [e for e in logs if e["log_level"] == "warning"]
    assert len(warnings) == 1 and "cannot save" in warnings[0]["event"]
