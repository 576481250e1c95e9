"""Byte-exact kube-proxy ``/healthz`` and ``/livez`` bodies, one function per generation.

The exporter's parsers must survive whatever real kube-proxies write, so the simulator writes
exactly that: Go's ``time.Time.String()`` (trimmed fraction, zone abbreviation, ``m=`` monotonic
suffix), the irregular whitespace of the ``fmt.Fprintf`` era, and ``json.Marshal``'s compact
output with RFC 3339 times from 1.33 on. Times are integer nanoseconds since the Unix epoch so
that nothing is lost to float rounding; the caller passes every instant in (no clock here).
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass

_EPOCH = _dt.datetime(1970, 1, 1)
NS = 1_000_000_000
ZERO_UNIX_NS = -62_135_596_800 * NS
"""Go's zero ``time.Time`` (0001-01-01 00:00:00 UTC) in Unix nanoseconds."""


@dataclass(frozen=True, slots=True)
class GoTime:
    """A Go ``time.Time`` as kube-proxy holds it: wall clock and, from ``Now()``, a monotonic one.

    ``mono_ns`` is the monotonic reading Go prints after ``m=``: nanoseconds since the Go runtime
    (the kube-proxy process) started. ``None`` means no monotonic reading (the zero time).
    """

    unix_ns: int
    mono_ns: int | None = None
    offset_s: int = 0
    zone: str = "UTC"

    @classmethod
    def zero(cls) -> GoTime:
        """The zero time: what ``lastUpdated`` holds before the first successful sync."""
        return cls(ZERO_UNIX_NS)

    @property
    def is_zero(self) -> bool:
        return self.unix_ns == ZERO_UNIX_NS


def _split(t: GoTime) -> tuple[_dt.datetime, int]:
    local_ns = t.unix_ns + t.offset_s * NS
    sec, frac = divmod(local_ns, NS)
    return _EPOCH + _dt.timedelta(seconds=sec), frac


def _offset(offset_s: int, sep: str) -> str:
    sign = "-" if offset_s < 0 else "+"
    hours, minutes = divmod(abs(offset_s) // 60, 60)
    return f"{sign}{hours:02d}{sep}{minutes:02d}"


def _fraction(frac: int) -> str:
    """Go's ``.999999999`` layout element: trailing zeros trimmed, no dot when zero."""
    if frac == 0:
        return ""
    return "." + f"{frac:09d}".rstrip("0")


def go_time_string(t: GoTime) -> str:
    """``time.Time.String()``: ``2006-01-02 15:04:05.999999999 -0700 MST`` plus `` m=±s.ns``."""
    wall, frac = _split(t)
    text = (
        f"{wall.year:04d}-{wall.month:02d}-{wall.day:02d} "
        f"{wall.hour:02d}:{wall.minute:02d}:{wall.second:02d}{_fraction(frac)} "
        f"{_offset(t.offset_s, '')} {t.zone}"
    )
    if t.mono_ns is not None:
        sign = "-" if t.mono_ns < 0 else "+"
        sec, ns = divmod(abs(t.mono_ns), NS)
        text += f" m={sign}{sec}.{ns:09d}"
    return text


def rfc3339_nano(t: GoTime) -> str:
    """``time.RFC3339Nano`` as ``json.Marshal`` writes it (trimmed fraction, ``Z`` for UTC)."""
    wall, frac = _split(t)
    zone = "Z" if t.offset_s == 0 else _offset(t.offset_s, ":")
    return (
        f"{wall.year:04d}-{wall.month:02d}-{wall.day:02d}T"
        f"{wall.hour:02d}:{wall.minute:02d}:{wall.second:02d}{_fraction(frac)}{zone}"
    )


def _q(t: GoTime) -> str:
    # Go's %q on a Stringer quotes String(); the rendered time never needs escaping.
    return '"' + go_time_string(t) + '"'


def fmt_body(last_updated: GoTime, current_time: GoTime) -> bytes:
    """1.7–1.27 ``/healthz`` and 1.28–1.32 ``/livez``: no space after the first comma."""
    return f'{{"lastUpdated": {_q(last_updated)},"currentTime": {_q(current_time)}}}'.encode()


def fmt_body_node_eligible(
    last_updated: GoTime, current_time: GoTime, node_eligible: bool
) -> bytes:
    """1.28–1.32 ``/healthz``: a space before ``"nodeEligible"``, Go's ``%v`` of a bool."""
    eligible = "true" if node_eligible else "false"
    return (
        f'{{"lastUpdated": {_q(last_updated)},"currentTime": {_q(current_time)}, '
        f'"nodeEligible": {eligible}}}'
    ).encode()


@dataclass(frozen=True, slots=True)
class FamilyHealth:
    """One entry of the 1.33+ ``status`` map (``ProxierHealth``)."""

    last_updated: GoTime
    healthy: bool


def json_body(
    last_updated: GoTime,
    current_time: GoTime,
    healthy: bool,
    status: dict[str, FamilyHealth],
    node_eligible: bool | None = None,
) -> bytes:
    """1.33+ ``json.Marshal(ProxyHealth)``: compact, fixed key order, ``status`` keys sorted.

    ``node_eligible`` is ``None`` on ``/livez`` (a nil pointer, omitted); an empty ``status`` is
    omitted too (``omitempty`` on a map).
    """
    parts = [
        f'"lastUpdated":"{rfc3339_nano(last_updated)}"',
        f'"currentTime":"{rfc3339_nano(current_time)}"',
    ]
    if node_eligible is not None:
        parts.append(f'"nodeEligible":{"true" if node_eligible else "false"}')
    parts.append(f'"healthy":{"true" if healthy else "false"}')
    if status:
        entries = ",".join(
            f'"{family}":{{"lastUpdated":"{rfc3339_nano(fh.last_updated)}",'
            f'"healthy":{"true" if fh.healthy else "false"}}}'
            for family, fh in sorted(status.items())
        )
        parts.append(f'"status":{{{entries}}}')
    return ("{" + ",".join(parts) + "}").encode()
