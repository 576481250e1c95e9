"""Real processes for the end-to-end tests: Prometheus, the exporter, the simulator.

Everything here runs on loopback (127.0.0.1) and is plain synchronous code driving
subprocesses, so a test reads top to bottom and pytest's event loop is never involved:

- :class:`PrometheusServer` — Debian's ``/usr/bin/prometheus`` on a free port with a generated
  config (scrape jobs whose targets can be added while it runs, rule files, Alertmanagers,
  TLS / basic-auth scrape settings), a throwaway TSDB, and the HTTP API as Python calls:
  :meth:`~PrometheusServer.query`, :meth:`~PrometheusServer.query_range`,
  :meth:`~PrometheusServer.wait_for` (poll until a condition holds or fail with what
  Prometheus last returned), :meth:`~PrometheusServer.targets`, rules, alerts, reload, stop.
- :class:`ExporterProcess` — ``python -m kpexporter serve ...`` with its output in files.
- :class:`SimulatorProcess` — ``python -m kpexporter simulate --nodes N`` on a block of
  consecutive ports, each node's scenario switchable through its HTTP control endpoint.
- :class:`AlertmanagerProcess` — Debian's ``prometheus-alertmanager`` on a free port with a
  given config (clustering off), its v2 API's active alerts as a Python call.

Why subprocesses for the simulator and the exporter (not in-process): they are what users run,
each has its own event loop, and a crash shows up as an exit code and a log, not as a hang of
the test process. Why ports are chosen below the kernel's ephemeral range: outgoing connections
(Prometheus scraping dozens of times a second) take ephemeral ports, and a port picked there
could be taken between the pick and the child's ``bind``; we retry on a lost race anyway.

No assertion here measures speed: every wait is "until this holds, or a generous deadline".
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import random
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

__all__ = [
    "ALERTMANAGER_BIN",
    "LOOPBACK",
    "PROMETHEUS_BIN",
    "AlertmanagerProcess",
    "ExporterProcess",
    "HarnessError",
    "PrometheusQueryError",
    "PrometheusServer",
    "Sample",
    "ScrapeJob",
    "SimNodeHandle",
    "SimulatorProcess",
    "TlsSettings",
    "alertmanager_binary",
    "free_port",
    "free_port_block",
    "prometheus_binary",
    "sample_value",
    "timeout_scale",
]

LOOPBACK = "127.0.0.1"
PROMETHEUS_BIN = os.environ.get("KPEXPORTER_E2E_PROMETHEUS", "/usr/bin/prometheus")
ALERTMANAGER_BIN = os.environ.get("KPEXPORTER_E2E_ALERTMANAGER",
                                  "/usr/bin/prometheus-alertmanager")
REPO_ROOT = Path(__file__).resolve().parents[2]

Sample = dict[str, Any]
"""One element of a Prometheus API ``result``: ``{"metric": {...}, "value": [t, "v"]}``
(instant) or ``{"metric": {...}, "values": [[t, "v"], ...]}`` (range)."""


class HarnessError(RuntimeError):
    """A process of the harness could not be started or misbehaved (with its log attached)."""


class PrometheusQueryError(AssertionError):
    """Prometheus refused a query (bad PromQL, bad parameters): waiting would not help."""


def timeout_scale() -> float:
    """``KPEXPORTER_E2E_TIMEOUT_SCALE`` stretches every deadline (slow or loaded machines)."""
    try:
        return max(float(os.environ.get("KPEXPORTER_E2E_TIMEOUT_SCALE", "1")), 0.1)
    except ValueError:
        return 1.0


def prometheus_binary() -> str | None:
    """The Prometheus server executable, or None when it is not installed."""
    if os.access(PROMETHEUS_BIN, os.X_OK):
        return PROMETHEUS_BIN
    return None


def alertmanager_binary() -> str | None:
    """The Alertmanager executable (Debian's ``prometheus-alertmanager``), or None."""
    for candidate in (ALERTMANAGER_BIN, shutil.which("alertmanager")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


# ------------------------------------------------------------------------------------ ports

_handed_out: set[int] = set()
_ports_lock = threading.Lock()


def _ephemeral_range() -> tuple[int, int]:
    try:
        lo, hi = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(lo), int(hi)
    except (OSError, ValueError):
        return 32768, 60999


def _candidate_range() -> tuple[int, int]:
    lo, hi = _ephemeral_range()
    if lo - 1 >= 12000:
        return 10000, lo - 1  # below the ephemeral range: no outgoing connection lands there
    return hi + 1, 65535


def _bindable(port: int, host: str = LOOPBACK) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port_block(count: int, host: str = LOOPBACK) -> int:
    """The first of ``count`` consecutive ports that are free now and not handed out before.

    Free *now*: a child process binds them a moment later, so callers retry on a bind failure.
    """
    lo, hi = _candidate_range()
    rng = random.Random()
    with _ports_lock:
        for _ in range(500):
            base = rng.randint(lo, hi - count)
            block = range(base, base + count)
            if any(p in _handed_out for p in block):
                continue
            if all(_bindable(p, host) for p in block):
                _handed_out.update(block)
                return base
    raise HarnessError(f"no block of {count} free ports on {host} in {lo}-{hi}")


def free_port(host: str = LOOPBACK) -> int:
    """A loopback TCP port that is free now (see :func:`free_port_block`)."""
    return free_port_block(1, host)


# ------------------------------------------------------------------------------- processes

def _python() -> str:
    return sys.executable


def _child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KPEXPORTER_")}
    env["PYTHONUNBUFFERED"] = "1"
    # The tree under test, whatever the venv's (possibly stale) editable install points at.
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    env.pop("NODE_NAME", None)
    if extra:
        env.update(extra)
    return env


def _die_with_parent() -> None:
    """In the child, before exec: get SIGTERM when the test process dies (Linux).

    A killed or crashed pytest must not leave a Prometheus or exporters running forever.
    """
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class _Process:
    """A child process whose stdout and stderr go to files (read back for assertions)."""

    def __init__(self, name: str, workdir: Path) -> None:
        self.name = name
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.stdout_path = workdir / f"{name}.stdout.log"
        self.stderr_path = workdir / f"{name}.stderr.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.argv: list[str] = []
        self._signalled = False

    def _spawn(self, argv: Sequence[str], env: Mapping[str, str] | None = None) -> None:
        self.argv = list(argv)
        with open(self.stdout_path, "ab") as out, open(self.stderr_path, "ab") as err:
            self.proc = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                env=dict(env) if env is not None else None, cwd=str(self.workdir),
                start_new_session=True,  # Ctrl-C on pytest must not hit children first
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
        self._signalled = False

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def returncode(self) -> int | None:
        return self.proc.poll() if self.proc is not None else None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stdout_text(self) -> str:
        return _read(self.stdout_path)

    def stderr_text(self) -> str:
        return _read(self.stderr_path)

    def log_text(self) -> str:
        """Everything the process wrote so far, stdout then stderr."""
        return self.stdout_text() + self.stderr_text()

    def describe(self, tail: int = 40) -> str:
        """The command line, state and the end of its output, for failure messages."""
        state = "not started" if self.proc is None else (
            "running" if self.proc.poll() is None else f"exited {self.proc.returncode}")
        lines = self.log_text().splitlines()[-tail:]
        return (f"{self.name} ({state}): {' '.join(self.argv)}\n--- last output ---\n"
                + "\n".join(lines))

    def send(self, sig: int = signal.SIGTERM) -> None:
        """Send ``sig`` once (a second SIGTERM would make uvicorn skip its graceful drain)."""
        if self.proc is not None and self.proc.poll() is None and not self._signalled:
            self._signalled = True
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(sig)

    def terminate(self, grace: float = 10.0, sig: int = signal.SIGTERM) -> int | None:
        """Send ``sig``, wait up to ``grace`` seconds, then SIGKILL; returns the exit code."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            self.send(sig)
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                proc.wait(10)
        return proc.returncode


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ""


def _wait_until(check: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


# ------------------------------------------------------------------------------ Prometheus

@dataclass(frozen=True)
class TlsSettings:
    """A scrape job's ``tls_config`` (paths are written into the config as given)."""

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    server_name: str | None = None
    insecure_skip_verify: bool = False

    def to_config(self) -> dict[str, Any]:
        out: dict[str, Any] = {k: v for k, v in (
            ("ca_file", self.ca_file), ("cert_file", self.cert_file),
            ("key_file", self.key_file), ("server_name", self.server_name)) if v}
        if self.insecure_skip_verify:
            out["insecure_skip_verify"] = True
        return out


@dataclass(frozen=True)
class ScrapeJob:
    """One ``scrape_configs`` entry.

    ``targets`` are static; targets added later with :meth:`PrometheusServer.add_targets`
    go to the job's ``file_sd`` file (no reload needed). ``extra`` is merged into the
    generated entry last, for any setting not modelled here.
    """

    name: str
    targets: tuple[str, ...] = ()
    scheme: str = "http"
    metrics_path: str = "/metrics"
    scrape_interval: str | None = None
    scrape_timeout: str | None = None
    basic_auth: tuple[str, str] | None = None
    tls: TlsSettings | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)


def sample_value(sample: Sample) -> float:
    """The float of an instant-vector or scalar sample (``NaN`` and ``±Inf`` included)."""
    return float(sample["value"][1])


def _fmt_samples(result: object, limit: int = 2000) -> str:
    text = json.dumps(result, sort_keys=True)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"


class PrometheusServer:
    """A real Prometheus for one test session, driven through its HTTP API.

    ``scrape_interval`` and ``scrape_timeout`` default to 1 s so tests see data within
    seconds; ``evaluation_interval`` too, for rule files. Use as a context manager or
    call :meth:`start` / :meth:`stop`.
    """

    def __init__(
        self,
        workdir: Path,
        jobs: Iterable[ScrapeJob] = (),
        *,
        rule_files: Iterable[str | Path] = (),
        alertmanagers: Iterable[str] = (),
        scrape_interval: str = "1s",
        scrape_timeout: str = "1s",
        evaluation_interval: str = "1s",
        external_labels: Mapping[str, str] | None = None,
        extra_args: Sequence[str] = (),
        binary: str | None = None,
    ) -> None:
        self.workdir = workdir
        self.jobs: dict[str, ScrapeJob] = {j.name: j for j in jobs}
        self.rule_files = [str(p) for p in rule_files]
        self.alertmanagers = list(alertmanagers)
        self.scrape_interval = scrape_interval
        self.scrape_timeout = scrape_timeout
        self.evaluation_interval = evaluation_interval
        self.external_labels = dict(external_labels or {})
        self.extra_args = list(extra_args)
        self.binary = binary or prometheus_binary() or PROMETHEUS_BIN
        self.config_path = workdir / "prometheus.yml"
        self.sd_dir = workdir / "file_sd"
        self.data_dir = workdir / "data"
        self.port: int | None = None
        self._argv: list[str] = []
        self._process = _Process("prometheus", workdir)
        self._sd_groups: dict[str, list[dict[str, Any]]] = {}
        self._client = httpx.Client(timeout=10.0)

    # --- lifecycle ------------------------------------------------------------------------
    @property
    def url(self) -> str:
        if self.port is None:
            raise HarnessError("Prometheus is not started")
        return f"http://{LOOPBACK}:{self.port}"

    def start(self, timeout: float = 60.0) -> PrometheusServer:
        """Write the config, start Prometheus, wait for ``/-/ready`` (retries a lost port)."""
        self.sd_dir.mkdir(parents=True, exist_ok=True)
        for name in self.jobs:
            self._write_sd(name)
        self.write_config()
        for _attempt in range(3):
            self.port = free_port()
            shutil.rmtree(self.data_dir, ignore_errors=True)
            argv = [
                self.binary,
                f"--config.file={self.config_path}",
                f"--storage.tsdb.path={self.data_dir}",
                f"--web.listen-address={LOOPBACK}:{self.port}",
                "--web.enable-lifecycle",
                "--storage.tsdb.retention.time=1d",
                "--log.level=info",
                *self.extra_args,
            ]
            self._argv = argv
            self._process._spawn(argv, _child_env())
            if _wait_until(self._ready_or_dead, timeout * timeout_scale(), 0.1):
                if self._process.running():
                    return self
                if "address already in use" in self._process.stderr_text():
                    continue
            break
        log = self._process.describe()
        self.stop()
        raise HarnessError(f"Prometheus did not become ready:\n{log}")

    def restart(self, down: float = 0.0, timeout: float = 60.0) -> None:
        """Stop, stay down ``down`` seconds, start again on the same port with the same data
        (a receiver restart, as a remote-write sender sees it)."""
        self._process.terminate()
        time.sleep(down)
        self._process._spawn(self._argv, _child_env())
        if not (_wait_until(self._ready_or_dead, timeout * timeout_scale(), 0.1)
                and self._process.running()):
            raise HarnessError(f"Prometheus did not come back:\n{self._process.describe()}")

    def _ready_or_dead(self) -> bool:
        if not self._process.running():
            return True
        try:
            return self._client.get(f"{self.url}/-/ready", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self, grace: float = 10.0) -> int | None:
        """Terminate (SIGTERM), wait, kill if needed; returns the exit code."""
        code = self._process.terminate(grace)
        self._client.close()
        self._client = httpx.Client(timeout=10.0)
        return code

    def __enter__(self) -> PrometheusServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log_text(self) -> str:
        return self._process.log_text()

    def describe(self) -> str:
        return self._process.describe()

    # --- configuration ----------------------------------------------------------------------
    def render_config(self) -> dict[str, Any]:
        """The configuration as a dict (what :meth:`write_config` dumps as YAML)."""
        glob: dict[str, Any] = {
            "scrape_interval": self.scrape_interval,
            "scrape_timeout": self.scrape_timeout,
            "evaluation_interval": self.evaluation_interval,
        }
        if self.external_labels:
            glob["external_labels"] = dict(self.external_labels)
        cfg: dict[str, Any] = {"global": glob}
        if self.rule_files:
            cfg["rule_files"] = list(self.rule_files)
        if self.alertmanagers:
            cfg["alerting"] = {"alertmanagers": [
                {"static_configs": [{"targets": list(self.alertmanagers)}]}]}
        cfg["scrape_configs"] = [self._job_config(j) for j in self.jobs.values()]
        return cfg

    def _job_config(self, job: ScrapeJob) -> dict[str, Any]:
        out: dict[str, Any] = {
            "job_name": job.name,
            "scheme": job.scheme,
            "metrics_path": job.metrics_path,
            "file_sd_configs": [{"files": [str(self._sd_path(job.name))],
                                 "refresh_interval": "1s"}],
        }
        if job.scrape_interval:
            out["scrape_interval"] = job.scrape_interval
        if job.scrape_timeout:
            out["scrape_timeout"] = job.scrape_timeout
        if job.targets:
            static: dict[str, Any] = {"targets": list(job.targets)}
            if job.labels:
                static["labels"] = dict(job.labels)
            out["static_configs"] = [static]
        if job.basic_auth is not None:
            out["basic_auth"] = {"username": job.basic_auth[0], "password": job.basic_auth[1]}
        if job.tls is not None:
            out["tls_config"] = job.tls.to_config()
        out.update(job.extra)
        return out

    def write_config(self) -> Path:
        self.config_path.write_text(yaml.safe_dump(self.render_config(), sort_keys=False),
                                    encoding="utf-8")
        return self.config_path

    def _sd_path(self, job: str) -> Path:
        return self.sd_dir / f"{job}.json"

    def _write_sd(self, job: str) -> None:
        path = self._sd_path(job)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self._sd_groups.get(job, [])), encoding="utf-8")
        tmp.replace(path)  # atomic: Prometheus's file watcher never reads half a file

    def add_job(self, job: ScrapeJob, *, reload: bool = True) -> None:
        """Add (or replace) a scrape job; reloads Prometheus when it runs."""
        self.jobs[job.name] = job
        self.sd_dir.mkdir(parents=True, exist_ok=True)
        self._write_sd(job.name)
        self.write_config()
        if reload and self._process.running():
            self.reload()

    def set_rule_files(self, files: Iterable[str | Path], *, reload: bool = True) -> None:
        self.rule_files = [str(p) for p in files]
        self.write_config()
        if reload and self._process.running():
            self.reload()

    def set_alertmanagers(self, addresses: Iterable[str], *, reload: bool = True) -> None:
        self.alertmanagers = list(addresses)
        self.write_config()
        if reload and self._process.running():
            self.reload()

    def add_targets(self, job: str, targets: Iterable[str],
                    labels: Mapping[str, str] | None = None) -> None:
        """Add ``host:port`` targets to a job through its file_sd file (no reload).

        Prometheus's discovery hands new targets to the scrapers in batches every few
        seconds: add many at once, then :meth:`wait_for_targets`.
        """
        if job not in self.jobs:
            raise HarnessError(f"no scrape job {job!r} (have {sorted(self.jobs)})")
        group: dict[str, Any] = {"targets": list(targets)}
        if labels:
            group["labels"] = dict(labels)
        self._sd_groups.setdefault(job, []).append(group)
        self._write_sd(job)

    def remove_targets(self, job: str, targets: Iterable[str]) -> None:
        gone = set(targets)
        groups = []
        for g in self._sd_groups.get(job, []):
            kept = [t for t in g["targets"] if t not in gone]
            if kept:
                groups.append({**g, "targets": kept})
        self._sd_groups[job] = groups
        self._write_sd(job)

    def reload(self) -> None:
        """``POST /-/reload``; raises with Prometheus's answer when the config is refused."""
        r = self._client.post(f"{self.url}/-/reload")
        if r.status_code != 200:
            raise HarnessError(f"Prometheus refused the reload ({r.status_code}): {r.text}\n"
                               f"config:\n{self.config_path.read_text()}")

    # --- HTTP API ---------------------------------------------------------------------------
    def api(self, path: str, params: Mapping[str, str] | None = None,
            method: str = "GET") -> Any:
        """``/api/v1/<path>``'s ``data``; :class:`PrometheusQueryError` on an error answer."""
        url = f"{self.url}/api/v1/{path}"
        if method == "POST":
            r = self._client.post(url, data=dict(params or {}))
        else:
            r = self._client.get(url, params=dict(params or {}))
        try:
            body = r.json()
        except ValueError:
            raise PrometheusQueryError(f"{path}: HTTP {r.status_code}, not JSON: "
                                       f"{r.text[:500]}") from None
        if body.get("status") != "success":
            raise PrometheusQueryError(f"{path} {dict(params or {})}: {body.get('errorType')}: "
                                       f"{body.get('error')}")
        return body["data"]

    def query(self, expr: str, at: float | None = None) -> list[Sample]:
        """An instant query; a scalar or string result comes back as one sample without labels.

        Each sample is ``{"metric": {labels}, "value": [t, "v"]}``; :func:`sample_value`
        turns the value into a float.
        """
        params = {"query": expr}
        if at is not None:
            params["time"] = repr(at)
        data = self.api("query", params, method="POST")
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        result: list[Sample] = data["result"]
        return result

    def query_range(self, expr: str, start: float, end: float,
                    step: float = 1.0) -> list[Sample]:
        """A range query; each sample is ``{"metric": {...}, "values": [[t, "v"], ...]}``."""
        data = self.api("query_range", {"query": expr, "start": repr(start), "end": repr(end),
                                        "step": repr(step)}, method="POST")
        result: list[Sample] = data["result"]
        return result

    def query_value(self, expr: str) -> float | None:
        """The single value ``expr`` has now; None when it has none; error when several."""
        result = self.query(expr)
        if not result:
            return None
        if len(result) > 1:
            raise AssertionError(f"{expr} returned {len(result)} series, expected one: "
                                 f"{_fmt_samples(result)}")
        return sample_value(result[0])

    def wait_for(
        self,
        expr: str,
        predicate: Callable[[list[Sample]], bool] = bool,
        timeout: float = 60.0,
        *,
        interval: float = 0.5,
        what: str | None = None,
    ) -> list[Sample]:
        """Query ``expr`` until ``predicate(result)`` holds; return that result.

        The default predicate is "a non-empty result", which with a comparison
        (``kpexporter_up{node="a"} == 1``) reads as "until this is true". When the deadline
        (scaled by ``KPEXPORTER_E2E_TIMEOUT_SCALE``) passes, fails with what Prometheus
        returned last; a query Prometheus refuses fails at once.
        """
        __tracebackhide__ = True
        deadline = time.monotonic() + timeout * timeout_scale()
        result: list[Sample] = []
        error: str | None = None
        while True:
            try:
                result = self.query(expr)
                error = None
                if predicate(result):
                    return result
            except httpx.HTTPError as e:
                error = f"{type(e).__name__}: {e}"
                if not self._process.running():
                    raise HarnessError(f"Prometheus died:\n{self.describe()}") from None
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"waited {timeout * timeout_scale():g}s for {what or 'the condition'} on "
                    f"`{expr}`; Prometheus returned: {_fmt_samples(result)}"
                    + (f"; last error: {error}" if error else ""))
            time.sleep(interval)

    def wait_for_value(
        self,
        expr: str,
        check: Callable[[float], bool],
        timeout: float = 60.0,
        *,
        interval: float = 0.5,
        what: str | None = None,
    ) -> float:
        """Wait until ``expr`` has exactly one sample and ``check(value)`` holds; return it."""
        __tracebackhide__ = True

        def holds(result: list[Sample]) -> bool:
            return len(result) == 1 and check(sample_value(result[0]))

        result = self.wait_for(expr, holds, timeout, interval=interval, what=what)
        return sample_value(result[0])

    def targets(self, state: str = "active") -> list[dict[str, Any]]:
        """``/api/v1/targets``: the active (or ``dropped``) targets with health and lastError."""
        data = self.api("targets", {"state": state})
        key = "activeTargets" if state == "active" else "droppedTargets"
        found: list[dict[str, Any]] = data.get(key, [])
        return found

    def wait_for_targets(self, job: str, addresses: Iterable[str],
                         timeout: float = 60.0, health: str = "up") -> list[dict[str, Any]]:
        """Wait until each address is an active target of ``job`` with ``health``."""
        __tracebackhide__ = True
        want = set(addresses)
        deadline = time.monotonic() + timeout * timeout_scale()
        seen: list[dict[str, Any]] = []
        while True:
            seen = [t for t in self.targets() if t.get("labels", {}).get("job") == job]
            ok = {t["labels"].get("instance") for t in seen if t.get("health") == health}
            if want <= ok:
                return [t for t in seen if t["labels"].get("instance") in want]
            if time.monotonic() >= deadline:
                brief = [{"instance": t["labels"].get("instance"), "health": t.get("health"),
                          "lastError": t.get("lastError")} for t in seen]
                raise AssertionError(f"waited for targets {sorted(want - ok)} of job {job} to "
                                     f"be {health}; Prometheus shows: {brief}")
            time.sleep(0.5)

    def rules(self) -> list[dict[str, Any]]:
        """``/api/v1/rules``' rule groups."""
        groups: list[dict[str, Any]] = self.api("rules")["groups"]
        return groups

    def alerts(self) -> list[dict[str, Any]]:
        """``/api/v1/alerts``: active (pending or firing) alerts."""
        alerts: list[dict[str, Any]] = self.api("alerts")["alerts"]
        return alerts

    def metadata(self, metric: str | None = None) -> dict[str, Any]:
        """``/api/v1/metadata``: TYPE/HELP per metric name as Prometheus scraped them."""
        meta: dict[str, Any] = self.api("metadata", {"metric": metric} if metric else None)
        return meta


# -------------------------------------------------------------------------------- exporter

class ExporterProcess:
    """``python -m kpexporter serve`` against one kube-proxy, on a free loopback port.

    ``extra_args`` go after the generated flags (so e.g. ``--web-config-file`` or
    ``--config`` can be added); ``scheme``/``verify``/``auth`` tell the harness how to talk
    to it when TLS or basic auth is on.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        healthz_url: str,
        metrics_url: str,
        node: str,
        interval: str = "0.5",
        windows: str | None = "10s,1m",
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        scheme: str = "http",
        verify: bool | str | ssl.SSLContext = True,
        auth: tuple[str, str] | None = None,
        name: str | None = None,
    ) -> None:
        self.healthz_url = healthz_url
        self.kube_metrics_url = metrics_url
        self.node = node
        self.interval = interval
        self.windows = windows
        self.extra_args = list(extra_args)
        self.env = dict(env or {})
        self.scheme = scheme
        self.verify = verify
        self.auth = auth
        self.port: int | None = None
        self._process = _Process(f"exporter-{name or node}", workdir)

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT``: the scrape target."""
        if self.port is None:
            raise HarnessError("the exporter is not started")
        return f"{LOOPBACK}:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.address}"

    @property
    def metrics_url(self) -> str:
        return f"{self.url}/metrics"

    def argv(self) -> list[str]:
        argv = [_python(), "-m", "kpexporter", "serve",
                "--healthz-url", self.healthz_url, "--metrics-url", self.kube_metrics_url,
                "--node", self.node, "--listen", self.address, "--interval", self.interval]
        if self.windows:
            argv += ["--windows", self.windows]
        return argv + self.extra_args

    def spawn(self) -> None:
        """Start the process without waiting (start several, then :meth:`wait_ready` each)."""
        self.port = free_port()
        self._process._spawn(self.argv(), _child_env(self.env))

    def client(self, timeout: float = 5.0) -> httpx.Client:
        return httpx.Client(timeout=timeout, verify=self.verify, auth=self.auth)

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Until ``/readyz`` answers 200 (first poll done); respawns once on a lost port."""
        for attempt in range(3):
            with self.client(2.0) as c:

                def ready() -> bool:
                    if not self._process.running():
                        return True
                    try:
                        return c.get(f"{self.url}/readyz").status_code == 200
                    except httpx.HTTPError:
                        return False

                done = _wait_until(ready, timeout * timeout_scale(), 0.1)
            if done and self._process.running():
                return
            if (done and attempt < 2 and self._process.returncode == 64
                    and "cannot bind" in self._process.stderr_text()):
                self.spawn()  # another process took the port between pick and bind
                continue
            break
        raise HarnessError(f"the exporter did not become ready:\n{self._process.describe()}")

    def start(self, timeout: float = 60.0) -> ExporterProcess:
        self.spawn()
        self.wait_ready(timeout)
        return self

    def get(self, path: str, headers: Mapping[str, str] | None = None) -> httpx.Response:
        with self.client() as c:
            return c.get(f"{self.url}{path}", headers=dict(headers or {}))

    def metrics_text(self) -> str:
        """The live ``/metrics`` page in the Prometheus text format 0.0.4."""
        r = self.get("/metrics")
        r.raise_for_status()
        return r.text

    def running(self) -> bool:
        return self._process.running()

    @property
    def returncode(self) -> int | None:
        return self._process.returncode

    def log_text(self) -> str:
        """Everything the exporter printed (stdout and stderr)."""
        return self._process.log_text()

    def describe(self) -> str:
        return self._process.describe()

    def request_stop(self) -> None:
        """Send SIGTERM without waiting (stop many at once, then :meth:`stop` each)."""
        self._process.send(signal.SIGTERM)

    def stop(self, grace: float = 15.0) -> int | None:
        """SIGTERM, wait for a clean exit (SIGKILL after ``grace``); returns the exit code."""
        return self._process.terminate(grace)


# ------------------------------------------------------------------------------- simulator

@dataclass(frozen=True)
class SimNodeHandle:
    """One node of a :class:`SimulatorProcess`: its URLs and its control endpoint."""

    index: int
    name: str
    healthz_url: str
    metrics_url: str
    control_url: str  # .../sim/scenario

    @property
    def state_url(self) -> str:
        return self.control_url.rsplit("/", 1)[0] + "/state"

    def set_scenario(self, name: str) -> None:
        """Switch this node only (``POST /sim/scenario?name=X``)."""
        r = httpx.post(self.control_url, params={"name": name}, timeout=5.0)
        if r.status_code != 200:
            raise HarnessError(f"{self.name}: set_scenario({name!r}) -> {r.status_code} "
                               f"{r.text}")

    def scenario(self) -> str:
        got: str = httpx.get(self.control_url, timeout=5.0).json()["scenario"]
        return got

    def state(self) -> dict[str, Any]:
        """``/sim/state``: the model's view (ages, pending changes, syncs, restarts, ...)."""
        data: dict[str, Any] = httpx.get(self.state_url, timeout=5.0).json()
        return data

    def change(self, kind: str = "endpoint") -> None:
        """Inject one Service/EndpointSlice change (``POST /sim/change``)."""
        httpx.post(self.control_url.rsplit("/", 1)[0] + "/change", params={"kind": kind},
                   timeout=5.0).raise_for_status()


class SimulatorProcess:
    """``python -m kpexporter simulate --nodes N`` on consecutive loopback ports.

    Healthz ports are ``base .. base+N-1``, metrics ports ``base+N .. base+2N-1``; every
    node starts in ``scenario`` and is switched one by one through its control endpoint.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        nodes: int = 1,
        version: str = "1.30",
        mode: str = "iptables",
        scenario: str = "healthy",
        time_scale: float = 60.0,
        ip_families: Sequence[str] = ("IPv4",),
        clock_skew: float = 30.0,
        seed: int = 0,
        extra_args: Sequence[str] = (),
        name: str = "simulator",
    ) -> None:
        self.count = nodes
        self.version = version
        self.mode = mode
        self.scenario = scenario
        self.time_scale = time_scale
        self.ip_families = tuple(ip_families)
        self.clock_skew = clock_skew
        self.seed = seed
        self.extra_args = list(extra_args)
        self.nodes: list[SimNodeHandle] = []
        self._process = _Process(name, workdir)

    def argv(self, base: int) -> list[str]:
        return [_python(), "-m", "kpexporter", "simulate", "--host", LOOPBACK,
                "--healthz-port", str(base), "--metrics-port", str(base + self.count),
                "--nodes", str(self.count), "--version", self.version, "--mode", self.mode,
                "--scenario", self.scenario, "--time-scale", repr(self.time_scale),
                "--ip-families", ",".join(self.ip_families),
                "--clock-skew", repr(self.clock_skew), "--seed", str(self.seed),
                *self.extra_args]

    def start(self, timeout: float = 60.0) -> SimulatorProcess:
        """Start and wait until every node listens (the ``healthz:`` line is printed)."""
        for _attempt in range(3):
            base = free_port_block(2 * self.count)
            self._process._spawn(self.argv(base), _child_env())

            def announced() -> bool:
                return (not self._process.running()
                        or "healthz: " in self._process.stdout_text())

            _wait_until(announced, timeout * timeout_scale(), 0.05)
            if self._process.running() and "healthz: " in self._process.stdout_text():
                self.nodes = [
                    SimNodeHandle(
                        index=i, name=f"node-{i}",
                        healthz_url=f"http://{LOOPBACK}:{base + i}/healthz",
                        metrics_url=f"http://{LOOPBACK}:{base + self.count + i}/metrics",
                        control_url=f"http://{LOOPBACK}:{base + self.count + i}/sim/scenario",
                    )
                    for i in range(self.count)
                ]
                return self
            if not self._process.running() and "cannot listen" in self._process.log_text():
                continue  # lost a port to someone else: another block
            break
        log = self._process.describe()
        self.stop()
        raise HarnessError(f"the simulator did not start:\n{log}")

    def running(self) -> bool:
        return self._process.running()

    def log_text(self) -> str:
        return self._process.log_text()

    def describe(self) -> str:
        return self._process.describe()

    def stop(self, grace: float = 10.0) -> int | None:
        return self._process.terminate(grace, signal.SIGINT)


# ---------------------------------------------------------------------------- alertmanager

class AlertmanagerProcess:
    """A real Alertmanager on a free loopback port, with ``config`` (a dict) as its config.

    Clustering is switched off (``--cluster.listen-address=``): a lone test instance must not
    bind 9094 or gossip. Use as a context manager or call :meth:`start` / :meth:`stop`.
    """

    def __init__(self, workdir: Path, config: Mapping[str, Any], *,
                 binary: str | None = None) -> None:
        self.workdir = workdir
        self.config = dict(config)
        self.binary = binary or alertmanager_binary() or ALERTMANAGER_BIN
        self.config_path = workdir / "alertmanager.yml"
        self.port: int | None = None
        self._process = _Process("alertmanager", workdir)

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT``: what Prometheus's ``alerting.alertmanagers`` targets."""
        if self.port is None:
            raise HarnessError("Alertmanager is not started")
        return f"{LOOPBACK}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def start(self, timeout: float = 60.0) -> AlertmanagerProcess:
        """Write the config, start, wait for ``/-/ready`` (retries a lost port)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(yaml.safe_dump(self.config, sort_keys=False),
                                    encoding="utf-8")
        for _attempt in range(3):
            self.port = free_port()
            argv = [self.binary, f"--config.file={self.config_path}",
                    f"--storage.path={self.workdir / 'am-data'}",
                    f"--web.listen-address={self.address}", "--cluster.listen-address=",
                    "--log.level=info"]
            self._process._spawn(argv, _child_env())

            def ready() -> bool:
                if not self._process.running():
                    return True
                try:
                    return httpx.get(f"{self.url}/-/ready", timeout=2.0).status_code == 200
                except httpx.HTTPError:
                    return False

            if _wait_until(ready, timeout * timeout_scale(), 0.1):
                if self._process.running():
                    return self
                if "address already in use" in self._process.log_text():
                    continue
            break
        log = self._process.describe()
        self.stop()
        raise HarnessError(f"Alertmanager did not become ready:\n{log}")

    def alerts(self) -> list[dict[str, Any]]:
        """``/api/v2/alerts``: the alerts Alertmanager holds now (each with ``labels``)."""
        r = httpx.get(f"{self.url}/api/v2/alerts", timeout=5.0)
        r.raise_for_status()
        found: list[dict[str, Any]] = r.json()
        return found

    def log_text(self) -> str:
        return self._process.log_text()

    def describe(self) -> str:
        return self._process.describe()

    def stop(self, grace: float = 10.0) -> int | None:
        return self._process.terminate(grace)

    def __enter__(self) -> AlertmanagerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
