"""Who is told when a model object changes in a way a reader's cache depends on.

A reader that caches what it derives from a model object (the data plane caches, per
`Host`, the app, its state and its records) registers a bound method here and is called
after each such change, instead of checking per lookup whether its cache still holds. The
owner calls `changed()`; it runs on the owner's loop, like every writer of the model.
Readers are held weakly: a reader that is gone is never kept alive or called.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable


class Changes:
    __slots__ = ("_readers",)

    def __init__(self) -> None:
        self._readers: list[weakref.WeakMethod[Callable[[], None]]] = []

    def watch(self, reader: Callable[[], None]) -> None:
        """Call `reader` (a bound method) after every change."""
        self._readers.append(weakref.WeakMethod(reader))

    def changed(self) -> None:
        live = []
        for ref in self._readers:
            reader = ref()
            if reader is not None:
                live.append(ref)
                reader()
        self._readers = live
