"""Remote-write delivery against a scripted receiver on loopback: batching, retries, the bound.

The receiver here decodes every request with the same upstream protobuf messages and checks
the headers remote write 1.0 requires; the end-to-end tests put a real Prometheus there.
"""

from __future__ import annotations

import asyncio
import math
import struct
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from kpexporter.config.remote_write import QueueConfig, RemoteWrite, parse_remote_write
from kpexporter.core.state import TargetState
from kpexporter.net.remote_write import judge, retry_after
from kpexporter.promtext import remote_write_pb2 as pb
from kpexporter.promtext.writerequest import Sample, compress, decode, encode, series_labels
from kpexporter.service import remote_write as rwmod
from kpexporter.service.remote_write import (
    STALE_NAN,
    Outbox,
    RemoteWriter,
    _Sender,
    expand_env,
    labelled,
)
from kpexporter.service.remote_write_stats import RECEIVERS, ReceiverStats
from tests.builders import HEALTHY_128, HEALTHY_128_NOW, config, poll_result
from tests.fixtures import V1_30, fixture_bytes
from tests.service.test_text import recorded


@dataclass
class Receiver:
    """Answers each request with the next scripted (status, headers); 204 once exhausted."""

    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    requests: list[tuple[dict[str, str], list[Sample]]] = field(default_factory=list)
    hang: bool = False
    url: str = ""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode().split("\r\n")
                headers = {k.lower(): v.strip() for k, _, v in
                           (ln.partition(":") for ln in lines[1:] if ln)}
                body = await reader.readexactly(int(headers["content-length"]))
                self.requests.append((headers, decode(body)))
                if self.hang:
                    await asyncio.sleep(3600)
                status, extra = self.script.pop(0) if self.script else (204, {})
                text = "".join(f"{k}: {v}\r\n" for k, v in extra.items())
                writer.write(f"HTTP/1.1 {status} X\r\ncontent-length: 0\r\n{text}\r\n".encode())
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    server = await asyncio.start_server(r.handle, "127.0.0.1", 0)
    r.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/api/v1/write"
    try:
        yield r
    finally:
        server.close()


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The backoff delays the sender asks for, without waiting them out."""
    asked: list[float] = []
    real_sleep = asyncio.sleep

    async def fake(delay: float, *args: Any) -> None:
        asked.append(delay)
        await real_sleep(0)

    monkeypatch.setattr(rwmod.asyncio, "sleep", fake)
    return asked


def _samples(n: int, start: int = 0) -> list[Sample]:
    return [Sample(series_labels("x", {"i": str(i)}), float(i), 1000 + i)
            for i in range(start, start + n)]


def _sender(url: str, **queue: Any) -> _Sender:
    RECEIVERS.clear()
    rw = RemoteWrite(url, queue=replace(QueueConfig(), **queue))
    return _Sender(rw, "node:19249")


async def test_headers_and_body_are_remote_write_1_0(receiver: Receiver) -> None:
    s = _sender(receiver.url)
    batch = _samples(3)
    await s.deliver(batch)
    (headers, got), = receiver.requests
    assert headers["content-encoding"] == "snappy"
    assert headers["content-type"] == "application/x-protobuf"
    assert headers["x-prometheus-remote-write-version"] == "0.1.0"
    assert headers["user-agent"].startswith("kpexporter/")
    assert got == batch
    assert s.stats.sent == 3 and s.stats.last_send is not None and s.stats.pending == 0
    await s.client.aclose()


async def test_retries_5xx_and_429_with_backoff_and_retry_after(
        receiver: Receiver, sleeps: list[float]) -> None:
    receiver.script = [(500, {}), (503, {}), (429, {"Retry-After": "7"}), (502, {})]
    s = _sender(receiver.url, min_backoff=0.1, max_backoff=0.3)
    await s.deliver(_samples(5))
    assert len(receiver.requests) == 5  # four refusals, then delivered
    assert all(got == _samples(5) for _, got in receiver.requests)  # the same batch each time
    assert sleeps == [0.1, 0.2, 7.0, 0.3]  # doubling, capped; Retry-After when longer
    assert s.stats.sent == 5 and s.stats.failed == 0
    await s.client.aclose()


async def test_other_4xx_fails_the_batch_without_retry(
        receiver: Receiver, sleeps: list[float]) -> None:
    receiver.script = [(400, {})]
    s = _sender(receiver.url)
    await s.deliver(_samples(4))
    await s.deliver(_samples(2, start=4))
    assert len(receiver.requests) == 2 and sleeps == []
    assert (s.stats.failed, s.stats.sent) == (4, 2)
    await s.client.aclose()


async def test_no_answer_is_retried(sleeps: list[float]) -> None:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()  # nothing listens there now: connection refused
    s = _sender(f"http://127.0.0.1:{port}/w", min_backoff=0.01, max_backoff=0.02)
    task = asyncio.create_task(s.deliver(_samples(1)))
    while len(sleeps) < 3:
        await asyncio.sleep(0.01)
    task.cancel()
    assert s.stats.failed == 0 and s.stats.sent == 0
    await s.client.aclose()


def test_outbox_drops_the_oldest_beyond_capacity() -> None:
    stats = ReceiverStats("u")
    box = Outbox(5, stats)
    assert box.put(_samples(3), 0.0) == 0
    assert box.put(_samples(4, start=3), 0.0) == 2
    assert [s.value for s in box.take(10)] == [2.0, 3.0, 4.0, 5.0, 6.0]
    assert stats.dropped["queue_full"] == 2 and stats.pending == 5
    box.done()
    assert stats.pending == 0


async def test_batches_are_at_most_max_samples_per_send_in_order(receiver: Receiver) -> None:
    s = _sender(receiver.url, capacity=100, max_samples_per_send=4, batch_send_deadline=60.0)
    task = asyncio.create_task(s.run())
    s.outbox.put(_samples(10), time.time())
    while sum(len(b) for _, b in receiver.requests) < 8:
        await asyncio.sleep(0.01)
    assert [len(b) for _, b in receiver.requests] == [4, 4]  # the last 2 wait for a deadline
    s.flushing = True
    s.outbox.wake.set()
    while sum(len(b) for _, b in receiver.requests) < 10:
        await asyncio.sleep(0.01)
    assert [x for _, b in receiver.requests for x in b] == _samples(10)
    task.cancel()
    await s.client.aclose()


async def test_a_hung_receiver_holds_only_its_sender(receiver: Receiver) -> None:
    """While the receiver never answers, collecting after each poll goes on at once and the
    queue keeps its bound (the oldest dropped): polling never waits on a receiver."""
    receiver.hang = True
    cfg = replace(config(), remote_write=parse_remote_write(
        [{"url": receiver.url, "queue": {"capacity": 500, "max_samples_per_send": 100,
                                         "batch_send_deadline": "1ms"}}]))
    RECEIVERS.clear()
    st = recorded([poll_result(HEALTHY_128, 200, fixture_bytes(V1_30))])
    writer = RemoteWriter(cfg, lambda: [st])
    run = asyncio.create_task(writer.run())
    while not receiver.requests:  # the first batch is in flight, and will never return
        await asyncio.sleep(0.01)
    for k in range(1, 6):
        st.record(poll_result(HEALTHY_128, 200, fixture_bytes(V1_30),
                              started=HEALTHY_128_NOW + 15 * k), cfg)
        assert writer.collect() > 100  # queued at once
    (stats,) = RECEIVERS.values()
    assert stats.dropped["queue_full"] > 0 and len(writer.senders[0].outbox) == 500
    assert stats.pending == 600 and stats.sent == 0
    run.cancel()
    await writer.close(flush=0.05)


def test_labels_like_a_scrape() -> None:
    target = {"job": "kpexporter", "instance": "n:19249"}
    ext = (("cluster", "c"), ("node", "ignored"))
    own, passed, clash = labelled(
        [("kpexporter_up", {"node": "n"}, 1.0),
         ("kubeproxy_sync_proxy_rules_last_timestamp_seconds", {"node": "n"}, 2.0),
         ("rest_client_requests_total", {"node": "n", "job": "theirs"}, 3.0)],
        5, target, ext)
    assert dict(own.labels) == {"__name__": "kpexporter_up", "cluster": "c", "instance": "n:19249",
                                "job": "kpexporter", "node": "n"}
    assert dict(passed.labels)["job"] == "kube-proxy"
    assert dict(clash.labels)["exported_job"] == "theirs"
    assert own.timestamp_ms == 5


@pytest.mark.parametrize(("status", "header", "delivered", "retry", "after"), [
    (200, None, True, False, None), (204, None, True, False, None),
    (500, None, False, True, None), (503, "3", False, True, 3.0),
    (429, "Thu, 01 Jan 1970 00:00:10 GMT", False, True, 6.0),
    (429, "10000", False, True, 300.0), (429, "soon", False, True, None),
    (400, "3", False, False, None), (404, None, False, False, None),
    (413, None, False, False, None),
])
def test_judge(status: int, header: str | None, delivered: bool, retry: bool,
               after: float | None) -> None:
    a = judge(status, header, b"out of order sample\n", now=4.0)
    assert (a.delivered, a.retry, a.retry_after) == (delivered, retry, after)
    assert "\n" not in a.message and str(status) in a.message


def test_retry_after_parses_both_forms() -> None:
    assert retry_after("120", 0.0) == 120.0
    assert retry_after(None, 0.0) is None
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1445412480.0 - 30) == 30.0


def test_external_labels_expand_environment_variables() -> None:
    env = {"NODE_NAME": "node-7"}
    assert expand_env("${NODE_NAME}", env) == "node-7"
    assert expand_env("a-${NODE_NAME}-${MISSING}-$$-$NODE_NAME", env) == "a-node-7--$-$NODE_NAME"


# Staleness markers ---------------------------------------------------------------------


def _bits(v: float) -> int:
    return int.from_bytes(struct.pack("<d", v), "little")


def _is_stale(v: float) -> bool:
    return _bits(v) == 0x7FF0000000000002


def _stale_writer(states: list[TargetState]) -> RemoteWriter:
    RECEIVERS.clear()
    cfg = replace(config(), remote_write=parse_remote_write(
        [{"url": "http://127.0.0.1:9/api/v1/write", "queue": {"capacity": 100000}}]))
    return RemoteWriter(cfg, lambda: states)


def _queued(writer: RemoteWriter) -> list[Sample]:
    box = writer.senders[0].outbox
    out = box.take(len(box))
    box.done()
    return out


def _poll(st: TargetState, k: int) -> int:
    """Record poll ``k`` of ``st``; returns its timestamp in ms."""
    started = HEALTHY_128_NOW + 15 * k
    st.record(poll_result(HEALTHY_128, 200, fixture_bytes(V1_30), started=started), config())
    return round(started * 1000)


def test_stale_nan_has_prometheus_bits() -> None:
    assert _is_stale(STALE_NAN) and math.isnan(STALE_NAN)
    assert not _is_stale(float("nan"))


async def test_a_vanished_series_gets_one_stale_marker_and_comes_back_normally(
        monkeypatch: pytest.MonkeyPatch) -> None:
    pages = {1: [("a", {"node": "node-a"}, 1.0), ("b", {"node": "node-a", "x": "y"}, 2.0)],
             2: [("a", {"node": "node-a"}, 1.0)],
             3: [("a", {"node": "node-a"}, 1.0)],
             4: [("a", {"node": "node-a"}, 1.0), ("b", {"node": "node-a", "x": "y"}, 5.0)]}
    k = 0
    monkeypatch.setattr(rwmod, "target_samples", lambda st: iter(pages[k]))
    st = recorded([])
    writer = _stale_writer([st])

    def series_b(batch: list[Sample]) -> list[Sample]:
        return [s for s in batch if dict(s.labels)["__name__"] == "b"]

    got = {}
    for k in (1, 2, 3, 4):
        ts = _poll(st, k)
        writer.collect()
        got[k] = (ts, series_b(_queued(writer)))
    assert [s.value for s in got[1][1]] == [2.0]
    (marker,) = got[2][1]  # exactly one, at the poll that lacked it
    assert _is_stale(marker.value) and marker.timestamp_ms == got[2][0]
    assert dict(marker.labels) == {"__name__": "b", "node": "node-a", "x": "y",
                                   "job": "kube-proxy", "instance": "node-a:19249"}
    assert got[3][1] == []  # none later
    assert [(s.value, s.timestamp_ms) for s in got[4][1]] == [(5.0, got[4][0])]
    await writer.close(flush=0)


async def test_a_dropped_target_gets_a_stale_marker_for_each_of_its_last_series() -> None:
    a, b = recorded([], "node-a"), recorded([], "node-b")
    states = [a, b]
    writer = _stale_writer(states)
    _poll(a, 1)
    _poll(b, 1)
    writer.collect()
    sent_b = {s.labels for s in _queued(writer) if dict(s.labels).get("node") == "node-b"}
    assert len(sent_b) > 100
    states.remove(b)  # discovery dropped node-b; nothing polled since
    before = round(time.time() * 1000)
    writer.collect()
    markers = _queued(writer)
    assert {s.labels for s in markers} == sent_b
    assert len(markers) == len(sent_b) and all(_is_stale(s.value) for s in markers)
    assert all(before <= s.timestamp_ms <= round(time.time() * 1000) for s in markers)
    _poll(a, 2)
    writer.collect()  # forgotten: no more markers for node-b
    assert all(dict(s.labels).get("node") != "node-b" for s in _queued(writer))
    await writer.close(flush=0)


def test_stale_nan_bits_survive_labelled_outbox_and_encoding() -> None:
    (s,) = labelled([("x", {"node": "n"}, STALE_NAN)], 7, {"job": "j", "instance": "i"}, ())
    box = Outbox(10, ReceiverStats("u"))
    box.put([s], 0.0)
    (taken,) = box.take(1)
    req = pb.WriteRequest()
    req.ParseFromString(encode([taken]))
    (value,) = [x.value for x in req.timeseries[0].samples]
    assert _bits(value) == 0x7FF0000000000002
    (back,) = decode(compress(encode([taken])))
    assert _is_stale(back.value) and back.timestamp_ms == 7
