"""Resource quantities (`100m`, `0.5`, `128Mi`, `1G`, `1e3`) read as the API server reads them.

Owns the quantity grammar of apimachinery's `resource.Quantity`: a signed decimal number and
one suffix — binary SI (`Ki` … `Ei`), decimal SI (`n`, `u`, `m`, none, `k`, `M`, `G`, `T`,
`P`, `E`) or a decimal exponent (`e3`, `E-2`) — kept exact (a Fraction), and the two
roundings the scheduler and kubelet use: `milli()` (cpu in millicores) and `value()` (bytes,
counts), both rounded up as `MilliValue()`/`Value()` do. Anything else is a `QuantityError`
with the server's own wording. Written here on purpose, apart from wakeproxy's code: the test
double must judge requests by itself.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction
from typing import Any

# The pattern the API server names when it cannot decode a quantity.
PATTERN = r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"
_NUMBER = re.compile(r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)$")
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15,
            "E": 18}
_EXPONENT = re.compile(r"^[eE]([+-]?[0-9]+)$")


class QuantityError(ValueError):
    pass


def parse(text: Any) -> Fraction:
    """The exact amount a quantity string (or a JSON number) stands for."""
    if isinstance(text, bool):
        raise QuantityError(f"quantities must match the regular expression '{PATTERN}'")
    if isinstance(text, int):
        return Fraction(text)
    if isinstance(text, float):
        return Fraction(str(text))
    if not isinstance(text, str):
        raise QuantityError(f"quantities must match the regular expression '{PATTERN}'")
    m = re.match(r"^([+-]?[0-9.]+)(.*)$", text.strip())
    if not m or not _NUMBER.match(m.group(1)):
        raise QuantityError(f"quantities must match the regular expression '{PATTERN}'")
    number, suffix = Fraction(m.group(1)), m.group(2)
    if suffix in _BINARY:
        return number * _BINARY[suffix]
    if suffix in _DECIMAL:
        return number * Fraction(10) ** _DECIMAL[suffix]
    exponent = _EXPONENT.match(suffix)
    if exponent:
        return number * Fraction(10) ** int(exponent.group(1))
    raise QuantityError("unable to parse quantity's suffix")


def milli(text: Any) -> int:
    """In thousandths, rounded up (cpu `100m` → 100, `0.5` → 500, `1` → 1000)."""
    return math.ceil(parse(text) * 1000)


def value(text: Any) -> int:
    """In whole units, rounded up (memory `128Mi` → 134217728, `1G` → 10**9)."""
    return math.ceil(parse(text))
