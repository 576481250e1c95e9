"""The simulator over real loopback sockets, answered like Go's net/http."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random

import httpx
import pytest

from kpexporter.simulator import (
    MODES,
    SCENARIOS,
    VERSIONS,
    SimOptions,
    add_arguments,
    options_from_args,
    run_forever,
    start_simulator,
)


async def raw_get(url: str) -> bytes:
    """The response head exactly as sent (httpx would normalise header names)."""
    hostport, _, path = url.removeprefix("http://").partition("/")
    host, _, port = hostport.rpartition(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(f"GET /{path} HTTP/1.1\r\nHost: {hostport}\r\nConnection: close\r\n\r\n".encode())
    data = await reader.read()
    writer.close()
    return data


async def test_one_node_answers_like_kube_proxy() -> None:
    sim = await start_simulator(SimOptions(healthz_port=0, metrics_port=0, version="1.30"))
    try:
        n = sim.nodes[0]
        assert n.name == "node-0"
        async with httpx.AsyncClient() as c:
            hz = await c.get(n.healthz_url)
            assert hz.status_code == 200
            assert hz.headers["content-type"] == "application/json"
            assert hz.headers["x-content-type-options"] == "nosniff"
            assert hz.text.startswith('{"lastUpdated": "')
            assert hz.text.endswith('"nodeEligible": true}')
            assert (await c.get(n.healthz_url.replace("/healthz", "/livez"))).status_code == 200
            nf = await c.get(n.healthz_url.replace("/healthz", "/"))
            assert (nf.status_code, nf.text) == (404, "404 page not found\n")
            m = await c.get(n.metrics_url, headers={"Accept-Encoding": "gzip"})
            assert m.status_code == 200
            assert m.headers["content-type"].startswith("text/plain; version=0.0.4")
            assert "kubeproxy_sync_proxy_rules_duration_seconds_bucket" in m.text
            assert 'kubeproxy_proxy_healthz_total{code="200"} 1' in m.text
            mode = await c.get(n.metrics_url.replace("/metrics", "/proxyMode"))
            assert mode.text == "iptables"
            ok = await c.get(n.metrics_url.replace("/metrics", "/healthz"))
            assert ok.text == "ok"
        head = (await raw_get(n.healthz_url)).split(b"\r\n\r\n")[0].split(b"\r\n")
        assert head[0] == b"HTTP/1.1 200 OK"
        assert head[1:3] == [b"Content-Type: application/json", b"X-Content-Type-Options: nosniff"]
        assert head[3].startswith(b"Date: ") and head[4].startswith(b"Content-Length: ")
    finally:
        await sim.stop()


async def test_control_endpoint_switches_the_scenario() -> None:
    sim = await start_simulator(SimOptions(healthz_port=0, metrics_port=0, version="1.33"))
    try:
        n = sim.nodes[0]
        async with httpx.AsyncClient() as c:
            cur = (await c.get(n.control_url)).json()
            assert cur["scenario"] == "healthy" and cur["scenarios"] == list(SCENARIOS)
            r = await c.post(n.control_url, data={"name": "draining"})
            assert r.status_code == 200
            hz = await c.get(n.healthz_url)
            assert hz.status_code == 503 and hz.json()["nodeEligible"] is False
            assert (await c.get(n.control_url)).json()["scenario"] == "draining"
            bad = await c.get(n.control_url, params={"name": "nope"})
            assert bad.status_code == 400 and "unknown scenario" in bad.json()["error"]
            state = (await c.get(n.metrics_url.replace("/metrics", "/sim/state"))).json()
            assert state["scenario"] == "draining" and state["node_eligible"] is False
            await sim.set_scenario("healthy")
            assert (await c.get(n.healthz_url)).status_code == 200
            queued = await c.post(n.metrics_url.replace("/metrics", "/sim/change"))
            assert queued.json()["queued"] == "endpoint"
    finally:
        await sim.stop()


def free_base(count: int) -> int:
    """A base port whose next ``count`` ports look free (the bind itself is the real check)."""
    return random.Random().randrange(20_000, 60_000 - count)


async def test_fifty_nodes_on_consecutive_ports() -> None:
    for _ in range(50):  # another test may hold a port of the range: try others
        base = free_base(100)
        try:
            sim = await start_simulator(SimOptions(healthz_port=base, metrics_port=base + 50,
                                                   nodes=50, scenario="idle"))
            break
        except OSError:
            continue
    else:
        pytest.skip("no free port range")
    try:
        assert [n.name for n in sim.nodes] == [f"node-{i}" for i in range(50)]
        assert sim.nodes[49].healthz_url == f"http://127.0.0.1:{base + 49}/healthz"
        async with httpx.AsyncClient() as c:
            answers = await asyncio.gather(*(c.get(n.healthz_url) for n in sim.nodes))
            assert {a.status_code for a in answers} == {200}
            assert len({a.text for a in answers}) > 1  # different nodes, different m=
            pages = await asyncio.gather(*(c.get(n.metrics_url) for n in sim.nodes[:5]))
            assert all(p.status_code == 200 for p in pages)
        await sim.set_scenario("draining", node=3)
        async with httpx.AsyncClient() as c:
            assert (await c.get(sim.nodes[3].healthz_url)).status_code == 503
            assert (await c.get(sim.nodes[4].healthz_url)).status_code == 200
    finally:
        await sim.stop()


async def test_nodes_on_consecutive_loopback_addresses() -> None:
    sim = await start_simulator(SimOptions(healthz_port=0, metrics_port=0, nodes=3,
                                           spread="addresses"))
    try:
        hosts = [n.healthz_url.split("//")[1].split(":")[0] for n in sim.nodes]
        assert hosts == ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
        async with httpx.AsyncClient() as c:
            for n in sim.nodes:
                assert (await c.get(n.healthz_url)).status_code == 200
    finally:
        await sim.stop()


def parse(*argv: str) -> SimOptions:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return options_from_args(parser.parse_args(list(argv)))


def test_options_parse_and_validate() -> None:
    opts = parse("--version", "1.33", "--ip-families", "ipv4,IPv6", "--nodes", "3")
    assert opts.ip_families == ("IPv4", "IPv6") and opts.nodes == 3
    for argv, flag in [
        (("--version", "2.0"), "--k8s-version"),  # the old spelling names the new flag
        (("--k8s-version", "1.7"), "--k8s-version"),
        (("--mode", "userspace"), "--mode"),
        (("--mode", "nftables", "--version", "1.28"), "--mode"),
        (("--scenario", "boom"), "--scenario"),
        (("--time-scale", "0"), "--time-scale"),
        (("--nodes", "0"), "--nodes"),
        (("--ip-families", "IPv5"), "--ip-families"),
        (("--host", "example.com"), "--host"),
        (("--healthz-port", "65535", "--nodes", "2"), "--healthz-port"),
        (("--spread", "addresses", "--host", "10.0.0.1", "--nodes", "2"), "--spread"),
    ]:
        with pytest.raises(ValueError, match=f"^{flag}:"):
            parse(*argv)


def test_help_lists_versions_modes_and_scenarios() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    text = " ".join(parser.format_help().split())
    assert VERSIONS[0] in text and VERSIONS[-1] in text
    for word in (*MODES, *SCENARIOS):
        assert word in text


async def test_run_forever_prints_the_endpoint_lines(capsys: pytest.CaptureFixture[str]) -> None:
    task = asyncio.create_task(run_forever(SimOptions(healthz_port=0, metrics_port=0, nodes=2)))
    out = ""
    for _ in range(1000):  # yield to the loop until the lines are out; no wall-clock wait
        await asyncio.sleep(0)
        out += capsys.readouterr().out
        if "nodes:" in out:
            break
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    lines = out.splitlines()
    assert lines[0].startswith("healthz: http://127.0.0.1:") and lines[0].endswith("/healthz")
    assert lines[1].startswith("metrics: http://127.0.0.1:") and lines[1].endswith("/metrics")
    assert lines[-1].startswith("nodes: 2 (node-0 .. node-1)")


async def test_lazy_switch_before_first_request_is_replayed() -> None:
    sim = await start_simulator(SimOptions(healthz_port=0, metrics_port=0, nodes=2))
    try:
        await sim.set_scenario("draining")
        async with httpx.AsyncClient() as c:
            for n in sim.nodes:
                assert (await c.get(n.healthz_url)).status_code == 503
        with pytest.raises(ValueError, match="unknown scenario"):
            await sim.set_scenario("nope")
    finally:
        await sim.stop()


def test_it_serves_on_uvloop_too() -> None:
    """``demo`` runs the simulator on serve's loop, uvloop, whose transports are not
    ``asyncio.Transport`` subclasses (an isinstance check once refused every connection)."""
    import uvloop

    async def fetch_both() -> list[int]:
        sim = await start_simulator(SimOptions(healthz_port=0, metrics_port=0))
        try:
            n = sim.nodes[0]
            async with httpx.AsyncClient() as c:
                return [(await c.get(u)).status_code for u in (n.healthz_url, n.metrics_url)]
        finally:
            await sim.stop()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        assert runner.run(fetch_both()) == [200, 200]
