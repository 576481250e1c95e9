"""Property test: ``build_config`` on any YAML file, environment or flag lets only
``ConfigError`` escape, with a one-line message, and anything it accepts is a usable config."""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kpexporter.config.schema import _KEYS, ENV_KEYS, Config, ConfigError, build_config

SETTINGS = settings(max_examples=int(os.environ.get("KPX_FUZZ_EXAMPLES", "250")),
                    deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
KEYS = sorted(_KEYS)

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=30),
    st.sampled_from(["5m", "1h", "0.5", "0", "-1", "1e400", "nan", "inf", "1h30m", "5x",
                     "0.5,0.9", "127.0.0.1:0", "[::1]:19249", ":99999", "http://h:1/x",
                     "https://[::1]:10249/metrics", "http://:80/", "ftp://x/", "json", "logfmt",
                     "debug", "5m,5m", "300s,5m", "1,1", ""]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=8)),
                                            inner, max_size=4)),
    max_leaves=12,
)
target_items = st.lists(st.dictionaries(
    st.one_of(st.sampled_from(["node", "healthz_url", "metrics_url"]), st.text(max_size=5),
              st.integers()), scalars, max_size=4), max_size=3)
discovery = st.one_of(values, st.fixed_dictionaries({"kubernetes": st.one_of(
    st.none(), values, st.dictionaries(
        st.one_of(st.sampled_from(["healthz_port", "metrics_port", "address_types",
                                   "label_selector", "refresh_interval", "kubeconfig",
                                   "context"]), st.text(max_size=5), st.integers()),
        values, max_size=4))}))
documents = st.one_of(
    st.fixed_dictionaries({"targets": target_items}),
    st.fixed_dictionaries({"discovery": discovery}),
    st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=10), st.integers()),
                    values, max_size=6),
    values,
)


def check(cfg: Config) -> None:
    """An accepted config holds values the exporter can run with."""
    assert math.isfinite(cfg.interval) and cfg.interval > 0
    assert math.isfinite(cfg.timeout) and cfg.timeout > 0
    assert cfg.windows and all(w.seconds > 0 for w in cfg.windows)
    assert cfg.quantiles and all(0 <= q <= 1 for q in cfg.quantiles)
    assert 0 <= cfg.listen_port <= 65535
    assert cfg.targets and all(t.node for t in cfg.targets)
    assert cfg.max_body_bytes > 0 and cfg.concurrency > 0


def build_from_text(text: str | bytes, env: dict[str, str] | None = None,
                    flags: dict[str, Any] | None = None) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "config.yaml"
        path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8", "replace"))
        try:
            cfg = build_config(path, env or {"NODE_NAME": "n"}, flags or {})
        except ConfigError as e:
            assert "\n" not in str(e) and str(e), repr(str(e))
            return
    check(cfg)


@SETTINGS
@given(documents)
def test_any_yaml_document(doc: Any) -> None:
    build_from_text(yaml.safe_dump(doc, allow_unicode=True))


@SETTINGS
@given(st.binary(max_size=300))
def test_any_bytes_as_the_file(data: bytes) -> None:
    build_from_text(data)


@SETTINGS
@given(st.text(alphabet=st.sampled_from(list("abc:{}[]-,&*!|>'\"%@`#\n \t0.5mh?")),
               max_size=80))
def test_yaml_syntax_soup(text: str) -> None:
    build_from_text(text)


@SETTINGS
@given(st.dictionaries(st.sampled_from(sorted(ENV_KEYS)), st.text(max_size=20), max_size=4),
       st.dictionaries(st.sampled_from([k for k in KEYS if k != "targets"]),
                       st.one_of(st.none(), st.text(max_size=20)), max_size=4))
def test_any_environment_and_flags(env: dict[str, str], flags: dict[str, Any]) -> None:
    build_from_text("", env={"NODE_NAME": "n", **env}, flags=flags)


# Found by fuzzing: each once escaped build_config as something other than ConfigError.
REGRESSIONS = [
    "[" * 100_000 + "]" * 100_000,  # RecursionError from the YAML composer
    "a: " + "{a: " * 5_000 + "1" + "}" * 5_000,
    "interval: " + "9" * 5_000,  # ValueError: int literal over 4300 digits
    "windows: [1e308]",  # OverflowError naming the window in milliseconds
    "windows: 9" + "9" * 400 + "h",  # OverflowError: int too large to convert to float
    "targets: [{1: a, b: c}]",  # TypeError sorting unknown keys of mixed types
    '"\\n": 1',  # a key with a newline made a two-line message
    'targets: [{"x\\ny": 1}]',
]


def test_regressions_only_raise_config_error() -> None:
    for text in REGRESSIONS:
        build_from_text(text)
