"""Kubernetes resource quantities (`500m`, `0.5`, `512Mi`, `1G`, `1e3`) as whole numbers.

CPU becomes millicores and memory bytes, rounded up as the API server rounds a request
(a pod asking for 0.0001 CPU is given 1m). Read by the config (fixed headroom sizes) and
by the Kubernetes platform (an app's pod requests), so both mean the same by a value.
Pure functions: raise ValueError for anything Kubernetes would not accept.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

_QUANTITY = re.compile(
    r"^([+-]?)([0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
    r"(?:([eE][+-]?[0-9]+)|(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E))?$")
_SUFFIX = {
    "": Fraction(1), "n": Fraction(1, 10**9), "u": Fraction(1, 10**6), "m": Fraction(1, 1000),
    "k": Fraction(10**3), "M": Fraction(10**6), "G": Fraction(10**9), "T": Fraction(10**12),
    "P": Fraction(10**15), "E": Fraction(10**18),
    "Ki": Fraction(2**10), "Mi": Fraction(2**20), "Gi": Fraction(2**30), "Ti": Fraction(2**40),
    "Pi": Fraction(2**50), "Ei": Fraction(2**60),
}
CPU = "a CPU quantity like 500m, 0.5 or 2"
MEMORY = "a memory quantity like 512Mi, 1Gi or 1G"


def parse_quantity(value: object) -> Fraction:
    """A quantity as written in a manifest (a string or a YAML number), exactly."""
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, int):
        text = str(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(value)
        text = repr(value)
    elif isinstance(value, str):
        text = value.strip()
    else:
        raise ValueError(value)
    m = _QUANTITY.match(text)
    if m is None:
        raise ValueError(value)
    sign, number, exponent, suffix = m.groups()
    amount = Fraction(number)
    if exponent:
        amount *= Fraction(10) ** int(exponent[1:])
    amount *= _SUFFIX[suffix or ""]
    return -amount if sign == "-" else amount


def cpu_millis(value: object) -> int:
    """A non-negative CPU quantity in millicores, rounded up."""
    amount = parse_quantity(value)
    if amount < 0:
        raise ValueError(value)
    return math.ceil(amount * 1000)


def memory_bytes(value: object) -> int:
    """A non-negative memory quantity in bytes, rounded up."""
    amount = parse_quantity(value)
    if amount < 0:
        raise ValueError(value)
    return math.ceil(amount)


def format_cpu(millis: int) -> str:
    """Millicores as a manifest writes them: `2` for whole cores, else `1500m`."""
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"


def format_memory(size: int) -> str:
    """Bytes as a manifest writes them: the largest binary unit that divides them."""
    for suffix in ("Ei", "Pi", "Ti", "Gi", "Mi", "Ki"):
        unit = int(_SUFFIX[suffix])
        if size and size % unit == 0:
            return f"{size // unit}{suffix}"
    return str(size)
