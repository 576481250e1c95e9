"""Healthz bodies byte for byte against real captures (fixtures/kube-proxy/SOURCES.md)."""

from __future__ import annotations

import calendar
import re

from hypothesis import given
from hypothesis import strategies as st

from kpexporter.simulator.bodies import (
    NS,
    FamilyHealth,
    GoTime,
    fmt_body,
    fmt_body_node_eligible,
    go_time_string,
    json_body,
    rfc3339_nano,
)


def at(stamp: str, frac_ns: int, mono: str | None = None, zone: str = "UTC") -> GoTime:
    """A GoTime from 'YYYY-mm-dd HH:MM:SS' UTC, nanoseconds and an m= reading like '202.63'."""
    secs = calendar.timegm((*(int(x) for x in re.split("[-: ]", stamp)), 0, 0, 0))
    mono_ns = None
    if mono is not None:
        whole, frac = mono.split(".")
        mono_ns = int(whole) * NS + int(frac)
    return GoTime(secs * NS + frac_ns, mono_ns, 0, zone)


def test_cilium_118_capture_is_reproduced() -> None:
    t = at("2020-06-03 23:59:53", 688063083, "202.631797660")
    expected = (
        b'{"lastUpdated": "2020-06-03 23:59:53.688063083 +0000 UTC m=+202.631797660",'
        b'"currentTime": "2020-06-03 23:59:53.688063083 +0000 UTC m=+202.631797660"}'
    )
    assert fmt_body(t, t) == expected


def test_windows_capture_trims_fraction_and_keeps_zone_abbreviation() -> None:
    t = at("2022-08-18 16:16:11", 651041100, "257377.633892701", zone="GMT")
    expected = (
        b'{"lastUpdated": "2022-08-18 16:16:11.6510411 +0000 GMT m=+257377.633892701",'
        b'"currentTime": "2022-08-18 16:16:11.6510411 +0000 GMT m=+257377.633892701"}'
    )
    assert fmt_body(t, t) == expected


def test_node_eligible_captures_are_reproduced() -> None:
    cases = [
        ("2024-06-21 11:08:45", 74765635, "80.277574766"),
        ("2024-06-16 13:10:38", 185046097, "18599.921395918"),
        ("2025-01-18 07:58:53", 413049689, "930.365308647"),
    ]
    for stamp, frac, mono in cases:
        t = at(stamp, frac, mono)
        text = go_time_string(t)
        expected = (
            f'{{"lastUpdated": "{text}","currentTime": "{text}", "nodeEligible": true}}'
        ).encode()
        assert fmt_body_node_eligible(t, t, True) == expected
    # the first one exactly as captured, to pin the fraction rendering too
    t = at(*cases[0])
    assert go_time_string(t) == "2024-06-21 11:08:45.074765635 +0000 UTC m=+80.277574766"


def test_zero_time_has_no_monotonic_part() -> None:
    assert go_time_string(GoTime.zero()) == "0001-01-01 00:00:00 +0000 UTC"
    assert rfc3339_nano(GoTime.zero()) == "0001-01-01T00:00:00Z"
    assert GoTime.zero().is_zero


def test_whole_second_has_no_dot_and_offsets_render_like_go() -> None:
    t = GoTime(1_700_000_000 * NS, 5 * NS, -7 * 3600, "MST")
    assert go_time_string(t) == "2023-11-14 15:13:20 -0700 MST m=+5.000000000"
    assert rfc3339_nano(t) == "2023-11-14T15:13:20-07:00"


def test_rfc3339_nano_trims_like_go() -> None:
    assert rfc3339_nano(at("2025-01-18 07:58:53", 413049689)) == "2025-01-18T07:58:53.413049689Z"
    assert rfc3339_nano(at("2025-01-18 07:58:53", 100000000)) == "2025-01-18T07:58:53.1Z"


def test_json_body_is_compact_ordered_and_sorts_status() -> None:
    cur = at("2025-01-18 07:58:53", 413049689)
    last = at("2025-01-18 07:58:53", 413055000)
    v4 = FamilyHealth(at("2025-01-18 07:58:40", 0), True)
    v6 = FamilyHealth(GoTime.zero(), False)
    body = json_body(last, cur, False, {"IPv6": v6, "IPv4": v4}, node_eligible=True)
    assert body == (
        b'{"lastUpdated":"2025-01-18T07:58:53.413055Z","currentTime":"2025-01-18T07:58:53.413049689Z",'
        b'"nodeEligible":true,"healthy":false,"status":{"IPv4":{"lastUpdated":"2025-01-18T07:58:40Z",'
        b'"healthy":true},"IPv6":{"lastUpdated":"0001-01-01T00:00:00Z","healthy":false}}}'
    )


def test_json_livez_omits_node_eligible_and_empty_status() -> None:
    cur = at("2025-01-18 07:58:53", 1)
    assert json_body(cur, cur, True, {}) == (
        b'{"lastUpdated":"2025-01-18T07:58:53.000000001Z",'
        b'"currentTime":"2025-01-18T07:58:53.000000001Z","healthy":true}'
    )


_GO_TIME = re.compile(
    r"^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2})(\.\d{1,9})? ([+-]\d{4}) (\S+)( m=[+-]\d+\.\d{9})?$"
)


@given(
    st.integers(min_value=0, max_value=4_000_000_000 * NS),
    st.none() | st.integers(min_value=0, max_value=10**15),
)
def test_every_rendering_matches_the_research_regex(unix_ns: int, mono: int | None) -> None:
    text = go_time_string(GoTime(unix_ns, mono))
    m = _GO_TIME.match(text)
    assert m is not None
    frac = m.group(2)
    assert frac is None or not frac.endswith("0")
    assert (frac is None) == (unix_ns % NS == 0)
