"""The samples remote write pushes are exactly the samples of the text page."""

from __future__ import annotations

import math
from collections import Counter

from prometheus_client.parser import text_string_to_metric_families

from kpexporter.core.state import TargetState
from kpexporter.service.series import process_samples, target_samples
from kpexporter.service.text import render_text
from tests.builders import HEALTHY_128, HEALTHY_128_NOW, poll_result
from tests.fixtures import ALL, fixture_bytes
from tests.service.test_text import (
    HEALTHY_133,
    NEVER_SYNCED,
    page_133,
    recorded,
    state,
)

Key = tuple[str, tuple[tuple[str, str], ...], object]


def _key(name: str, labels: dict[str, str], value: float) -> Key:
    return name, tuple(sorted(labels.items())), "NaN" if math.isnan(value) else value


def _page(states: list[TargetState]) -> Counter[Key]:
    """The text page as parsed by prometheus_client (the oracle)."""
    text = render_text(states).decode()
    return Counter(_key(s.name, s.labels, s.value)
                   for fam in text_string_to_metric_families(text) for s in fam.samples)


def _walked(states: list[TargetState]) -> Counter[Key]:
    out = Counter(_key(*s) for s in process_samples())
    for st in states:
        out.update(_key(*s) for s in target_samples(st))
    return out


def test_every_fixture_page() -> None:
    for name in ALL:
        states = [recorded([poll_result(HEALTHY_128, 200, fixture_bytes(name))])]
        assert _walked(states) == _page(states), name


def test_windows_hostile_labels_down_and_never_polled() -> None:
    evil = 'I"P\\v4\nx'
    escaped = evil.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    page = page_133(label=escaped).replace(
        b'{ip_family="IPv6",le=', b'{node="other",quantile="q",ip_family="IPv6",le=')
    results = [poll_result(HEALTHY_133, 200, page_133(k), started=HEALTHY_128_NOW + 15 * k)
               for k in range(6)]
    states = [
        recorded(results, "windows"),
        recorded([poll_result(HEALTHY_133, 200, page)], 'no"de\\\n1'),
        recorded([poll_result(None, 0, None)], "down"),
        recorded([poll_result(NEVER_SYNCED, 503, None)], "never-synced"),
        state("never-polled"),
    ]
    walked = _walked(states)
    assert walked == _page(states)
    assert any(k[0] == "kpexporter_sync_proxy_rules_duration_seconds" and ("window", "5m") in k[1]
               for k in walked)
