"""The remote-write body: protobuf from the upstream messages, snappy block format.

The oracle for the wire format is protoc itself (the committed ``remote_write_pb2`` must be
what grpcio-tools' protoc makes of ``remote_write.proto`` today) and, end to end, a real
Prometheus receiver (``tests/e2e/test_remote_write.py``).
"""

from __future__ import annotations

import math
import os
import struct
import subprocess
import sys
from pathlib import Path

import cramjam
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kpexporter.promtext import remote_write_pb2 as pb
from kpexporter.promtext.writerequest import (
    HEADERS,
    Sample,
    compress,
    decode,
    encode,
    series_labels,
)

PKG = Path(__file__).resolve().parents[2] / "kpexporter" / "promtext"
GENERATED = ("remote_write_pb2.py", "remote_write_pb2.pyi")
HEADER = "# ruff: noqa\n"  # generated code, not ours to restyle


def generate(out: Path) -> dict[str, str]:
    """What protoc makes of remote_write.proto, with the two fixes the module docstring names."""
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{PKG}", f"--python_out={out}",
                    f"--pyi_out={out}", str(PKG / "remote_write.proto")], check=True,
                   capture_output=True, timeout=60)
    files = {name: HEADER + (out / name).read_text() for name in GENERATED}
    files["remote_write_pb2.pyi"] = files["remote_write_pb2.pyi"].replace(
        "_Mapping]]", "_Mapping[str, object]]]")
    return files


def test_generated_code_matches_the_proto(tmp_path: Path) -> None:
    files = generate(tmp_path)
    if os.environ.get("KPEXPORTER_REGENERATE"):
        for name, text in files.items():
            (PKG / name).write_text(text)
    for name, text in files.items():
        assert (PKG / name).read_text() == text, f"{name} is stale: KPEXPORTER_REGENERATE=1"


def test_wire_format_field_numbers() -> None:
    """The numbers remote write 1.0 fixes (WriteRequest.timeseries = 1, 2 and 3 reserved)."""
    fields = {f.name: f.number for f in pb.WriteRequest.DESCRIPTOR.fields}
    assert fields == {"timeseries": 1}
    assert list(pb.WriteRequest.DESCRIPTOR.GetOptions().ListFields()) == []
    assert {f.name: f.number for f in pb.TimeSeries.DESCRIPTOR.fields} == {"labels": 1,
                                                                           "samples": 2}
    assert {f.name: f.number for f in pb.Sample.DESCRIPTOR.fields} == {"value": 1,
                                                                       "timestamp": 2}
    assert HEADERS == {"Content-Encoding": "snappy", "Content-Type": "application/x-protobuf",
                       "X-Prometheus-Remote-Write-Version": "0.1.0"}


def test_labels_sorted_with_name_and_without_empty_values() -> None:
    assert series_labels("up", {"job": "x", "a": "", "instance": "i:1"}) == (
        ("__name__", "up"), ("instance", "i:1"), ("job", "x"))


def test_series_grouped_in_first_seen_order_samples_kept_in_order() -> None:
    a, b = series_labels("a", {}), series_labels("b", {"n": "1"})
    body = encode([Sample(a, 1.0, 10), Sample(b, 2.0, 10), Sample(a, 3.0, 20)])
    req = pb.WriteRequest.FromString(body)
    assert [[(lab.name, lab.value) for lab in ts.labels] for ts in req.timeseries] == [
        [("__name__", "a")], [("__name__", "b"), ("n", "1")]]
    assert [(s.value, s.timestamp) for s in req.timeseries[0].samples] == [(1.0, 10), (3.0, 20)]


def test_compression_is_the_snappy_block_format() -> None:
    """Not the framed stream format: the body starts with the varint length of the input."""
    body = encode([Sample(series_labels("x", {}), 1.0, 1)])
    packed = compress(body)
    assert packed[0] == len(body)  # < 128 bytes: a one-byte varint
    assert bytes(cramjam.snappy.decompress_raw(packed)) == body


names = st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,10}", fullmatch=True)


@given(st.lists(st.tuples(names, st.dictionaries(names, st.text(max_size=20), max_size=4),
                          st.floats(allow_nan=True), st.integers(-2**62, 2**62)), max_size=30))
def test_decode_inverts_encode(items: list[tuple[str, dict[str, str], float, int]]) -> None:
    samples = [Sample(series_labels(n, labels), v, t) for n, labels, v, t in items]
    got = decode(compress(encode(samples)))
    order = list(dict.fromkeys(s.labels for s in samples))
    want = [s for labels in order for s in samples if s.labels == labels]
    assert [(s.labels, s.timestamp_ms) for s in got] == [(s.labels, s.timestamp_ms) for s in want]
    for g, w in zip(got, want, strict=True):
        assert g.value == w.value or (math.isnan(g.value) and math.isnan(w.value))


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan, 0.1, -0.0])
def test_special_values_survive(value: float) -> None:
    (got,) = decode(compress(encode([Sample(series_labels("x", {}), value, 5)])))
    assert got.value == value or (math.isnan(got.value) and math.isnan(value))


@pytest.mark.parametrize("bits", [0x7FF0000000000002, 0x7FF8000000000001])
def test_nan_payload_bits_are_kept_on_the_wire(bits: int) -> None:
    """Prometheus's StaleNaN (0x7ff0000000000002) is told from other NaNs by its bits only:
    the encoded double must carry them exactly (fixed64 little-endian, field 1 of Sample)."""
    value = struct.unpack("<d", struct.pack("<Q", bits))[0]
    body = encode([Sample(series_labels("x", {}), value, 5)])
    assert b"\x09" + struct.pack("<Q", bits) in body  # tag 1, wire type 1 (64-bit)
    (got,) = decode(compress(body))
    assert struct.unpack("<Q", struct.pack("<d", got.value))[0] == bits
