"""Fault injection: the real poller and app against a hostile kube-proxy, one fault at a time.

Each case runs the same script: a healthy start (``kpexporter_up 1``); the fault, during which
``/metrics`` (and ``/api/v1/targets``, ``/``) keep answering 200 within a generous deadline,
``kpexporter_up`` and exactly the expected ``kpexporter_poll_errors_total{endpoint, reason}``
series say what happened, and the target's state does not grow; then recovery, after which
``up`` is 1 again, the error counters stop, and every derived value equals what a healthy
poll of the same page gives. No traceback and no ``poll_bug`` ever reaches the log.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from kpexporter.kubeproxy.families import extract
from kpexporter.promtext.exposition import read_exposition
from kpexporter.stats.quantile import quantile
from tests.faults.hostile import (
    HEALTHZ,
    JSON,
    METRICS,
    Behaviour,
    Exporter,
    Scrape,
    answer,
    endless,
    fixture_page,
    footprint,
    gzip_bomb,
    hang,
    healthz_body,
    refuse,
    reset_mid_body,
    running,
    slowloris,
)
from tests.fixtures import V1_30

REASONS = ("timeout", "connect", "read", "http_status", "parse", "too_large")
CAP = 256 * 1024  # max_body_bytes for these tests; the v1.30 page is 84 KB
SYNC_BUCKET = "kubeproxy_sync_proxy_rules_duration_seconds_bucket"


def healthy_healthz() -> Behaviour:
    return answer(lambda: healthz_body(), content_type="text/plain; charset=utf-8")


def good_page() -> bytes:
    return fixture_page(V1_30)


def with_sample(page: bytes, name: str, value: str) -> bytes:
    """``page`` with the value of the unlabelled sample ``name`` replaced."""
    out, n = re.subn(rb"(?m)^" + re.escape(name.encode()) + rb" \S+$",
                     name.encode() + b" " + value.encode(), page)
    assert n == 1, name
    return out


def with_buckets(page: bytes, values: Callable[[int, bytes], bytes]) -> bytes:
    """``page`` with the sync histogram's bucket values rewritten by ``values(i, old)``."""
    lines = page.split(b"\n")
    i = 0
    for n, line in enumerate(lines):
        if line.startswith(SYNC_BUCKET.encode() + b"{"):
            head, _, old = line.rpartition(b" ")
            lines[n] = head + b" " + values(i, old)
            i += 1
    assert i == 16
    return b"\n".join(lines)


@dataclass(frozen=True)
class Fault:
    """One fault: what each endpoint does while it lasts, and what the exporter must say."""

    id: str
    healthz: Callable[[], Behaviour] | None = None  # None: stays healthy
    metrics: Callable[[], Behaviour] | None = None
    up: float = 0.0
    errors: frozenset[tuple[str, str]] = frozenset()
    flags: dict[str, Any] = field(default_factory=dict)
    check: Callable[[Scrape], None] | None = None  # more assertions while the fault is active
    any_of: frozenset[tuple[str, str]] = frozenset()  # instead of ``errors``: some of these


def errs(*pairs: str) -> frozenset[tuple[str, str]]:
    out = set()
    for p in pairs:
        endpoint, reason = p.split("/")
        out.add((endpoint, reason))
    return frozenset(out)


def page(body: bytes | Callable[[], bytes], content_type: str = "text/plain; version=0.0.4",
         status: int = 200) -> Callable[[], Behaviour]:
    return lambda: answer(body() if callable(body) else body, status, content_type)


def html(status: int) -> Callable[[], Behaviour]:
    doc = (b"<!DOCTYPE html><html><head><title>%d</title></head><body><h1>Bad Gateway</h1>"
           b"<p>nginx</p></body></html>\n" % status)
    return lambda: answer(doc, status, "text/html; charset=utf-8")


FUTURE_BODY = (b'{"lastUpdated": "2999-01-01 00:00:00 +0000 UTC m=+80.100000000","currentTime": '
               b'"2999-01-01 00:00:00.5 +0000 UTC m=+80.600000000", "nodeEligible": true}')
PRE_1970_BODY = (b'{"lastUpdated": "1960-01-01 00:00:00 -0700 MST","currentTime": '
                 b'"1960-01-01 00:00:02 -0700 MST", "nodeEligible": true}')
YEAR_ONE_BODY = (b'{"lastUpdated": "0001-01-01 00:00:01 +0000 UTC","currentTime": '
                 b'"0001-01-01 00:00:02 +0000 UTC"}')
LAST_AFTER_NOW_BODY = (b'{"lastUpdated":"9999-12-31T23:59:59.999999999Z",'
                       b'"currentTime":"2025-05-01T10:00:01Z","nodeEligible":true,"healthy":true,'
                       b'"status":{"IPv4":{"lastUpdated":"9999-12-31T23:59:59Z","healthy":true}}}')


def check_far_future(s: Scrape) -> None:
    skew = s.value("kpexporter_clock_skew_seconds")
    assert skew is not None and skew > 3e10  # kube-proxy's clock says 2999: that is the news
    assert s.value("kpexporter_healthz_staleness_seconds") == 0.5
    assert s.value("kpexporter_healthz_last_updated_timestamp_seconds") == 32472144000.0


def check_pre_1970(s: Scrape) -> None:
    skew = s.value("kpexporter_clock_skew_seconds")
    assert skew is not None and skew < -1e9
    assert s.value("kpexporter_healthz_staleness_seconds") == 2.0
    assert s.value("kpexporter_healthz_last_updated_timestamp_seconds") == -315594000.0


def check_year_one(s: Scrape) -> None:
    # One second after Go's zero time is a time, not "never synced": finite, not +Inf.
    assert s.value("kpexporter_healthz_staleness_seconds") == 1.0
    assert s.value("kpexporter_healthz_last_updated_timestamp_seconds") == -62135596799.0


def check_last_after_now(s: Scrape) -> None:
    assert s.value("kpexporter_healthz_staleness_seconds") == 0.0  # clamped, never negative
    fam = s.value("kpexporter_healthz_family_staleness_seconds", ip_family="IPv4")
    assert fam == 0.0


def check_metrics_times(expect_last: float) -> Callable[[Scrape], None]:
    def check(s: Scrape) -> None:
        assert s.value("kpexporter_sync_last_timestamp_seconds") == expect_last
        pending = s.value("kpexporter_sync_pending_seconds")
        assert pending is not None and pending >= 0
    return check


def nan_buckets(i: int, old: bytes) -> bytes:
    return b"NaN"


def inf_buckets(i: int, old: bytes) -> bytes:
    return b"+Inf" if i >= 8 else old


def negative_buckets(i: int, old: bytes) -> bytes:
    return b"-7"


def decreasing_buckets(i: int, old: bytes) -> bytes:
    return str(100 - i).encode()


def spoiled_utf8() -> bytes:
    # Two lines of ours with bytes that are not UTF-8: those lines are skipped, the rest read.
    p = good_page().replace(b'le="0.256"} 3', b'le="0.256"} 3\xff\xfe', 1)
    return p.replace(b"# HELP process_start_time_seconds", b"# HELP \xc3\x28 process_start", 1)


def duplicated() -> bytes:
    line = next(ln for ln in good_page().split(b"\n") if ln.startswith(SYNC_BUCKET.encode()))
    return good_page() + b"\n" + line.replace(b"} 0", b"} 999") + b"\n"


FAULTS = [
    Fault("refused-both", refuse, refuse, 0, errs("healthz/connect", "metrics/connect")),
    Fault("refused-metrics", None, refuse, 0, errs("metrics/connect")),
    Fault("reset-mid-body-metrics", None, lambda: reset_mid_body(good_page()), 0,
          errs("metrics/read")),
    Fault("reset-mid-body-healthz", lambda: reset_mid_body(healthz_body() + b" " * 4000), None,
          0, errs("healthz/read")),
    Fault("hang-metrics", None, hang, 0, errs("metrics/timeout")),
    Fault("hang-both", hang, hang, 0, errs("healthz/timeout", "metrics/timeout")),
    Fault("slowloris-metrics", None, lambda: slowloris(good_page()), 0, errs("metrics/timeout")),
    Fault("slowloris-healthz", lambda: slowloris(healthz_body()), None, 0,
          errs("healthz/timeout")),
    Fault("over-cap-declared", None, page(b"# filler\n" * (CAP // 4)), 0,
          errs("metrics/too_large")),
    Fault("over-cap-chunked", None, endless, 0, errs("metrics/too_large")),
    Fault("over-cap-healthz", page(b" " * 100_000 + b"{}", JSON), None, 0,
          errs("healthz/too_large")),
    Fault("gzip-bomb", None, gzip_bomb, 0, errs("metrics/too_large")),
    Fault("invalid-utf8-healthz", page(b'{"lastUpdated": "\xff\xfe 2024", "currentTime": 1}',
                                       JSON), None, 0, errs("healthz/parse")),
    Fault("invalid-utf8-metrics-lines", None, page(spoiled_utf8), 1, errs("metrics/parse")),
    Fault("binary-garbage-metrics", None, page(bytes(range(256)) * 64), 0,
          errs("metrics/parse")),
    Fault("html-502-healthz", html(502), None, 0, errs("healthz/http_status")),
    Fault("html-503-healthz", html(503), None, 0, errs("healthz/parse")),
    Fault("html-200-metrics", None, html(200), 0, errs("metrics/parse")),
    Fault("html-500-metrics", None, html(500), 0, errs("metrics/http_status")),
    Fault("metrics-port-ok-as-healthz", page(b"ok"), None, 0, errs("healthz/parse")),
    Fault("json-wrong-types-healthz",
          page(b'{"lastUpdated": 1718968125, "currentTime": true, "nodeEligible": "yes"}',
               JSON), None, 0, errs("healthz/parse")),
    Fault("json-wrong-types-1.33-healthz",
          page(b'{"lastUpdated":"2025-05-01T10:00:00Z","currentTime":"2025-05-01T10:00:01Z",'
               b'"healthy":"true","status":{"IPv4":[]}}', JSON), None, 0, errs("healthz/parse")),
    Fault("json-as-metrics", None, page(b'{"kubeproxy_sync_proxy_rules_last_timestamp_seconds":'
                                        b' 1.7e9}', JSON), 0, errs("metrics/parse")),
    Fault("healthz-far-future", page(FUTURE_BODY), None, 1, frozenset(), check=check_far_future),
    Fault("healthz-before-1970", page(PRE_1970_BODY), None, 1, frozenset(),
          check=check_pre_1970),
    Fault("healthz-year-one", page(YEAR_ONE_BODY), None, 1, frozenset(), check=check_year_one),
    Fault("healthz-last-updated-after-now", page(LAST_AFTER_NOW_BODY), None, 1, frozenset(),
          check=check_last_after_now),
    Fault("metrics-times-far-future", None, page(lambda: with_sample(
        with_sample(good_page(), "kubeproxy_sync_proxy_rules_last_timestamp_seconds", "4e10"),
        "kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds", "4.1e10")), 1,
        frozenset(), check=check_metrics_times(4e10)),
    Fault("metrics-times-before-1970", None, page(lambda: with_sample(
        with_sample(good_page(), "kubeproxy_sync_proxy_rules_last_timestamp_seconds", "-1e9"),
        "process_start_time_seconds", "-5")), 1, frozenset(),
        check=check_metrics_times(-1e9)),
    Fault("nan-bucket-counts", None, page(lambda: with_buckets(good_page(), nan_buckets)), 1,
          errs("metrics/parse")),
    Fault("inf-bucket-counts", None, page(lambda: with_buckets(good_page(), inf_buckets)), 1,
          errs("metrics/parse")),
    Fault("negative-bucket-counts", None,
          page(lambda: with_buckets(good_page(), negative_buckets)), 1, errs("metrics/parse")),
    Fault("non-monotonic-buckets", None,
          page(lambda: with_buckets(good_page(), decreasing_buckets)), 1, errs("metrics/parse")),
    Fault("duplicate-series", None, page(duplicated), 1, errs("metrics/parse")),
    Fault("metrics-404", None, page(b"404 page not found\n", "text/plain", 404), 0,
          errs("metrics/http_status")),
]


def grown(before: Scrape, after: Scrape) -> set[tuple[str, str]]:
    out = set()
    for endpoint in (HEALTHZ, METRICS, "proxymode"):
        for reason in REASONS:
            if after.errors(endpoint, reason) > before.errors(endpoint, reason):
                out.add((endpoint, reason))
    return out


def assert_clean_log(caplog: pytest.LogCaptureFixture) -> None:
    for r in caplog.records:
        assert r.exc_info is None, f"{r.name}: {r.getMessage()} carries a traceback"
        assert "Traceback" not in r.getMessage()
        assert r.getMessage() != "poll_bug", vars(r)
        assert r.levelno < logging.ERROR, f"{r.name}: {r.getMessage()}"
    assert "Traceback" not in caplog.text


def expected_lifetime(page_bytes: bytes) -> dict[str, tuple[float, ...]]:
    """The lifetime quantiles a healthy poll of ``page_bytes`` must show, per summary name."""
    m = extract(read_exposition(page_bytes))
    return {name: tuple(quantile(q, b) for q in (0.5, 0.9, 0.99))
            for name, series in m.histograms.items() for b in series.values()}


def assert_healthy_values(s: Scrape, page_bytes: bytes) -> None:
    """Everything a healthy poll of the v1.30 page shows, recomputed independently."""
    assert s.value("kpexporter_up") == 1
    assert s.value("kpexporter_healthz_healthy") == 1
    assert s.value("kpexporter_healthz_status_code") == 200
    assert s.value("kpexporter_healthz_node_eligible") == 1
    assert s.value("kpexporter_healthz_staleness_seconds") == 0
    skew = s.value("kpexporter_clock_skew_seconds")
    assert skew is not None and abs(skew) < 5  # the fake kube-proxy shares our clock
    assert s.value("kpexporter_sync_last_timestamp_seconds") == 1.7140402714546502e09
    assert s.value("kpexporter_sync_pending_seconds") == 0
    assert s.value("kpexporter_proxy_mode_info", mode="iptables") == 1
    for name, qs in expected_lifetime(page_bytes).items():
        got = tuple(v for q in ("0.5", "0.9", "0.99") for v in [s.value(
            f"kpexporter_{name}", window="lifetime", quantile=q)])
        assert got == pytest.approx(qs, nan_ok=True), name
        for window in ("5m", "1h"):
            # The page did not change from before the fault to after it: no increase.
            assert s.value(f"kpexporter_{name}_count", window=window) == 0, (name, window)
            for q in ("0.5", "0.9", "0.99"):
                v = s.value(f"kpexporter_{name}", window=window, quantile=q)
                assert v is not None and math.isnan(v), (name, window, q, v)


async def other_endpoints_answer(exp: Exporter) -> None:
    for path in ("/api/v1/targets", "/", "/healthz", "/readyz"):
        r = await exp.client.get(path)
        assert r.status_code == 200, (path, r.status_code, r.text[:300])
    body = (await exp.client.get("/api/v1/targets")).json()
    assert body["targets"][0]["node"] == "node-h"


@pytest.mark.parametrize("fault", FAULTS, ids=[f.id for f in FAULTS])
async def test_fault(fault: Fault, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="kpexporter")
    good = good_page()
    flags = {"max_body_bytes": str(CAP), "interval": "0.05", "timeout": "0.2", **fault.flags}
    async with running(healthy_healthz(), answer(good), **flags) as (kp, exp):
        await exp.settle(1)
        before = await exp.scrape()
        assert before.value("kpexporter_up") == 1
        assert_healthy_values(before, good)

        scrapes = 0
        last_scrape = 0.0

        async def scrape_while_faulty() -> None:
            nonlocal scrapes, last_scrape
            if time.monotonic() - last_scrape < 0.05:
                return
            last_scrape = time.monotonic()
            s = await exp.scrape(headers={"Accept": "application/openmetrics-text"}
                                 if scrapes % 2 else None)
            assert s.status == 200
            scrapes += 1

        await kp.set(**{k: b() for k, b in ((HEALTHZ, fault.healthz), (METRICS, fault.metrics))
                        if b is not None})
        await exp.settle(1, while_waiting=scrape_while_faulty)
        size = footprint(exp.state)
        await exp.wait_polls(2, while_waiting=scrape_while_faulty)
        during = await exp.scrape()
        await other_endpoints_answer(exp)
        assert scrapes >= 1 and during.status == 200
        assert during.value("kpexporter_up") == fault.up
        if fault.any_of:
            assert grown(before, during), "nothing says what happened"
            assert grown(before, during) <= fault.any_of, grown(before, during)
        else:
            assert grown(before, during) == set(fault.errors)
        assert footprint(exp.state) == size, "state grew while the fault lasted"
        if fault.check is not None:
            fault.check(during)

        await kp.set(healthz=healthy_healthz(), metrics=answer(good))
        await exp.settle(1)
        after = await exp.scrape()
        await exp.wait_polls(2)
        later = await exp.scrape()
        assert grown(after, later) == set(), "errors still growing after recovery"
        assert_healthy_values(later, good)
        await other_endpoints_answer(exp)
    messages = [r.getMessage() for r in caplog.records]
    if fault.errors or fault.any_of:
        assert "poll_problem" in messages and "poll_recovered" in messages, messages
    assert_clean_log(caplog)


def clashing_labels() -> bytes:
    """Series whose labels are ours: ``node`` (pass for another node), ``window``, ``quantile``."""
    name = "kubeproxy_sync_proxy_rules_duration_seconds"
    lines = []
    for labels in ('node="node-b"', 'window="5m"', 'window="1h"', 'quantile="0.5"',
                   'exported_node="x",node="node-c"', '__name__="up"', '__meta="m"'):
        for le, c in (("0.001", 1), ("0.002", 2), ("+Inf", 3)):
            lines.append(f'{name}_bucket{{{labels},le="{le}"}} {c}')
        lines += [f"{name}_sum{{{labels}}} 0.004", f"{name}_count{{{labels}}} 3"]
    return ("\n".join(lines) + "\n").encode()


async def test_a_page_cannot_set_our_labels(caplog: pytest.LogCaptureFixture) -> None:
    """Source labels that clash with ours, or that Prometheus reserves, are kept as
    ``exported_<name>``: no impersonated node, no duplicate series and no reserved label
    (Prometheus would reject or misread the whole scrape)."""
    caplog.set_level(logging.DEBUG, logger="kpexporter")
    async with running(healthy_healthz(), answer(clashing_labels())) as (_, exp):
        await exp.settle(1)
        s = await exp.scrape()  # parse_page asserts there is no duplicate series
        assert s.value("kpexporter_up") == 1
        series = s.values("kpexporter_sync_proxy_rules_duration_seconds_count")
        assert {lab["node"] for lab, _ in series} == {"node-h"}
        assert len(series) == 7 * 3  # seven source series x (lifetime, 5m, 1h)
        exported = {tuple(sorted((k, v) for k, v in lab.items() if k.startswith("exported_")))
                    for lab, _ in series}
        assert exported == {(("exported_node", "node-b"),), (("exported_window", "5m"),),
                            (("exported_window", "1h"),), (("exported_quantile", "0.5"),),
                            (("exported_exported_node", "node-c"), ("exported_node", "x")),
                            (("exported___name__", "up"),), (("exported___meta", "m"),)}
        assert not any(k.startswith("__") for lab, _ in series for k in lab)
    assert_clean_log(caplog)


async def test_concurrent_scrapes_while_kube_proxy_keeps_changing(
        caplog: pytest.LogCaptureFixture) -> None:
    """Scrapes render in worker threads while polls fold results in on the event loop: with
    kube-proxy changing its answer every poll, every scrape is still a whole, valid page."""
    caplog.set_level(logging.DEBUG, logger="kpexporter")
    from tests.fixtures import V1_8
    cycle = [answer(good_page()), answer(fixture_page(V1_8)), hang(), refuse(),
             answer(with_buckets(good_page(), nan_buckets)), answer(duplicated()),
             answer(clashing_labels()), html(502)()]
    flags = {"interval": "0.03", "timeout": "0.1", "max_body_bytes": str(CAP)}
    async with running(healthy_healthz(), answer(good_page()), **flags) as (kp, exp):
        await exp.settle(1)
        stop = asyncio.Event()
        pages = 0

        async def scraper() -> None:
            nonlocal pages
            for _ in range(10_000):
                if stop.is_set():
                    return
                s = await exp.scrape()  # asserts a parseable page without duplicates
                assert s.status == 200
                assert len(s.values("kpexporter_up")) == 1
                assert len(s.values("kpexporter_build_info")) == 1
                pages += 1

        scrapers = [asyncio.create_task(scraper()) for _ in range(8)]
        try:
            for i in range(2 * len(cycle)):
                await kp.set(metrics=cycle[i % len(cycle)])
                await exp.wait_polls(1)
        finally:
            stop.set()
            await asyncio.gather(*scrapers)
        assert pages >= 8
    assert_clean_log(caplog)
