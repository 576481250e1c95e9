"""The limits an attacker meets on the exporter's port: the cap, the timeouts, descriptors."""

from __future__ import annotations

import logging
import shutil
import socket
from pathlib import Path

import httpx
import pytest

from kpexporter.security.connections import ConnectionLimits, connection_cap
from kpexporter.security.webconfig import (
    load_web_config,
)
from tests.security.conftest import (
    BOUND,
    DATA,
    Serve,
    client_context,
    closed_by_server,
    wait,
)


def test_connection_cap_leaves_descriptors_for_polling() -> None:
    for nofile in (64, 256, 1024, 4096, 1 << 20):
        for wanted in (1, 512, 10_000):
            cap, batch = connection_cap(wanted, nofile)
            assert 1 <= cap <= wanted
            # At least a quarter of the descriptors (64 at least) stay free, and one accept
            # batch fits in what the cap leaves.
            assert nofile - cap >= min(nofile - 1, max(64, nofile // 4))
            assert batch >= 16 and (nofile <= 128 or cap + batch <= nofile)


# --- limits ------------------------------------------------------------------------------------


def test_silent_tls_connections_are_closed_after_the_handshake_timeout(
    serve: Serve,
) -> None:
    web = load_web_config(DATA / "tls.good.yml")
    running = serve(web, ConnectionLimits(handshake_timeout=1.0, idle_timeout=60))
    silent = [socket.create_connection(("127.0.0.1", running.port)) for _ in range(50)]
    try:
        # Meanwhile a scrape on another connection answers at once.
        with httpx.Client(verify=client_context(), timeout=1.0) as client:
            assert client.get(running.url + "metrics").status_code == 200
        assert all(closed_by_server(s) for s in silent)
    finally:
        for s in silent:
            s.close()


def test_a_connection_that_never_sends_a_request_is_closed_after_the_idle_timeout(
    serve: Serve,
) -> None:
    running = serve(None, ConnectionLimits(idle_timeout=1))
    with socket.create_connection(("127.0.0.1", running.port)) as silent:
        assert closed_by_server(silent)  # uvicorn alone held it forever


def test_a_completed_tls_handshake_then_silence_is_closed_too(
    serve: Serve,
) -> None:
    running = serve(load_web_config(DATA / "tls.good.yml"), ConnectionLimits(idle_timeout=1))
    raw = socket.create_connection(("127.0.0.1", running.port))
    with client_context().wrap_socket(raw, server_hostname="localhost") as tls:
        assert closed_by_server(tls)


def test_at_the_cap_a_new_connection_takes_the_oldest_idle_ones_place(
    serve: Serve, caplog: pytest.LogCaptureFixture,
) -> None:
    running = serve(None, ConnectionLimits(max_connections=4, idle_timeout=60))
    idle = [socket.create_connection(("127.0.0.1", running.port)) for _ in range(4)]
    clients = [httpx.Client(timeout=5.0) for _ in range(8)]  # each keeps its connection
    try:
        assert wait(lambda: running.live_connections() == 4)
        with caplog.at_level(logging.WARNING, logger="kpexporter"):
            for client in clients:  # eight scrapes over the cap, each answered
                assert client.get(running.url).status_code == 200
        assert all(closed_by_server(s, 5.0) for s in idle)  # the silent ones made room
        lines = [r for r in caplog.records if r.getMessage() == "max_connections_reached"]
        assert len(lines) == 1  # one line per 10 s, not one per connection
        assert running.live_connections() == 4
    finally:
        for s in idle:
            s.close()
        for client in clients:
            client.close()


# --- a real `kpexporter serve` under a low descriptor limit --------------------------------


def _metric(text: str, name: str) -> float:
    """The value of the first sample of ``name`` on a text-format page."""
    for line in text.splitlines():
        if line.startswith(name) and line[len(name)] in " {":
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not on the page")


class _LowFdExporter:
    """``serve`` under ``RLIMIT_NOFILE`` 256 (via prlimit), polling a simulated kube-proxy."""

    NOFILE = 256


def test_connections_past_the_descriptor_limit_cost_no_tracebacks_and_no_polls(
    tmp_path: Path,
) -> None:
    from tests.e2e.harness import ExporterProcess, SimulatorProcess

    if shutil.which("prlimit") is None:
        pytest.skip("prlimit (util-linux) not installed")

    class LowFd(ExporterProcess):
        def argv(self) -> list[str]:
            nofile = _LowFdExporter.NOFILE
            return ["prlimit", f"--nofile={nofile}:{nofile}", *super().argv()]

    sim = SimulatorProcess(tmp_path).start()
    (node,) = sim.nodes
    exp = LowFd(tmp_path, healthz_url=node.healthz_url, metrics_url=node.metrics_url,
                node="n", interval="0.2")
    flood: list[socket.socket] = []
    try:
        exp.start()
        host, port = exp.address.split(":")
        # 400 idle connections against 256 descriptors (the cap is 192): before, accept
        # failed with EMFILE, logging a traceback each time, and polls could not open sockets.
        for _ in range(400):
            flood.append(socket.create_connection((host, int(port)), timeout=BOUND))
        with httpx.Client(timeout=5.0) as c:
            first = c.get(exp.metrics_url)  # takes an idle flood connection's place
            assert first.status_code == 200
            assert wait(lambda: _metric(c.get(exp.metrics_url).text,
                                         "kpexporter_last_success_timestamp_seconds")
                         > _metric(first.text, "kpexporter_last_success_timestamp_seconds"))
            assert _metric(c.get(exp.metrics_url).text, "kpexporter_up") == 1
        assert exp.running()
        log = exp.log_text()
        assert "Traceback" not in log and "poll_bug" not in log
        assert log.count("max_connections_reached") + log.count("accept_failed") <= 4
    finally:
        for s in flood:
            s.close()
        exp.stop()
        sim.stop()
