"""Times as kube-proxy prints them in its ``/healthz`` body.

Two renderings exist (see ``research/kube-proxy-upstream.md`` §1.2/§1.3):

* Kubernetes 1.17–1.32 print Go's ``time.Time.String()``:
  ``2020-06-03 23:59:53.688063083 +0000 UTC m=+202.631797660`` — fraction trimmed to 0–9 digits
  (no dot at all when it is zero), a numeric offset *and* a zone abbreviation (``UTC``, ``GMT``,
  ``CET``, ``+03`` or, for unnamed zones, ``+0530``), and the monotonic reading ``m=±s.9digits``
  when the value came from ``time.Now()``.
* Kubernetes 1.33+ marshal ``time.Time`` to JSON: RFC 3339 with up to nine fraction digits.

Both are parsed strictly, because a lenient parser would hide a misconfigured target behind
plausible numbers. The instant is kept as exact integer nanoseconds (``unix_ns``) so staleness
of a few nanoseconds is not lost to float rounding.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from dateutil import tz

__all__ = ["GO_ZERO_UNIX_NS", "KubeTime", "TimeParseError", "parse_kube_time"]

_NS_PER_S = 1_000_000_000

# Go's zero time.Time (0001-01-01 00:00:00 UTC) as Unix nanoseconds. Go's IsZero() compares the
# instant, so any rendering of this instant (whatever zone) means "never".
GO_ZERO_UNIX_NS = -62_135_596_800 * _NS_PER_S

_EPOCH = datetime(1970, 1, 1, tzinfo=tz.UTC)

# ASCII-only classes: Python's \d and \S would accept e.g. Arabic-Indic digits or NBSP.
_DATE = r"(?P<y>[0-9]{4})-(?P<mo>[0-9]{2})-(?P<d>[0-9]{2})"
_CLOCK = r"(?P<h>[0-9]{2}):(?P<mi>[0-9]{2}):(?P<s>[0-9]{2})(?:\.(?P<frac>[0-9]{1,9}))?"
_GO_STRING = re.compile(
    _DATE + " " + _CLOCK
    + r" (?P<osign>[+-])(?P<oh>[0-9]{2})(?P<om>[0-9]{2})"  # numeric offset: authoritative
    + r" [!-~]+"  # zone abbreviation: informative only (ambiguous, e.g. IST)
    # Monotonic reading: Go prints int64 nanoseconds as sign, seconds, dot, exactly 9 digits,
    # so the seconds part never exceeds 10 digits (9223372036 s).
    + r"(?: m=(?P<mono>[+-][0-9]{1,10}\.[0-9]{9}))?"
)  # fmt: skip
_RFC3339 = re.compile(
    _DATE + "T" + _CLOCK + r"(?:Z|(?P<osign>[+-])(?P<oh>[0-9]{2}):(?P<om>[0-9]{2}))"
)


class TimeParseError(ValueError):
    """A string that is neither a Go ``Time.String()`` nor an RFC 3339 time.

    ``reason`` is a fixed phrase without the input, for callers that need a bounded message
    (log fields, error metrics); ``str()`` adds a truncated copy of the input.
    """

    def __init__(self, reason: str, text: object) -> None:
        self.reason = reason
        shown = repr(text)
        if len(shown) > 64:
            shown = shown[:61] + "..."
        super().__init__(f"{reason}: {shown}")


@dataclass(frozen=True, slots=True)
class KubeTime:
    """One instant from a kube-proxy body.

    ``unix`` is the float view for metrics; ``unix_ns`` is exact, for differences.
    ``monotonic`` is Go's ``m=`` reading: seconds since kube-proxy's Go runtime started, so a
    drop between polls reveals a restart. ``None`` when absent (always so in RFC 3339 times).
    """

    unix: float
    monotonic: float | None
    unix_ns: int


def parse_kube_time(text: str) -> KubeTime | None:
    """Parse a Go ``Time.String()`` or RFC 3339 time; ``None`` for Go's zero time (never synced).

    The numeric offset wins over the zone abbreviation. Times before 1970 give a negative
    ``unix`` (the caller decides what that means). Raises only :class:`TimeParseError`.
    """
    if not isinstance(text, str):
        raise TimeParseError("time is not a string", text)
    if len(text) > 100:  # the longest valid form is ~70 characters; don't regex megabytes
        raise TimeParseError("time string too long", text)
    match = _GO_STRING.fullmatch(text) or _RFC3339.fullmatch(text)
    if match is None:
        raise TimeParseError("not a Go time.String() or RFC 3339 time", text)
    g = match.groupdict()
    oh, om = int(g["oh"] or 0), int(g["om"] or 0)  # None for RFC 3339 "Z"
    if oh > 23 or om > 59:
        raise TimeParseError("zone offset out of range", text)
    offset = (oh * 3600 + om * 60) * (-1 if g["osign"] == "-" else 1)
    try:
        # dateutil's tzoffset carries the offset; datetime validates the calendar (month 13,
        # Feb 30, hour 24, year 0 all raise ValueError).
        y, mo, d, h, mi, sec = (int(g[k]) for k in ("y", "mo", "d", "h", "mi", "s"))
        moment = datetime(y, mo, d, h, mi, sec, tzinfo=tz.tzoffset(None, timedelta(seconds=offset)))
        delta = moment - _EPOCH  # exact: timedelta arithmetic on integers
    except (ValueError, OverflowError, TypeError) as exc:
        raise TimeParseError(f"invalid date or time ({exc})", text) from None

    whole = delta.days * 86_400 + delta.seconds  # microseconds are 0: no fraction was passed
    unix_ns = whole * _NS_PER_S + (int(g["frac"].ljust(9, "0")) if g["frac"] else 0)
    if unix_ns == GO_ZERO_UNIX_NS:
        return None

    monotonic = float(g["mono"]) if g.get("mono") else None
    unix = unix_ns / _NS_PER_S  # int / int is correctly rounded
    if not math.isfinite(unix) or (monotonic is not None and not math.isfinite(monotonic)):
        raise TimeParseError("time is not finite", text)
    return KubeTime(unix=unix, monotonic=monotonic, unix_ns=unix_ns)
