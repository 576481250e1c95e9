"""atheris target: the poller's HTTP/1.1 response reader (``kpexporter.net.http1._Response``).

The bytes a server sends, cut into pieces (where depends on the input's length), then the
end of the connection. Nothing may escape ``data_received``/``eof_received``/``connection_lost`` (an
exception there is an asyncio callback error with a traceback in the log, and the request
would hang until its deadline), and once the connection ended the request must be decided: a
complete body within the cap, or a ``FetchError`` with a known reason.
"""

from __future__ import annotations

import asyncio

import atheris  # type: ignore[import-untyped]

from tests.fuzz import _common

with atheris.instrument_imports(include=["kpexporter"]):
    from kpexporter.net.fetch import FetchError
    from kpexporter.net.http1 import _Response

LOOP = asyncio.new_event_loop()
CAP = 4096
REASONS = {"read", "too_large", "http_status"}


class _Transport(asyncio.Transport):
    """Just enough of a transport: the reader closes or aborts it when it is done."""

    def __init__(self) -> None:
        super().__init__()
        self.closed = False

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def write(self, data: bytes | bytearray | memoryview) -> None:
        pass


def test_one_input(data: bytes) -> None:
    # The input is the response as sent; its length picks how it is cut into pieces and how
    # the connection ends (so the fuzzer varies those by adding or removing a byte).
    body = data
    step = 1 + len(data) % 13
    cuts = [step * (i + 1) for i in range(len(data) % 5)]
    how_it_ends = len(data) % 3
    done: asyncio.Future[None] = LOOP.create_future()
    proto = _Response(done, CAP)
    proto.connection_made(_Transport())
    pos = 0
    for cut in cuts:
        proto.data_received(body[pos:cut])
        pos = max(pos, cut)
    proto.data_received(body[pos:])
    if how_it_ends == 0:
        proto.eof_received()
        proto.connection_lost(None)
    elif how_it_ends == 1:
        proto.connection_lost(ConnectionResetError("reset"))
    else:
        proto.connection_lost(None)
    assert done.done(), "the connection ended but the request is still undecided"
    if done.cancelled():
        raise AssertionError("cancelled")
    exc = done.exception()
    if exc is None:
        assert proto.size <= CAP and sum(map(len, proto.parts)) == proto.size
        assert 0 <= proto.status <= 999  # a strange code is the caller's http_status
    else:
        assert isinstance(exc, FetchError) and exc.reason in REASONS, repr(exc)


if __name__ == "__main__":
    _common.run(test_one_input)
