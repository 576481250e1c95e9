"""Strict, typed configuration: YAML file < environment < flags.

Everything is validated before the exporter starts; a bad value is refused with one
line naming the field (``ConfigError``), and the CLI turns that into exit code 64.
Unknown keys are errors, not silently ignored (a typo'd ``intervall:`` must not run
with the default).
"""

from __future__ import annotations

import math
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from kpexporter.config.durations import format_duration, parse_duration
from kpexporter.config.slos import DEFAULT_SLOS, SLOConfig, parse_slos

DEFAULT_HEALTHZ_URL = "http://127.0.0.1:10256/healthz"
DEFAULT_METRICS_URL = "http://127.0.0.1:10249/metrics"
DEFAULT_LISTEN = "0.0.0.0:19249"
ENV_PREFIX = "KPEXPORTER_"
DEFAULT_PASSTHROUGH: tuple[str, ...] = (
    "kubeproxy_*", "rest_client_requests_total", "rest_client_request_duration_seconds",
    "process_resident_memory_bytes", "process_cpu_seconds_total", "process_start_time_seconds",
    "go_goroutines")
"""kube-proxy's own families re-exposed by default: every one the kubernetes-mixin
"Kubernetes / Proxy" dashboard and its kube-proxy alerts read."""


class ConfigError(ValueError):
    """A configuration problem; ``str()`` is one line that names the field."""


@dataclass(frozen=True, slots=True)
class Window:
    name: str  # canonical, e.g. "5m"; the ``window`` label
    seconds: float


@dataclass(frozen=True, slots=True)
class Target:
    """One kube-proxy to poll."""

    node: str
    healthz_url: str
    metrics_url: str

    @property
    def proxy_mode_url(self) -> str:
        """``/proxyMode`` sits beside ``/metrics`` on kube-proxy's metrics server."""
        parts = urlsplit(self.metrics_url)
        return parts._replace(path="/proxyMode", query="", fragment="").geturl()


@dataclass(frozen=True, slots=True)
class NodeDiscovery:
    """Targets from the Kubernetes API's Node list (``discovery: {kubernetes: {...}}``).

    Each Node becomes a target named after it, polled at its first address of
    ``address_types`` (healthz on ``healthz_port``, metrics on ``metrics_port``).
    """

    healthz_port: int = 10256
    metrics_port: int = 10249
    address_types: tuple[str, ...] = ("InternalIP",)
    label_selector: str = ""
    refresh_interval: float = 60.0
    kubeconfig: Path | None = None  # None: in-cluster config, else $KUBECONFIG/~/.kube/config
    context: str | None = None


@dataclass(frozen=True, slots=True)
class Config:
    node: str
    healthz_url: str = DEFAULT_HEALTHZ_URL
    metrics_url: str = DEFAULT_METRICS_URL
    listen_host: str = "0.0.0.0"
    listen_port: int = 19249
    interval: float = 15.0
    timeout: float = 5.0
    windows: tuple[Window, ...] = (Window("5m", 300.0), Window("1h", 3600.0))
    quantiles: tuple[float, ...] = (0.5, 0.9, 0.99)
    pending_threshold: float = 60.0
    max_body_bytes: int = 8 * 1024 * 1024
    max_healthz_bytes: int = 64 * 1024
    log_format: str = "logfmt"
    log_level: str = "info"
    web_config_file: Path | None = None
    targets_extra: tuple[Target, ...] = field(default=())
    concurrency: int = 64
    discovery: NodeDiscovery | None = None
    slos: SLOConfig = DEFAULT_SLOS
    passthrough: tuple[str, ...] = DEFAULT_PASSTHROUGH

    @property
    def targets(self) -> tuple[Target, ...]:
        """Every kube-proxy this process polls (the local one first)."""
        return self.targets_extra or (Target(self.node, self.healthz_url, self.metrics_url),)

    @property
    def horizon(self) -> float:
        return max((w.seconds for w in self.windows), default=0.0)


def redacted(url: str) -> str:
    """``url`` fit for logs and pages: a password in it becomes ``xxxxx`` (Go's
    ``url.Redacted``). httpx sends ``user:password@`` as basic auth, so it is a secret."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"{parts.username}:xxxxx@{host}").geturl()


def default_node_name(env: Mapping[str, str]) -> str:
    return env.get("NODE_NAME") or env.get("HOSTNAME") or socket.gethostname() or "unknown"


# ---- value parsers: each raises ValueError with a message that follows "field: " ----

def _url(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"must be a URL string, got {type(value).__name__}")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"must be an http(s) URL with a host, got {value!r}")
    try:
        parts.port  # noqa: B018 - validates the port
    except ValueError:
        raise ValueError(f"bad port in {value!r}") from None
    return value


def _seconds(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError(f"must be a duration, got {value!r}")
    if isinstance(value, int | float):
        if not math.isfinite(value) or value <= 0:
            raise ValueError(f"must be a positive number of seconds, got {value!r}")
        return float(value)
    if isinstance(value, str):
        return parse_duration(value)
    raise ValueError(f"must be a duration, got {type(value).__name__}")


def _listen(value: Any) -> tuple[str, int]:
    if not isinstance(value, str) or ":" not in value:
        raise ValueError(f"must be HOST:PORT, got {value!r}")
    host, _, port_s = value.rpartition(":")
    host = host.strip("[]") or "0.0.0.0"
    if not port_s.isdigit() or not 0 <= int(port_s) <= 65535:
        raise ValueError(f"port must be 0-65535, got {port_s!r}")
    return host, int(port_s)


def _windows(value: Any) -> tuple[Window, ...]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not items:
        raise ValueError("must be a non-empty list of durations such as 5m,1h")
    out: dict[str, Window] = {}
    for item in items:
        secs = _seconds(item.strip() if isinstance(item, str) else item)
        name = format_duration(secs)
        if name == "lifetime" or name in out:
            raise ValueError(f"duplicate window {item!r}")
        out[name] = Window(name, secs)
    return tuple(sorted(out.values(), key=lambda w: w.seconds))


def _quantiles(value: Any) -> tuple[float, ...]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not items:
        raise ValueError("must be a non-empty list of numbers in [0, 1]")
    out = []
    for item in items:
        try:
            q = float(item)
        except (TypeError, ValueError):
            raise ValueError(f"not a number: {item!r}") from None
        if isinstance(item, bool) or not 0.0 <= q <= 1.0:
            raise ValueError(f"quantile must be in [0, 1], got {item!r}")
        out.append(q)
    return tuple(sorted(set(out)))


def _choice(*allowed: str) -> Any:
    def parse(value: Any) -> str:
        if value not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}; got {value!r}")
        return str(value)
    return parse


def _node(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be a non-empty string")
    return value.strip()


def _positive_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"must be a positive integer, got {value!r}")
    try:
        n = int(value)
    except ValueError:
        raise ValueError(f"must be a positive integer, got {value!r}") from None
    if n <= 0:
        raise ValueError(f"must be a positive integer, got {value!r}")
    return n


def _path(value: Any) -> Path:
    if not isinstance(value, str) or not value:
        raise ValueError("must be a file path")
    return Path(value)


def _targets(value: Any) -> tuple[Target, ...]:
    if not isinstance(value, list) or not value:
        raise ValueError("must be a non-empty list of {node, healthz_url, metrics_url}")
    out: list[Target] = []
    seen: set[str] = set()
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise ValueError(f"[{i}]: must be a mapping")
        unknown = set(item) - {"node", "healthz_url", "metrics_url"}
        if unknown:  # keys may be of any YAML type: show them as one printable line
            raise ValueError(f"[{i}].{sorted(_shown(k) for k in unknown)[0]}: unknown key")
        for key in ("node", "healthz_url", "metrics_url"):
            if key not in item:
                raise ValueError(f"[{i}].{key}: required")
        try:
            t = Target(_node(item["node"]), _url(item["healthz_url"]), _url(item["metrics_url"]))
        except ValueError as e:
            raise ValueError(f"[{i}]: {e}") from None
        if t.node in seen:
            raise ValueError(f"[{i}].node: duplicate node {t.node!r}")
        seen.add(t.node)
        out.append(t)
    return tuple(out)


_DISCOVERY_KEYS = ("healthz_port", "metrics_port", "address_types", "label_selector",
                   "refresh_interval", "kubeconfig", "context")


def _discovery(value: Any) -> NodeDiscovery:
    """``kubernetes`` (flag, environment) or ``{kubernetes: {...settings}}`` (file)."""
    if value == "kubernetes":
        return NodeDiscovery()
    if not isinstance(value, dict) or set(value) != {"kubernetes"}:
        raise ValueError("must be {kubernetes: {...}} (the only source so far)")
    settings = value["kubernetes"]
    if settings is None:
        return NodeDiscovery()
    if not isinstance(settings, dict):
        raise ValueError("kubernetes: must be a mapping of settings")
    unknown = set(settings) - set(_DISCOVERY_KEYS)
    if unknown:
        raise ValueError(f"kubernetes.{sorted(_shown(k) for k in unknown)[0]}: unknown key "
                         f"(known: {', '.join(_DISCOVERY_KEYS)})")
    out: dict[str, Any] = {}
    for key, raw in settings.items():
        try:
            out[key] = _DISCOVERY_PARSERS[key](raw)
        except ValueError as e:
            raise ValueError(f"kubernetes.{key}: {e}") from None
    return NodeDiscovery(**out)


def _port(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise ValueError(f"must be a port number 1-65535, got {value!r}")
    return value


def _address_types(value: Any) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if (not isinstance(items, list) or not items
            or not all(isinstance(i, str) and i.isalnum() for i in items)):
        raise ValueError("must be a list of Node address types such as [InternalIP, ExternalIP]")
    return tuple(dict.fromkeys(items))


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"must be a string, got {type(value).__name__}")
    return value


_DISCOVERY_PARSERS: dict[str, Any] = {
    "healthz_port": _port,
    "metrics_port": _port,
    "address_types": _address_types,
    "label_selector": _text,
    "refresh_interval": _seconds,
    "kubeconfig": _path,
    "context": _node,
}


def _passthrough(value: Any) -> tuple[str, ...]:
    """Family-name patterns (``*`` matches any run of characters); empty turns it off."""
    items = [i for i in value.split(",") if i.strip()] if isinstance(value, str) else value
    if items is None:
        return ()
    if not isinstance(items, list | tuple):
        raise ValueError("must be a list of metric-name patterns such as [kubeproxy_*]")
    out = []
    for item in items:
        if not isinstance(item, str) or not item.strip() or not all(
                c.isalnum() or c in "_:*" for c in item.strip()):
            raise ValueError(f"not a metric-name pattern: {item!r} (letters, digits, _, :, *)")
        out.append(item.strip())
    return tuple(dict.fromkeys(out))


def _shown(key: object) -> str:
    """A key as written if it is one printable line, else its repr (messages are one line)."""
    text = str(key)
    return text if text.isprintable() else repr(text)


# key -> (Config field(s), parser)
_KEYS: dict[str, Any] = {
    "node": _node,
    "healthz_url": _url,
    "metrics_url": _url,
    "listen": _listen,
    "interval": _seconds,
    "timeout": _seconds,
    "windows": _windows,
    "quantiles": _quantiles,
    "pending_threshold": _seconds,
    "max_body_bytes": _positive_int,
    "max_healthz_bytes": _positive_int,
    "log_format": _choice("logfmt", "json"),
    "log_level": _choice("debug", "info", "warning", "error"),
    "web_config_file": _path,
    "targets": _targets,
    "concurrency": _positive_int,
    "discovery": _discovery,
    "slos": parse_slos,
    "passthrough": _passthrough,
}
ENV_KEYS = {f"{ENV_PREFIX}{k.upper()}": k for k in _KEYS if k not in ("targets", "slos")}


def _apply(values: dict[str, Any], key: str, raw: Any, source: str) -> None:
    if key not in _KEYS:
        raise ConfigError(f"{source}{_shown(key)}: unknown key (known: {', '.join(sorted(_KEYS))})")
    try:
        values[key] = _KEYS[key](raw)
    except ValueError as e:
        raise ConfigError(f"{source}{key}: {e}") from None
    except OverflowError:  # e.g. windows: [1e308], whose name in ms overflows
        raise ConfigError(f"{source}{key}: value out of range") from None


def load_file(path: Path) -> dict[str, Any]:
    """Raw, validated values from a YAML file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"config file {path}: cannot read: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path}: not UTF-8 text") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"config file {path}: invalid YAML{where}") from None
    except RecursionError:
        raise ConfigError(f"config file {path}: invalid YAML (nested too deeply)") from None
    except ValueError:  # an integer literal longer than Python converts (4300 digits)
        raise ConfigError(f"config file {path}: invalid YAML (a number too long)") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: must be a mapping of keys to values")
    values: dict[str, Any] = {}
    for key, raw in data.items():
        _apply(values, str(key), raw, f"config file {path}: ")
    return values


def build_config(
    file_path: Path | None,
    env: Mapping[str, str],
    flags: Mapping[str, Any],
) -> Config:
    """Merge file < environment < flags (flags given as raw strings or values, None = unset).

    ``$NODE_NAME`` (the downward API) outranks the file like every other variable;
    ``$HOSTNAME`` and the host name are only the last-resort default, because every
    container sets ``$HOSTNAME`` to its pod name and it must not override a file.
    """
    values: dict[str, Any] = load_file(file_path) if file_path is not None else {}
    for name, key in ENV_KEYS.items():
        if name in env and env[name] != "":
            _apply(values, key, env[name], f"environment {name}: ")
    if env.get("NODE_NAME") and "node" not in {k for n, k in ENV_KEYS.items() if n in env}:
        _apply(values, "node", env["NODE_NAME"], "environment NODE_NAME: ")
    for key, raw in flags.items():
        if raw is not None:
            _apply(values, key, raw, f"--{key.replace('_', '-')}: ")
    listen = values.pop("listen", None)
    targets = values.pop("targets", ())
    cfg = Config(node=values.pop("node", None) or default_node_name(env), **values)
    if listen is not None:
        cfg = replace(cfg, listen_host=listen[0], listen_port=listen[1])
    if targets:
        if cfg.discovery is not None:
            raise ConfigError("discovery: cannot be combined with targets (choose one)")
        cfg = replace(cfg, targets_extra=targets)
    return cfg


def environ() -> Mapping[str, str]:
    return os.environ
