"""extract(): which histograms each real page yields, with prometheus_client's values."""

from __future__ import annotations

import math

import pytest

from kpexporter.kubeproxy.families import (
    HISTOGRAMS,
    KubeProxyMetrics,
    extract,
    format_go_float,
)
from kpexporter.promtext.exposition import LabelSet, read_exposition
from kpexporter.stats.histogram import Buckets
from tests.fixtures import (
    V1_8,
    V1_21,
    V1_21_USERSPACE,
    V1_30,
    fixture_bytes,
    fixture_text,
    reference_samples,
)

SYNC_LES = (
    "0.001", "0.002", "0.004", "0.008", "0.016", "0.032", "0.064", "0.128",
    "0.256", "0.512", "1.024", "2.048", "4.096", "8.192", "16.384", "+Inf",
)  # fmt: skip


def metrics(name: str) -> KubeProxyMetrics:
    return extract(read_exposition(fixture_bytes(name)))


def expected_buckets(text: str, family: str, labels: LabelSet = ()) -> Buckets:
    """The same series as prometheus_client reads it (page order, le as written)."""
    ref = reference_samples(text, (family,))
    rows = [
        (dict(key)["le"], value)
        for (name, key), value in ref.items()
        if name == family + "_bucket" and tuple(p for p in key if p[0] != "le") == labels
    ]
    return Buckets(
        les=tuple(le for le, _ in rows),
        bounds=tuple(float(le) for le, _ in rows),
        counts=tuple(value for _, value in rows),
        sum=ref[(family + "_sum", labels)],
        count=ref[(family + "_count", labels)],
    )


def test_v1_30_has_all_four_with_prometheus_client_values() -> None:
    m = metrics(V1_30)
    assert set(m.histograms) == set(HISTOGRAMS)
    for key, family in HISTOGRAMS.items():
        assert m.histograms[key] == {(): expected_buckets(fixture_text(V1_30), family)}
    sync = m.histograms["sync_proxy_rules_duration_seconds"][()]
    assert sync.les == SYNC_LES and sync.count == 3.0 and sync.counts[-1] == 3.0
    net = m.histograms["network_programming_duration_seconds"][()]
    assert len(net.les) == 82 and net.les[0] == "0" and net.les[-2:] == ("300", "+Inf")
    assert net.bounds[-1] == math.inf
    assert m.last_sync == {(): 1714040271.4546502}
    assert m.last_queued == {(): 1714040271.4481494}
    assert m.endpoint_changes_pending == 0.0 and m.service_changes_pending == 0.0
    assert m.process_start_time == 1714040258.95
    assert m.bad_lines == 0 and m.errors == ()


def test_v1_21_has_sync_and_network_programming_only() -> None:
    m = metrics(V1_21)
    assert set(m.histograms) == {
        "sync_proxy_rules_duration_seconds",
        "network_programming_duration_seconds",
    }
    text = fixture_text(V1_21)
    for key in m.histograms:
        assert m.histograms[key] == {(): expected_buckets(text, HISTOGRAMS[key])}
    assert m.last_queued == {(): 1641498517.9070282}


def test_userspace_page_yields_nothing_but_process_start() -> None:
    m = metrics(V1_21_USERSPACE)
    assert m.histograms == {} and m.last_sync == {} and m.last_queued == {}
    assert m.endpoint_changes_pending is None and m.service_changes_pending is None
    assert m.process_start_time == 1641523398.13


def test_v1_8_microseconds_become_seconds() -> None:
    m = metrics(V1_8)
    assert set(m.histograms) == {"sync_proxy_rules_duration_seconds"}
    got = m.histograms["sync_proxy_rules_duration_seconds"][()]
    micro = expected_buckets(fixture_text(V1_8), "kubeproxy_sync_proxy_rules_latency_microseconds")
    assert got.les == SYNC_LES
    assert got.bounds == tuple(b / 1e6 for b in micro.bounds)
    assert got.bounds[:2] == (0.001, 0.002) and got.bounds[-2] == 16.384
    assert got.counts == micro.counts and got.count == micro.count == 364.0
    assert got.sum == pytest.approx(19.5825) and got.sum == micro.sum / 1e6
    assert m.last_sync == {} and m.process_start_time == 1515418588.97


def test_seconds_win_over_microseconds() -> None:
    page = fixture_text(V1_8) + "".join(
        line + "\n"
        for line in fixture_text(V1_30).splitlines()
        if line.startswith("kubeproxy_sync_proxy_rules_duration_seconds")
    )
    got = extract(read_exposition(page)).histograms["sync_proxy_rules_duration_seconds"]
    assert got == {
        (): expected_buckets(fixture_text(V1_30), HISTOGRAMS["sync_proxy_rules_duration_seconds"])
    }


def test_ip_family_series_are_separate() -> None:
    page = "".join(
        f'kubeproxy_sync_proxy_rules_duration_seconds_bucket{{ip_family="{f}",le="{le}"}} {n}\n'
        for f, n in (("IPv4", 1), ("IPv6", 2))
        for le in ("0.001", "+Inf")
    ) + (
        'kubeproxy_sync_proxy_rules_duration_seconds_sum{ip_family="IPv4"} 0.5\n'
        'kubeproxy_sync_proxy_rules_duration_seconds_count{ip_family="IPv4"} 1\n'
        'kubeproxy_sync_proxy_rules_last_timestamp_seconds{ip_family="IPv4"} 10\n'
        'kubeproxy_sync_proxy_rules_last_timestamp_seconds{ip_family="IPv6"} 20\n'
        'kubeproxy_sync_proxy_rules_endpoint_changes_pending{ip_family="IPv4"} 1\n'
        'kubeproxy_sync_proxy_rules_endpoint_changes_pending{ip_family="IPv6"} 2\n'
    )
    m = extract(read_exposition(page))
    sync = m.histograms["sync_proxy_rules_duration_seconds"]
    v4, v6 = (("ip_family", "IPv4"),), (("ip_family", "IPv6"),)
    assert sync[v4] == Buckets(("0.001", "+Inf"), (0.001, math.inf), (1.0, 1.0), 0.5, 1.0)
    assert sync[v6].counts == (2.0, 2.0)
    assert math.isnan(sync[v6].sum) and math.isnan(sync[v6].count)  # not reported: NaN
    assert m.last_sync == {v4: 10.0, v6: 20.0}
    assert m.endpoint_changes_pending == 3.0


def test_bucket_edge_cases() -> None:
    h = "kubeproxy_network_programming_duration_seconds"
    page = (
        f'{h}_bucket{{le="1"}} 1\n'
        f'{h}_bucket{{le="1.0"}} 2\n'
        f'{h}_bucket{{le="not-a-number"}} 5\n'  # dropped, as Prometheus does
        f'{h}_bucket{{le="0x1p1"}} 3\n'  # Go's ParseFloat reads hex: 2
        f'{h}_bucket{{other="x"}} 9\n'  # no le: not a bucket
        f"{h}_sum 4\n"
    )
    m = extract(read_exposition(page))
    assert m.bad_lines == 0
    got = m.histograms["network_programming_duration_seconds"]
    assert got == {
        (): Buckets(("1", "1.0", "0x1p1"), (1.0, 1.0, 2.0), (1.0, 2.0, 3.0), 4.0, got[()].count)
    }
    assert math.isnan(got[()].count)  # no _count line, no +Inf bucket: still returned


def test_histogram_without_usable_buckets_is_absent() -> None:
    h = "kubeproxy_sync_full_proxy_rules_duration_seconds"
    page = f'{h}_bucket{{le="x"}} 1\n{h}_sum 1\n{h}_count 1\n'
    assert extract(read_exposition(page)).histograms == {}


def test_bad_lines_are_carried_over() -> None:
    m = extract(read_exposition("kubeproxy_x oops\n"))
    assert m.bad_lines == 1 and m.errors[0].startswith("line 1: bad value")


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.001, "0.001"),
        (16.384, "16.384"),
        (512000.0, "512000"),
        (1e6, "1e+06"),
        (1.6384e7, "1.6384e+07"),
        (1.51541858897e9, "1.51541858897e+09"),
        (1e-5, "1e-05"),
        (0.0001, "0.0001"),
        (-2.5, "-2.5"),
        (0.0, "0"),
        (math.inf, "+Inf"),
        (-math.inf, "-Inf"),
        (math.nan, "NaN"),
    ],
)
def test_format_go_float(value: float, text: str) -> None:
    assert format_go_float(value) == text


def test_histogram_series_with_huge_labels_is_ignored() -> None:
    from kpexporter.kubeproxy.families import MAX_LABEL_CHARS, extract
    from kpexporter.promtext.exposition import read_exposition
    name = "kubeproxy_sync_proxy_rules_duration_seconds"
    long_value = "x" * MAX_LABEL_CHARS
    page = (f'{name}_bucket{{ip_family="IPv4",le="+Inf"}} 3\n{name}_sum{{ip_family="IPv4"}} 1\n'
            f'{name}_count{{ip_family="IPv4"}} 3\n'
            f'{name}_bucket{{a="{long_value}",le="+Inf"}} 5\n').encode()
    m = extract(read_exposition(page))
    assert list(m.histograms[name.removeprefix("kubeproxy_")]) == [(("ip_family", "IPv4"),)]
