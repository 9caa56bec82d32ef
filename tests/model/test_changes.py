"""Readers told of changes: each one alive is called, one that is gone is neither kept
alive nor called."""

from __future__ import annotations

import gc

from wakeproxy.model.changes import Changes


class Reader:
    def __init__(self) -> None:
        self.told = 0

    def changed(self) -> None:
        self.told += 1


def test_live_readers_are_told_and_gone_ones_are_dropped() -> None:
    changes = Changes()
    kept, gone = Reader(), Reader()
    changes.watch(kept.changed)
    changes.watch(gone.changed)
    changes.changed()
    assert (kept.told, gone.told) == (1, 1)
    del gone
    gc.collect()
    changes.changed()
    assert kept.told == 2
    assert len(changes._readers) == 1  # the gone reader's entry went with it
