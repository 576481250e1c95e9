"""Remote write against a real receiver: Prometheus 2.42 with --web.enable-remote-write-receiver.

What it stores must be what ``/metrics`` said at the same poll (every series, value and the
poll's timestamp), and a receiver restart must lose nothing while the outage fits in the
queue; with a queue too small for it, exactly the oldest samples go, and are counted.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.harness import (
    ExporterProcess,
    PrometheusServer,
    SimulatorProcess,
    prometheus_binary,
)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(prometheus_binary() is None, reason="prometheus not installed"),
]

INTERVAL = 0.5


@pytest.fixture(scope="module")
def receiver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    with PrometheusServer(tmp_path_factory.mktemp("receiver"),
                          extra_args=["--web.enable-remote-write-receiver"]) as prom:
        yield prom


@pytest.fixture(scope="module")
def simulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimulatorProcess]:
    sim = SimulatorProcess(tmp_path_factory.mktemp("sim"), nodes=2, version="1.33",
                           ip_families=("IPv4", "IPv6"))
    sim.start()
    yield sim
    sim.stop()


def _exporter(workdir: Path, sim: SimulatorProcess, i: int, node: str, config: str
              ) -> ExporterProcess:
    cfg = workdir / f"{node}.yaml"
    cfg.write_text(config)
    n = sim.nodes[i]
    return ExporterProcess(workdir, healthz_url=n.healthz_url, metrics_url=n.metrics_url,
                           node=node, interval=repr(INTERVAL), extra_args=["--config", str(cfg)])


def _last_poll(ex: ExporterProcess) -> float:
    (target,) = ex.get("/api/v1/targets").json()["targets"]
    return float(target["last_poll"])


def _wait(check: Any, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def _page_at_one_poll(ex: ExporterProcess) -> tuple[float, str]:
    """``/metrics`` and the start time of the poll it shows (the poll did not change
    between the two reads of /api/v1/targets around it)."""
    for _ in range(50):
        before = _last_poll(ex)
        text = ex.metrics_text()
        if _last_poll(ex) == before:
            return before, text
    raise AssertionError("the exporter polled during every attempt to read one poll's page")


def _number(v: Any) -> float:
    return float(v) if not isinstance(v, str) else float(v.replace("Inf", "inf"))


def _same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


def test_pushed_series_are_the_page_at_the_same_poll(
        tmp_path: Path, receiver: PrometheusServer, simulator: SimulatorProcess) -> None:
    ex = _exporter(tmp_path, simulator, 0, "same-poll", (
        f"remote_write:\n  - url: {receiver.url}/api/v1/write\n"
        "    queue: {batch_send_deadline: 0.1s}\n"
        "    external_labels: {cluster: e2e}\n"))
    ex.start()
    try:
        receiver.wait_for('kpexporter_up{node="same-poll"}', lambda r: len(r) == 1,
                          what="the first pushed sample")
        poll, text = _page_at_one_poll(ex)
        page = {}
        for fam in text_string_to_metric_families(text):
            for s in fam.samples:
                if s.name.startswith("kpexporter_remote_write_"):
                    continue  # read at push time, not at the poll: checked below
                if "node" not in s.labels:  # process-level: stamped with the newest poll
                    continue
                page[(s.name, frozenset(s.labels.items()))] = s.value
        assert len(page) > 100
        selector = '{node="same-poll", cluster="e2e"}'

        def at_poll() -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
            """The raw samples stored with exactly the poll's timestamp, by series."""
            out = {}
            for series in receiver.query(f"{selector}[2s]", at=poll):
                stamped = [v for t, v in series["values"]
                           if round(float(t) * 1000) == round(poll * 1000)]
                if stamped:
                    labels = dict(series["metric"])
                    name = labels.pop("__name__")
                    job, instance = labels.pop("job"), labels.pop("instance")
                    assert labels.pop("cluster") == "e2e"
                    assert instance == f"same-poll:{ex.port}"
                    assert job == ("kpexporter" if name.startswith("kpexporter_")
                                   or (name == "up" and len(labels) == 0) else "kube-proxy"), name
                    out[(name, frozenset(labels.items()))] = _number(stamped[0])
            return out

        _wait(lambda: len(at_poll()) > len(page), "every series of the poll")
        got = at_poll()
        up = got.pop(("up", frozenset({("node", "same-poll")})))
        assert up == 1.0  # up{job="kube-proxy"}: kube-proxy was read
        assert got.keys() == page.keys(), (got.keys() ^ page.keys())
        bad = {k: (got[k], page[k]) for k in page if not _same(got[k], page[k])}
        assert not bad
        # The sender's own counters, on /metrics: everything sent, nothing lost.
        after = ex.metrics_text()
        sent = [ln for ln in after.splitlines()
                if ln.startswith("kpexporter_remote_write_samples_sent_total{")]
        assert sent and float(sent[0].rsplit(" ", 1)[1]) > len(page)
        assert 'kpexporter_remote_write_samples_dropped_total{reason="queue_full"' in after
    finally:
        ex.stop()


def _outage_check(receiver: PrometheusServer, node: str, start: float, end: float
                  ) -> list[float]:
    """Timestamps of kpexporter_up{node} stored between start and end."""
    rng = max(1, math.ceil(end - start) + 1)
    (series,) = receiver.query(f'kpexporter_up{{node="{node}"}}[{rng}s]', at=end)
    return [float(t) for t, _ in series["values"] if start <= float(t) <= end]


def _pending(ex: ExporterProcess) -> float:
    return next(float(ln.rsplit(" ", 1)[1]) for ln in ex.metrics_text().splitlines()
                if ln.startswith("kpexporter_remote_write_pending_samples{"))


def test_receiver_restart_loses_nothing_within_the_queue_bound(
        tmp_path: Path, receiver: PrometheusServer, simulator: SimulatorProcess) -> None:
    big = _exporter(tmp_path, simulator, 0, "restart-big", (
        f"remote_write:\n  - url: {receiver.url}/api/v1/write\n"
        "    queue: {batch_send_deadline: 0.1s, max_backoff: 0.5s}\n"))
    # Room for about one poll: an outage of many polls must drop the oldest.
    small = _exporter(tmp_path, simulator, 1, "restart-small", (
        f"remote_write:\n  - url: {receiver.url}/api/v1/write\n"
        "    queue: {capacity: 800, max_samples_per_send: 400, batch_send_deadline: 0.1s,"
        " max_backoff: 0.5s}\n"))
    for ex in (big, small):
        ex.start()
    try:
        for node in ("restart-big", "restart-small"):
            receiver.wait_for(f'kpexporter_up{{node="{node}"}}', lambda r: len(r) == 1,
                              what=f"{node} pushing")
        time.sleep(2)
        before = big.get("/api/v1/targets").json()["targets"][0]
        down_at = time.time()
        receiver.restart(down=6.0)
        up_at = time.time()
        _wait(lambda: big.metrics_text().count("kpexporter_remote_write_pending_samples{") == 1
              and _pending(big) < 2000, "the queue to drain")
        after = big.get("/api/v1/targets").json()["targets"][0]
        end = time.time() + 1
        # Every poll made from just before the outage to after it is stored: as many
        # kpexporter_up samples in (before, after] as the exporter counted polls.
        stamps = _outage_check(receiver, "restart-big", before["last_poll"] + 0.0005,
                               after["last_poll"] + 0.0005)

        def complete() -> bool:
            nonlocal stamps
            stamps = _outage_check(receiver, "restart-big", before["last_poll"] + 0.0005,
                                   after["last_poll"] + 0.0005)
            return len(stamps) >= after["polls"] - before["polls"]

        _wait(complete, "every poll of the outage in the receiver")
        assert len(stamps) == after["polls"] - before["polls"]
        assert sum(down_at < t < up_at for t in stamps) > 3  # polls made while it was down
        text = big.metrics_text()
        assert 'kpexporter_remote_write_samples_dropped_total{reason="queue_full",' in text
        dropped_big = next(float(ln.rsplit(" ", 1)[1]) for ln in text.splitlines()
                           if ln.startswith("kpexporter_remote_write_samples_dropped_total{"))
        assert dropped_big == 0.0
        # The small queue: the oldest samples of the outage are gone and counted; the
        # newest (what fit in 800 samples) and everything after the restart arrived. So the
        # stored polls have one hole, and it spans the outage.
        small_stamps = _outage_check(receiver, "restart-small", down_at - 2, end)
        text = small.metrics_text()
        dropped = next(float(ln.rsplit(" ", 1)[1]) for ln in text.splitlines()
                       if ln.startswith("kpexporter_remote_write_samples_dropped_total{"))
        assert dropped > 0
        gaps = sorted(((b - a, a, b) for a, b in itertools.pairwise(small_stamps)),
                      reverse=True)
        (hole, hole_start, hole_end), (second, *_) = gaps[0], gaps[1]
        assert hole_start < down_at + 2 and hole_end > up_at - 3, (down_at, up_at, gaps[:3])
        assert hole > 3 and second < hole / 2, gaps[:3]
        assert small_stamps[-1] > up_at
    finally:
        for ex in (big, small):
            ex.stop()


def test_series_of_an_unreadable_kube_proxy_end_at_once_by_staleness_markers(
        tmp_path: Path, receiver: PrometheusServer) -> None:
    """kube-proxy stops answering: its passed-through series leave the next poll, so the
    exporter writes StaleNaN for each, and the receiver stops returning them at once (not
    after its 5-minute lookback), while kpexporter's own series of the node go on."""
    (tmp_path / "sim").mkdir()
    sim = SimulatorProcess(tmp_path / "sim", nodes=1, version="1.33")
    sim.start()
    ex = _exporter(tmp_path, sim, 0, "stale-e2e", (
        f"remote_write:\n  - url: {receiver.url}/api/v1/write\n"
        "    queue: {batch_send_deadline: 0.1s}\n"))
    ex.start()
    passed = '{job="kube-proxy", node="stale-e2e", __name__!="up"}'
    try:
        receiver.wait_for(passed, lambda r: len(r) > 10, what="kube-proxy's series pushed")
        before = time.time()
        count = len(receiver.query(passed, at=before))
        sim.stop()
        receiver.wait_for(passed, lambda r: len(r) == 0, timeout=30.0,
                          what="staleness markers ending kube-proxy's series")
        assert len(receiver.query(passed, at=before)) == count  # stored before the marker
        own = receiver.query('kpexporter_up{node="stale-e2e"}')
        assert [float(s["value"][1]) for s in own] == [0.0]  # the node's own series go on
    finally:
        ex.stop()
        sim.stop()
