"""The FastAPI app: every endpoint answers, /metrics always 200."""

from __future__ import annotations

import httpx
import pytest

from kpexporter import __version__
from kpexporter.service.app import accepts_gzip, create_app
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


async def test_before_the_first_poll_the_exporters_own_series_are_there_but_not_up() -> None:
    from prometheus_client.parser import text_string_to_metric_families
    _, client = app_with(polled=False)
    async with client:
        text = (await client.get("/metrics")).text
    got = {(s.name, tuple(sorted(s.labels.items()))): s.value
           for f in text_string_to_metric_families(text) for s in f.samples}
    assert got[("kpexporter_build_info", (("version", __version__),))] == 1.0
    errors = {k: v for k, v in got.items() if k[0] == "kpexporter_poll_errors_total"}
    assert errors and set(errors.values()) == {0.0}  # every predeclared reason, at 0
    assert got[("kpexporter_poll_duration_seconds_count",
                (("endpoint", "healthz"), ("node", "node-a")))] == 0.0
    assert not any(name == "kpexporter_up" for name, _ in got)


@pytest.mark.parametrize(("header", "gzipped"), [
    ("gzip", True), ("GZIP", True), ("x-gzip", True), ("deflate, gzip", True),
    ("gzip;q=0.5", True), ("br;q=1.0, gzip;q=0.001", True), ("*", True), ("identity, *", True),
    ("gzip;q=0", False), ("gzip; q=0.000", False), ("nogzip", False), ("gzipped", False),
    ("deflate", False), ("*;q=0", False), ("*, gzip;q=0", False), ("gzip;q=nope", False),
    ("", False), ("identity", False),
])
def test_accept_encoding_is_parsed_not_substring_matched(header: str, gzipped: bool) -> None:
    assert accepts_gzip(header) is gzipped


@pytest.mark.parametrize("header", ["gzip;q=0", "nogzip"])
async def test_metrics_is_not_gzipped_when_gzip_is_refused(header: str) -> None:
    _, client = app_with(polled=True)
    async with client:
        r = await client.get("/metrics", headers={"Accept-Encoding": header})
    assert "content-encoding" not in r.headers
    assert r.content.startswith(b"# HELP kpexporter_")


async def test_head_answers_on_every_get_route_with_the_get_headers() -> None:
    poller, _ = app_with(polled=True)
    app = create_app(poller, manage_poller=False)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
    paths = ["/metrics"]  # MetricsFirst, before the routes
    paths += [r.path for r in app.routes if "GET" in getattr(r, "methods", ())]
    assert {"/healthz", "/readyz", "/api/v1/targets", "/"} <= set(paths)
    async with client:
        for path in paths:
            got, head = await client.get(path), await client.head(path)
            assert head.status_code == got.status_code == 200, path
            assert head.content == b"", path
            for name in ("content-type", "content-length", "content-encoding"):
                assert head.headers.get(name) == got.headers.get(name), (path, name)
            plain = await client.get(path, headers={"Accept-Encoding": "identity"})
            plain_head = await client.head(path, headers={"Accept-Encoding": "identity"})
            assert int(plain_head.headers["content-length"]) == len(plain.content), path


async def test_metrics_for_one_node_and_unknown_nodes() -> None:
    from prometheus_client.parser import text_string_to_metric_families
    _, client = app_with(polled=True)
    async with client:
        one = await client.get("/metrics", params={"node": "node-a"})
        full = await client.get("/metrics")
        missing = await client.get("/metrics", params=[("node", "node-a"), ("node", "nope")])
        empty = await client.get("/metrics?node=")
        head = await client.head("/metrics", params={"node": "nope"})
    assert one.status_code == 200 and one.text == full.text  # the only node: the whole page
    assert any(f.name == "kpexporter_up" for f in text_string_to_metric_families(one.text))
    for r in (missing, empty):
        assert r.status_code == 404
        assert r.text.count("\n") == 1 and r.text.startswith("unknown node")
    assert "'nope'" in missing.text
    assert head.status_code == 404 and head.content == b""


async def test_metrics_answers_405_to_other_methods() -> None:
    _, client = app_with(polled=True)
    async with client:
        r = await client.post("/metrics", content=b"x")
        other = await client.post("/readyz")
    assert r.status_code == 405 and r.headers["allow"] == "GET, HEAD"
    assert r.text == "method not allowed\n"
    assert other.status_code == 405  # what FastAPI answers on its routes too


async def test_prometheus_gets_openmetrics_written_from_the_cached_lines() -> None:
    """Prometheus's Accept asks for OpenMetrics 1.0.0 first: the fast writer answers, with the
    bytes prometheus_client's writer would send; another version goes to that writer."""
    from prometheus_client.exposition import choose_encoder

    from kpexporter.service.openmetrics import make_registry
    from tests.service.test_text import PROMETHEUS_ACCEPT
    poller, client = app_with(polled=True)
    writer, ctype = choose_encoder(PROMETHEUS_ACCEPT)
    async with client:
        r = await client.get("/metrics", params={"node": "node-a"},
                             headers={"Accept": PROMETHEUS_ACCEPT})
        other = await client.get("/metrics", headers={
            "Accept": "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8"})
    assert r.headers["content-type"] == ctype
    assert r.content == writer(make_registry(poller.snapshot))
    assert r.content.endswith(b"# EOF\n") and other.content.endswith(b"# EOF\n")
    assert other.headers["content-type"].endswith("escaping=allow-utf-8")
