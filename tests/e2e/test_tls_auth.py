"""A real Prometheus 2.42 scrapes the exporter over TLS with basic auth (the shipped sample).

The exporter runs with ``deploy/web-config/web-config.yml`` as users would (its ``tls.crt`` /
``tls.key`` are the test-only self-signed pair), Prometheus verifies the certificate and sends
the documented password; a second job with a wrong password must see 401.
"""

from __future__ import annotations

import shutil
import ssl
from pathlib import Path

import httpx

from tests.e2e.conftest import KpPair
from tests.e2e.harness import ExporterProcess, PrometheusServer, ScrapeJob, TlsSettings

ROOT = Path(__file__).resolve().parents[2]
CERTS = ROOT / "tests" / "data" / "web-config"
PASSWORD = "change-me-kpexporter"  # documented in the sample's comments


def test_prometheus_scrapes_over_tls_with_basic_auth(
        scenario_pairs: dict[str, KpPair],
        prometheus: PrometheusServer, tmp_path: Path) -> None:
    pair = scenario_pairs["healthy"]
    web = tmp_path / "web"
    web.mkdir()
    shutil.copy(ROOT / "deploy" / "web-config" / "web-config.yml", web / "web-config.yml")
    shutil.copy(CERTS / "testonly-selfsigned.crt", web / "tls.crt")
    shutil.copy(CERTS / "testonly-selfsigned.key", web / "tls.key")
    ca = str(CERTS / "testonly-selfsigned.crt")
    ctx = ssl.create_default_context(cafile=ca)
    exp = ExporterProcess(tmp_path, healthz_url=pair.sim.healthz_url,
                          metrics_url=pair.sim.metrics_url, node="node-tls",
                          extra_args=["--web-config-file", str(web / "web-config.yml")],
                          scheme="https", verify=ctx, auth=("prometheus", PASSWORD), name="tls")
    exp.start()
    try:
        # Without credentials: 401 with a Basic challenge; probes stay open.
        with httpx.Client(verify=ctx, timeout=5) as c:
            r = c.get(exp.metrics_url)
            assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Basic")
            assert c.get(exp.url + "/healthz").status_code == 200
            bad = c.get(exp.metrics_url, auth=("prometheus", "wrong"))
            assert bad.status_code == 401
            assert r.headers["x-content-type-options"] == "nosniff"
        tls = TlsSettings(ca_file=ca, server_name="localhost")
        prometheus.add_job(ScrapeJob("kpx-tls", (exp.address,), scheme="https",
                                     basic_auth=("prometheus", PASSWORD), tls=tls))
        prometheus.add_job(ScrapeJob("kpx-tls-wrong", (exp.address,), scheme="https",
                                     basic_auth=("prometheus", "wrong"), tls=tls))
        prometheus.wait_for_targets("kpx-tls", [exp.address])
        down = prometheus.wait_for_targets("kpx-tls-wrong", [exp.address], health="down")
        assert "401" in (down[0].get("lastError") or "")
        prometheus.wait_for_value('kpexporter_up{job="kpx-tls",node="node-tls"}',
                                  lambda v: v == 1, what="kpexporter_up scraped over TLS")
        assert "Traceback" not in exp.log_text()
    finally:
        for job in ("kpx-tls", "kpx-tls-wrong"):  # leave the shared Prometheus as it was
            prometheus.jobs.pop(job, None)
        prometheus.write_config()
        prometheus.reload()
        exp.stop()
