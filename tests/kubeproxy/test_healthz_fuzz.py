"""Property tests: hostile input only ever yields HealthzParseError / TimeParseError, and every
time Go can print parses back to the same instant."""

from __future__ import annotations

import contextlib
import json
from datetime import datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kpexporter.kubeproxy.gotime import TimeParseError, parse_kube_time
from kpexporter.kubeproxy.healthz import HealthzParseError, HealthzReport, parse_healthz

NS = 10**9
GO_ZERO_NS = -62135596800 * NS  # `date -u -d '0001-01-01 00:00:00 UTC' +%s`
NAIVE_EPOCH = datetime(1970, 1, 1)

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --- how Go renders a time.Time (independent of the parser) ---


def _wall(unix_ns: int, offset_s: int) -> tuple[datetime, int]:
    """Local wall clock (naive) and the nanosecond fraction."""
    sec, frac = divmod(unix_ns, NS)  # floor: the fraction of a pre-1970 time is still positive
    return NAIVE_EPOCH + timedelta(seconds=sec + offset_s), frac


def _ymdhms(d: datetime, sep: str) -> str:
    # not strftime: glibc prints year 1 as "1", Go prints "0001"
    return f"{d.year:04d}-{d.month:02d}-{d.day:02d}{sep}{d.hour:02d}:{d.minute:02d}:{d.second:02d}"


def _trimmed(frac: int) -> str:
    """Go's ".999999999": trailing zeros dropped, no dot when the fraction is zero."""
    return "." + f"{frac:09d}".rstrip("0") if frac else ""


def go_string(unix_ns: int, offset_s: int, abbrev: str, mono_ns: int | None) -> str:
    """time.Time.String(): "2006-01-02 15:04:05.999999999 -0700 MST" [+ " m=±s.nnnnnnnnn"]."""
    wall, frac = _wall(unix_ns, offset_s)
    sign = "-" if offset_s < 0 else "+"
    hh, mm = divmod(abs(offset_s) // 60, 60)
    text = f"{_ymdhms(wall, ' ')}{_trimmed(frac)} {sign}{hh:02d}{mm:02d} {abbrev}"
    if mono_ns is not None:
        msign = "-" if mono_ns < 0 else "+"
        msec, mfrac = divmod(abs(mono_ns), NS)
        text += f" m={msign}{msec}.{mfrac:09d}"
    return text


def rfc3339_nano(unix_ns: int, offset_s: int) -> str:
    """time.RFC3339Nano as json.Marshal writes it: "Z" for UTC, else ±hh:mm."""
    wall, frac = _wall(unix_ns, offset_s)
    if offset_s == 0:
        zone = "Z"
    else:
        hh, mm = divmod(abs(offset_s) // 60, 60)
        zone = f"{'-' if offset_s < 0 else '+'}{hh:02d}:{mm:02d}"
    return f"{_ymdhms(wall, 'T')}{_trimmed(frac)}{zone}"


# Local wall times kept inside years 1..9999, as Go prints them with four digits.
wall_clocks = st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59))
offsets = st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59).map(lambda m: m * 60)
fractions = st.one_of(
    st.integers(min_value=0, max_value=NS - 1),
    st.sampled_from([0, 1, 10, 100_000_000, 500_000_000, 999_999_999, 651_041_100]),
)
abbrevs = st.one_of(
    st.sampled_from(["UTC", "GMT", "CET", "CEST", "IST", "PDT", "LMT", "+03", "-0330", "+0530"]),
    st.text(
        alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+-_/",
        min_size=1,
        max_size=12,
    ),
)
monotonics = st.one_of(st.none(), st.integers(min_value=-(2**63), max_value=2**63 - 1))


def _instant(wall: datetime, frac: int, offset_s: int) -> int:
    local_s = (wall.replace(microsecond=0) - NAIVE_EPOCH) // timedelta(seconds=1)
    return (local_s - offset_s) * NS + frac


@FAST
@given(wall_clocks, fractions, offsets, abbrevs, monotonics)
def test_go_string_round_trip(
    wall: datetime, frac: int, offset_s: int, abbrev: str, mono_ns: int | None
) -> None:
    unix_ns = _instant(wall, frac, offset_s)
    text = go_string(unix_ns, offset_s, abbrev, mono_ns)
    got = parse_kube_time(text)
    if unix_ns == GO_ZERO_NS:
        assert got is None
        return
    assert got is not None, text
    assert got.unix_ns == unix_ns, text
    assert got.unix == unix_ns / NS
    if mono_ns is None:
        assert got.monotonic is None
    else:
        assert got.monotonic is not None
        assert abs(got.monotonic - mono_ns / NS) <= abs(mono_ns / NS) * 1e-15


@FAST
@given(wall_clocks, fractions, offsets)
def test_rfc3339_round_trip(wall: datetime, frac: int, offset_s: int) -> None:
    unix_ns = _instant(wall, frac, offset_s)
    got = parse_kube_time(rfc3339_nano(unix_ns, offset_s))
    if unix_ns == GO_ZERO_NS:
        assert got is None
    else:
        assert got is not None and got.unix_ns == unix_ns and got.monotonic is None


def test_helpers_match_real_captures() -> None:
    """The Go formatter above reproduces real kube-proxy strings (SOURCES.md)."""
    assert go_string(1660839371_651041100, 0, "GMT", 257377_633892701) == (
        "2022-08-18 16:16:11.6510411 +0000 GMT m=+257377.633892701"
    )
    assert go_string(GO_ZERO_NS, 0, "UTC", None) == "0001-01-01 00:00:00 +0000 UTC"
    assert rfc3339_nano(GO_ZERO_NS, 0) == "0001-01-01T00:00:00Z"


@FAST
@given(st.text(max_size=120))
def test_any_text_is_time_or_time_parse_error(text: str) -> None:
    with contextlib.suppress(TimeParseError):
        parse_kube_time(text)


# --- parse_healthz never raises anything but HealthzParseError ---


def _check(body: bytes) -> None:
    try:
        report = parse_healthz(body, 200)
    except HealthzParseError as exc:
        str(exc).encode("utf-8")  # messages must be loggable
    else:
        assert isinstance(report, HealthzReport)
        assert report.staleness_seconds >= 0


@FAST
@given(st.binary(max_size=2048))
def test_arbitrary_bytes(body: bytes) -> None:
    _check(body)


KEYS = ["lastUpdated", "currentTime", "nodeEligible", "healthy", "status", "IPv4", "IPv6"]

time_like = st.one_of(
    st.sampled_from(
        [
            "2020-06-03 23:59:53.688063083 +0000 UTC m=+202.631797660",
            "0001-01-01 00:00:00 +0000 UTC",
            "0001-01-01T00:00:00Z",
            "2025-05-01T10:00:00.000012001Z",
            "2025-13-01T10:00:00Z",
            "",
        ]
    ),
    st.builds(
        go_string, st.integers(GO_ZERO_NS, 253402300799 * NS), st.just(0), abbrevs, monotonics
    ),
    st.text(max_size=40),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    time_like,
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=8)), inner, max_size=6),
    ),
    max_leaves=25,
)
family_entries = st.fixed_dictionaries(
    {}, optional={"lastUpdated": json_values, "healthy": json_values, "x": json_values}
)
bodies = st.fixed_dictionaries(
    {},
    optional={
        "lastUpdated": st.one_of(time_like, json_values),
        "currentTime": st.one_of(time_like, json_values),
        "nodeEligible": st.one_of(st.booleans(), json_values),
        "healthy": st.one_of(st.booleans(), json_values),
        "status": st.one_of(
            st.dictionaries(
                st.sampled_from(["IPv4", "IPv6", "IPv5", ""]), family_entries, max_size=3
            ),
            json_values,
        ),
        "extra": json_values,
    },
)


@FAST
@given(st.one_of(bodies, json_values))
def test_arbitrary_json(doc: Any) -> None:
    _check(json.dumps(doc).encode())


# --- well-formed bodies of every generation, then the same with one key broken ---

# A day inside the four-digit years, so any offset keeps the wall clock printable.
instants = st.integers(min_value=GO_ZERO_NS + 86400 * NS, max_value=253402214400 * NS)
GO_ZERO, RFC_ZERO = "0001-01-01 00:00:00 +0000 UTC", "0001-01-01T00:00:00Z"  # zero time is UTC


@st.composite
def valid_bodies(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    generation = draw(st.sampled_from(["1.17", "1.28", "1.33"]))
    now = draw(instants)
    last = draw(st.one_of(st.just(now), instants, st.just(GO_ZERO_NS)))
    if generation != "1.33":
        offset, abbrev = draw(offsets), draw(abbrevs)
        mono = draw(monotonics)
        doc: dict[str, Any] = {
            "lastUpdated": GO_ZERO if last == GO_ZERO_NS else go_string(last, offset, abbrev, mono),
            "currentTime": go_string(now, offset, abbrev, mono),
        }
        if generation == "1.28":
            doc["nodeEligible"] = draw(st.booleans())
        return generation, doc
    offset = draw(st.sampled_from([0, 0, 3600, -18000]))
    doc = {
        "lastUpdated": RFC_ZERO if last == GO_ZERO_NS else rfc3339_nano(last, offset),
        "currentTime": rfc3339_nano(now, offset),
    }
    if draw(st.booleans()):
        doc["nodeEligible"] = draw(st.booleans())
    doc["healthy"] = draw(st.booleans())
    families = draw(st.lists(st.sampled_from(["IPv4", "IPv6"]), unique=True, max_size=2))
    if families:
        doc["status"] = {
            f: {"lastUpdated": rfc3339_nano(draw(instants), 0), "healthy": draw(st.booleans())}
            for f in families
        }
    return generation, doc


@FAST
@given(valid_bodies(), st.sampled_from([503, 200]))
def test_well_formed_bodies_parse(case: tuple[str, dict[str, Any]], code: int) -> None:
    generation, doc = case
    separators = (",", ":") if generation == "1.33" else (",", ": ")
    report = parse_healthz(json.dumps(doc, separators=separators).encode(), code)
    assert (report.generation, report.status_code) == (generation, code)
    assert report.node_eligible == doc.get("nodeEligible")
    assert report.healthy == doc.get("healthy")
    assert [f.ip_family for f in report.families] == sorted(doc.get("status", {}))
    if report.last_updated is None:
        assert report.staleness_seconds == float("inf")
    else:
        want = max(0, report.current_time.unix_ns - report.last_updated.unix_ns) / NS
        assert report.staleness_seconds == want


def _paths(doc: dict[str, Any]) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = [(k,) for k in doc]
    for family, entry in doc.get("status", {}).items():
        out += [("status", family, k) for k in entry]
    return out


@FAST
@given(valid_bodies(), st.data())
def test_broken_well_formed_bodies(case: tuple[str, dict[str, Any]], data: st.DataObject) -> None:
    _, doc = case
    path = data.draw(st.sampled_from(_paths(doc)))
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    if data.draw(st.booleans()):
        del parent[path[-1]]
    else:
        parent[path[-1]] = data.draw(st.one_of(scalars, json_values))
    _check(json.dumps(doc).encode())


@FAST
@given(bodies, st.sampled_from([(",", ": "), (",", ":"), (", ", ": ")]), st.booleans())
def test_arbitrary_json_formatting(
    doc: dict[str, Any], seps: tuple[str, str], ascii_: bool
) -> None:
    _check(json.dumps(doc, separators=seps, ensure_ascii=ascii_).encode("utf-8", "surrogatepass"))


@settings(max_examples=50, deadline=None)
@given(st.integers(min_value=1, max_value=200_000), st.sampled_from([b"[", b'{"a":', b"[{}, "]))
def test_deep_nesting(depth: int, opener: bytes) -> None:
    _check(opener * depth)
    _check(b"[" * depth + b"]" * depth)
