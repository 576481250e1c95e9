"""Malformed HTTP from kube-proxy's metrics port, through the poller's own HTTP client.

The same script as ``test_faults.py`` (healthy, fault, recovery; ``/metrics`` always 200, the
right error counter, clean log), with answers that are broken at the HTTP level rather than in
the body: bad status lines and headers, lying or conflicting lengths, broken chunking,
encodings we cannot read. A few valid-but-unusual answers (HTTP/1.0 until close, an interim
``100 Continue``, a response dribbled in one-byte pieces) must be read as the page they are.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable

import pytest

from tests.faults.hostile import Behaviour, raw
from tests.faults.test_faults import Fault, errs, good_page
from tests.faults.test_faults import test_fault as run_fault

READ = errs("metrics/read")


def head(*lines: str) -> bytes:
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def answer_with(lines: list[str], body: bytes | Callable[[], bytes]) -> Callable[[], Behaviour]:
    def make() -> Behaviour:
        b = body() if callable(body) else body
        return raw(head(*[ln.replace("{n}", str(len(b))) for ln in lines]) + b)
    return make


def chunked(body: bytes, size: int = 4096) -> bytes:
    out = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + size]), body[i:i + size])
                   for i in range(0, len(body), size))
    return out + b"0\r\n\r\n"


OK = "HTTP/1.1 200 OK"
CT = "Content-Type: text/plain; version=0.0.4; charset=utf-8"
HTTP_FAULTS = [
    Fault("empty-reply", None, lambda: raw(), 0, READ),
    Fault("not-http", None, lambda: raw(b"SSH-2.0-OpenSSH_9.6\r\n"), 0, READ),
    Fault("status-code-2000", None, answer_with(["HTTP/1.1 2000 OK", "Content-Length: 0"], b""),
          0, READ),
    Fault("status-code-unicode-digits", None,  # b"\xb2" is "²" in latin-1: isdigit() is True
          lambda: raw(b"HTTP/1.1 \xb200 OK\r\nContent-Length: 0\r\n\r\n"), 0, READ),
    Fault("status-line-only-then-close", None, lambda: raw(b"HTTP/1.1 200 OK\r\n"), 0, READ),
    Fault("header-without-colon", None, answer_with([OK, "Content-Length {n}"], good_page), 0,
          READ),
    Fault("head-over-64k", None, answer_with([OK, *[f"X-Junk-{i}: {'y' * 1000}"
                                                     for i in range(80)]], b""), 0,
          errs("metrics/too_large")),
    Fault("length-longer-than-body", None,
          lambda: raw(head(OK, "Content-Length: 100000", CT) + good_page()[:5000]), 0, READ),
    Fault("length-not-a-number", None, answer_with([OK, "Content-Length: ten", CT], b"x"), 0,
          READ),
    Fault("length-negative", None, answer_with([OK, "Content-Length: -5", CT], b"x"), 0, READ),
    Fault("lengths-conflicting", None,
          answer_with([OK, "Content-Length: {n}", "Content-Length: 7", CT], good_page), 0, READ),
    Fault("chunk-size-not-hex", None, lambda: raw(head(OK, "Transfer-Encoding: chunked", CT)
                                                  + b"zz\r\nabc\r\n0\r\n\r\n"), 0, READ),
    Fault("chunk-size-line-endless", None,
          lambda: raw(head(OK, "Transfer-Encoding: chunked", CT) + b"0" * 5000 + b"1\r\n"), 0,
          READ),
    Fault("chunked-truncated", None, lambda: raw(head(OK, "Transfer-Encoding: chunked", CT)
                                                 + chunked(good_page())[:20000]), 0, READ),
    Fault("chunk-size-enormous", None,
          lambda: raw(head(OK, "Transfer-Encoding: chunked", CT) + b"ffffffffffffffff\r\nx"),
          0, any_of=errs("metrics/read", "metrics/too_large")),
    Fault("transfer-encoding-gzip-chunked", None,
          lambda: raw(head(OK, "Transfer-Encoding: gzip, chunked", CT)
                      + chunked(gzip.compress(good_page()))), 0,
          any_of=errs("metrics/read", "metrics/http_status")),
    Fault("content-encoding-br", None,
          answer_with([OK, "Content-Encoding: br", "Content-Length: {n}", CT], b"\x1b\x00"), 0,
          errs("metrics/http_status")),
    Fault("gzip-corrupt", None,
          answer_with([OK, "Content-Encoding: gzip", "Content-Length: {n}", CT],
                      gzip.compress(b"x" * 10000)[:40] + b"\xff" * 64), 0, READ),
    # Valid, if unusual: each must read as the page it carries.
    Fault("http-1.0-until-close", None,
          answer_with(["HTTP/1.0 200 OK", CT], good_page), 1, frozenset()),
    Fault("interim-100-continue", None,
          lambda: raw(head("HTTP/1.1 100 Continue") + head(OK, f"Content-Length: "
                                                           f"{len(good_page())}", CT)
                      + good_page()), 1, frozenset()),
    Fault("no-reason-phrase", None, answer_with(["HTTP/1.1 200", "Content-Length: {n}", CT],
                                                good_page), 1, frozenset()),
    Fault("one-byte-pieces", None,
          lambda: raw(*[bytes([c]) for c in head(OK, "Transfer-Encoding: chunked", CT)],
                      chunked(good_page(), 7)), 1, frozenset()),
    Fault("gzip-we-did-not-ask-for", None,
          answer_with([OK, "Content-Encoding: gzip", "Content-Length: {n}", CT],
                      lambda: gzip.compress(good_page())), 1, frozenset()),
]


@pytest.mark.parametrize("fault", HTTP_FAULTS, ids=[f.id for f in HTTP_FAULTS])
async def test_http_fault(fault: Fault, caplog: pytest.LogCaptureFixture) -> None:
    await run_fault(fault, caplog)
