"""Every ``kpexporter_*`` family the exporter serves, described once.

``FAMILIES`` is the one table: name, type, help, labels and how to read the samples from a
target's state. Every writer walks it — the text page (``service.text``), OpenMetrics
(``service.openmetrics``), the JSON API (``service.api``) and the HTML page
(``service.page``) — so the order of the table is the order of the page, and a family is
added, renamed or documented in one place. No other module spells a family's name.

Kinds of entry (each writer knows how to write each kind):

- :class:`Scalars` — a gauge or counter, per node. ``read(state)`` returns rows
  ``(label values, value)``, label values in the order of ``labels`` (``node`` is added by the
  writers); a value may be ``bool``/``int``/``float`` (the JSON API keeps the type, the pages
  write it as a float); no row, no sample. :func:`per_node` (a :class:`PerNode`, which the
  text writer reads without building rows) covers the common case of one value of
  :class:`~kpexporter.core.derive.Derived` per node::

      per_node("kpexporter_sync_pending_seconds", "How long ...", lambda d: d.sync_pending,
               json="derived.sync.pending_seconds", column="change pending")

- :class:`Histograms` — a histogram per node, rows ``(label values, DurationHistogram)``.
- :class:`Summaries` — one of derive's quantile summaries (``Summary.name`` is the family's
  name without ``kpexporter_``); label sets come from :func:`summary_labels`.
- :class:`ProcessScalars` — a process-level gauge or counter (``build_info``; counters of
  the process such as remote-write's): ``read()`` takes no state, the samples carry no
  ``node`` and appear once on every page, per-node pages (``/metrics?node=``) included::

      ProcessScalars("kpexporter_example_sent", "counter", "Samples sent.", ("status",),
                     read=lambda: [((k,), n) for k, n in sorted(SENT.items())])

- :class:`PassThrough` — a block of families whose names come from the data (kube-proxy's
  own series passed through): ``read(state)`` returns :class:`RawFamily` objects (name, type,
  help, samples); the writers add ``node`` to each sample, group the same name across
  targets under one HELP/TYPE, and cache a target's block while ``read`` returns the very
  same tuple object. Put the entry where the block belongs in the page.

JSON (``json=``): a dotted path in one ``/api/v1/targets`` entry. A family without labels
sets that key (``null`` when it has no row); ``a.b[].field`` gathers a labelled family into
a list of objects, one per label set (the labels as keys, the value under ``field``; two
families with the same list merge by label set); an ``info`` family (``_info``, value 1)
gives its last label's value; a summary family appends its summaries to ``a.b[]``. Paths
under ``derived.`` are written only once the target was polled. HTML (``column=``): the
family is a column of ``/`` under that title.

:func:`target_samples` and :func:`process_samples` are the generic reading of an entry as
(sample name, labels, value): OpenMetrics and remote write use them; the text writer writes
the same samples from its per-target cache, and the tests hold the two to the same bytes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar

from kpexporter import __version__
from kpexporter.config.slos import DEFAULT_SLOS
from kpexporter.core.derive import Derived, Summary
from kpexporter.core.slo_state import OBJECTIVES, SLOValue, SLOWindowValue
from kpexporter.core.state import POLL_BUCKETS, DurationHistogram, TargetState
from kpexporter.kubeproxy.families import HISTOGRAMS
from kpexporter.kubeproxy.passthrough import PassFamily
from kpexporter.promtext.floats import non_finite
from kpexporter.service.remote_write_stats import rows as rw_rows
from kpexporter.vocabulary import ENDPOINTS

__all__ = [
    "FAMILIES", "PREFIX", "Family", "Histograms", "PassThrough", "PerNode", "ProcessScalars",
    "RawFamily",
    "Row", "Scalars", "Summaries", "Table", "per_node", "summary_labels",
]

PREFIX = "kpexporter_"
Value = bool | int | float
Row = tuple[tuple[str, ...], Value]
"""(label values in the family's ``labels`` order, value)."""
Type = Literal["gauge", "counter", "histogram", "summary", "info", "untyped", "unknown"]
_V = TypeVar("_V")


@dataclass(frozen=True, slots=True)
class Family:
    """What every kind has: the exposition name (a counter's without ``_total``), type, help."""

    name: str
    type: Type
    help: str
    labels: tuple[str, ...] = ()
    """Label names besides ``node`` (per-target kinds), in the order samples are built."""
    json: str | None = None
    column: str | None = None


@dataclass(frozen=True, slots=True)
class Scalars(Family):
    read: Callable[[TargetState], Sequence[Row]] = lambda _: ()
    info: bool = False
    """An ``_info`` family: value 1, the (last) label is the information."""


@dataclass(frozen=True, slots=True)
class Histograms(Family):
    read: Callable[[TargetState], Sequence[tuple[tuple[str, ...], DurationHistogram]]] = (
        lambda _: ())
    buckets: tuple[float, ...] = POLL_BUCKETS
    """Upper bounds without ``+Inf`` (always added)."""


@dataclass(frozen=True, slots=True)
class Summaries(Family):
    @property
    def source(self) -> str:
        """``Summary.name`` of this family's summaries."""
        return self.name.removeprefix(PREFIX)

    def read(self, st: TargetState) -> Sequence[Summary]:
        d = st.derived
        if d is None:
            return ()
        name = self.source
        return [s for s in d.summaries if s.name == name]


@dataclass(frozen=True, slots=True)
class ProcessScalars(Family):
    read: Callable[[], Sequence[Row]] = lambda: ()


RawFamily = PassFamily
"""One passed-through family of one target; samples are (sample name, labels, value)."""


@dataclass(frozen=True, slots=True)
class PassThrough(Family):
    read: Callable[[TargetState], Sequence[RawFamily]] = lambda _: ()


Table = Sequence[Family]


def _derived(get: Callable[[Derived], _V | None]) -> Callable[[TargetState], Sequence[Row]]:
    def read(st: TargetState) -> Sequence[Row]:
        d = st.derived
        if d is None:
            return ()
        v = get(d)
        return () if v is None else (((), v),)  # type: ignore[return-value]
    return read


@dataclass(frozen=True, slots=True)
class PerNode(Scalars):
    """A :class:`Scalars` without labels whose one value is ``value(derived)`` (None: absent).

    ``read`` says the same as rows; writers may call ``value`` directly (faster)."""

    value: Callable[[Derived], Value | None] = lambda _: None


def per_node(name: str, help: str, get: Callable[[Derived], Value | None], *,
             json: str | None = None, column: str | None = None) -> PerNode:
    """A gauge with one value per polled node, read from its ``Derived`` (None: absent)."""
    return PerNode(name, "gauge", help, json=json, column=column, read=_derived(get), value=get)


def summary_labels(node: str, s: Summary) -> dict[str, str]:
    """Our labels, then kube-proxy's; one of theirs that clashes becomes ``exported_<name>``.

    As Prometheus does without ``honor_labels``: a page must not be able to set ``node`` (and
    pass for another node) nor ``window``/``quantile`` (two of its series would then render as
    one duplicate series, and Prometheus rejects a scrape with duplicates as a whole). Names
    Prometheus reserves (``__name__``, ``__anything``) are renamed the same way.
    """
    out = {"node": node, "window": s.window}
    for name, value in s.labels:
        while name in out or name == "quantile" or name.startswith("__"):
            name = "exported_" + name
        out[name] = value
    return out


def _errors(st: TargetState) -> Sequence[Row]:
    return [(key, n) for key, n in sorted(st.errors.items())]


def _durations(st: TargetState) -> Sequence[tuple[tuple[str, ...], DurationHistogram]]:
    return [((e,), st.durations[e]) for e in ENDPOINTS]


def _last_success(st: TargetState) -> Sequence[Row]:
    return () if st.derived is None or st.last_success is None else (((), st.last_success),)


def _ip_families(field: str) -> Callable[[TargetState], Sequence[Row]]:
    def read(st: TargetState) -> Sequence[Row]:
        d = st.derived
        if d is None:
            return ()
        return [((f.ip_family,), getattr(f, field)) for f in d.families]
    return read


def _proxy_mode(st: TargetState) -> Sequence[Row]:
    d = st.derived
    return () if d is None or d.proxy_mode is None else (((d.proxy_mode,), 1.0),)


def _slo_values(st: TargetState) -> tuple[SLOValue, ...]:
    return st.slo.values if st.slo is not None and st.derived is not None else ()


def _slo(get: Callable[[SLOValue], float]) -> Callable[[TargetState], Sequence[Row]]:
    """Rows ``((slo,), value)``; a counter that never saw its source (NaN) is absent."""
    def read(st: TargetState) -> Sequence[Row]:
        return [((v.slo,), get(v)) for v in _slo_values(st) if not math.isnan(v.events_total)]
    return read


def _slo_window(get: Callable[[SLOWindowValue], float]
                ) -> Callable[[TargetState], Sequence[Row]]:
    def read(st: TargetState) -> Sequence[Row]:
        return [((v.slo, w.window), get(w)) for v in _slo_values(st)
                if not math.isnan(v.events_total) for w in v.windows]
    return read


def _passthrough(st: TargetState) -> Sequence[RawFamily]:
    """The last poll's passed-through families: the same tuple until the next poll."""
    m = st.last.metrics if st.last is not None else None
    return m.passthrough if m is not None else ()


def _summary(name: str, help: str) -> Summaries:
    assert name.removeprefix(PREFIX) in HISTOGRAMS, name  # derive summarises only these
    return Summaries(name, "summary", help, json="derived.summaries[]")


FAMILIES: tuple[Family, ...] = (
    ProcessScalars("kpexporter_build_info", "gauge", "kpexporter's version.", ("version",),
                   read=lambda: (((__version__,), 1.0),)),
    # Remote write (service.remote_write), per receiver; absent without remote_write:.
    ProcessScalars("kpexporter_remote_write_samples_sent", "counter",
                   "Samples the receiver accepted (2xx).", ("url",),
                   read=lambda: rw_rows("sent")),
    ProcessScalars("kpexporter_remote_write_samples_failed", "counter",
                   "Samples given up after an answer that retrying cannot change (a 4xx "
                   "other than 429).", ("url",), read=lambda: rw_rows("failed")),
    ProcessScalars("kpexporter_remote_write_samples_dropped", "counter",
                   "Samples dropped unsent: reason=queue_full, the oldest, while the queue "
                   "was at its capacity (receiver down or slow).", ("url", "reason"),
                   read=lambda: rw_rows("dropped")),
    ProcessScalars("kpexporter_remote_write_pending_samples", "gauge",
                   "Samples queued or in flight to the receiver.", ("url",),
                   read=lambda: rw_rows("pending")),
    ProcessScalars("kpexporter_remote_write_last_send_timestamp_seconds", "gauge",
                   "When the receiver last accepted a batch (Unix seconds).", ("url",),
                   read=lambda: rw_rows("last_send")),
    Scalars("kpexporter_poll_errors", "counter",
            "Failed requests to kube-proxy by endpoint and reason "
            "(reason=parse also counts each malformed line skipped).",
            ("endpoint", "reason"), read=_errors),
    Histograms("kpexporter_poll_duration_seconds", "histogram",
               "Duration of each request to kube-proxy.", ("endpoint",), read=_durations),
    per_node("kpexporter_up", "1 when the last poll reached and parsed both kube-proxy "
             "endpoints (a 503 from /healthz counts as reached).", lambda d: d.up,
             json="derived.up"),
    Scalars("kpexporter_last_success_timestamp_seconds", "gauge",
            "When the last fully successful poll started (Unix seconds).",
            json="last_success", read=_last_success),
    per_node("kpexporter_healthz_healthy", "1 when kube-proxy's /healthz answered 200.",
             lambda d: d.healthz_healthy, json="derived.healthz.healthy"),
    per_node("kpexporter_healthz_status_code",
             "HTTP status of the last /healthz answer (0 when none).",
             lambda d: d.healthz_status, json="derived.healthz.status_code", column="/healthz"),
    per_node("kpexporter_healthz_node_eligible", "The /healthz body's nodeEligible (1.28+): 0 "
             "while the node is being deleted or drained.", lambda d: d.node_eligible,
             json="derived.healthz.node_eligible"),
    per_node("kpexporter_healthz_last_updated_timestamp_seconds",
             "The /healthz body's lastUpdated (Unix seconds); before 1.33 equal to "
             "currentTime whenever the answer is 200.", lambda d: d.last_updated,
             json="derived.healthz.last_updated"),
    per_node("kpexporter_healthz_staleness_seconds",
             "currentTime - lastUpdated from the /healthz body, >= 0; +Inf when kube-proxy "
             "never synced. 0 by construction on a 200 before 1.33.", lambda d: d.staleness,
             json="derived.healthz.staleness_seconds"),
    Scalars("kpexporter_healthz_family_healthy", "gauge",
            "Per-IP-family health from the 1.33+ /healthz status map.", ("ip_family",),
            json="derived.healthz.families[].healthy", read=_ip_families("healthy")),
    Scalars("kpexporter_healthz_family_staleness_seconds", "gauge",
            "currentTime - the family's lastUpdated (its last successful sync), from the "
            "1.33+ status map.", ("ip_family",),
            json="derived.healthz.families[].staleness_seconds",
            read=_ip_families("staleness")),
    per_node("kpexporter_clock_skew_seconds", "kube-proxy's currentTime minus the exporter's "
             "clock at the middle of the /healthz request.", lambda d: d.clock_skew,
             json="derived.healthz.clock_skew_seconds"),
    per_node("kpexporter_sync_last_timestamp_seconds",
             "kube-proxy's kubeproxy_sync_proxy_rules_last_timestamp_seconds (the stalest IP "
             "family's).", lambda d: d.sync_last, json="derived.sync.last_timestamp_seconds"),
    per_node("kpexporter_sync_pending_seconds",
             "How long the oldest queued rule change has waited unsynced, on kube-proxy's "
             "clock (0 when none is waiting).", lambda d: d.sync_pending,
             json="derived.sync.pending_seconds", column="change pending"),
    # Summaries: in derive's order (sorted by name), so the JSON list keeps it.
    _summary("kpexporter_network_programming_duration_seconds",
             "Quantiles of kube-proxy's network-programming latency over the window "
             "(from kubeproxy_network_programming_duration_seconds)."),
    _summary("kpexporter_sync_full_proxy_rules_duration_seconds",
             "Quantiles of kube-proxy's full-resync duration over the window "
             "(from kubeproxy_sync_full_proxy_rules_duration_seconds)."),
    _summary("kpexporter_sync_partial_proxy_rules_duration_seconds",
             "Quantiles of kube-proxy's partial-sync duration over the window "
             "(from kubeproxy_sync_partial_proxy_rules_duration_seconds)."),
    _summary("kpexporter_sync_proxy_rules_duration_seconds",
             "Quantiles of kube-proxy's rule-sync duration over the window "
             "(from kubeproxy_sync_proxy_rules_duration_seconds, or the pre-1.14 "
             "kubeproxy_sync_proxy_rules_latency_microseconds converted to seconds); "
             "window=lifetime is the cumulative histogram."),
    Scalars("kpexporter_proxy_mode_info", "gauge", "kube-proxy's mode from /proxyMode.",
            ("mode",), json="derived.proxy_mode", column="mode", read=_proxy_mode, info=True),
    # SLOs (core.slo_state): objectives, restart-proof event counters, windows, budget.
    ProcessScalars("kpexporter_slo_objective_ratio", "gauge",
                   "The SLO's objective: the ratio of good events aimed at (slos: config).",
                   ("slo",), read=lambda: [((k,), v) for k, v in OBJECTIVES.items()]),
    Scalars("kpexporter_slo_good_events", "counter",
            "Good events of the SLO (syncs / network programming at or under the threshold, "
            "polls that found kube-proxy available); continuous across kube-proxy restarts.",
            ("slo",), json="slos[].good_events_total", read=_slo(lambda v: v.good_total)),
    Scalars("kpexporter_slo_events", "counter",
            "All events of the SLO (syncs, network-programming observations, polls); "
            "continuous across kube-proxy restarts.",
            ("slo",), json="slos[].events_total", read=_slo(lambda v: v.events_total)),
    Scalars("kpexporter_slo_sli_ratio", "gauge",
            "Good events / all events over the window (NaN with fewer than slos.min_events "
            "events).", ("slo", "window"), json="slo_windows[].sli_ratio",
            read=_slo_window(lambda w: w.sli)),
    Scalars("kpexporter_slo_burn_rate", "gauge",
            "(1 - SLI) / (1 - objective) over the window: 1 spends the error budget exactly "
            "over the SLO period (NaN with fewer than slos.min_events events).",
            ("slo", "window"), json="slo_windows[].burn_rate",
            read=_slo_window(lambda w: w.burn_rate)),
    Scalars("kpexporter_slo_error_budget_remaining_ratio", "gauge",
            f"1 - burn rate over the exporter's retained period: the longest slos.windows "
            f"window ({DEFAULT_SLOS.windows[-1].name} by default), not the SLO period "
            "(increase() the counters in Prometheus for that). Negative once overspent; NaN "
            "with fewer than slos.min_events events.",
            ("slo",), json="slos[].error_budget_remaining_ratio",
            read=_slo(lambda v: v.budget_remaining)),
    # kube-proxy's own families (passthrough: config), as it wrote them plus node.
    PassThrough("kube-proxy passthrough", "unknown",
                "kube-proxy's own families matching the passthrough: patterns.",
                read=_passthrough),
)
"""The page, in order. See the module docstring for how to add an entry."""


def le_text(bound: float) -> str:
    """A histogram bound as the ``le`` label value (``+Inf`` for infinity)."""
    return non_finite(bound) or repr(bound)


Sample = tuple[str, dict[str, str], float]
"""(sample name, labels, value): a counter's name with ``_total``, a histogram's with
``_bucket``/``_sum``/``_count``; labels in the order they are built (``node`` first)."""


def sample_name(name: str, type: str) -> str:
    """The name a scalar family's samples carry (a counter's with ``_total``)."""
    return name + "_total" if type == "counter" else name


def process_samples(fam: ProcessScalars) -> Iterator[Sample]:
    """A process-level family's samples (no ``node``)."""
    name = sample_name(fam.name, fam.type)
    for values, v in fam.read():
        yield name, dict(zip(fam.labels, values, strict=True)), float(v)


def target_samples(fam: Family, st: TargetState) -> Iterator[Sample]:
    """One target's samples of one per-target entry (none for a process-level one).

    The generic reading of the table; the text writer writes the same samples faster
    (``service.text``, tested byte for byte against ``prometheus_client`` fed from here).
    """
    node = st.node
    if isinstance(fam, Scalars):
        name = sample_name(fam.name, fam.type)
        for values, v in fam.read(st):
            yield name, {"node": node, **dict(zip(fam.labels, values, strict=True))}, float(v)
    elif isinstance(fam, Histograms):
        les = [*map(le_text, fam.buckets), "+Inf"]
        for values, h in fam.read(st):
            base = {"node": node, **dict(zip(fam.labels, values, strict=True))}
            for le, c in zip(les, [*h.cumulative(), h.count], strict=True):
                yield fam.name + "_bucket", {**base, "le": le}, float(c)
            yield fam.name + "_sum", base, float(h.sum)
            yield fam.name + "_count", base, float(h.count)
    elif isinstance(fam, Summaries):
        for s in fam.read(st):
            base = summary_labels(node, s)
            for q, v in s.quantiles:
                yield fam.name, {**base, "quantile": repr(q)}, float(v)
            yield fam.name + "_sum", base, float(s.sum)
            yield fam.name + "_count", base, float(s.count)
    elif isinstance(fam, PassThrough):
        for rf in fam.read(st):
            for name, pairs, value in rf.samples:
                yield name, {"node": node, **dict(pairs)}, float(value)
