"""A minimal fake kube-proxy for the benchmarks: one captured page, both ports, keep-alive.

    python benchmarks/_static_server.py PAGE [--busy]

Prints ``HEALTHZ_PORT METRICS_PORT`` and serves until terminated: ``/healthz`` a 1.28-style
body, ``/metrics`` the page (``--busy``: one more observation per histogram per answer),
``/proxyMode`` ``iptables``. Deliberately cheap, so the measured process is the exporter.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import HEALTHZ_1_28, busy_page


def _answer(body: bytes, ctype: bytes) -> bytes:
    return (b"HTTP/1.1 200 OK\r\nContent-Type: " + ctype + b"\r\nContent-Length: "
            + str(len(body)).encode() + b"\r\n\r\n" + body)


class _Server(asyncio.Protocol):
    def __init__(self, page: bytes, busy: bool, counter: list[int]) -> None:
        self.page, self.busy, self.counter = page, busy, counter
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while b"\r\n\r\n" in self.buf and self.transport is not None:
            head, _, self.buf = self.buf.partition(b"\r\n\r\n")
            path = head.split(b" ", 2)[1] if head.count(b" ") >= 2 else b""
            if path == b"/healthz":
                out = _answer(HEALTHZ_1_28, b"application/json")
            elif path == b"/metrics":
                self.counter[0] += 1
                page = busy_page(self.page, self.counter[0]) if self.busy else self.page
                out = _answer(page, b"text/plain; version=0.0.4; charset=utf-8")
            elif path == b"/proxyMode":
                out = _answer(b"iptables", b"text/plain; charset=utf-8")
            else:
                out = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
            self.transport.write(out)
            if b"connection: close" in head.lower():
                self.transport.close()
                return


async def main() -> None:
    page = Path(sys.argv[1]).read_bytes()
    busy = "--busy" in sys.argv[2:]
    counter = [0]
    loop = asyncio.get_running_loop()
    servers = [await loop.create_server(lambda: _Server(page, busy, counter), "127.0.0.1", 0)
               for _ in range(2)]
    print(*(s.sockets[0].getsockname()[1] for s in servers), flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
