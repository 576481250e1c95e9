"""Config: precedence file < environment < flags, and one-line errors naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from kpexporter.config.durations import format_duration, parse_duration
from kpexporter.config.schema import ConfigError, Target, Window, build_config


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "kpx.yaml"
    p.write_text(text)
    return p


def test_defaults_follow_the_contract() -> None:
    cfg = build_config(None, {"HOSTNAME": "pod-x"}, {})
    assert cfg.node == "pod-x"
    assert cfg.healthz_url == "http://127.0.0.1:10256/healthz"
    assert cfg.metrics_url == "http://127.0.0.1:10249/metrics"
    assert (cfg.listen_host, cfg.listen_port) == ("0.0.0.0", 19249)
    assert cfg.interval == 15.0 and cfg.timeout == 5.0
    assert cfg.windows == (Window("5m", 300.0), Window("1h", 3600.0))
    assert cfg.quantiles == (0.5, 0.9, 0.99)
    assert cfg.pending_threshold == 60.0
    assert cfg.targets == (Target("pod-x", cfg.healthz_url, cfg.metrics_url),)
    assert cfg.targets[0].proxy_mode_url == "http://127.0.0.1:10249/proxyMode"


def test_precedence_flags_over_env_over_file(tmp_path: Path) -> None:
    f = write(tmp_path, "interval: 30\ntimeout: 2\nnode: from-file\nwindows: [10m]\n")
    cfg = build_config(f, {"KPEXPORTER_INTERVAL": "20", "HOSTNAME": "pod"}, {"interval": "0.5"})
    assert cfg.interval == 0.5  # flag
    assert cfg.timeout == 2.0  # file
    assert cfg.node == "from-file"  # $HOSTNAME is only the last-resort default
    assert cfg.windows == (Window("10m", 600.0),)
    cfg = build_config(f, {"KPEXPORTER_INTERVAL": "20", "NODE_NAME": "n1"}, {})
    assert cfg.interval == 20.0 and cfg.node == "n1"  # env beats file
    cfg = build_config(f, {"NODE_NAME": "n1"}, {"node": "flag-node"})
    assert cfg.node == "flag-node"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("intervall: 5\n", "intervall: unknown key"),
        ("interval: -1\n", "interval: must be a positive number of seconds, got -1"),
        ("interval: soon\n", "interval: not a duration: 'soon'"),
        ("healthz_url: ftp://x\n", "healthz_url: must be an http(s) URL with a host"),
        ("listen: 19249\n", "listen: must be HOST:PORT, got 19249"),
        ("listen: ':99999'\n", "listen: port must be 0-65535, got '99999'"),
        ("quantiles: [0.5, 2]\n", "quantiles: quantile must be in [0, 1], got 2"),
        ("windows: [5m, 300s]\n", "windows: duplicate window '300s'"),
        ("log_format: xml\n", "log_format: must be one of logfmt, json; got 'xml'"),
        ("- a\n- b\n", "must be a mapping of keys to values"),
        ("interval: [\n", "invalid YAML at line"),
        ("targets: [{node: a, healthz_url: 'http://a/healthz'}]\n",
         "targets: [0].metrics_url: required"),
    ],
)
def test_bad_file_is_one_line_naming_the_field(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        build_config(write(tmp_path, text), {}, {})
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_bad_env_and_flag_name_their_source() -> None:
    with pytest.raises(ConfigError, match=r"^environment KPEXPORTER_TIMEOUT: timeout: "):
        build_config(None, {"KPEXPORTER_TIMEOUT": "x"}, {})
    with pytest.raises(ConfigError, match=r"^--interval: interval: must be a positive"):
        build_config(None, {}, {"interval": "0"})


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        build_config(Path("/nonexistent/kpx.yaml"), {}, {})


def test_targets_replace_the_local_one(tmp_path: Path) -> None:
    f = write(tmp_path, "targets:\n"
              "  - {node: a, healthz_url: 'http://127.0.0.1:1/healthz', "
              "metrics_url: 'http://127.0.0.1:2/metrics'}\n"
              "  - {node: b, healthz_url: 'http://127.0.0.1:3/healthz', "
              "metrics_url: 'http://127.0.0.1:4/metrics'}\n")
    cfg = build_config(f, {}, {})
    assert [t.node for t in cfg.targets] == ["a", "b"]


@pytest.mark.parametrize(("text", "seconds", "name"), [
    ("15", 15.0, "15s"), ("0.5", 0.5, "500ms"), ("5m", 300.0, "5m"), ("300s", 300.0, "5m"),
    ("1h30m", 5400.0, "1h30m"), ("90s", 90.0, "1m30s"), ("1d", 86400.0, "1d"),
])
def test_durations(text: str, seconds: float, name: str) -> None:
    assert parse_duration(text) == seconds
    assert format_duration(seconds) == name


@pytest.mark.parametrize("text", ["", "5 m", "-5s", "0", "nan", "inf", "5x"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)
