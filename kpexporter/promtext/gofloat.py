"""Go's ``strconv.ParseFloat(s, 64)``, as Prometheus applies it to ``le`` label values.

Prometheus 2.42 parses each bucket's ``le`` with ``strconv.ParseFloat`` and silently skips
the bucket when that returns an error. Python's ``float()`` disagrees with Go on several
inputs (whitespace, hex floats, ``+nan``, non-ASCII digits, overflow), and any disagreement
changes which buckets ``histogram_quantile`` sees. So the grammar here is a port of Go's
``readFloat``/``special``/``underscoreOK`` (Go 1.19, the toolchain of Debian's 2.42); only the
final, correctly rounded conversion is delegated to Python, which rounds the same way.
"""

from __future__ import annotations

import math

__all__ = ["parse_go_float"]

_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


def parse_go_float(text: str) -> float:
    """Parse ``text`` exactly as Go's ``strconv.ParseFloat(text, 64)`` does.

    Returns the float Go returns with a nil error. Raises ``ValueError`` whenever Go returns
    an error: bad syntax, and also out-of-range values such as ``1e400`` (Go returns ±Inf
    *with* ``ErrRange`` there, and Prometheus skips the bucket). Underflow to zero is not an
    error in Go and is not one here.
    """
    if not text.isascii():  # Go reads bytes: no non-ASCII byte is valid anywhere in a float
        raise ValueError(f"invalid Go float syntax: {text!r}")
    special = _special(text)
    if special is not None:
        return special
    if not _go_syntax_ok(text):
        raise ValueError(f"invalid Go float syntax: {text!r}")
    digits = text.replace("_", "").lower()
    is_hex = digits.lstrip("+-").startswith("0x")
    try:
        value = float.fromhex(digits) if is_hex else float(digits)
    except OverflowError as exc:  # float.fromhex on a huge exponent
        raise ValueError(f"value out of range: {text!r}") from exc
    if math.isinf(value):  # a finite literal that rounds past the largest double: ErrRange
        raise ValueError(f"value out of range: {text!r}")
    return value


def _special(text: str) -> float | None:
    """Go's ``special``: ``[+-]inf``, ``[+-]infinity`` or bare ``nan``, case-insensitively.

    A sign before ``nan`` is *not* special in Go (the sign case falls through to the
    infinity check only), so ``+nan`` and ``-nan`` are syntax errors there.
    """
    low = text.lower()
    if low == "nan":
        return math.nan
    sign = 1.0
    if low[:1] in ("+", "-"):
        sign = -1.0 if low[0] == "-" else 1.0
        low = low[1:]
    if low in ("inf", "infinity"):
        return math.copysign(math.inf, sign)
    return None


def _go_syntax_ok(s: str) -> bool:
    """Port of Go's ``readFloat`` acceptance plus ParseFloat's "consumed everything" rule."""
    n = len(s)
    i = 0
    underscores = False
    if i < n and s[i] in "+-":
        i += 1
    base = 10
    exp_chars = "eE"
    if i + 2 < n and s[i] == "0" and s[i + 1] in "xX":
        base = 16
        exp_chars = "pP"
        i += 2
    saw_dot = False
    saw_digits = False
    while i < n:
        c = s[i]
        if c == "_":
            underscores = True
        elif c == ".":
            if saw_dot:
                break
            saw_dot = True
        elif "0" <= c <= "9" or (base == 16 and c in _HEX_DIGITS):
            saw_digits = True
        else:
            break
        i += 1
    if not saw_digits:
        return False
    if i < n and s[i] in exp_chars:
        i += 1
        if i >= n:
            return False
        if s[i] in "+-":
            i += 1
        if i >= n or not "0" <= s[i] <= "9":
            return False
        while i < n and ("0" <= s[i] <= "9" or s[i] == "_"):
            if s[i] == "_":
                underscores = True
            i += 1
    elif base == 16:
        return False  # Go requires the p exponent on hex floats
    if underscores and not _underscore_ok(s[:i]):
        return False
    return i == n


def _underscore_ok(s: str) -> bool:
    """Go's ``underscoreOK``: ``_`` only between digits, or between a base prefix and a digit."""
    saw = "^"
    i = 0
    if s[:1] in ("+", "-"):
        s = s[1:]
    hexa = False
    if len(s) >= 2 and s[0] == "0" and s[1] in "bBoOxX":
        i = 2
        saw = "0"
        hexa = s[1] in "xX"
    while i < len(s):
        c = s[i]
        if "0" <= c <= "9" or (hexa and c in _HEX_DIGITS):
            saw = "0"
        elif c == "_":
            if saw != "0":
                return False
            saw = "_"
        elif saw == "_":
            return False
        else:
            saw = "!"
        i += 1
    return saw != "_"
