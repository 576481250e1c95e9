"""The verdict from one poll's signals: bounds of the oldest change's wait, and what is wrong.

Every expected number is worked out in the test from the page's timestamps: a change queued
after the last sync has waited at least ``now − last_queued`` and at most ``now − last_sync``;
a family that never synced has owed its first sync since ``process_start_time_seconds``.
"""

from __future__ import annotations

import pytest

from kpexporter.core.verdict import (
    HEALTHZ_503,
    NEVER_SYNCED,
    NODE_NOT_ELIGIBLE,
    PENDING_OVER_THRESHOLD,
    Problem,
    Wait,
    judge,
    sync_wait,
)
from kpexporter.kubeproxy.families import KubeProxyMetrics, extract
from kpexporter.kubeproxy.healthz import HealthzReport, parse_healthz
from kpexporter.promtext.exposition import read_exposition

NOW = 1_750_000_000.0
LAST_SYNC = "kubeproxy_sync_proxy_rules_last_timestamp_seconds"
LAST_QUEUED = "kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds"


def page(synced: dict[str, float], queued: dict[str, float],
         start: float | None = None) -> KubeProxyMetrics:
    """A kube-proxy page with these gauges; keys are ``ip_family`` ("" for no label)."""
    def lines(name: str, values: dict[str, float]) -> list[str]:
        out = [f"# TYPE {name} gauge"]
        for fam, v in values.items():
            lab = f'{{ip_family="{fam}"}}' if fam else ""
            out.append(f"{name}{lab} {v!r}")
        return out
    text = [*lines(LAST_SYNC, synced), *lines(LAST_QUEUED, queued)]
    if start is not None:
        text += ["# TYPE process_start_time_seconds gauge", f"process_start_time_seconds {start!r}"]
    return extract(read_exposition(("\n".join(text) + "\n").encode()))


def test_synced_after_the_last_queued_change_waits_for_nothing() -> None:
    assert sync_wait(page({"": NOW - 5}, {"": NOW - 20}), NOW) == Wait(0.0, 0.0)


def test_one_poll_bounds_the_wait_between_last_queued_and_last_sync() -> None:
    w = sync_wait(page({"": NOW - 100}, {"": NOW - 30}, start=NOW - 900), NOW)
    assert w == Wait(30.0, 100.0) and not w.exact


def test_the_remembered_oldest_queued_time_raises_the_lower_bound() -> None:
    m = page({"": NOW - 100}, {"": NOW - 30})
    assert sync_wait(m, NOW, {(): NOW - 70}) == Wait(70.0, 100.0)
    # A remembered time later than the page's newest is not older evidence: ignored.
    assert sync_wait(m, NOW, {(): NOW - 10}) == Wait(30.0, 100.0)


def test_never_synced_has_waited_since_the_process_started() -> None:
    # 1.30 single-family page: the unset last-sync gauge is 0.
    w = sync_wait(page({"": 0.0}, {"": NOW - 3}, start=NOW - 75), NOW)
    assert w == Wait(75.0, 75.0, never_synced=True) and w.exact
    # 1.33 per-family page: a family that never synced has no last-sync series at all.
    w = sync_wait(page({}, {"IPv4": NOW - 3}, start=NOW - 75), NOW)
    assert w == Wait(75.0, 75.0, never_synced=True)
    # Without a start time only the queued change bounds it, from below.
    assert sync_wait(page({}, {"IPv4": NOW - 3}), NOW) == Wait(3.0, None)


def test_the_worst_family_counts_and_the_upper_bound_covers_all() -> None:
    m = page({"IPv4": NOW - 40, "IPv6": NOW - 200}, {"IPv4": NOW - 35, "IPv6": NOW - 10})
    # IPv4 waited 35..40 s, IPv6 10..200 s: the worst wait is at least 35 s, at most 200 s.
    assert sync_wait(m, NOW) == Wait(35.0, 200.0)


def test_no_queued_gauge_says_nothing() -> None:
    assert sync_wait(page({}, {}), NOW) is None
    assert sync_wait(page({"": NOW - 5}, {}), NOW) is None  # before 1.19: no last_queued


FMT_128 = ('{{"lastUpdated": "{last}","currentTime": "2025-06-15 15:06:40 +0000 UTC '
           'm=+900.000000001", "nodeEligible": {eligible}}}')
JSON_133_STUCK = (b'{"lastUpdated":"2025-06-15T15:04:00Z","currentTime":"2025-06-15T15:06:40Z",'
                  b'"nodeEligible":true,"healthy":false,"status":{"IPv4":{"lastUpdated":'
                  b'"2025-06-15T15:04:00Z","healthy":false}}}')


def body_128(last: str, eligible: str = "true", status: int = 503) -> HealthzReport:
    return parse_healthz(FMT_128.format(last=last, eligible=eligible).encode(), status)


def test_unreachable_names_the_failures() -> None:
    failed = (Problem("healthz_connect", "healthz: refused"),)
    assert judge(False, failed, None, 0, None, 60.0) == ("unreachable", failed)
    assert judge(False, (), None, 0, None, 60.0)[1][0].text == "no answer"


def test_a_503_is_kube_proxys_own_verdict_with_its_reason() -> None:
    verdict, problems = judge(True, (), body_128("2025-06-15 15:05:00 +0000 UTC m=+800.000000000"),
                              503, Wait(0.0, 0.0), 60.0)
    assert verdict == "unhealthy" and [p.kind for p in problems] == [HEALTHZ_503]
    _, problems = judge(True, (), body_128("0001-01-01 00:00:00 +0000 UTC"), 503, None, 60.0)
    assert problems[0].text == "/healthz answered 503 (never synced)"
    draining = body_128("2025-06-15 15:06:40 +0000 UTC m=+900.000000000", "false")
    _, problems = judge(True, (), draining, 503, Wait(0.0, 0.0), 60.0)
    assert [p.kind for p in problems] == [NODE_NOT_ELIGIBLE]
    # 1.33 names the family that is behind: 15:04:00 to 15:06:40 is 160 s.
    _, problems = judge(True, (), parse_healthz(JSON_133_STUCK, 503), 503, Wait(0.7, 160.0),
                        60.0)
    assert problems == (Problem(HEALTHZ_503, "/healthz answered 503 (IPv4 last synced 160.0s "
                                "ago)"),)


def test_a_wait_over_the_threshold_is_unhealthy_and_says_when_it_is_a_bound() -> None:
    ok = body_128("2025-06-15 15:06:40 +0000 UTC m=+900.000000000", status=200)
    assert judge(True, (), ok, 200, Wait(60.0, 80.0), 60.0) == ("healthy", ())  # not over
    verdict, problems = judge(True, (), ok, 200, Wait(60.5, 80.0), 60.0)
    assert verdict == "unhealthy"
    assert problems == (Problem(PENDING_OVER_THRESHOLD, "a queued rule change has waited "
                                "≥ 60.5s (threshold 60s)"),)
    _, problems = judge(True, (), ok, 200, Wait(75.0, 75.0, never_synced=True), 60.0)
    assert problems == (Problem(NEVER_SYNCED, "no sync since kube-proxy started 75.0s ago "
                                "(threshold 60s)"),)
    # Only the lower bound counts: a wait that may be long but surely is not is healthy.
    assert judge(True, (), ok, 200, Wait(1.0, None), 60.0)[0] == "healthy"


@pytest.mark.parametrize("status", [200, 503])
def test_kinds_stay_while_the_numbers_grow(status: int) -> None:
    """The log compares kinds: the same trouble a poll later is the same problem."""
    h = body_128("2025-06-15 15:05:00 +0000 UTC m=+800.000000000", status=status)
    first = judge(True, (), h, status, Wait(61.0, 90.0), 60.0)[1]
    later = judge(True, (), h, status, Wait(75.5, 104.5), 60.0)[1]
    assert [p.kind for p in first] == [p.kind for p in later]
    assert [p.text for p in first] != [p.text for p in later]
