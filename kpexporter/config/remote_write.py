"""The ``remote_write:`` section: where ``serve`` pushes its series (Prometheus remote write 1.0).

    remote_write:
      - url: http://n9e:19000/prometheus/v1/write
        basic_auth: {username: kpexporter, password_file: /etc/kpexporter/rw-password}
        bearer_token_file: /var/run/secrets/token      # or basic_auth, not both
        headers: {X-Scope-OrgID: team-a}
        tls: {ca_file: ca.crt, cert_file: tls.crt, key_file: tls.key,
              server_name: receiver.example, insecure_skip_verify: false}
        external_labels: {cluster: prod, ident: "${NODE_NAME}"}  # ${VAR}: from the environment
        queue: {capacity: 20000, max_samples_per_send: 2000, batch_send_deadline: 5s,
                min_backoff: 30ms, max_backoff: 5s}

``--remote-write-url URL`` (repeatable) and ``KPEXPORTER_REMOTE_WRITE`` (URLs separated by
spaces) give receivers with every other setting at its default; they replace the file's list.
Secrets are read from files (at each send, so a rotated file is picked up), never written
in the config. The names follow Prometheus's own ``remote_write`` block.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kpexporter.config import values
from kpexporter.config.durations import parse_duration

__all__ = ["BasicAuth", "QueueConfig", "RemoteWrite", "TLSConfig", "parse_remote_write"]

RESERVED_HEADERS = frozenset({"authorization", "content-encoding", "content-length",
                              "content-type", "host", "user-agent",
                              "x-prometheus-remote-write-version"})
"""Headers the sender sets itself (Prometheus refuses the same in its ``headers:``)."""
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_SHORT_DURATION = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(ms|s)$")
_UNIT = {"ms": 0.001, "s": 1.0}


@dataclass(frozen=True, slots=True)
class BasicAuth:
    username: str
    password_file: Path | None = None


@dataclass(frozen=True, slots=True)
class TLSConfig:
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    server_name: str | None = None
    insecure_skip_verify: bool = False


@dataclass(frozen=True, slots=True)
class QueueConfig:
    """Delivery, as Prometheus's queue_config: at most ``capacity`` samples wait (the oldest
    are dropped beyond it), sent in batches of at most ``max_samples_per_send``, a partial
    batch after ``batch_send_deadline``; retries back off from ``min_backoff`` to
    ``max_backoff`` (longer when the receiver's Retry-After asks)."""

    capacity: int = 20_000
    max_samples_per_send: int = 2_000
    batch_send_deadline: float = 5.0
    min_backoff: float = 0.03
    max_backoff: float = 5.0


@dataclass(frozen=True, slots=True)
class RemoteWrite:
    url: str
    basic_auth: BasicAuth | None = None
    bearer_token_file: Path | None = None
    headers: tuple[tuple[str, str], ...] = ()
    tls: TLSConfig = field(default_factory=TLSConfig)
    external_labels: tuple[tuple[str, str], ...] = ()
    queue: QueueConfig = field(default_factory=QueueConfig)
    timeout: float = 30.0


def _keys(value: Any, where: str, known: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{where}must be a mapping")
    unknown = sorted(str(k) for k in value if k not in known)
    if unknown:
        raise ValueError(f"{where}{unknown[0]}: unknown key (known: {', '.join(known)})")
    return value


def _url(value: Any, where: str) -> str:
    """The receiver's URL, validated as every other URL in the config (``values.url``)."""
    try:
        return values.url(value)
    except ValueError as e:
        raise ValueError(f"{where}url: {e}") from None


def _path(value: Any, where: str) -> Path:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{where}: must be a file path")
    return Path(value)


def _string_map(value: Any, where: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ValueError(f"{where}: must be a mapping of strings to strings")
    return value


def _positive_int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{where}: must be a positive integer, got {value!r}")
    return value


def _seconds(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"{where}: must be a duration such as 5s")
    m = _SHORT_DURATION.match(value) if isinstance(value, str) else None
    try:
        if m is not None:  # 30ms, 0.5s: what Prometheus's queue_config examples use
            secs = float(m[1]) * _UNIT[m[2]]
        else:
            secs = parse_duration(value) if isinstance(value, str) else float(value)
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None
    if not secs > 0 or secs == float("inf"):
        raise ValueError(f"{where}: must be a positive duration, got {value!r}")
    return secs


def _queue(value: Any, where: str) -> QueueConfig:
    raw = _keys(value, where, ("capacity", "max_samples_per_send", "batch_send_deadline",
                               "min_backoff", "max_backoff"))
    out: dict[str, Any] = {}
    for key in ("capacity", "max_samples_per_send"):
        if key in raw:
            out[key] = _positive_int(raw[key], where + key)
    for key in ("batch_send_deadline", "min_backoff", "max_backoff"):
        if key in raw:
            out[key] = _seconds(raw[key], where + key)
    q = QueueConfig(**out)
    if q.max_samples_per_send > q.capacity:
        raise ValueError(f"{where}max_samples_per_send: must not exceed capacity ({q.capacity})")
    if q.min_backoff > q.max_backoff:
        raise ValueError(f"{where}min_backoff: must not exceed max_backoff")
    return q


def _tls(value: Any, where: str) -> TLSConfig:
    raw = _keys(value, where, ("ca_file", "cert_file", "key_file", "server_name",
                               "insecure_skip_verify"))
    out: dict[str, Any] = {}
    for key in ("ca_file", "cert_file", "key_file"):
        if key in raw:
            out[key] = _path(raw[key], where + key)
    if "server_name" in raw:
        if not isinstance(raw["server_name"], str) or not raw["server_name"]:
            raise ValueError(f"{where}server_name: must be a host name")
        out["server_name"] = raw["server_name"]
    if "insecure_skip_verify" in raw:
        if not isinstance(raw["insecure_skip_verify"], bool):
            raise ValueError(f"{where}insecure_skip_verify: must be true or false")
        out["insecure_skip_verify"] = raw["insecure_skip_verify"]
    tls = TLSConfig(**out)
    if (tls.cert_file is None) != (tls.key_file is None):
        raise ValueError(f"{where}cert_file: cert_file and key_file go together")
    return tls


def _entry(value: Any, i: int) -> RemoteWrite:
    where = f"[{i}]."
    if isinstance(value, str):
        return RemoteWrite(_url(value, where))
    raw = _keys(value, where, ("url", "basic_auth", "bearer_token_file", "headers", "tls",
                               "external_labels", "queue", "remote_timeout"))
    if "url" not in raw:
        raise ValueError(f"{where}url: required")
    out: dict[str, Any] = {"url": _url(raw["url"], where)}
    if "basic_auth" in raw:
        ba = _keys(raw["basic_auth"], where + "basic_auth.", ("username", "password_file"))
        if not isinstance(ba.get("username"), str) or not ba["username"]:
            raise ValueError(f"{where}basic_auth.username: required")
        pw = ba.get("password_file")
        out["basic_auth"] = BasicAuth(
            ba["username"], None if pw is None else _path(pw, where + "basic_auth.password_file"))
    if "bearer_token_file" in raw:
        if "basic_auth" in raw:
            raise ValueError(f"{where}bearer_token_file: cannot be combined with basic_auth")
        out["bearer_token_file"] = _path(raw["bearer_token_file"], where + "bearer_token_file")
    if "headers" in raw:
        headers = _string_map(raw["headers"], where + "headers")
        for name in headers:
            if name.lower() in RESERVED_HEADERS:
                raise ValueError(f"{where}headers.{name}: set by kpexporter itself")
        out["headers"] = tuple(sorted(headers.items()))
    if "tls" in raw:
        out["tls"] = _tls(raw["tls"], where + "tls.")
    if "external_labels" in raw:
        labels = _string_map(raw["external_labels"], where + "external_labels")
        for name in labels:
            if not _LABEL_NAME.match(name) or name.startswith("__"):
                raise ValueError(f"{where}external_labels.{name}: not a label name")
        out["external_labels"] = tuple(sorted(labels.items()))
    if "queue" in raw:
        out["queue"] = _queue(raw["queue"], where + "queue.")
    if "remote_timeout" in raw:
        out["timeout"] = _seconds(raw["remote_timeout"], where + "remote_timeout")
    return RemoteWrite(**out)


def parse_remote_write(value: Any) -> tuple[RemoteWrite, ...]:
    """A list of receivers (mappings, or bare URLs), or URLs in a string (environment)."""
    if value is None:
        return ()
    if isinstance(value, str):
        value = value.split()
    if not isinstance(value, list | tuple):
        raise ValueError("must be a list of receivers, each {url: ..., ...} or a URL")
    out = tuple(_entry(item, i) for i, item in enumerate(value))
    urls = [rw.url for rw in out]
    for i, url in enumerate(urls):
        if url in urls[:i]:
            raise ValueError(f"[{i}].url: {url!r} listed twice")
    return out
