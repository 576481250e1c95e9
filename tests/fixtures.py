"""The captured kube-proxy pages the tests read, vendored under ``tests/data/kube-proxy``.

Their sources and licenses are in ``tests/data/kube-proxy/SOURCES.md``. A clone needs nothing
beside it: a missing page is an error, not a skip.
"""

from __future__ import annotations

import math
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "data" / "kube-proxy"

V1_30 = "beats-metricbeat-v1.30.0-iptables-minikube.txt"
V1_21 = "datadog-v1.21.1-iptables-kind.txt"
V1_21_USERSPACE = "datadog-v1.21.1-userspace-kind-no-kubeproxy-metrics.txt"
V1_8 = "datadog-v1.8.3-iptables-latency-microseconds.txt"
ALL = (V1_30, V1_21, V1_21_USERSPACE, V1_8)


def fixture_bytes(name: str) -> bytes:
    """The page's exact bytes (some have no final newline)."""
    return (FIXTURES / name).read_bytes()


def fixture_text(name: str) -> str:
    """The page as text, with the final newline a strict parser wants."""
    text = fixture_bytes(name).decode("utf-8")
    return text if text.endswith("\n") else text + "\n"


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def reference_samples(text: str, prefixes: tuple[str, ...]) -> Samples:
    """prometheus_client's reading of ``text``: (sample name, sorted labels) -> value.

    Compared at sample level: prometheus_client renames counter *families* (drops ``_total``)
    but keeps sample names as written, as long as a counter's name ends in ``_total``.
    """
    from prometheus_client.parser import text_string_to_metric_families

    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.startswith(prefixes):
                out[(sample.name, tuple(sorted(sample.labels.items())))] = float(sample.value)
    return out


def flat(samples: dict[str, dict[tuple[tuple[str, str], ...], float]]) -> Samples:
    """An Exposition's samples in the shape of :func:`reference_samples`."""
    return {(name, key): value for name, series in samples.items() for key, value in series.items()}


def same_samples(a: Samples, b: Samples) -> bool:
    """Equal keys and values, NaN equal to NaN."""
    return a.keys() == b.keys() and all(
        a[k] == b[k] or (math.isnan(a[k]) and math.isnan(b[k])) for k in a
    )
