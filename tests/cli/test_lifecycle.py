"""``python -m kpexporter`` as a process: start line, SIGTERM mid-poll, bad config, ``check``.

The kube-proxy is the hostile fake from ``tests/faults`` (in this test's event loop), so a
poll can be kept in flight on purpose: the metrics endpoint hangs far longer than the test
waits, and a clean exit within a few seconds proves the in-flight poll was cancelled rather
than waited for.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import httpx

from tests.faults.hostile import HostileKubeProxy, answer, fixture_page, hang, healthz_body
from tests.fixtures import V1_30

EXIT_DEADLINE = 8.0  # seconds: "within a few seconds", generous for a loaded CI machine
WEB_CONFIGS = Path(__file__).parent.parent / "data" / "web-config"
BASIC_AUTH = WEB_CONFIGS / "basic_auth.good.yml"


def clean_env() -> dict[str, str]:
    """The environment minus anything that would configure the exporter behind our back."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("KPEXPORTER_") and k not in ("NODE_NAME",)}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def run(args: Sequence[str], timeout: float = 30.0) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "kpexporter", *args, env=clean_env(),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


class Serve:
    """A running ``kpexporter serve``; its stderr is collected line by line."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stderr is not None
        for _ in range(100_000):
            line = await self.proc.stderr.readline()
            if not line:
                return
            self.lines.append(line.decode("utf-8", "replace").rstrip("\n"))

    @property
    def log(self) -> str:
        return "\n".join(self.lines)

    async def wait_for_line(self, pattern: str, deadline: float = 20.0) -> re.Match[str]:
        rx = re.compile(pattern)
        async with asyncio.timeout(deadline):
            for _ in range(100_000):
                for line in self.lines:
                    if m := rx.search(line):
                        return m
                if self._reader.done() and not any(rx.search(ln) for ln in self.lines):
                    raise AssertionError(f"exited without {pattern!r}:\n{self.log}")
                await asyncio.sleep(0.05)
        raise AssertionError(pattern)  # pragma: no cover

    async def stop(self, sig: int = signal.SIGTERM, deadline: float = EXIT_DEADLINE) -> int:
        self.proc.send_signal(sig)
        async with asyncio.timeout(deadline):
            code = await self.proc.wait()
            await self._reader
        return code


@contextlib.asynccontextmanager
async def serve(*args: str) -> AsyncIterator[Serve]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "kpexporter", "serve", "--listen", "127.0.0.1:0", *args,
        env=clean_env(), stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    s = Serve(proc)
    try:
        yield s
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        s._reader.cancel()
        await asyncio.gather(s._reader, return_exceptions=True)


@contextlib.asynccontextmanager
async def kube_proxy(metrics_hangs: bool) -> AsyncIterator[HostileKubeProxy]:
    kp = HostileKubeProxy()
    await kp.start(answer(lambda: healthz_body()),
                   hang() if metrics_hangs else answer(fixture_page(V1_30)))
    try:
        yield kp
    finally:
        await kp.close()


def source_args(kp: HostileKubeProxy, *more: str) -> list[str]:
    return ["--node", "node-l", "--healthz-url", kp.healthz_url, "--metrics-url",
            kp.metrics_url, "--interval", "0.2", *more]


async def test_sigterm_while_a_poll_is_in_flight_exits_0_and_logs_stopped() -> None:
    async with kube_proxy(metrics_hangs=True) as kp, \
            serve(*source_args(kp, "--timeout", "60")) as s:
        m = await s.wait_for_line(r"event=start .*listen=127\.0\.0\.1:(\d+)")
        port = int(m.group(1))
        # A poll is in flight: the metrics request arrived and will not be answered.
        async with asyncio.timeout(10):
            while kp.requests["metrics"] == 0:
                await asyncio.sleep(0.05)
        async with httpx.AsyncClient(timeout=5) as client:
            r = await client.get(f"http://127.0.0.1:{port}/metrics")
            assert r.status_code == 200  # /metrics answers while kube-proxy hangs
            assert "kpexporter_build_info" in r.text
        code = await s.stop(signal.SIGTERM)
        assert code == 0, s.log
        assert any(re.search(r"\bevent=stopped\b", ln) for ln in s.lines), s.log
        assert "Traceback" not in s.log and "internal error" not in s.log, s.log


async def test_sigint_exits_0_too() -> None:
    async with kube_proxy(metrics_hangs=False) as kp, serve(*source_args(kp)) as s:
        await s.wait_for_line(r"event=start ")
        code = await s.stop(signal.SIGINT)
        assert code == 0, s.log
        assert "Traceback" not in s.log, s.log


async def test_start_line_has_the_effective_config_and_no_secrets() -> None:
    async with kube_proxy(metrics_hangs=False) as kp:
        metrics_url = kp.metrics_url.replace("http://", "http://scraper:s3cr3t-pw@")
        args = ["--node", "node-l", "--healthz-url", kp.healthz_url, "--metrics-url",
                metrics_url, "--interval", "0.25", "--timeout", "2", "--windows", "10m,2h",
                "--web-config-file", str(BASIC_AUTH)]
        async with serve(*args) as s:
            m = await s.wait_for_line(r"event=start .*listen=127\.0\.0\.1:(\d+)")
            start = m.string
            for field in ("node=node-l", "interval=0.25", "timeout=2.0", "windows=10m,2h",
                          "basic_auth=True", f"healthz_url={kp.healthz_url}",
                          "event_loop=uvloop"):  # the default without TLS
                assert field in start, (field, start)
            port = int(m.group(1))
            async with httpx.AsyncClient(timeout=5) as client:
                url = f"http://127.0.0.1:{port}"
                assert (await client.get(f"{url}/metrics")).status_code == 401
                r = await client.get(f"{url}/api/v1/targets",
                                     auth=("alice", "wrong-password"))
                assert r.status_code == 401
            async with asyncio.timeout(10):  # polls happened (with the URL's credentials)
                while kp.requests["metrics"] < 2:
                    await asyncio.sleep(0.05)
            code = await s.stop()
        assert code == 0, s.log
        hashes = re.findall(r"\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}", BASIC_AUTH.read_text())
        assert hashes
        for secret in (*hashes, "s3cr3t-pw", "wrong-password"):
            assert secret not in s.log, (secret, s.log)
            for salt_and_hash in (secret[7:29], secret[29:]):  # no part of a hash either
                if len(secret) == 60:
                    assert salt_and_hash not in s.log


async def test_credentials_in_a_url_are_not_served_either() -> None:
    """/api/v1/targets shows the URLs polled: never with the password in them."""
    async with kube_proxy(metrics_hangs=False) as kp:
        metrics_url = kp.metrics_url.replace("http://", "http://scraper:s3cr3t-pw@")
        args = ["--node", "node-l", "--healthz-url", kp.healthz_url, "--metrics-url",
                metrics_url, "--interval", "0.25"]
        async with serve(*args) as s:
            m = await s.wait_for_line(r"event=start .*listen=127\.0\.0\.1:(\d+)")
            async with httpx.AsyncClient(timeout=5) as client:
                base = f"http://127.0.0.1:{m.group(1)}"
                for path in ("/api/v1/targets", "/", "/metrics"):
                    r = await client.get(base + path)
                    assert r.status_code == 200
                    assert "s3cr3t-pw" not in r.text, path
            await s.stop()
        assert "s3cr3t-pw" not in s.log


BAD_USAGE = [
    (["serve", "--interval", "soon"], "interval"),
    (["serve", "--interval", "-1"], "interval"),
    (["serve", "--listen", "127.0.0.1:99999"], "listen"),
    (["serve", "--healthz-url", "ftp://x/healthz"], "healthz-url"),
    (["check", "--windows", "5m,5m"], "windows"),
    (["serve", "--no-such-flag"], "no-such-flag"),
    (["serve", "--web-config-file", str(WEB_CONFIGS / "hash_plaintext.bad.yml")],
     "basic_auth_users"),
    (["serve", "--web-config-file", "/nonexistent/web.yml"], "web"),
    (["serve", "--event-loop", "tokio"], "event-loop"),
    (["serve", "--event-loop", "uvloop", "--web-config-file", str(WEB_CONFIGS / "tls.good.yml")],
     "event_loop"),
]


def assert_one_line_exit_64(case: str, result: tuple[int, str, str], needle: str) -> None:
    code, out, err = result
    assert code == 64, (case, code, err[-2000:])
    lines = err.strip().splitlines()
    assert len(lines) == 1, (case, err[-2000:])
    assert needle in lines[0], (case, lines[0])
    assert "Traceback" not in err + out, case


async def test_bad_usage_exits_64_with_one_line_naming_the_field() -> None:
    results = await asyncio.gather(*(run(args) for args, _ in BAD_USAGE))  # in parallel
    for (args, field), result in zip(BAD_USAGE, results, strict=True):
        assert_one_line_exit_64(" ".join(args), result, field)


CONFIG_FILES: dict[str, tuple[str | bytes, str]] = {
    "unknown-key": ("intervall: 5\n", "intervall"),
    "wrong-type": ("timeout: [1, 2]\n", "timeout"),
    "not-a-mapping": ("- a\n- b\n", "mapping"),
    "invalid-yaml": ("interval: [\n", "invalid YAML"),
    "too-deep": ("[" * 50_000 + "]" * 50_000 + "\n", "invalid YAML"),
    "huge-number": ("interval: " + "9" * 5000 + "\n", "invalid YAML"),
    "window-overflow": ("windows: [1e308]\n", "windows"),
    "target-keys-of-mixed-types": ("targets: [{1: a, b: c}]\n", "targets"),
    "newline-in-key": ('"inter\\nval": 1\n', "unknown key"),
    "not-utf8": (b"node: \xff\xfe\n", "UTF-8"),
}


async def test_bad_config_file_exits_64_with_one_line(tmp_path: Path) -> None:
    runs = []
    for case, (text, _) in CONFIG_FILES.items():
        path = tmp_path / f"{case}.yaml"
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        runs.append(run(["serve", "--config", str(path)]))
    results = await asyncio.gather(*runs)  # in parallel
    for (case, (_, needle)), result in zip(CONFIG_FILES.items(), results, strict=True):
        assert_one_line_exit_64(case, result, needle)


async def test_check_against_an_unreachable_kube_proxy_exits_2() -> None:
    port = free_port()
    code, out, err = await run(["check", "--node", "n", "--timeout", "2",
                                "--healthz-url", f"http://127.0.0.1:{port}/healthz",
                                "--metrics-url", f"http://127.0.0.1:{port}/metrics"])
    assert code == 2, (code, out, err)
    assert "UNREACHABLE" in out + err
    assert "Traceback" not in out + err


async def test_check_against_a_hanging_kube_proxy_exits_2_after_the_timeout() -> None:
    async with kube_proxy(metrics_hangs=True) as kp:
        code, out, err = await run(["check", *source_args(kp)[:6], "--timeout", "0.5",
                                    "--output", "prometheus"], timeout=20)
    assert code == 2, (code, out, err)
    assert 'kpexporter_up{node="node-l"} 0.0' in out
    assert 'reason="timeout"' in out
    assert "Traceback" not in out + err


async def test_check_against_a_healthy_kube_proxy_exits_0() -> None:
    async with kube_proxy(metrics_hangs=False) as kp:
        code, out, err = await run(["check", *source_args(kp)[:6], "--output", "json"])
    assert code == 0, (code, out, err)
    assert '"verdict": "healthy"' in out
