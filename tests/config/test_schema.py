"""Config: precedence file < environment < flags, and one-line errors naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from kpexporter.cli.main import build_parser, make_config
from kpexporter.config.durations import format_duration, parse_duration
from kpexporter.config.schema import (
    ENV_KEYS,
    SETTINGS,
    ConfigError,
    NodeDiscovery,
    Target,
    Window,
    build_config,
)
from kpexporter.config.table import BEGIN, END, markdown_table


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
    # One prefix: the variable or the flag names the field (not "--interval: interval: ...").
    with pytest.raises(ConfigError, match=r"^environment KPEXPORTER_TIMEOUT: not a duration"):
        build_config(None, {"KPEXPORTER_TIMEOUT": "x"}, {})
    with pytest.raises(ConfigError, match=r"^--interval: must be a positive"):
        build_config(None, {}, {"interval": "0"})
    with pytest.raises(ConfigError, match=r"^--discover-nodes: must be "):
        build_config(None, {}, {"discovery": "consul"})


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


# The same value written in the file, as an environment variable and as a flag.
SAME_VALUE = [
    ("node", "n7", "n7"), ("healthz_url", "http://10.0.0.1:10256/healthz", None),
    ("listen", "127.0.0.1:9999", ("127.0.0.1", 9999)), ("interval", "1m30s", 90.0),
    ("timeout", "2", 2.0), ("windows", "10m,1h", (Window("10m", 600.0), Window("1h", 3600.0))),
    ("quantiles", "0.99,0.5", (0.5, 0.99)), ("pending_threshold", "2m", 120.0),
    ("max_body_bytes", "1024", 1024), ("log_format", "json", "json"),
    ("log_level", "debug", "debug"), ("web_config_file", "/etc/web.yml", Path("/etc/web.yml")),
    ("concurrency", "3", 3), ("passthrough", "kubeproxy_*,go_*", ("kubeproxy_*", "go_*")),
    ("discovery", "kubernetes", NodeDiscovery()),
]


@pytest.mark.parametrize(("key", "raw", "expected"), SAME_VALUE)
def test_file_environment_and_flag_agree(tmp_path: Path, key: str, raw: str,
                                         expected: object) -> None:
    field = SETTINGS[key].field
    expected = raw if expected is None else expected
    from_file = build_config(write(tmp_path, yaml.safe_dump({key: raw})), {}, {})
    from_env = build_config(None, {f"KPEXPORTER_{key.upper()}": raw}, {})
    assert getattr(from_file, field) == getattr(from_env, field) == expected
    if SETTINGS[key].setting.flag is not None:
        command = "check" if "check" in SETTINGS[key].setting.commands else "serve"
        flag = SETTINGS[key].setting.flag
        args = build_parser().parse_args(
            [command, flag] if SETTINGS[key].setting.flag_const else [command, flag, raw])
        assert getattr(make_config(args), field) == expected


def test_kpexporter_node_outranks_node_name() -> None:
    assert build_config(None, {"NODE_NAME": "a", "KPEXPORTER_NODE": "b"}, {}).node == "b"
    assert build_config(None, {"NODE_NAME": "a", "HOSTNAME": "pod"}, {}).node == "a"


def test_sections_without_a_one_line_form_have_no_variable(tmp_path: Path) -> None:
    for key in ("targets", "slos"):
        assert f"KPEXPORTER_{key.upper()}" not in ENV_KEYS
    with pytest.raises(ConfigError, match=r"^config file .*: slos: "):
        build_config(write(tmp_path, "slos: 3\n"), {}, {})


def test_readme_configuration_table_is_the_schemas() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    start = readme.index(BEGIN) + len(BEGIN) + 1
    assert readme[start:readme.index(END, start)] == markdown_table(), (
        "README.md's configuration table differs from the schema: run "
        "`python -m kpexporter.config.table --write README.md`")


@pytest.mark.parametrize("command", ["serve", "check"])
def test_help_lists_every_flag(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args([command, "--help"])
    text = capsys.readouterr().out
    for k in SETTINGS.values():
        if k.setting.flag is not None and command in k.setting.commands:
            assert k.setting.flag in text, k.setting.flag
