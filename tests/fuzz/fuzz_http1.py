"""atheris target: the poller's HTTP/1.1 response reader (``kpexporter.net.http1.ResponseReader``).

The bytes a server sends, cut into pieces (where depends on the input's length), then the
end of the connection (clean or reset, chosen by the length too). What must hold for any bytes:

- only ``FetchError`` escapes, with a known reason;
- once the connection ended, the response is decided (complete, or an error);
- every byte counts against a cap: all heads (interim answers included) within ``MAX_HEAD``,
  chunk framing and trailers within ``framing_cap``, the body within the cap;
- the outcome does not depend on how the bytes were cut: the same status and body, or the
  same reason, as when everything arrives in one piece.

``check_one_input`` needs no atheris: ``tests/net/test_http1_reader.py`` runs it under
hypothesis in every test run.
"""

from __future__ import annotations

from tests.fuzz import _common

try:
    import atheris  # type: ignore[import-untyped]
except ImportError:  # replayed by the test suite without atheris
    atheris = None

if atheris is not None:
    with atheris.instrument_imports(include=["kpexporter"]):
        from kpexporter.net.fetcher import FetchError
        from kpexporter.net.http1 import MAX_HEAD, ResponseReader
else:
    from kpexporter.net.fetcher import FetchError
    from kpexporter.net.http1 import MAX_HEAD, ResponseReader

CAP = 4096
REASONS = {"read", "too_large", "http_status"}

Outcome = tuple[str, object, object]


def _read(pieces: list[bytes], reset: bool) -> tuple[Outcome, ResponseReader]:
    reader = ResponseReader(CAP)
    try:
        for piece in pieces:
            if reader.feed(piece):
                break
        else:
            reader.end(ConnectionResetError("reset") if reset else None)
    except FetchError as e:
        assert e.reason in REASONS, repr(e)
        assert "\n" not in e.message
        return ("error", e.reason, None), reader
    assert reader.complete, "the connection ended but the response is still undecided"
    return ("ok", reader.status, reader.value()), reader


def check_one_input(data: bytes) -> None:
    step = 1 + len(data) % 13
    cuts = [step * (i + 1) for i in range(len(data) % 5)]
    reset = len(data) % 3 == 1
    pieces, pos = [], 0
    for cut in cuts:
        pieces.append(data[pos:cut])
        pos = max(pos, cut)
    pieces.append(data[pos:])
    outcome, reader = _read(pieces, reset)
    if outcome[0] == "ok":  # (a refused answer may have gone over by its last piece)
        assert reader.head_bytes <= MAX_HEAD
        assert reader.framing_bytes <= reader.framing_cap
        body = outcome[2]
        assert isinstance(body, bytes) and len(body) <= CAP
        assert 0 <= reader.status <= 999  # a strange code is the caller's http_status
    whole, _ = _read([data], reset)
    assert whole == outcome, (whole, outcome)


if __name__ == "__main__":
    _common.run(check_one_input)
