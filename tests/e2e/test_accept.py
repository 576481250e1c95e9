"""The headers a real Prometheus scrapes with: the ones the benchmarks and tests send as its
(``benchmarks/_common.py`` and ``tests/service/test_text.py`` each spell them; both are
checked here).

Prometheus asks for OpenMetrics first; a scraper in a benchmark that leaves ``Accept`` out
measures another page than the one Prometheus gets (it once hid a 19x cost). This test asks a
real Prometheus, on its own, so the constant cannot drift from it.
"""

from __future__ import annotations

import http.server
import threading
import time
from pathlib import Path
from typing import ClassVar

import pytest

from tests.e2e.harness import PrometheusServer, ScrapeJob, prometheus_binary
from tests.service.test_text import PROMETHEUS_ACCEPT

pytestmark = pytest.mark.e2e


class _Recorder(http.server.BaseHTTPRequestHandler):
    seen: ClassVar[list[dict[str, str]]] = []

    def do_GET(self) -> None:
        type(self).seen.append({k.lower(): v for k, v in self.headers.items()})
        body = b"# TYPE x gauge\nx 1\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        return


def test_prometheus_sends_the_accept_header_the_benchmarks_send(tmp_path: Path) -> None:
    import sys
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    from _common import PROMETHEUS_ACCEPT as BENCH_ACCEPT

    if prometheus_binary() is None:
        pytest.skip("no Prometheus server")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        job = ScrapeJob(name="accept", targets=(f"127.0.0.1:{server.server_address[1]}",))
        with PrometheusServer(tmp_path, [job]):
            deadline = time.monotonic() + 60  # a bound, not a timing assertion
            while not _Recorder.seen and time.monotonic() < deadline:
                time.sleep(0.1)
    finally:
        server.shutdown()
    assert _Recorder.seen, "Prometheus never scraped"
    headers = _Recorder.seen[0]
    assert headers["accept"] == PROMETHEUS_ACCEPT == BENCH_ACCEPT
    assert "gzip" in headers["accept-encoding"]
    assert headers["user-agent"].startswith("Prometheus/")
