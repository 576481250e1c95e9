"""parse_kube_time: Go Time.String() and RFC 3339 times, checked against independent arithmetic.

Expected instants come from GNU ``date -u +%s`` (epoch constants below) or from
``calendar.timegm`` plus the fraction as a Decimal, never from the code under test.
"""

from __future__ import annotations

import calendar
import math
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from kpexporter.kubeproxy.gotime import GO_ZERO_UNIX_NS, KubeTime, TimeParseError, parse_kube_time

# `date -u -d '2020-06-03 23:59:53 UTC' +%s`
EPOCH_2020_06_03_235953 = 1591228793
# `date -u -d '0001-01-01 00:00:00 UTC' +%s`
EPOCH_GO_ZERO = -62135596800


def expected(
    y: int, mo: int, d: int, h: int, mi: int, s: int, frac: str = "", offset_min: int = 0
) -> tuple[int, float]:
    """(unix_ns, unix) for a wall-clock time at a UTC offset, computed without the parser."""
    local = datetime(y, mo, d, h, mi, s, tzinfo=timezone(timedelta(minutes=offset_min)))
    whole = calendar.timegm(local.utctimetuple())
    fraction = Decimal("0." + frac) if frac else Decimal(0)
    return whole * 10**9 + int(fraction * 10**9), float(Decimal(whole) + fraction)


def check(text: str, want: tuple[int, float], monotonic: float | None = None) -> None:
    got = parse_kube_time(text)
    assert got == KubeTime(unix=want[1], monotonic=monotonic, unix_ns=want[0])


def test_known_epoch() -> None:
    got = parse_kube_time("2020-06-03 23:59:53 +0000 UTC")
    assert got is not None
    assert got.unix_ns == EPOCH_2020_06_03_235953 * 10**9
    assert got.unix == EPOCH_2020_06_03_235953
    assert GO_ZERO_UNIX_NS == EPOCH_GO_ZERO * 10**9


@pytest.mark.parametrize(
    "frac",
    [
        "",
        "1",
        "12",
        "123",
        "1234",
        "12345",
        "123456",
        "1234567",
        "12345678",
        "123456789",
        "000000001",
        "5",
        "05",
        "999999999",
    ],
)
def test_go_fraction_digits(frac: str) -> None:
    dot = "." + frac if frac else ""
    check(f"2020-06-03 23:59:53{dot} +0000 UTC", expected(2020, 6, 3, 23, 59, 53, frac))


def test_nanosecond_precision_is_exact() -> None:
    a = parse_kube_time("2020-06-03 23:59:53.000000001 +0000 UTC")
    b = parse_kube_time("2020-06-03 23:59:53 +0000 UTC")
    assert a is not None and b is not None
    assert a.unix_ns - b.unix_ns == 1  # a float alone could not tell these apart
    assert a.unix == b.unix


@pytest.mark.parametrize(
    ("text", "offset_min"),
    [
        ("2022-08-18 16:16:11.6510411 +0000 GMT", 0),
        ("2022-08-18 16:16:11.6510411 +0000 UTC", 0),
        ("2022-08-18 18:16:11.6510411 +0200 CEST", 120),
        ("2022-08-18 17:16:11.6510411 +0100 CET", 60),
        ("2022-08-18 21:46:11.6510411 +0530 IST", 330),  # IST is ambiguous: the number wins
        ("2022-08-18 21:46:11.6510411 +0530 +0530", 330),  # Go's form for an unnamed zone
        ("2022-08-18 09:16:11.6510411 -0700 PDT", -420),
        ("2022-08-18 12:46:11.6510411 -0330 NDT", -210),
        ("2022-08-18 19:16:11.6510411 +0300 +03", 180),  # tzdata's numeric abbreviations
        ("2022-08-18 16:16:11.6510411 +0000 Etc/Weird_Name-1", 0),
    ],
)
def test_go_zones(text: str, offset_min: int) -> None:
    date, clock = text.split(" ")[:2]
    y, mo, d = (int(x) for x in date.split("-"))
    hms, frac = clock.split(".")
    h, mi, s = (int(x) for x in hms.split(":"))
    want = expected(y, mo, d, h, mi, s, frac, offset_min)
    check(text, want)
    # ...and all of them are the same instant
    assert want[0] == expected(2022, 8, 18, 16, 16, 11, "6510411")[0]


@pytest.mark.parametrize(
    ("suffix", "monotonic"),
    [
        (" m=+202.631797660", 202.63179766),
        (" m=+257377.633892701", 257377.633892701),
        (" m=+0.000000001", 1e-9),
        (" m=-0.000012345", -0.000012345),
        (" m=-3.500000000", -3.5),
        (" m=+9223372036.854775807", 9223372036.854775807),
    ],
)
def test_go_monotonic(suffix: str, monotonic: float) -> None:
    check(
        f"2020-06-03 23:59:53.688063083 +0000 UTC{suffix}",
        expected(2020, 6, 3, 23, 59, 53, "688063083"),
        monotonic,
    )


@pytest.mark.parametrize(
    "text",
    [
        "0001-01-01 00:00:00 +0000 UTC",
        "0001-01-01T00:00:00Z",
        "0001-01-01 01:00:00 +0100 CET",  # same instant: Go's IsZero() compares instants
        "0001-01-01T00:00:00+00:00",
    ],
)
def test_zero_time_is_none(text: str) -> None:
    assert parse_kube_time(text) is None


def test_near_zero_is_not_none() -> None:
    got = parse_kube_time("0001-01-01 00:00:00.000000001 +0000 UTC")
    assert got is not None
    assert got.unix_ns == EPOCH_GO_ZERO * 10**9 + 1


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("2025-01-18T07:58:53.413049689Z", expected(2025, 1, 18, 7, 58, 53, "413049689")),
        ("2025-01-18T07:58:53Z", expected(2025, 1, 18, 7, 58, 53)),
        ("2025-01-18T07:58:53.5Z", expected(2025, 1, 18, 7, 58, 53, "5")),
        ("2025-01-18T07:58:53.000000001Z", expected(2025, 1, 18, 7, 58, 53, "000000001")),
        ("2025-01-18T09:58:53.413049689+02:00", expected(2025, 1, 18, 9, 58, 53, "413049689", 120)),
        ("2025-01-18T02:28:53.1-05:30", expected(2025, 1, 18, 2, 28, 53, "1", -330)),
        ("2025-01-18T07:58:53.100Z", expected(2025, 1, 18, 7, 58, 53, "1")),  # untrimmed is fine
    ],
)
def test_rfc3339(text: str, want: tuple[int, float]) -> None:
    check(text, want)


def test_rfc3339_offset_is_same_instant() -> None:
    a = parse_kube_time("2025-01-18T09:58:53.413049689+02:00")
    b = parse_kube_time("2025-01-18T07:58:53.413049689Z")
    assert a is not None and b is not None and a.unix_ns == b.unix_ns


def test_before_1970_is_negative() -> None:
    got = parse_kube_time("1969-12-31 23:59:59.5 +0000 UTC")
    assert got is not None
    assert got.unix_ns == -500_000_000
    assert got.unix == -0.5


def test_extremes() -> None:
    hi = parse_kube_time("9999-12-31T23:59:59.999999999-23:59")
    lo = parse_kube_time("0001-01-01T00:00:00+23:59")
    assert hi is not None and lo is not None
    assert math.isfinite(hi.unix) and math.isfinite(lo.unix)
    # in UTC that is year 10000, beyond datetime: shift by hand
    shift = (23 * 3600 + 59 * 60) * 10**9
    assert hi.unix_ns == expected(9999, 12, 31, 23, 59, 59, "999999999")[0] + shift
    assert lo.unix_ns == EPOCH_GO_ZERO * 10**9 - shift


@pytest.mark.parametrize(
    "text",
    [
        "",
        "garbage",
        "2020-06-03 23:59:53.688063083 +0000 UTC ",  # trailing space
        " 2020-06-03 23:59:53.688063083 +0000 UTC",  # leading space
        "2020-06-03 23:59:53.688063083 +0000 UTC\n",
        "2020-06-03 23:59:53 UTC",  # no numeric offset
        "2020-06-03 23:59:53 +0000",  # no zone abbreviation
        "2020-06-03 23:59:53 +00:00 UTC",
        "2020-13-03 23:59:53 +0000 UTC",  # 13th month
        "2020-00-03 23:59:53 +0000 UTC",
        "2021-02-29 23:59:53 +0000 UTC",  # not a leap year
        "2020-06-03 24:00:00 +0000 UTC",
        "2020-06-03 23:60:00 +0000 UTC",
        "2020-06-03 23:59:60 +0000 UTC",  # Go rejects leap seconds too
        "0000-12-31 23:59:59 +0000 UTC",  # year 0
        "10000-01-01 00:00:00 +0000 UTC",
        "-001-01-01 00:00:00 +0000 UTC",
        "2020-06-03 23:59:53. +0000 UTC",  # dot without digits
        "2020-06-03 23:59:53.1234567890 +0000 UTC",  # 10 fraction digits
        "2020-06-03 23:59:53 +2400 UTC",  # offset hour out of range
        "2020-06-03 23:59:53 +0060 UTC",
        "2020-06-03 23:59:53 +0000 UTC m=+1.5",  # Go always prints 9 digits
        "2020-06-03 23:59:53 +0000 UTC m=1.500000000",  # and a sign
        "2020-06-03 23:59:53 +0000 UTC m=+12345678901.000000000",  # beyond int64 ns
        "2020-06-03 23:59:53 +0000 UTC  m=+1.500000000",
        "2020-6-3 23:59:53 +0000 UTC",
        "2020-06-03T23:59:53",  # RFC 3339 needs an offset
        "2020-06-03t23:59:53z",  # Go writes upper case
        "2020-06-03T23:59:53+0200",
        "2020-06-03T23:59:53+02",
        "2020-06-03T23:59:53,5Z",
        "2020-06-03T23:59:53.5Z m=+1.000000000",  # RFC 3339 has no monotonic part
        "20200603T235953Z",  # ISO basic format, not RFC 3339
        "2020-06-03T24:00:00Z",
        "２０２０-06-03 23:59:53 +0000 UTC",  # full-width digits
        "2020-06-03 23:59:53 +0000 U\u00a0TC",
        "2020-06-03 23:59:53 +0000 " + "X" * 100,
    ],
)
def test_rejects(text: str) -> None:
    with pytest.raises(TimeParseError):
        parse_kube_time(text)


def test_rejects_non_string() -> None:
    with pytest.raises(TimeParseError):
        parse_kube_time(5)  # type: ignore[arg-type]


def test_error_is_value_error_with_bounded_reason() -> None:
    with pytest.raises(ValueError) as info:
        parse_kube_time("2020-13-03 23:59:53 +0000 UTC" + "x" * 5)
    assert isinstance(info.value, TimeParseError)
    assert "2020" not in info.value.reason
    assert len(str(info.value)) < 200
