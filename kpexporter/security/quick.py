"""The quick path: a plain keep-alive ``GET`` answered without h11 or the ASGI round trip.

Why: at 5,000 nodes Prometheus's per-node jobs scrape ~370 node pages a second, and uvicorn's
h11 protocol with the ASGI machinery cost more per request than writing the page itself
(``benchmarks/bench_scrape.py``). So the HTTP protocol first offers what it just read to the
app's synchronous answer when it is one request head of the plainest shape:

- complete, and all of the bytes read (nothing pipelined, nothing partial);
- ``GET`` or ``HEAD`` of an origin-form target, ``HTTP/1.1``, with a ``Host``;
- no body and nothing that changes the connection: no ``Content-Length``,
  ``Transfer-Encoding``, ``Upgrade``, ``Expect``, ``TE``, ``Trailer``, and ``Connection``
  at most ``keep-alive``;
- every header a token name with a value of visible characters, none repeated.

Anything else, and anything the app declines (None), goes to h11 unchanged: it then reads the
same bytes it would have read, so the quick path can only answer what h11 would have parsed
the same way. Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from http import HTTPStatus

__all__ = ["MAX_QUICK_HEAD", "Answer", "QuickAnswer", "parse_request", "response_bytes"]

Answer = tuple[int, list[tuple[bytes, bytes]], bytes]
"""(status, headers with lowercase names, body) of a response."""
QuickAnswer = Callable[[str, bytes, Mapping[bytes, bytes]], Answer | None]
"""(method, target, headers by lowercase name) -> the answer, or None for the ASGI way."""

MAX_QUICK_HEAD = 8192
"""A longer head goes to h11 (and its own limit): a scrape's head is a few hundred bytes."""
_END = b"\r\n\r\n"
_NAME = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_VALUE = re.compile(rb"[\t\x20-\x7e]*")
_TARGET = re.compile(rb"/[\x21-\x7e]*")
_REFUSED = frozenset({b"content-length", b"transfer-encoding", b"upgrade", b"expect", b"te",
                      b"trailer"})
_METHODS = {b"GET": "GET", b"HEAD": "HEAD"}
_REASONS = {int(s): s.phrase.encode() for s in HTTPStatus}


def parse_request(data: bytes) -> tuple[str, bytes, dict[bytes, bytes]] | None:
    """(method, target, headers) when ``data`` is exactly one plain request head; else None."""
    if len(data) > MAX_QUICK_HEAD or not data.endswith(_END) or data.find(_END) != len(data) - 4:
        return None
    lines = data[:-4].split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or parts[2] != b"HTTP/1.1":
        return None
    method = _METHODS.get(parts[0])
    target = parts[1]
    if method is None or not _TARGET.fullmatch(target):
        return None
    headers: dict[bytes, bytes] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not _NAME.fullmatch(name):
            return None
        value = value.strip(b" \t")
        if not _VALUE.fullmatch(value):
            return None
        name = name.lower()
        if name in headers or name in _REFUSED:
            return None
        headers[name] = value
    if not headers.get(b"host") or headers.get(b"connection", b"keep-alive").lower() != (
            b"keep-alive"):
        return None
    return method, target, headers


def response_bytes(answer: Answer, head_only: bool,
                   extra: Sequence[tuple[bytes, bytes]] = ()) -> bytes:
    """The response as h11 would write it for uvicorn: status line, ``extra`` (uvicorn's
    ``date``), the answer's headers, ``content-length``; the body unless ``head_only``."""
    status, headers, body = answer
    out = [b"HTTP/1.1 %d %s\r\n" % (status, _REASONS.get(status, b""))]
    for name, value in (*extra, *headers):
        out.append(b"%s: %s\r\n" % (name, value))
    out.append(b"content-length: %d\r\n\r\n" % len(body))
    if not head_only:
        out.append(body)
    return b"".join(out)
