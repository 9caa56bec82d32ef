"""Two-phase sleep across replicas: this replica's side of a peer's proposal to sleep an app.

The leader decides sleeps on activity records up to an interval old, so a request a
follower took since then would be cut off by the scale-down. So the leader first
*proposes*: its activity record names the app and a token. Every other replica sees the
proposal through its watch of the records and takes the app out of rotation — requests
arriving now are held, as for a sleeping app — and once nothing of the app is open here
it answers "done" for that token in its own record. A wake asked for here meanwhile (a
held request) or an open tunnel answers "wanted" instead, and the leader gives up the
sleep at once. The leader scales down only when every fresh peer said "done".

A proposal ends here when it disappears from the proposer's record (the leader gave up
or finished), when the Deployment is seen at zero replicas (the sleep happened: a later
wake must not be held by the same token), or when its time to live runs out (the leader
died half-way): held requests are never stranded. Each token is acted on once.

One writer: the platform's activity sync feeds proposals in; the view asks `holding`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from wakeproxy.model.activity import ActivityLedger
from wakeproxy.model.board import Phase, ReadinessBoard

DONE = "done"  # out of rotation here and nothing open: scale it down
WANTED = "wanted"  # a request here wants it (held, or a tunnel open): keep it up

_RESOLVED_KEPT = 4096  # tokens remembered as handled, so none is acted on twice


@dataclass(frozen=True, slots=True)
class Proposal:
    """A peer's wish to put `app` to sleep, valid for `ttl` seconds after we see it."""

    peer: str
    token: str
    ttl: float


@dataclass(slots=True)
class _Drain:
    proposal: Proposal
    expiry: asyncio.TimerHandle
    wanted: bool = False


class Drains:
    def __init__(
        self,
        *,
        board: ReadinessBoard,
        ledger: ActivityLedger,
        on_change: Callable[[str], None],
        at_zero: Callable[[str], bool],
    ) -> None:
        self._board = board
        self._ledger = ledger
        self._on_change = on_change  # the app's serving set changed: report it
        self._at_zero = at_zero  # whether the app's Deployment wants zero replicas now
        self._active: dict[str, _Drain] = {}
        self._resolved: dict[str, None] = {}  # insertion-ordered set of handled tokens
        self._ended = asyncio.Event()

    # -- what the activity sync feeds in -----------------------------------------------

    def proposals_seen(self, peer: str, proposals: Mapping[str, Proposal]) -> None:
        """`peer`'s record now proposes exactly `proposals` (app → proposal)."""
        for app, drain in list(self._active.items()):
            if drain.proposal.peer == peer and proposals.get(app) != drain.proposal:
                self._end(app)  # withdrawn (given up, or done and cleared)
        for app, proposal in proposals.items():
            if proposal.token in self._resolved or app in self._active:
                continue
            if self._board.get(app) is None or self._at_zero(app):
                # An app we do not serve, or one already asleep (a proposal that did its
                # work and is still in the record): nothing to hold.
                self._resolve(proposal.token)
                continue
            loop = asyncio.get_running_loop()
            expiry = loop.call_later(max(0.0, proposal.ttl), self._expired, app, proposal)
            self._active[app] = _Drain(proposal, expiry)
            self._on_change(app)

    def peer_gone(self, peer: str) -> None:
        self.proposals_seen(peer, {})

    def settled(self, app: str) -> None:
        """The app's Deployment is at zero replicas: any sleep proposed for it happened."""
        if app in self._active:
            self._end(app)

    # -- readers -------------------------------------------------------------------------

    def holding(self, app: str) -> bool:
        """Whether `app` is out of rotation here because a peer proposed to sleep it."""
        return app in self._active

    def want(self, app: str) -> None:
        """A wake was asked for here while the app is held: tell the proposer to keep it."""
        drain = self._active.get(app)
        if drain is not None:
            drain.wanted = True

    def ended(self) -> asyncio.Event:
        """Set when any drain ends (then replaced): a held wake looks again."""
        return self._ended

    def pending(self) -> bool:
        """Some proposal still awaits our answer (the activity sync then looks often)."""
        return any(self._answer(app, d) is None for app, d in self._active.items())

    def answers(self) -> dict[str, list[str]]:
        """For this replica's record: app → [token, "done" | "wanted"] where decided."""
        out: dict[str, list[str]] = {}
        for app, drain in self._active.items():
            answer = self._answer(app, drain)
            if answer is not None:
                out[app] = [drain.proposal.token, answer]
        return out

    def close(self) -> None:
        for app in list(self._active):
            self._end(app)

    # -- internals -------------------------------------------------------------------------

    def _answer(self, app: str, drain: _Drain) -> str | None:
        activity = self._ledger.peek(app)
        if drain.wanted or (activity is not None and activity.tunnels > 0):
            return WANTED
        state = self._board.get(app)
        if state is None:
            return DONE
        # Done only once the lifecycle has taken the app out of rotation here (it applies
        # the view's report a loop step later) and the last request through it has ended.
        if state.phase is Phase.AWAKE:
            return None
        if activity is not None and activity.in_flight > 0:
            return None
        return DONE

    def _expired(self, app: str, proposal: Proposal) -> None:
        drain = self._active.get(app)
        if drain is not None and drain.proposal == proposal:
            self._end(app)

    def _end(self, app: str) -> None:
        drain = self._active.pop(app)
        drain.expiry.cancel()
        self._resolve(drain.proposal.token)
        old, self._ended = self._ended, asyncio.Event()
        old.set()
        self._on_change(app)

    def _resolve(self, token: str) -> None:
        self._resolved[token] = None
        while len(self._resolved) > _RESOLVED_KEPT:
            del self._resolved[next(iter(self._resolved))]
