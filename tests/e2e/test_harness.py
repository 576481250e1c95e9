"""The harness itself: generated configs are valid, failures say what Prometheus returned."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.e2e.harness import (
    PrometheusQueryError,
    PrometheusServer,
    ScrapeJob,
    TlsSettings,
)

pytestmark = pytest.mark.e2e


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not on PATH")
def test_generated_config_passes_promtool(tmp_path: Path) -> None:
    """Every knob later suites use (TLS, basic auth, rules, Alertmanager) renders validly."""
    for name in ("ca.pem", "cert.pem", "key.pem"):
        (tmp_path / name).write_text("placeholder\n")
    rules = tmp_path / "rules.yaml"
    rules.write_text("groups:\n- name: g\n  rules:\n  - record: r:up\n    expr: up\n")
    server = PrometheusServer(
        tmp_path,
        [ScrapeJob("plain", targets=("127.0.0.1:9",)),
         ScrapeJob("secure", scheme="https", basic_auth=("user", "secret"),
                   tls=TlsSettings(ca_file=str(tmp_path / "ca.pem"),
                                   cert_file=str(tmp_path / "cert.pem"),
                                   key_file=str(tmp_path / "key.pem"),
                                   server_name="localhost"),
                   scrape_interval="2s", scrape_timeout="1s", labels={"tier": "x"})],
        rule_files=[rules], alertmanagers=["127.0.0.1:9093"])
    server.sd_dir.mkdir(parents=True)
    for job in server.jobs:
        server._write_sd(job)
    path = server.write_config()
    proc = subprocess.run(["promtool", "check", "config", str(path)], capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr + path.read_text()


def test_bad_promql_fails_at_once(prometheus: PrometheusServer) -> None:
    with pytest.raises(PrometheusQueryError, match="parse error"):
        prometheus.wait_for("kpexporter_up{", timeout=60)


def test_wait_for_reports_what_prometheus_returned(prometheus: PrometheusServer) -> None:
    with pytest.raises(AssertionError, match=r"Prometheus returned: .*\"1\""):
        prometheus.wait_for_value("vector(1)", lambda v: v == 2, timeout=1, what="1 to be 2")
    assert prometheus.query_value("vector(7)") == 7
    assert prometheus.query("scalar(vector(3))")[0]["value"][1] == "3"
