"""Prometheus remote write 1.0 bodies: samples → a snappy-compressed protobuf ``WriteRequest``.

Pure: no I/O, no clock. The message classes come from ``remote_write.proto`` (the upstream
prompb messages, compiled with protoc into ``remote_write_pb2.py``), the compression from
cramjam's snappy *block* format, which is what the specification asks for (not the framed
stream format). :func:`decode` is the inverse, for tests and receivers in tests.

What the specification requires of a sender, and where it is done here: label names sorted
within a series (:func:`series_labels`), ``__name__`` present, no empty label values (an
empty value means "no label" in Prometheus), samples of a series in timestamp order (kept
from the order given: the caller queues them in time order).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import cramjam

from kpexporter.promtext import remote_write_pb2 as pb

__all__ = ["CONTENT_TYPE", "HEADERS", "Labels", "Sample", "compress", "decode", "encode",
           "series_labels"]

Labels = tuple[tuple[str, str], ...]
"""A series' labels, ``__name__`` included, sorted by name (see :func:`series_labels`)."""

CONTENT_TYPE = "application/x-protobuf"
HEADERS = {
    "Content-Encoding": "snappy",
    "Content-Type": CONTENT_TYPE,
    "X-Prometheus-Remote-Write-Version": "0.1.0",
}
"""The headers remote write 1.0 requires on every request."""


@dataclass(frozen=True, slots=True)
class Sample:
    labels: Labels
    value: float
    timestamp_ms: int


def series_labels(name: str, labels: Mapping[str, str]) -> Labels:
    """``labels`` plus ``__name__``, sorted by name, empty values left out."""
    pairs = {k: v for k, v in labels.items() if v}
    pairs["__name__"] = name
    return tuple(sorted(pairs.items()))


def encode(samples: Iterable[Sample]) -> bytes:
    """The serialized ``WriteRequest``: one ``TimeSeries`` per label set (first-seen order),
    its samples in the order given."""
    req = pb.WriteRequest()
    series: dict[Labels, pb.TimeSeries] = {}
    for s in samples:
        ts = series.get(s.labels)
        if ts is None:
            ts = series[s.labels] = req.timeseries.add()
            ts.labels.extend([pb.Label(name=k, value=v) for k, v in s.labels])
        ts.samples.append(pb.Sample(value=s.value, timestamp=s.timestamp_ms))
    return req.SerializeToString()


def compress(body: bytes) -> bytes:
    """Snappy block format (``Content-Encoding: snappy`` in remote write)."""
    return bytes(cramjam.snappy.compress_raw(body))


def decode(body: bytes) -> list[Sample]:
    """The samples of a compressed ``WriteRequest``, in series order."""
    req = pb.WriteRequest()
    req.ParseFromString(bytes(cramjam.snappy.decompress_raw(body)))
    out: list[Sample] = []
    for ts in req.timeseries:
        labels = tuple((lab.name, lab.value) for lab in ts.labels)
        out += [Sample(labels, s.value, s.timestamp) for s in ts.samples]
    return out

