"""The HTTP/1.1 response reader under hypothesis: the fuzz target's properties, every run.

``tests/fuzz/fuzz_http1.py`` states them (only ``FetchError`` escapes; a decision once the
connection ends; every byte within a cap; the same outcome however the bytes are cut); here
hypothesis drives it with structured responses (heads, interim answers, chunked bodies,
trailers) as well as raw bytes, so CI exercises the framing code without atheris.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kpexporter.net.http1 import MAX_HEAD, ResponseReader
from tests.fuzz.fuzz_http1 import CAP, check_one_input
from tests.fuzz.run_fuzz import HTTP1_SEEDS

status_lines = st.sampled_from([b"HTTP/1.1 200 OK", b"HTTP/1.0 503 Service Unavailable",
                                b"HTTP/1.1 100 Continue", b"HTTP/1.1 103 Early Hints",
                                b"HTTP/1.1 204 No Content", b"HTTP/1.1 2000 x", b"HTTP/2 200"])
headers = st.lists(st.sampled_from([
    b"Content-Length: 5", b"Content-Length: 0", b"Content-Length: 99999",
    b"Transfer-Encoding: chunked", b"Content-Encoding: gzip", b"Content-Encoding: br",
    b"X: y", b"bad header", b" folded"]), max_size=4)
chunks = st.lists(st.binary(max_size=20).map(lambda b: b"%x\r\n%s\r\n" % (len(b), b)),
                  max_size=6)
trailers = st.lists(st.sampled_from([b"T: 1\r\n", b"x" * 40 + b"\r\n"]), max_size=6)


@st.composite
def responses(draw: st.DrawFn) -> bytes:
    out = b""
    for _ in range(draw(st.integers(1, 3))):
        out += draw(status_lines) + b"\r\n" + b"".join(h + b"\r\n" for h in draw(headers))
        out += b"\r\n"
    out += b"".join(draw(chunks))
    if draw(st.booleans()):
        out += b"0\r\n" + b"".join(draw(trailers)) + b"\r\n"
    return out + draw(st.binary(max_size=30))


FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(responses())
def test_structured_responses(data: bytes) -> None:
    check_one_input(data)


@FAST
@given(st.binary(max_size=400))
def test_any_bytes(data: bytes) -> None:
    check_one_input(data)


def test_seeds() -> None:
    for seed in HTTP1_SEEDS:
        check_one_input(seed)


def test_caps_are_reached_by_the_floods() -> None:
    """Fed forever, each flood stops at its cap; the reader never holds more than that."""
    floods = {
        b"HTTP/1.1 100 Continue\r\n\r\n": (b"", "too_large"),
        b"X-Trailer: 1\r\n": (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n",
                              "too_large"),
        b"1\r\n#\r\n": (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "too_large"),
    }
    for unit, (head, reason) in floods.items():
        reader = ResponseReader(CAP)
        reader.feed(head)
        try:
            for _ in range(1_000_000):
                reader.feed(unit * 64)
        except Exception as e:  # the reason is what is checked
            assert getattr(e, "reason", None) == reason, repr(e)
        else:
            raise AssertionError(f"{unit!r} never stopped")
        step = len(unit) * 64  # counted first, then refused: over by one piece at most
        assert reader.head_bytes <= MAX_HEAD + step
        assert reader.framing_bytes <= reader.framing_cap + step
        assert len(reader.chunk_buf) + len(reader.head_buf) < 2 * MAX_HEAD
