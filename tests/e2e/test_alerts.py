"""The alerts end to end: simulated kube-proxies, the exporter, a real Prometheus evaluating
rules rendered by ``kpexporter rules`` from a test config, a real Alertmanager, and a webhook.

The test config is the one the exporters read too, with the ``for:`` durations cut to 0 s and
the pending threshold to 2 s, so what takes minutes on a real cluster takes seconds here. The
stuck node must reach the webhook as KubeProxyRulesSyncStuck and KubeProxyUnhealthy; the
healthy and the idle node must never raise an alert, not even a pending one, although the idle
node's last sync grows many times older than the pending threshold (the simulator re-syncs an
idle iptables kube-proxy only every "hour", 60 s at its time scale).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import (
    LOOPBACK,
    REPO_ROOT,
    AlertmanagerProcess,
    ExporterProcess,
    PrometheusServer,
    ScrapeJob,
    SimulatorProcess,
    alertmanager_binary,
    prometheus_binary,
    timeout_scale,
)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(prometheus_binary() is None or alertmanager_binary() is None,
                       reason="needs Debian's prometheus and prometheus-alertmanager"),
]

PENDING_THRESHOLD = 2.0
JOB = "kpexporter"
SCENARIOS = ("stuck", "healthy", "idle")
CONFIG = f"""\
pending_threshold: {PENDING_THRESHOLD:g}
windows: [10s, 1m]
alerting:
  selector: 'job="{JOB}"'
  passthrough_selector: 'job="{JOB}"'   # one scrape job here, not deploy/'s two
  latency_window: 10s
  for:
    KubeProxyUnreachable: 0s
    KubeProxyUnhealthy: 0s
    KubeProxyRulesSyncStuck: 0s
    KubeProxySyncLatencyHigh: 0s
    KubeProxyNetworkProgrammingLatencyHigh: 0s
    KubeProxyRestoreFailures: 0s
    KubeProxyClockSkew: 0s
    KubeProxyExporterDown: 5s      # not 0 s: Prometheus evaluates before its first scrape
    KubeProxyExporterAbsent: 5s
"""


class Webhook:
    """Alertmanager's webhook receiver: every alert of every notification, in order."""

    def __init__(self) -> None:
        self.alerts: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with hook._lock:
                    hook.alerts.extend(json.loads(body).get("alerts", []))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self.url = f"http://{LOOPBACK}:{self.server.server_address[1]}/alerts"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def received(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.alerts)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    try:
        yield hook
    finally:
        hook.close()


def render_rules(config: Path, out: Path) -> list[Path]:
    proc = subprocess.run([sys.executable, "-m", "kpexporter", "rules", "--config", str(config),
                           "-o", str(out)], capture_output=True, text=True, timeout=60,
                          cwd=REPO_ROOT, check=False)
    assert proc.returncode == 0, proc.stderr
    return sorted(out.glob("*.yaml"))


def wait_for_webhook(hook: Webhook, want: set[tuple[str, str]], what: str,
                     prometheus: PrometheusServer, am: AlertmanagerProcess) -> None:
    __tracebackhide__ = True
    deadline = time.monotonic() + 60 * timeout_scale()
    while time.monotonic() < deadline:
        got = {(a["labels"].get("alertname", ""), a["labels"].get("node", ""))
               for a in hook.received()}
        if want <= got:
            return
        time.sleep(0.25)
    raise AssertionError(f"webhook never received {what}: got {hook.received()}; Prometheus "
                         f"alerts: {prometheus.alerts()}; Alertmanager: {am.alerts()}")


def test_stuck_pages_healthy_and_idle_stay_silent(tmp_path: Path, webhook: Webhook) -> None:
    config = tmp_path / "kpexporter.yaml"
    config.write_text(CONFIG, encoding="utf-8")
    rule_files = render_rules(config, tmp_path / "rules")

    sim = SimulatorProcess(tmp_path / "sim", nodes=len(SCENARIOS)).start()
    am = AlertmanagerProcess(tmp_path / "am", {
        "route": {"receiver": "webhook", "group_by": ["alertname", "node"],
                  "group_wait": "1s", "group_interval": "1s", "repeat_interval": "1h"},
        "receivers": [{"name": "webhook",
                       "webhook_configs": [{"url": webhook.url, "send_resolved": False}]}],
    })
    exporters: list[ExporterProcess] = []
    prometheus: PrometheusServer | None = None
    try:
        am.start()
        for node, scenario in zip(sim.nodes, SCENARIOS, strict=True):
            node.set_scenario(scenario)
            exporters.append(ExporterProcess(
                tmp_path / "exporters", healthz_url=node.healthz_url,
                metrics_url=node.metrics_url, node=scenario, windows=None,
                extra_args=["--config", str(config)]))
        for e in exporters:
            e.spawn()
        for e in exporters:
            e.wait_ready()
        prometheus = PrometheusServer(
            tmp_path / "prometheus", [ScrapeJob(JOB, targets=tuple(e.address for e in exporters))],
            rule_files=rule_files, alertmanagers=[am.address]).start()

        wait_for_webhook(webhook, {("KubeProxyRulesSyncStuck", "stuck"),
                                   ("KubeProxyUnhealthy", "stuck")},
                         "the stuck node's alerts", prometheus, am)
        stuck = {a["labels"]["alertname"]: a for a in webhook.received()
                 if a["labels"].get("node") == "stuck"}
        for name, severity in (("KubeProxyRulesSyncStuck", "critical"),
                               ("KubeProxyUnhealthy", "warning")):
            a = stuck[name]
            assert a["status"] == "firing" and a["labels"]["severity"] == severity, a
            assert "node stuck" in a["annotations"]["description"], a
            assert a["annotations"]["runbook_url"].endswith("#" + name.lower()), a

        # Long enough for the quiet ones to have shown anything: the idle node's last sync is
        # now over 5x the pending threshold old, and Prometheus holds 15 s of both.
        prometheus.wait_for(f'time() - kpexporter_sync_last_timestamp_seconds{{node="idle"}} '
                            f"> {5 * PENDING_THRESHOLD:g}", timeout=90,
                            what="the idle node's last sync to age")
        for node in ("healthy", "idle"):
            prometheus.wait_for_value(f'count_over_time(kpexporter_up{{node="{node}"}}[1m])',
                                      lambda n: n >= 15, what=f"15 s of scrapes of {node}")
        # ALERTS holds every evaluation's pending and firing alerts: none, ever, for them
        quiet = prometheus.query('count_over_time(ALERTS{node=~"healthy|idle"}[10m])')
        assert quiet == [], quiet
        delivered = {(a["labels"]["alertname"], a["labels"].get("node")) for a in
                     webhook.received()}
        assert {node for _, node in delivered} == {"stuck"}, delivered
    finally:
        if prometheus is not None:
            prometheus.stop()
        for e in exporters:
            e.request_stop()
        for e in exporters:
            e.stop()
        am.stop()
        sim.stop()
