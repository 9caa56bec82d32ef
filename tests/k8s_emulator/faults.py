"""Fault switches tests flip to make the API misbehave the ways a real one does.

Owns: rules that make the next N matching requests fail with a chosen status (500, 429 with
Retry-After, 409, ...), stall before being served, or have their connection reset; ordering
open watches to end or to fail with 410; compacting the watch history now; answering an
expired watch with HTTP 410 instead of an ERROR event. Taking the whole API down and back up
is `Emulator.down()`/`up()` (it needs the listening socket). Never serves requests itself: the
server asks `match()` for the rule that applies to each request.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .history import Control
from .resources import ALL
from .store import Store


@dataclass
class Rule:
    action: str  # fail | stall | reset
    verb: str | None = None
    resource: str | None = None
    subresource: str | None = None
    namespace: str | None = None
    name: str | None = None
    times: int | None = 1  # None: until removed
    status: int = 500
    retry_after: int | None = None
    message: str = "injected fault"
    seconds: float = 0.0
    hits: int = field(default=0)

    def applies(self, verb: str | None, resource: str | None, subresource: str | None,
                namespace: str | None, name: str | None) -> bool:
        wanted = ((self.verb, verb), (self.resource, resource), (self.subresource, subresource),
                  (self.namespace, namespace), (self.name, name))
        return all(w is None or w == got for w, got in wanted)

    def spent(self) -> bool:
        return self.times is not None and self.hits >= self.times


class Faults:
    def __init__(self, store: Store) -> None:
        self._store = store
        self.rules: list[Rule] = []
        # Answer a watch from an expired resourceVersion with HTTP 410 (not a 200 stream
        # carrying an ERROR event, which is what the real server's watch cache does).
        self.watch_gone_as_http = False

    def fail(self, status: int = 500, *, times: int | None = 1, retry_after: int | None = None,
             message: str | None = None, verb: str | None = None, resource: str | None = None,
             subresource: str | None = None, namespace: str | None = None,
             name: str | None = None) -> Rule:
        """The next `times` matching requests get `status` (None as times: until removed)."""
        return self._add(Rule("fail", verb, resource, subresource, namespace, name, times,
                              status=status, retry_after=retry_after,
                              message=message or f"injected fault: HTTP {status}"))

    def stall(self, seconds: float, *, times: int | None = 1, verb: str | None = None,
              resource: str | None = None, subresource: str | None = None,
              namespace: str | None = None, name: str | None = None) -> Rule:
        """Matching requests wait `seconds` before being served (a slow or hung API)."""
        return self._add(Rule("stall", verb, resource, subresource, namespace, name, times,
                              seconds=seconds))

    def reset(self, *, times: int | None = 1, verb: str | None = None,
              resource: str | None = None, subresource: str | None = None,
              namespace: str | None = None, name: str | None = None) -> Rule:
        """Matching requests have their TCP connection aborted instead of an answer."""
        return self._add(Rule("reset", verb, resource, subresource, namespace, name, times))

    def _add(self, rule: Rule) -> Rule:
        self.rules.append(rule)
        return rule

    def remove(self, rule: Rule) -> None:
        if rule in self.rules:
            self.rules.remove(rule)

    def clear(self) -> None:
        self.rules.clear()
        self.watch_gone_as_http = False

    def match(self, verb: str | None, resource: str | None, subresource: str | None,
              namespace: str | None, name: str | None) -> list[Rule]:
        """The rules applying to one request (each counted as used once)."""
        hits = []
        for rule in list(self.rules):
            if rule.applies(verb, resource, subresource, namespace, name) and not rule.spent():
                rule.hits += 1
                hits.append(rule)
                if rule.spent():
                    self.rules.remove(rule)
        return hits

    def expire_history(self) -> None:
        """Compact every watch history now: resuming from any earlier version is 410."""
        self._store.compact_all()

    def end_watches(self) -> int:
        """Close every open watch stream as a server-side timeout would; returns how many."""
        return sum(self._store.history(rt).signal(Control.END) for rt in ALL)

    def expire_watches(self) -> int:
        """Compact, and send every open watch an ERROR 410 event before closing it."""
        self.expire_history()
        return sum(self._store.history(rt).signal(Control.GONE) for rt in ALL)
