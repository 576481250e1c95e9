"""How the exporter writes a float, and when two floats are the same number.

One formatter for every place a value is shown — the text and OpenMetrics pages, the JSON
API, the HTML page, ``check``'s output, log fields — so ``NaN``, ``+Inf`` and ``-Inf`` read the
same everywhere, and one NaN-aware equality for every "did this value change?" test.

``format_value`` is ``prometheus_client.utils.floatToGoString`` (what ``generate_latest``
writes, Go's ``strconv.FormatFloat(v, 'g', -1, 64)`` up to the exponent switch), memoised: most
values on a page repeat and formatting is a third of the cost of writing a line.
"""

from __future__ import annotations

import math
from decimal import Decimal

from kpexporter.memo import Memo

__all__ = ["format_go_float", "format_value", "json_number", "non_finite", "same_number"]

_INF = math.inf
_FORMATTED: Memo[float, str] = Memo(4096)
"""~0.5 MB at most. Zero is never looked up (``-0.0 == 0.0`` prints differently), NaN never
stored (it equals no key)."""
_CACHED = _FORMATTED.get


def non_finite(value: float) -> str | None:
    """``NaN``, ``+Inf`` or ``-Inf`` as Prometheus writes them; None for a finite value."""
    if value != value:
        return "NaN"
    if value == _INF:
        return "+Inf"
    if value == -_INF:
        return "-Inf"
    return None


def format_value(value: float) -> str:
    """A sample value exactly as ``prometheus_client.utils.floatToGoString`` writes it."""
    s = _CACHED(value)  # never 0.0 (see _FORMATTED), so -0.0 cannot hit it
    if s is not None:
        return s
    if value == 0:
        return "-0.0" if math.copysign(1.0, value) < 0 else "0.0"
    s = _format(value)
    if value == value:
        _FORMATTED.put(value, s)
    return s


def _format(value: float) -> str:
    d = float(value)
    special = non_finite(d)
    if special is not None:
        return special
    s = repr(d)
    if d > 0:
        dot = s.find(".")
        if dot > 6:  # Go switches to an exponent sooner than Python does
            mantissa = f"{s[0]}.{s[1:dot]}{s[dot + 1:]}".rstrip("0.")
            return f"{mantissa}e+{dot - 1:02d}"
    return s


def json_number(value: float | None) -> float | str | None:
    """A value for JSON: finite numbers as numbers, ``NaN``/``±Inf`` as those strings."""
    if value is None:
        return None
    special = non_finite(value)
    return value if special is None else special


def same_number(a: float, b: float) -> bool:
    """``a == b``, with NaN equal to NaN (a missing ``_sum`` is the same as last time)."""
    return a == b or (a != a and b != b)


def format_go_float(value: float) -> str:
    """``value`` as client_golang prints a float: Go's ``%g`` with the shortest digits.

    So a converted bound reads like one kube-proxy would have written (``0.001``, ``16.384``,
    ``1e+06``, ``+Inf``), and a dashboard's ``le`` matches what a newer kube-proxy exposes.
    """
    special = non_finite(value)
    if special is not None:
        return special
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    sign = "-" if value < 0 else ""
    # repr gives the shortest digits that round-trip, as Go's precision -1 does.
    digits_tuple, exponent = Decimal(repr(abs(value))).normalize().as_tuple()[1:]
    assert isinstance(exponent, int)  # finite by now
    digits = "".join(map(str, digits_tuple))
    point = exponent + len(digits)  # value = 0.DIGITS x 10**point
    exp10 = point - 1
    if exp10 < -4 or exp10 >= 6:  # Go: %e when the exponent is < -4 or >= 6 (shortest mode)
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{mantissa}e{'+' if exp10 >= 0 else '-'}{abs(exp10):02d}"
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return f"{sign}{digits}{'0' * (point - len(digits))}"
    return f"{sign}{digits[:point]}.{digits[point:]}"
