"""The ``kpexporter`` command as a user runs it: check's verdicts and exit codes, usage errors.

``check`` runs as a real subprocess against the in-process simulator, in each healthz body
generation and behaviour.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from kpexporter.simulator import RunningSimulator, SimOptions, start_simulator


async def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "kpexporter", *args, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env={"PATH": "/usr/bin:/bin", **(env or {})})
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def sim(**kw: object) -> AsyncIterator[RunningSimulator]:
    opts = SimOptions(healthz_port=0, metrics_port=0, **kw)  # type: ignore[arg-type]
    s = await start_simulator(opts)
    try:
        yield s
    finally:
        await s.stop()


async def check(s: RunningSimulator, *extra: str) -> tuple[int, str, str]:
    n = s.nodes[0]
    return await run("check", "--healthz-url", n.healthz_url, "--metrics-url", n.metrics_url,
                     "--node", n.name, *extra)


@pytest.mark.parametrize("version", ["1.13", "1.21", "1.26", "1.30", "1.33"])
async def test_check_healthy_every_generation(version: str) -> None:
    async for s in sim(version=version):
        code, out, err = await check(s)
        assert code == 0, out + err
        assert out.startswith("HEALTHY: kube-proxy on node node-0")
        assert "Traceback" not in err


async def test_check_draining_is_exit_1_and_says_why() -> None:
    async for s in sim(version="1.30", scenario="draining"):
        code, out, _ = await check(s)
        assert code == 1
        lines = out.splitlines()
        assert lines[0] == "UNHEALTHY: kube-proxy on node node-0"
        assert "node not eligible" in lines[1]


@pytest.mark.parametrize(("version", "scenario"), [
    ("1.26", "stuck"), ("1.30", "stuck"), ("1.33", "stuck"), ("1.26", "never-synced"),
    ("1.30", "restore-failures"),
])
async def test_check_unhealthy_after_healthtimeout(version: str, scenario: str) -> None:
    # time_scale 60: syncPeriod 0.5 s, so kube-proxy turns 503 after ~1 s of waiting.
    async for s in sim(version=version, scenario=scenario, time_scale=60.0):
        code, out, err = 0, "", ""
        for _ in range(40):
            code, out, err = await check(s)
            if code == 1:
                break
            await asyncio.sleep(0.25)
        assert code == 1, out + err
        assert "/healthz answered 503" in out


async def test_check_json_and_prometheus_outputs() -> None:
    async for s in sim(version="1.33"):
        code, out, _ = await check(s, "-o", "json")
        assert code == 0
        doc = json.loads(out)
        assert doc["derived"]["verdict"] == "healthy"
        assert doc["derived"]["healthz"]["families"][0]["ip_family"] == "IPv4"
        code, out, _ = await check(s, "--output", "prometheus")
        assert code == 0
        assert 'kpexporter_up{node="node-0"} 1.0' in out
        assert 'window="5m"' in out  # one poll: windows exist, with _count 0 and NaN quantiles
        assert ('kpexporter_sync_proxy_rules_duration_seconds_count'
                '{ip_family="IPv4",node="node-0",window="5m"} 0.0') in out


async def test_check_unreachable_is_exit_2_and_prometheus_still_prints() -> None:
    code, out, err = await run("check", "--healthz-url", "http://127.0.0.1:1/healthz",
                               "--metrics-url", "http://127.0.0.1:1/metrics", "--timeout", "1")
    assert code == 2
    assert out.startswith("UNREACHABLE: kube-proxy on node")
    assert "healthz: cannot connect" in out and "Traceback" not in err
    code, out, _ = await run("check", "--healthz-url", "http://127.0.0.1:1/healthz",
                             "--metrics-url", "http://127.0.0.1:1/metrics", "-o", "prometheus")
    assert code == 2 and "kpexporter_up{" in out and "} 0.0" in out


@pytest.mark.parametrize(("args", "needle"), [
    (["check", "--interval", "x"], "unrecognized arguments"),
    (["check", "--timeout", "soon"], "--timeout: timeout: not a duration: 'soon'"),
    (["check", "--healthz-url", "ftp://x"], "--healthz-url: healthz_url: must be an http(s)"),
    (["serve", "--listen", "nowhere"], "--listen: listen: must be HOST:PORT"),
    (["check", "--config", "/nonexistent.yaml"], "cannot read"),
    (["simulate", "--version", "0.1"], "--version"),
    (["simulate", "--scenario", "nope"], "scenario"),
    (["frobnicate"], "invalid choice"),
])
async def test_usage_errors_are_one_line_and_exit_64(args: list[str], needle: str) -> None:
    code, out, err = await run(*args)
    assert code == 64, (out, err)
    assert needle in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


async def test_bad_config_file_names_the_key(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("windows: [5m]\nintervall: 3\n")
    code, _, err = await run("serve", "--config", str(cfg))
    assert code == 64
    assert err.strip() == (f"kpexporter: config file {cfg}: intervall: unknown key (known: "
                           "concurrency, discovery, healthz_url, interval, listen, log_format, "
                           "log_level, "
                           "max_body_bytes, max_healthz_bytes, metrics_url, node, "
                           "pending_threshold, quantiles, targets, timeout, web_config_file, "
                           "windows)")


async def test_help_answers() -> None:
    code, out, _ = await run("--help")
    assert code == 0 and "serve" in out and "check" in out and "demo" in out
    code, out, _ = await run("simulate", "--help")
    assert code == 0
    for word in ("--version", "--mode", "--scenario", "iptables", "nftables", "stuck",
                 "never-synced", "--time-scale", "--nodes"):
        assert word in out, word
