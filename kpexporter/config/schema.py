"""The one configuration schema: the ``Config`` dataclass, and everything derived from it.

Each field of ``Config`` carries its ``Setting`` (``setting(...)`` below): the parser, the
help text, the flag and the commands that take it, whether it has an environment variable.
From that one place come the YAML file keys, the ``KPEXPORTER_<KEY>`` environment variables,
the ``serve``/``check`` flags (``cli/main.py`` walks ``SETTINGS``), the defaults, validation
(one line naming the field; the CLI exits 64) and the README's configuration table
(``kpexporter.config.table``; a test fails when README.md differs).

Precedence: YAML file < environment < flags. Unknown keys are errors, not silently ignored
(a typo'd ``intervall:`` must not run with the default).

Adding a setting is one field::

    max_targets: int = setting(5000, v.positive_int, "targets polled at most",
                               flag="--max-targets", commands=SERVE)

then run ``python -m kpexporter.config.table --write README.md``. The parser (a function in
``values.py``) turns what YAML, an environment variable or a flag gave into the typed value
or raises ``ValueError`` with a message that reads after ``"<key>: "``. A nested section
(``slos:``, ``discovery:``, ``targets:``) is one field whose parser reads the whole mapping
or list; pass ``env=False`` when it cannot be written on one line. Checks across fields go
in ``_check_together``.
"""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from kpexporter.config import values as v
from kpexporter.config.alerting import DEFAULT_ALERTING, AlertingConfig, parse_alerting
from kpexporter.config.remote_write import RemoteWrite, parse_remote_write
from kpexporter.config.shard import Shard, parse_shard
from kpexporter.config.slos import DEFAULT_SLOS, SLOConfig, parse_slos
from kpexporter.config.values import NodeDiscovery, Target, Window

__all__ = [
    "DEFAULT_HEALTHZ_URL",
    "DEFAULT_LISTEN",
    "DEFAULT_METRICS_URL",
    "DEFAULT_PASSTHROUGH",
    "ENV_KEYS",
    "ENV_PREFIX",
    "SETTINGS",
    "Config",
    "ConfigError",
    "NodeDiscovery",
    "Setting",
    "Target",
    "Window",
    "build_config",
    "default_node_name",
    "load_file",
    "redacted",
    "setting",
]

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

SERVE_AND_CHECK = ("serve", "check")
SERVE = ("serve",)


class ConfigError(ValueError):
    """A configuration problem; ``str()`` is one line that names the field."""


@dataclass(frozen=True, slots=True)
class Setting:
    """How users set one ``Config`` field: the field's metadata, read by everything else."""

    parse: Callable[[Any], Any]
    help: str
    default_text: str = ""  # the default as --help and the README show it ("" = derived)
    flag: str | None = None  # "--healthz-url"; None: file and environment only
    commands: tuple[str, ...] = SERVE_AND_CHECK  # the subcommands that take the flag
    env: bool = True  # KPEXPORTER_<KEY>
    env_aliases: tuple[str, ...] = ()  # other variables read after KPEXPORTER_<KEY>
    key: str = ""  # file key, when it is not the field's name
    metavar: str | None = None
    choices: tuple[str, ...] | None = None  # also the flag's argparse choices
    flag_const: str | None = None  # the flag takes no value and sets this one
    repeatable: bool = False  # the flag may be given more than once: the parser gets a list


def setting(default: Any, parse: Callable[[Any], Any] | None, help: str, *,
            choices: tuple[str, ...] | None = None, **kw: Any) -> Any:
    """A ``Config`` field with its ``Setting``; ``default`` may be ``dataclasses.MISSING``.

    With ``choices`` and no ``parse``, the value must be one of them."""
    if parse is None:
        assert choices is not None
        parse = v.choice(*choices)
    meta = {"setting": Setting(parse, help, choices=choices, **kw)}
    if default is dataclasses.MISSING:
        return dataclasses.field(metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


@dataclass(frozen=True, slots=True)
class Config:
    node: str = setting(
        dataclasses.MISSING, v.node_name, "node name for the `node` label", flag="--node",
        env_aliases=("NODE_NAME",), default_text="$NODE_NAME, else $HOSTNAME, else the host name")
    healthz_url: str = setting(
        DEFAULT_HEALTHZ_URL, v.url, "kube-proxy's healthz URL", flag="--healthz-url",
        metavar="URL")
    metrics_url: str = setting(
        DEFAULT_METRICS_URL, v.url, "kube-proxy's metrics URL (/proxyMode is read beside it)",
        flag="--metrics-url", metavar="URL")
    listen: tuple[str, int] = setting(
        ("0.0.0.0", 19249), v.listen_address, "address to serve on", flag="--listen",
        commands=SERVE, metavar="HOST:PORT", default_text=DEFAULT_LISTEN)
    interval: float = setting(
        15.0, v.seconds, "poll interval: seconds or 15s, 1m; fractions allowed",
        flag="--interval", commands=SERVE, metavar="SECONDS")
    timeout: float = setting(
        5.0, v.seconds, "overall deadline per request", flag="--timeout", metavar="SECONDS")
    windows: tuple[Window, ...] = setting(
        (Window("5m", 300.0), Window("1h", 3600.0)), v.windows,
        "sliding windows for quantiles", flag="--windows", metavar="LIST")
    quantiles: tuple[float, ...] = setting(
        (0.5, 0.9, 0.99), v.quantiles, "quantiles to compute", flag="--quantiles",
        metavar="LIST")
    pending_threshold: float = setting(
        60.0, v.seconds, "a queued change waiting longer than this is unhealthy "
        "(kube-proxy's healthTimeout)", flag="--pending-threshold", metavar="SECONDS")
    max_body_bytes: int = setting(8 * 1024 * 1024, v.positive_int, "metrics page cap")
    max_healthz_bytes: int = setting(64 * 1024, v.positive_int, "healthz body cap")
    max_series: int = setting(
        10_000, v.positive_int, "kube-proxy series per page at most, like Prometheus's "
        "sample_limit: a page with more fails the metrics poll (reason too_many_series)")
    log_format: str = setting("logfmt", None, "log line format", flag="--log-format",
                              choices=("logfmt", "json"))
    log_level: str = setting("info", None, "least severe level logged", flag="--log-level",
                             choices=("debug", "info", "warning", "error"))
    web_config_file: Path | None = setting(
        None, v.file_path, "exporter-toolkit web config: TLS, basic auth, response headers",
        flag="--web-config-file", commands=SERVE, metavar="FILE",
        default_text="none: plain HTTP, no auth")
    event_loop: str = setting(
        "auto", None, "serve's asyncio event loop: auto is uvloop when installed and the web "
        "config has no TLS, else asyncio's own", flag="--event-loop", commands=SERVE,
        choices=("auto", "uvloop", "asyncio"))
    targets_extra: tuple[Target, ...] = setting(
        (), v.targets, "multi-target mode: a list of {node, healthz_url, metrics_url}",
        key="targets", env=False, default_text="the one local kube-proxy")
    concurrency: int = setting(64, v.positive_int, "polls in flight at most")
    shard: Shard | None = setting(
        None, parse_shard, "poll only the targets (listed or discovered) whose node name "
        "hashes to shard I of N; POD/N takes I from a StatefulSet pod name's -<ordinal>",
        flag="--shard", commands=SERVE, metavar="I/N", default_text="none: every target")
    discovery: NodeDiscovery | None = setting(
        None, v.discovery, "poll every Node's kube-proxy, listed from the Kubernetes API "
        "(needs kpexporter[kubernetes]); the value is `kubernetes`, or in the file "
        "{kubernetes: {...settings}}", flag="--discover-nodes", flag_const="kubernetes",
        commands=SERVE)
    slos: SLOConfig = setting(
        DEFAULT_SLOS, parse_slos, "objectives, thresholds and windows of the SLOs",
        env=False, default_text="see the SLO section")
    passthrough: tuple[str, ...] = setting(
        DEFAULT_PASSTHROUGH, v.passthrough, "kube-proxy families re-exposed as scraped "
        "(`*` matches any run of characters; empty turns it off)",
        default_text="`kubeproxy_*` and the kubernetes-mixin's families")
    remote_write: tuple[RemoteWrite, ...] = setting(
        (), parse_remote_write, "push every poll's series to these Prometheus remote-write "
        "receivers (repeatable; settings under remote_write: in the file)",
        flag="--remote-write-url", commands=SERVE, metavar="URL", repeatable=True,
        default_text="none")
    alerting: AlertingConfig = setting(
        DEFAULT_ALERTING, parse_alerting, "how `kpexporter rules` renders alerts/: selector, "
        "cluster labels, thresholds, for: durations, runbook URL", env=False,
        default_text="see “Alerts and recording rules”")

    @property
    def listen_host(self) -> str:
        return self.listen[0]

    @property
    def listen_port(self) -> int:
        return self.listen[1]

    @property
    def targets(self) -> tuple[Target, ...]:
        """Every kube-proxy this process polls (the local one first)."""
        return self.targets_extra or (Target(self.node, self.healthz_url, self.metrics_url),)

    @property
    def horizon(self) -> float:
        return max((w.seconds for w in self.windows), default=0.0)


@dataclass(frozen=True, slots=True)
class Key:
    """One settable key: its name in files, its ``Config`` field, its ``Setting``."""

    name: str
    field: str
    setting: Setting
    default: Any  # dataclasses.MISSING when the default depends on the environment

    @property
    def env_names(self) -> tuple[str, ...]:
        own = (f"{ENV_PREFIX}{self.name.upper()}",) if self.setting.env else ()
        return (*own, *self.setting.env_aliases)


def _keys() -> dict[str, Key]:
    out = {}
    for f in dataclasses.fields(Config):
        s: Setting = f.metadata["setting"]
        out[s.key or f.name] = Key(s.key or f.name, f.name, s, f.default)
    return out


SETTINGS: dict[str, Key] = _keys()
"""Every key, in ``Config``'s order: the file keys, and what the flags and README walk."""
_KEYS = SETTINGS  # the name the fuzz tests sample keys from
ENV_KEYS: dict[str, str] = {f"{ENV_PREFIX}{k.upper()}": k for k, s in SETTINGS.items()
                            if s.setting.env}


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


def _apply(values: dict[str, Any], key: str, raw: Any, source: str) -> None:
    """Parse one raw value into ``values[key]``; ``source`` prefixes the message and, for a
    file, is followed by the key (an environment variable or a flag already names it)."""
    where = f"{source}{v.shown(key)}: " if source.startswith("config file") else source
    if key not in SETTINGS:
        raise ConfigError(f"{where}unknown key (known: {', '.join(sorted(SETTINGS))})")
    try:
        values[key] = SETTINGS[key].setting.parse(raw)
    except ValueError as e:
        raise ConfigError(f"{where}{e}") from None
    except OverflowError:  # e.g. windows: [1e308], whose name in ms overflows
        raise ConfigError(f"{where}value out of range") from None


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


def flag_name(key: str) -> str:
    """The flag that sets ``key`` (for messages), ``--<key>`` when it has none."""
    s = SETTINGS.get(key)
    return s.setting.flag if s is not None and s.setting.flag else f"--{key.replace('_', '-')}"


def _check_together(cfg: Config) -> None:
    """Checks across fields, after each field is valid on its own."""
    if cfg.targets_extra and cfg.discovery is not None:
        raise ConfigError("discovery: cannot be combined with targets (choose one)")


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
    for key, k in SETTINGS.items():
        for name in k.env_names:
            if env.get(name):
                _apply(values, key, env[name], f"environment {name}: ")
                break
    for key, raw in flags.items():
        if raw is not None:
            _apply(values, key, raw, f"{flag_name(key)}: ")
    if not values.get("node"):
        values["node"] = default_node_name(env)
    cfg = Config(**{SETTINGS[key].field: value for key, value in values.items()})
    _check_together(cfg)
    return cfg
