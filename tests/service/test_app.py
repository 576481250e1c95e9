"""The FastAPI app: every endpoint answers, /metrics always 200."""

from __future__ import annotations

import httpx

from kpexporter.service.app import create_app
from kpexporter.service.poller import Poller
from tests.builders import HEALTHY_128, config, poll_result
from tests.fixtures import fixture_bytes


def app_with(polled: bool) -> tuple[Poller, httpx.AsyncClient]:
    cfg = config()
    poller = Poller(cfg)
    if polled:
        page = fixture_bytes("beats-metricbeat-v1.30.0-iptables-minikube.txt")
        poller.states[0].record(poll_result(HEALTHY_128, 200, page), cfg)
        poller.first_round.set()
    app = create_app(poller, manage_poller=False)
    return poller, httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


async def test_endpoints_before_first_poll() -> None:
    _, client = app_with(polled=False)
    async with client:
        assert (await client.get("/healthz")).status_code == 200
        r = await client.get("/readyz")
        assert r.status_code == 503
        m = await client.get("/metrics")
        assert m.status_code == 200
        assert "kpexporter_build_info" in m.text


async def test_endpoints_after_a_poll() -> None:
    _, client = app_with(polled=True)
    async with client:
        assert (await client.get("/readyz")).status_code == 200
        m = await client.get("/metrics")
        assert m.headers["content-type"].startswith("text/plain; version=0.0.4")
        assert 'kpexporter_up{node="node-a"} 1.0' in m.text
        t = (await client.get("/api/v1/targets")).json()["targets"][0]
        assert t["node"] == "node-a" and t["derived"]["verdict"] == "healthy"
        assert t["derived"]["healthz"]["status_code"] == 200
        page = await client.get("/")
        assert "node-a" in page.text and "healthy" in page.text
        z = await client.get("/metrics", headers={"Accept-Encoding": "gzip"})
        assert z.headers.get("content-encoding") == "gzip" and "kpexporter_up" in z.text
        assert (await client.get("/metrics/")).status_code == 404  # no 307 dance
