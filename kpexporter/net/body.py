"""A response body, decoded and capped as its bytes arrive (both transports use it).

``gzip``/``deflate`` we did not ask for are decoded with zlib under the cap, so a bomb stops
at the cap, not in memory. The body's bytes on the wire are capped too (a little over the
decoded cap): a compressed stream followed by endless bytes zlib ignores still ends.
"""

from __future__ import annotations

import zlib

from kpexporter.vocabulary import Reason

from .fetcher import FetchError

WIRE_SLACK = 64 * 1024
"""Body bytes on the wire allowed beyond the decoded cap (gzip headers, stored blocks)."""


class BoundedBody:
    """Collects one body: ``feed`` the bytes on the wire, ``value`` the decoded body."""

    __slots__ = ("_data", "_wire", "_z", "cap", "wire_cap")

    def __init__(self, encoding: str, cap: int) -> None:
        enc = encoding.strip().lower()
        self._z: zlib._Decompress | None
        if enc in ("", "identity"):
            self._z = None
        elif enc in ("gzip", "x-gzip"):
            self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif enc == "deflate":
            self._z = zlib.decompressobj()
        else:
            raise FetchError(Reason.HTTP_STATUS,
                             f"unsupported Content-Encoding {encoding[:40]!r}")
        self.cap = cap
        self.wire_cap = cap + WIRE_SLACK
        self._data = bytearray()  # one buffer: a list of 1-byte parts would cost 40x the bytes
        self._wire = 0

    @property
    def compressed(self) -> bool:
        return self._z is not None

    def over_cap(self, declared: int) -> bool:
        """Whether a declared ``Content-Length`` is over the cap before reading any of it."""
        return declared > (self.wire_cap if self._z is not None else self.cap)

    def feed(self, data: bytes) -> None:
        self._wire += len(data)
        if self._wire > self.wire_cap:
            raise FetchError(Reason.TOO_LARGE, f"body over the {self.cap}-byte cap")
        room = self.cap - len(self._data)
        if self._z is None:
            out = data
        else:
            try:
                out = self._z.decompress(data, room + 1)
            except zlib.error as e:
                raise FetchError(Reason.READ, f"corrupt compressed body: {e}") from None
        if len(out) > room:
            raise FetchError(Reason.TOO_LARGE, f"body over the {self.cap}-byte cap")
        self._data += out

    def value(self) -> bytes:
        return bytes(self._data)
