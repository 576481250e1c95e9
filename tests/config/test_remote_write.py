"""The ``remote_write:`` section and ``--remote-write-url``: strict, one line per problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from kpexporter.config.remote_write import QueueConfig, TLSConfig, parse_remote_write
from kpexporter.config.schema import ConfigError, build_config
from tests.cli.test_main import run


def test_defaults_and_full_entry() -> None:
    (bare,) = parse_remote_write(["http://n9e:19000/prometheus/v1/write"])
    assert bare.queue == QueueConfig() and bare.tls == TLSConfig() and bare.timeout == 30.0
    (full,) = parse_remote_write([{
        "url": "https://r.example/api/v1/write",
        "basic_auth": {"username": "u", "password_file": "/p"},
        "headers": {"X-Scope-OrgID": "a"},
        "tls": {"ca_file": "ca", "cert_file": "c", "key_file": "k", "server_name": "r"},
        "external_labels": {"cluster": "c", "ident": "${NODE_NAME}"},
        "queue": {"capacity": 10, "max_samples_per_send": 5, "batch_send_deadline": "250ms",
                  "min_backoff": 0.01, "max_backoff": "2s"},
        "remote_timeout": "10s"}])
    assert full.basic_auth is not None and str(full.basic_auth.password_file) == "/p"
    assert full.headers == (("X-Scope-OrgID", "a"),)
    assert full.external_labels == (("cluster", "c"), ("ident", "${NODE_NAME}"))
    assert full.queue == QueueConfig(10, 5, 0.25, 0.01, 2.0) and full.timeout == 10.0


@pytest.mark.parametrize(("value", "message"), [
    ("x", "[0].url: must be an http(s) URL with a host, got 'x'"),
    ({"url": "http://a"}, "must be a list of receivers"),
    ([{"url": "http://a", "queue": {"capacity": 0}}],
     "[0].queue.capacity: must be a positive integer, got 0"),
    ([{"url": "http://a", "queue": {"capacity": 5, "max_samples_per_send": 6}}],
     "[0].queue.max_samples_per_send: must not exceed capacity (5)"),
    ([{"url": "http://a", "queue": {"batch_send_deadline": "soon"}}],
     "[0].queue.batch_send_deadline: "),
    ([{"url": "http://a", "headers": {"Authorization": "x"}}],
     "[0].headers.Authorization: set by kpexporter itself"),
    ([{"url": "http://a", "external_labels": {"__x": "y"}}],
     "[0].external_labels.__x: not a label name"),
    ([{"url": "http://a", "basic_auth": {"username": "u"}, "bearer_token_file": "t"}],
     "[0].bearer_token_file: cannot be combined with basic_auth"),
    ([{"url": "http://a", "tls": {"cert_file": "c"}}],
     "[0].tls.cert_file: cert_file and key_file go together"),
    ([{"url": "http://a", "queue": {"capacityy": 1}}], "[0].queue.capacityy: unknown key"),
    (["http://a", "http://a"], "[1].url: 'http://a' listed twice"),
    ([{"basic_auth": {"username": "u"}}], "[0].url: required"),
])
def test_refused_with_the_field_named(value: object, message: str) -> None:
    with pytest.raises(ValueError) as e:
        parse_remote_write(value)
    assert str(e.value).startswith(message), str(e.value)


def test_flags_repeat_and_replace_the_file(tmp_path: Path) -> None:
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("remote_write: [{url: 'http://file/w', external_labels: {a: b}}]\n")
    from_file = build_config(cfg_file, {}, {})
    assert [r.url for r in from_file.remote_write] == ["http://file/w"]
    flags = build_config(cfg_file, {}, {"remote_write": ["http://a/w", "http://b/w"]})
    assert [r.url for r in flags.remote_write] == ["http://a/w", "http://b/w"]
    env = build_config(None, {"KPEXPORTER_REMOTE_WRITE": "http://e/w http://f/w"}, {})
    assert [r.url for r in env.remote_write] == ["http://e/w", "http://f/w"]
    assert build_config(None, {}, {}).remote_write == ()
    bad = tmp_path / "bad.yaml"
    bad.write_text("remote_write: [{url: 'http://a', queue: {capacity: -1}}]\n")
    with pytest.raises(ConfigError, match=r"remote_write: \[0\]\.queue\.capacity"):
        build_config(bad, {}, {})


async def test_serve_exits_64_with_one_line(tmp_path: Path) -> None:
    code, out, err = await run("serve", "--remote-write-url", "ftp://x", "--listen",
                               "127.0.0.1:0")
    assert code == 64 and out == "", (code, out, err)
    assert err.startswith("kpexporter: --remote-write-url: ") and len(err.splitlines()) == 1
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"remote_write: [{{url: 'https://r/w', tls: {{ca_file: {tmp_path}/none}}}}]\n")
    code, out, err = await run("serve", "--config", str(cfg), "--listen", "127.0.0.1:0")
    assert code == 64 and out == "", (code, out, err)
    assert "remote_write https://r/w: tls: " in err and len(err.splitlines()) == 1, err
