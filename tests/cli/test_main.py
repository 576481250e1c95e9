"""The ``kpexporter`` command as a user runs it: check's verdicts and exit codes, usage errors.

``check`` runs as a real subprocess against the in-process simulator, in each healthz body
generation and behaviour.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from kpexporter.simulator import RunningSimulator
from tests.cli.conftest import BARE_ENV, KPEXPORTER, run, sim


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
    (["check", "--timeout", "soon"], "kpexporter: --timeout: not a duration: 'soon'"),
    (["check", "--healthz-url", "ftp://x"], "kpexporter: --healthz-url: must be an http(s)"),
    (["serve", "--listen", "nowhere"], "kpexporter: --listen: must be HOST:PORT"),
    (["serve", "--listen", "0.0.0.0:99999"],
     "kpexporter: --listen: port must be 0-65535, got '99999'"),
    (["check", "--config", "/nonexistent.yaml"], "cannot read"),
    (["simulate", "--k8s-version", "0.1"], "--k8s-version: "),
    (["simulate", "--version", "0.1"], "--k8s-version: "),  # the old spelling, still taken
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
    known = err.strip().removeprefix(f"kpexporter: config file {cfg}: intervall: unknown key "
                                     "(known: ")
    assert known != err.strip() and known.endswith(")")
    keys = known[:-1].split(", ")
    assert keys == sorted(keys) and set(keys) >= {
        "concurrency", "discovery", "healthz_url", "interval", "listen", "log_format",
        "log_level", "max_body_bytes", "max_healthz_bytes", "metrics_url", "node",
        "passthrough", "pending_threshold", "quantiles", "slos", "targets", "timeout",
        "web_config_file", "windows"}


async def test_help_answers() -> None:
    code, out, _ = await run("--help")
    assert code == 0 and "serve" in out and "check" in out and "demo" in out
    code, out, _ = await run("simulate", "--help")
    assert code == 0
    for word in ("--k8s-version", "--mode", "--scenario", "iptables", "nftables", "stuck",
                 "never-synced", "--time-scale", "--nodes"):
        assert word in out, word


# ---- every command checks all its arguments first (issue 9, defect 3)

@pytest.mark.parametrize(("args", "needle"), [
    (["demo", "--scenario", "nope"], "kpexporter: --scenario: 'nope' is not one of"),
    (["demo", "--version", "1.99"], "kpexporter: --k8s-version: "),
    (["demo", "--k8s-version", "1.99"], "kpexporter: --k8s-version: "),
    (["demo", "--mode", "foo"], "kpexporter: --mode: 'foo' is not one of"),
    (["demo", "--time-scale", "0"], "kpexporter: --time-scale: "),
    (["demo", "--interval", "0"], "kpexporter: --interval: must be a positive"),
    (["demo", "--listen", "0.0.0.0:99999"], "kpexporter: --listen: port must be 0-65535"),
])
async def test_demo_refuses_bad_usage_before_starting(args: list[str], needle: str) -> None:
    code, out, err = await run(*args)
    assert (code, out) == (64, ""), (code, out, err)  # nothing started, no URL printed
    assert err.startswith(needle), err
    assert len(err.strip().splitlines()) == 1 and "internal error" not in err


def busy_port() -> socket.socket:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    return s


@pytest.mark.parametrize("flag", ["--healthz-port", "--metrics-port"])
async def test_simulate_busy_port_is_usage_error_naming_the_flag(flag: str) -> None:
    with busy_port() as taken:
        port = str(taken.getsockname()[1])
        other = "--metrics-port" if flag == "--healthz-port" else "--healthz-port"
        code, out, err = await run("simulate", flag, port, other, "0")
    assert code == 64, (code, out, err)
    assert err.startswith(f"kpexporter: {flag}: cannot listen on 127.0.0.1:{port}: "), err
    assert len(err.strip().splitlines()) == 1 and "internal error" not in err


async def test_demo_busy_listen_port_is_usage_error() -> None:
    with busy_port() as taken:
        code, out, err = await run("demo", "--listen", f"127.0.0.1:{taken.getsockname()[1]}")
    assert (code, out) == (64, ""), (code, out, err)
    assert err.startswith("kpexporter: --listen 127.0.0.1:") and "cannot bind" in err


# ---- a closed stdout is not an error (issue 9, defect 4)

@pytest.mark.parametrize("output", ["text", "json", "prometheus"])
async def test_check_into_a_closed_pipe_exits_quietly(output: str) -> None:
    async for s in sim(version="1.33"):
        n = s.nodes[0]
        read_end, write_end = os.pipe()
        os.close(read_end)  # the reader (`head -1`) is gone before check writes a byte
        try:
            proc = await asyncio.create_subprocess_exec(
                *KPEXPORTER, "check", "-o", output,
                "--healthz-url", n.healthz_url, "--metrics-url", n.metrics_url,
                stdout=write_end, stderr=asyncio.subprocess.PIPE, env=BARE_ENV)
        finally:
            os.close(write_end)
        _, err = await asyncio.wait_for(proc.communicate(), 60)
        assert err.decode() == ""  # no "internal error", no "Exception ignored"
        assert proc.returncode == 128 + signal.SIGPIPE  # as a shell reports `yes | head -1`


# ---- --version is the program's; the simulated Kubernetes minor is --k8s-version

async def test_version_flags() -> None:
    code, out, _ = await run("--version")
    assert code == 0 and out.startswith("kpexporter ")
    for command in ("simulate", "demo"):
        code, out, _ = await run(command, "--help")
        assert code == 0 and "--k8s-version" in out
        assert " --version" not in out  # the old spelling works but is not advertised


# ---- make demo's output is what the README shows

async def demo(*args: str) -> AsyncIterator[tuple[list[str], asyncio.subprocess.Process]]:
    proc = await asyncio.create_subprocess_exec(
        *KPEXPORTER, "demo", *args, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=BARE_ENV)
    assert proc.stdout is not None
    try:
        lines = [(await asyncio.wait_for(proc.stdout.readline(), 60)).decode().rstrip("\n")
                 for _ in range(6)]
        yield lines, proc
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0 and b"Traceback" not in err, err


def shape(line: str) -> str:
    return re.sub(r"\d+", "N", line)


async def test_demo_prints_what_the_readme_shows() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## Two commands", 1)[1].split("\n## ", 1)[0]
    shown = section.split("prints where everything is", 1)[1].split("```", 2)[1].strip("\n")
    async for lines, _ in demo():
        assert [shape(x) for x in lines] == [shape(x) for x in shown.splitlines()]


async def test_demo_time_scale_reaches_the_simulator() -> None:
    async for lines, _ in demo("--scenario", "stuck", "--time-scale", "60"):
        exporter = lines[2].removeprefix("exporter: ")
        async with httpx.AsyncClient() as client:
            page = ""
            for _ in range(100):  # syncPeriod 0.5 s at scale 60: 503 after ~1 s
                page = (await client.get(exporter)).text
                if 'kpexporter_healthz_healthy{node="node-0"} 0' in page:
                    break
                await asyncio.sleep(0.1)
        assert 'kpexporter_healthz_healthy{node="node-0"} 0' in page, page


async def test_check_names_the_url_that_answered_404() -> None:
    async for s in sim(version="1.30"):
        n = s.nodes[0]
        wrong = n.healthz_url.replace("/healthz", "/nope")
        code, out, err = await run("check", "--healthz-url", wrong, "--metrics-url", n.metrics_url)
        assert code == 2, out + err
        assert f"HTTP 404 from {wrong}" in out
