"""The quick path: only the plainest request heads, answered as the ASGI app answers them."""

from __future__ import annotations

import gzip
import re
import socket

import pytest

from kpexporter.security.quick import MAX_QUICK_HEAD, parse_request, response_bytes
from kpexporter.security.webconfig import WebConfig
from kpexporter.service.app import create_app
from tests.security.conftest import Serve
from tests.service.test_app import app_with
from tests.service.test_text import PROMETHEUS_ACCEPT

SCRAPE = (b"GET /metrics?node=node-a HTTP/1.1\r\nHost: x:9\r\nUser-Agent: Prometheus/2.42.0\r\n"
          b"Accept: " + PROMETHEUS_ACCEPT.encode() + b"\r\nAccept-Encoding: gzip\r\n"
          b"X-Prometheus-Scrape-Timeout-Seconds: 10\r\n\r\n")


def test_a_prometheus_scrape_is_plain() -> None:
    got = parse_request(SCRAPE)
    assert got is not None
    method, target, headers = got
    assert (method, target) == ("GET", b"/metrics?node=node-a")
    assert headers[b"accept-encoding"] == b"gzip" and headers[b"host"] == b"x:9"
    head = parse_request(b"HEAD /metrics HTTP/1.1\r\nhost: x\r\nConnection: Keep-Alive\r\n\r\n")
    assert head is not None and head[0] == "HEAD"


@pytest.mark.parametrize("data", [
    SCRAPE[:-1],  # partial
    SCRAPE + SCRAPE,  # pipelined
    SCRAPE + b"x",  # a body or the start of the next request
    SCRAPE.replace(b"HTTP/1.1", b"HTTP/1.0"),
    SCRAPE.replace(b"GET", b"POST"),
    SCRAPE.replace(b"GET", b"get"),
    SCRAPE.replace(b"/metrics?", b"http://x/metrics?"),  # absolute form
    SCRAPE.replace(b"node-a", b"n\xc3\xa9"),  # not ASCII in the target
    SCRAPE.replace(b"Host: x:9\r\n", b""),  # no Host
    SCRAPE.replace(b"Host: x:9", b"Host:"),  # an empty Host
    SCRAPE.replace(b"Accept-Encoding: gzip", b"Accept-Encoding: gzip\r\nAccept-Encoding: br"),
    SCRAPE.replace(b"User-Agent", b"User Agent"),  # not a token
    SCRAPE.replace(b"User-Agent: P", b"User-Agent: \x01P"),  # a control character
    SCRAPE.replace(b"Accept-Encoding: gzip", b"Accept-Encoding: gzip\r\n  , br"),  # obs-fold
    SCRAPE.replace(b"\r\nHost", b"\nHost"),  # a bare LF
    SCRAPE.replace(b"GET /", b"GET  /"),
    *(SCRAPE.replace(b"Host: x:9", b"Host: x:9\r\n" + h) for h in (
        b"Content-Length: 0", b"Transfer-Encoding: chunked", b"Connection: close",
        b"Connection: upgrade", b"Upgrade: websocket", b"Expect: 100-continue", b"TE: trailers",
        b"Trailer: x")),
    SCRAPE.replace(b"Host: x:9", b"Host: x:9\r\nX-Pad: " + b"a" * MAX_QUICK_HEAD),
])
def test_anything_else_goes_to_h11(data: bytes) -> None:
    assert parse_request(data) is None


def test_response_bytes_as_h11_writes_them() -> None:
    answer = (404, [(b"content-type", b"text/plain; charset=utf-8")], b"unknown node: 'x'\n")
    out = response_bytes(answer, head_only=False, extra=[(b"date", b"D")])
    assert out == (b"HTTP/1.1 404 Not Found\r\ndate: D\r\ncontent-type: text/plain; "
                   b"charset=utf-8\r\ncontent-length: 18\r\n\r\nunknown node: 'x'\n")
    assert response_bytes(answer, head_only=True).endswith(b"content-length: 18\r\n\r\n")


def _exchange(port: int, requests: list[bytes], reads: int) -> bytes:
    """Send ``requests`` on one connection; read until ``reads`` responses have come."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        for r in requests:
            s.sendall(r)
        got = b""
        while got.count(b"HTTP/1.1 ") < reads or not _complete(got, reads):
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
    return got


def _complete(data: bytes, reads: int) -> bool:
    """Whether ``data`` holds ``reads`` whole responses (each framed by content-length)."""
    pos = 0
    for _ in range(reads):
        end = data.find(b"\r\n\r\n", pos)
        if end < 0:
            return False
        length = re.search(rb"content-length: (\d+)", data[pos:end])
        pos = end + 4 + (int(length.group(1)) if length else 0)
        if pos > len(data):
            return False
    return True


def _no_date(data: bytes) -> bytes:
    return re.sub(rb"date: [^\r]*\r\n", b"", data)


REQUESTS = [
    SCRAPE,
    SCRAPE.replace(b"Accept-Encoding: gzip", b"Accept-Encoding: identity"),
    SCRAPE.replace(b"node-a", b"nope"),  # 404
    b"GET /metrics?node=node-a&node=node-a HTTP/1.1\r\nHost: x\r\n\r\n",
]


def test_quick_answers_are_the_apps_answers_byte_for_byte(serve: Serve) -> None:
    poller, _ = app_with(polled=True)
    app = create_app(poller, manage_poller=False)
    quick = serve(None, app=app, quick=app.state.metrics.quick)
    plain = serve(None, app=app)
    assert quick.server.config.quick is not None and plain.server.config.quick is None
    for request in REQUESTS:
        a, b = _exchange(quick.port, [request], 1), _exchange(plain.port, [request], 1)
        assert _no_date(a) == _no_date(b), request
        assert a.startswith(b"HTTP/1.1 ") and b"date: " in a
    body = _exchange(quick.port, [SCRAPE], 1).partition(b"\r\n\r\n")[2]
    assert gzip.decompress(body).endswith(b"# EOF\n")


def test_a_connection_goes_on_after_quick_answers_and_h11_takes_the_rest(serve: Serve) -> None:
    poller, _ = app_with(polled=True)
    app = create_app(poller, manage_poller=False)
    running = serve(None, app=app, quick=app.state.metrics.quick)
    head = SCRAPE.replace(b"GET ", b"HEAD ")
    readyz = b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n"
    with socket.create_connection(("127.0.0.1", running.port), timeout=10) as s:
        for request, expect in ((SCRAPE, b"200 OK"), (head, b"200 OK"), (readyz, b"ready\n"),
                                (SCRAPE, b"200 OK")):
            s.sendall(request)
            got = b""
            while b"\r\n\r\n" not in got:
                got += s.recv(65536)
            headers, _, body = got.partition(b"\r\n\r\n")
            length = re.search(rb"content-length: (\d+)", headers)
            assert length is not None
            want = 0 if request is head else int(length.group(1))
            while len(body) < want:
                body += s.recv(65536)
            assert expect in headers + body, request
            assert len(body) == want
    # pipelined: two scrapes in one write go to h11, answered in order
    two = _exchange(running.port, [SCRAPE + readyz], 2)
    assert two.count(b"HTTP/1.1 200 OK") == 2 and two.endswith(b"ready\n")


def test_no_quick_path_with_a_web_config(serve: Serve) -> None:
    """Its basic auth and headers are ASGI middleware: a quick answer would skip them."""
    poller, _ = app_with(polled=True)
    app = create_app(poller, manage_poller=False)
    running = serve(WebConfig(), app=app, quick=app.state.metrics.quick)
    assert running.server.config.quick is None


def test_an_answer_that_fails_goes_the_asgi_way(serve: Serve) -> None:
    poller, _ = app_with(polled=True)
    app = create_app(poller, manage_poller=False)

    def broken(*_: object) -> None:
        raise RuntimeError("bug")

    running = serve(None, app=app, quick=broken)
    got = _exchange(running.port, [SCRAPE], 1)
    assert got.startswith(b"HTTP/1.1 200 OK") and b"content-encoding: gzip" in got
