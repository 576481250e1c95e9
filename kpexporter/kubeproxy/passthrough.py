"""The bridge: kube-proxy's own families, picked by name pattern, to re-expose with ``node``.

kube-proxy binds ``/metrics`` to 127.0.0.1, so dashboards built on its own series (the
kubernetes-mixin "Kubernetes / Proxy" dashboard, its alerts) are empty unless something on the
node re-exposes them. The exporter already reads that page; this module picks the families
whose names match the ``passthrough:`` patterns (``*`` matches any run of characters) out of
the read page, as kube-proxy wrote them: names, label pairs, values, ``# TYPE`` and
``# HELP``. The writers add ``node`` (a page label ``node`` becomes ``exported_node``, as
Prometheus does without ``honor_labels``).

Samples come from the fast reader (:mod:`kpexporter.promtext.exposition`), which reads only
the spans of the patterns' literal prefixes and checks every line, so a malformed line is
skipped and counted, never copied onto our page (one bad line would fail the whole scrape).

Pre-1.14 ``kubeproxy_sync_proxy_rules_latency_microseconds`` is passed through as it is and
also converted to ``kubeproxy_sync_proxy_rules_duration_seconds`` (bounds and ``_sum`` in
seconds), so dashboards written for 1.14+ work, unless the page has both.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal, cast

from kpexporter.memo import Memo
from kpexporter.promtext.exposition import DEFAULT_PREFIXES, Exposition, LabelSet
from kpexporter.promtext.gofloat import parse_go_float
from kpexporter.stats.histogram import Buckets

__all__ = [
    "CONVERTED_HELP",
    "CONVERTED_KEY",
    "PassFamily",
    "Sample",
    "Type",
    "exported_labels",
    "reader_prefixes",
    "select",
]

Sample = tuple[str, LabelSet, float]
"""(sample name, label pairs as on the page, value)."""

# Spelled here, not imported: ``kubeproxy.families`` builds on this module.
CONVERTED_KEY = "sync_proxy_rules_duration_seconds"
"""The key of ``families.HISTOGRAMS`` whose buckets hold the converted histogram."""
_SECONDS = "kubeproxy_sync_proxy_rules_duration_seconds"
_MICROSECONDS = "kubeproxy_sync_proxy_rules_latency_microseconds"
CONVERTED_HELP = (f"{_SECONDS}, converted by kpexporter from kube-proxy's pre-1.14 "
                  f"{_MICROSECONDS} (bounds and sum in seconds).")
MAX_LABEL_CHARS = 1024
"""A series whose label names and values add up to more is not passed through: kube-proxy's
longest (``rest_client_*`` with ``host``, ``url``) are far shorter, and a hostile page must
not make every scrape carry megabytes."""
_OURS = "kpexporter_"
_SUFFIXES = {"histogram": ("_bucket", "_sum", "_count"), "summary": ("_sum", "_count")}


Type = Literal["gauge", "counter", "histogram", "summary", "info", "untyped", "unknown"]


@dataclass(frozen=True, slots=True)
class PassFamily:
    """One family to re-expose: its samples in page order, labels ready for ``node``."""

    name: str
    """The family's name; a counter's without ``_total`` (its samples keep it), as the
    exporter's family table names counters."""
    type: Type
    """As the page's ``# TYPE`` says; ``unknown`` without one (the text format's ``untyped``,
    as OpenMetrics spells it), and for a counter whose name does not end in ``_total``."""
    help: str  # unescaped; empty when the page had no HELP for it
    samples: tuple[Sample, ...]
    """(sample name, label pairs, value); a page label ``node`` is already ``exported_node``,
    so a writer adds ``node`` without a clash."""


@lru_cache(maxsize=64)
def _matcher(patterns: tuple[str, ...]) -> re.Pattern[str] | None:
    if not patterns:
        return None
    return re.compile("|".join(".*".join(map(re.escape, p.split("*"))) for p in patterns))


@lru_cache(maxsize=64)
def reader_prefixes(patterns: tuple[str, ...]) -> tuple[str, ...]:
    """What the fast reader must read: its own prefixes plus each pattern's literal start.

    Each prefix costs the reader a search of the whole page, so prefixes that share a start
    up to an ``_`` are merged (``process_cpu_seconds_total`` and
    ``process_resident_memory_bytes`` are read as ``process_``): a few more lines to skip
    cost less than another pass over a large page. Which families are kept is decided by the
    patterns, not by these prefixes.
    """
    out: list[str] = []
    for p in sorted({*DEFAULT_PREFIXES, *(p.split("*", 1)[0] for p in patterns)}):
        if out:
            common = _common_start(out[-1], p)
            if "_" in common:
                out[-1] = common
                continue
        out.append(p)
    return tuple(out)


def _common_start(a: str, b: str) -> str:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return a[:n]


def _family_of(sample: str, types: Mapping[str, str]) -> tuple[str, str]:
    """(family, type) of a sample name: ``x_bucket`` belongs to histogram ``x``, …"""
    kind = types.get(sample)
    if kind is not None:
        return sample, kind
    for kind_name, suffixes in _SUFFIXES.items():
        for suffix in suffixes:
            if sample.endswith(suffix):
                base = sample[: -len(suffix)]
                if types.get(base) == kind_name:
                    return base, kind_name
    return sample, "unknown"


def select(exp: Exposition, patterns: tuple[str, ...],
           histograms: Mapping[str, Mapping[LabelSet, Buckets]] | None = None,
           ) -> tuple[PassFamily, ...]:
    """The families of ``exp`` whose names match ``patterns``, in page order.

    ``histograms`` (from :func:`~kpexporter.kubeproxy.families.extract`) supplies the
    converted microsecond histogram; without it nothing is converted.
    """
    match = _matcher(patterns)
    if match is None:
        return ()
    grouped: dict[str, tuple[str, list[Sample]]] = {}
    types, fullmatch = exp.types, match.fullmatch
    for sample, series in exp.samples.items():
        family, kind = _family_of(sample, types)
        if family.startswith(_OURS) or not fullmatch(family):
            continue
        entry = grouped.get(family)
        if entry is None:
            entry = grouped[family] = (kind, [])
        out = entry[1]
        for labels, value in series.items():
            if labels:
                shown = _SHOWN.get(labels)
                if shown is None:
                    shown = _shown(labels)
                if not shown:
                    continue
                labels = shown
            out.append((sample, labels, value))
    helps = exp.helps
    families: list[PassFamily] = []
    for name, (kind, samples) in grouped.items():
        if not samples:
            continue
        if kind in _SUFFIXES and not _well_formed(name, kind, samples):
            # Prometheus would refuse the family (a bucket without a numeric ``le``, ...):
            # each sample name on its own, untyped, is what the page still says.
            by_name: dict[str, list[Sample]] = {}
            for one in samples:
                by_name.setdefault(one[0], []).append(one)
            families += [PassFamily(n, "unknown", "", tuple(ss)) for n, ss in by_name.items()]
            continue
        if kind in _SUFFIXES:
            samples = _by_series(name, kind, samples)
        doc = helps.get(name, "")
        if kind == "counter":  # the table names a counter without ``_total``
            if name.endswith("_total"):
                name = name[:-6]
            else:  # a counter named otherwise (pre-1.x client_golang) has no such name
                kind = "unknown"
        families.append(PassFamily(name, cast(Type, kind), doc, tuple(samples)))
    converted = _converted(exp, grouped, histograms)
    if converted is not None:
        families.append(converted)
    return tuple(families)


def _well_formed(name: str, kind: str, samples: list[Sample]) -> bool:
    """Whether a histogram's or summary's samples have the shape the formats require: every
    bucket with a numeric ``le`` and every series with a ``+Inf`` bucket (OpenMetrics wants
    it), every quantile sample with a numeric ``quantile``."""
    label = "le" if kind == "histogram" else "quantile"
    main = name + "_bucket" if kind == "histogram" else name
    memo = _NUMBERED[label]
    series: set[LabelSet] = set()
    infinite = 0
    for sample, labels, _ in samples:
        if sample == main:
            ok = memo.get(labels)
            if ok is None:
                ok = _numbered(memo, label, labels)
            if not ok:
                return False
            if kind == "histogram":
                infinite += ok == _INF
                series.add(_series_of(label, labels))
        elif sample == name:  # a histogram sample without a suffix
            return False
    return infinite == len(series)


_SERIES_OF: dict[str, Memo[LabelSet, LabelSet]] = {"le": Memo(16384), "quantile": Memo(16384)}
"""A bucket's (quantile's) label set -> its series' (without ``le``). Bounded, speed only."""


def _series_of(label: str, labels: LabelSet) -> LabelSet:
    """``labels`` without ``label`` (``le``, ``quantile``): the series a bucket belongs to."""
    series = _SERIES_OF[label].get(labels)
    if series is None:
        series = _SERIES_OF[label].put(labels, tuple(p for p in labels if p[0] != label))
    return series


def _by_series(name: str, kind: str, samples: list[Sample]) -> list[Sample]:
    """Each series' samples together (buckets, ``_sum``, ``_count``), as OpenMetrics requires;
    the page lists them by sample name."""
    label, main = ("le", name + "_bucket") if kind == "histogram" else ("quantile", name)
    memo = _SERIES_OF[label]
    groups: dict[LabelSet, list[Sample]] = {}
    for one in samples:
        labels = one[1]
        if one[0] == main:
            series = memo.get(labels)
            labels = series if series is not None else _series_of(label, labels)
        group = groups.get(labels)
        if group is None:
            groups[labels] = [one]
        else:
            group.append(one)
    if len(groups) == 1:
        return samples
    return [one for group in groups.values() for one in group]


_NUMBERED: dict[str, Memo[LabelSet, int]] = {"le": Memo(16384), "quantile": Memo(16384)}
"""Label set -> whether its ``le`` (``quantile``) reads as a number (see ``_numbered``).
Bounded; only speed depends on it."""


_INF = 2  # _numbered's answer for a value that reads as +Inf


def _numbered(memo: Memo[LabelSet, int], label: str, labels: LabelSet) -> int:
    """0: no such label or not a number; 1: a number; 2 (``_INF``): +Inf."""
    text = next((v for k, v in labels if k == label), None)
    ok = 0
    if text is not None:
        try:
            ok = _INF if parse_go_float(text) == math.inf else 1
        except ValueError:
            ok = 0
    return memo.put(labels, ok)


def _converted(exp: Exposition, grouped: Mapping[str, object],
               histograms: Mapping[str, Mapping[LabelSet, Buckets]] | None,
               ) -> PassFamily | None:
    """The microsecond histogram in seconds, when it is passed through and seconds are not
    on the page."""
    if (histograms is None or _MICROSECONDS not in grouped
            or _SECONDS + "_bucket" in exp.samples or _SECONDS in grouped):
        return None
    series = histograms.get(CONVERTED_KEY)
    if not series:
        return None
    samples: list[Sample] = []
    for labels, b in series.items():
        for le, count in zip(b.les, b.counts, strict=True):
            samples.append((_SECONDS + "_bucket", tuple(sorted((*labels, ("le", le)))), count))
        if not math.isnan(b.sum):
            samples.append((_SECONDS + "_sum", labels, b.sum))
        if not math.isnan(b.count):
            samples.append((_SECONDS + "_count", labels, b.count))
    return PassFamily(_SECONDS, "histogram", CONVERTED_HELP, tuple(samples))


_SHOWN: Memo[LabelSet, LabelSet] = Memo(16384)
"""Page label set -> the one to write (``()`` for one too long): the same few hundred every
poll. Bounded; only speed depends on it."""


def _shown(labels: LabelSet) -> LabelSet:
    if sum(len(k) + len(v) for k, v in labels) > MAX_LABEL_CHARS:
        return ()  # never remembered: a hostile page must not fill the memo with megabytes
    shown = labels
    if any(k == "node" or k[:2] == "__" for k, _ in labels):
        shown = exported_labels(labels)
    return _SHOWN.put(labels, shown)


def exported_labels(labels: LabelSet) -> LabelSet:
    """The page's labels with ``node`` (and names Prometheus reserves, ``__*``) renamed
    ``exported_<name>``, as Prometheus renames a clashing label without ``honor_labels``: a
    page must not pass for another node. Sorted by name again."""
    taken = {"node"} | {k for k, _ in labels}
    out: list[tuple[str, str]] = []
    for name, value in labels:
        if name == "node" or name.startswith("__"):
            new = "exported_" + name
            while new in taken:
                new = "exported_" + new
            taken.add(new)
            name = new
        out.append((name, value))
    return tuple(sorted(out))
