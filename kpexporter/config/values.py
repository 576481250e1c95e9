"""Configuration value types and their parsers: pure functions from a raw value to a typed one.

Each parser takes what YAML, an environment variable or a flag gave (a string, number,
list or mapping) and returns the typed value, or raises ``ValueError`` with a message that
reads after ``"<field>: "`` (the schema adds the field and the source). A new kind of value
is one function here; a new setting is one field in ``schema.Config``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from kpexporter.config.durations import format_duration, parse_duration


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


def url(value: Any) -> str:
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


def seconds(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError(f"must be a duration, got {value!r}")
    if isinstance(value, int | float):
        if not math.isfinite(value) or value <= 0:
            raise ValueError(f"must be a positive number of seconds, got {value!r}")
        return float(value)
    if isinstance(value, str):
        return parse_duration(value)
    raise ValueError(f"must be a duration, got {type(value).__name__}")


def listen_address(value: Any) -> tuple[str, int]:
    if not isinstance(value, str) or ":" not in value:
        raise ValueError(f"must be HOST:PORT, got {value!r}")
    host, _, port_s = value.rpartition(":")
    host = host.strip("[]") or "0.0.0.0"
    if not port_s.isdigit() or not 0 <= int(port_s) <= 65535:
        raise ValueError(f"port must be 0-65535, got {port_s!r}")
    return host, int(port_s)


def windows(value: Any) -> tuple[Window, ...]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not items:
        raise ValueError("must be a non-empty list of durations such as 5m,1h")
    out: dict[str, Window] = {}
    for item in items:
        secs = seconds(item.strip() if isinstance(item, str) else item)
        name = format_duration(secs)
        if name == "lifetime" or name in out:
            raise ValueError(f"duplicate window {item!r}")
        out[name] = Window(name, secs)
    return tuple(sorted(out.values(), key=lambda w: w.seconds))


def quantiles(value: Any) -> tuple[float, ...]:
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


def choice(*allowed: str) -> Any:
    def parse(value: Any) -> str:
        if value not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}; got {value!r}")
        return str(value)
    return parse


def node_name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be a non-empty string")
    return value.strip()


def positive_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"must be a positive integer, got {value!r}")
    try:
        n = int(value)
    except ValueError:
        raise ValueError(f"must be a positive integer, got {value!r}") from None
    if n <= 0:
        raise ValueError(f"must be a positive integer, got {value!r}")
    return n


def file_path(value: Any) -> Path:
    if not isinstance(value, str) or not value:
        raise ValueError("must be a file path")
    return Path(value)


def targets(value: Any) -> tuple[Target, ...]:
    if not isinstance(value, list) or not value:
        raise ValueError("must be a non-empty list of {node, healthz_url, metrics_url}")
    out: list[Target] = []
    seen: set[str] = set()
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise ValueError(f"[{i}]: must be a mapping")
        unknown = set(item) - {"node", "healthz_url", "metrics_url"}
        if unknown:  # keys may be of any YAML type: show them as one printable line
            raise ValueError(f"[{i}].{sorted(shown(k) for k in unknown)[0]}: unknown key")
        for key in ("node", "healthz_url", "metrics_url"):
            if key not in item:
                raise ValueError(f"[{i}].{key}: required")
        try:
            t = Target(node_name(item["node"]), url(item["healthz_url"]), url(item["metrics_url"]))
        except ValueError as e:
            raise ValueError(f"[{i}]: {e}") from None
        if t.node in seen:
            raise ValueError(f"[{i}].node: duplicate node {t.node!r}")
        seen.add(t.node)
        out.append(t)
    return tuple(out)


_DISCOVERY_KEYS = ("healthz_port", "metrics_port", "address_types", "label_selector",
                   "refresh_interval", "kubeconfig", "context")


def discovery(value: Any) -> NodeDiscovery:
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
        raise ValueError(f"kubernetes.{sorted(shown(k) for k in unknown)[0]}: unknown key "
                         f"(known: {', '.join(_DISCOVERY_KEYS)})")
    out: dict[str, Any] = {}
    for key, raw in settings.items():
        try:
            out[key] = _DISCOVERY_PARSERS[key](raw)
        except ValueError as e:
            raise ValueError(f"kubernetes.{key}: {e}") from None
    return NodeDiscovery(**out)


def port(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise ValueError(f"must be a port number 1-65535, got {value!r}")
    return value


def address_types(value: Any) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if (not isinstance(items, list) or not items
            or not all(isinstance(i, str) and i.isalnum() for i in items)):
        raise ValueError("must be a list of Node address types such as [InternalIP, ExternalIP]")
    return tuple(dict.fromkeys(items))


def text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"must be a string, got {type(value).__name__}")
    return value


_DISCOVERY_PARSERS: dict[str, Any] = {
    "healthz_port": port,
    "metrics_port": port,
    "address_types": address_types,
    "label_selector": text,
    "refresh_interval": seconds,
    "kubeconfig": file_path,
    "context": node_name,
}


def passthrough(value: Any) -> tuple[str, ...]:
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


def shown(key: object) -> str:
    """A key as written if it is one printable line, else its repr (messages are one line)."""
    text = str(key)
    return text if text.isprintable() else repr(text)
