"""Durations as Prometheus reads and writes them, checked against Prometheus itself.

- Reading: promtool evaluates ``time()`` at ``eval_time: <text>``, so Prometheus's own
  duration parser says how many seconds each text is; ours must agree.
- Writing: window names are the ``window`` label, so they must be Prometheus's canonical
  spelling (``model.Duration.String()``: largest unit first, y w d h m s ms, zero parts left
  out). The pairs below are worked out by hand in that rule; promtool then confirms each
  name reads back as the same number of seconds.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kpexporter.config.durations import format_duration, parse_duration
from tests.promtool import have_promtool, run_promtool_tests, skip_reason

CANONICAL = [
    (0.5, "500ms"),
    (15.0, "15s"),
    (90.0, "1m30s"),  # 60 + 30
    (300.0, "5m"),
    (5400.0, "1h30m"),  # 3600 + 1800
    (86400.0, "1d"),
    (1209600.0, "2w"),  # 14 days: weeks come before days
    (123456.789, "1d10h17m36s789ms"),  # 86400 + 36000 + 1020 + 36 + 0.789
    (987654.321, "1w4d10h20m54s321ms"),  # 604800 + 345600 + 36000 + 1200 + 54 + 0.321
    (32230861.001, "1y1w1d1h1m1s1ms"),  # 31536000 + 604800 + 86400 + 3600 + 60 + 1 + 0.001
]
PROMETHEUS_TEXTS = ["1ms", "250ms", "1s", "15s", "90s", "300s", "5m", "1h30m", "2d4h20m",
                    "1w", "1y", "10m10s100ms", "0h5m"]
"""Texts Prometheus accepts, some not canonical (``90s``, ``0h5m``). Prometheus 2.42 wants
the units largest first; ``parse_duration`` also takes them in any order (``20s4h``)."""


@pytest.mark.parametrize(("seconds", "name"), CANONICAL)
def test_names_are_prometheus_canonical(seconds: float, name: str) -> None:
    assert format_duration(seconds) == name
    assert parse_duration(name) == pytest.approx(seconds, abs=1e-9)


def test_plain_seconds_are_accepted_too() -> None:
    """Beyond Prometheus's syntax: flags and env vars may say ``15`` or ``0.5``."""
    assert (parse_duration("15"), parse_duration("0.5"), parse_duration(" 2 ")) == (15, 0.5, 2)


@pytest.mark.parametrize("text", ["", "5 m", "-5s", "0", "0s", "nan", "inf", "5x", "1.5h",
                                  "h", "5M"])
def test_what_is_not_a_positive_duration_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


@pytest.mark.promtool
@pytest.mark.skipif(not have_promtool(), reason=skip_reason())
def test_prometheus_reads_every_text_as_we_do(tmp_path: Path) -> None:
    texts = PROMETHEUS_TEXTS + [name for _, name in CANONICAL]
    checks = [{"expr": "vector(time())", "eval_time": text,
               "exp_samples": [{"labels": "{}", "value": parse_duration(text)}]}
              for text in texts]
    run_promtool_tests({"tests": [{"interval": "1m",
                                   "input_series": [{"series": "x", "values": "1"}],
                                   "promql_expr_test": checks}]}, tmp_path)
