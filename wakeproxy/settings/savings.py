"""The `savings:` section → Savings: what a replica-hour costs, in which currency.

Owns Savings and its defaults. Never computes savings (the savings report does).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from wakeproxy.settings.reader import Reader


@dataclass(frozen=True, slots=True)
class Savings:
    """How the savings report turns replica-hours saved into money (0: not set)."""

    cost_per_replica_hour: float = 0.0
    currency: str = "USD"


def _cost(v: object) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v < math.inf:
        raise ValueError(v)
    return float(v)


def _currency(v: object) -> str:
    if not isinstance(v, str) or not re.fullmatch(r"[A-Z]{3}", v):
        raise ValueError(v)
    return v


def read_savings(r: Reader, raw: object) -> Savings:
    m = r.mapping(raw, "savings")
    d = Savings()
    r.unknown_keys(m, set(Savings.__dataclass_fields__), "savings")
    return Savings(
        cost_per_replica_hour=r.get(
            m, "cost_per_replica_hour", "savings.", _cost,
            "a cost of zero or more like 0.04", d.cost_per_replica_hour),
        currency=r.get(
            m, "currency", "savings.", _currency,
            "a three-letter currency code like USD or EUR", d.currency),
    )
