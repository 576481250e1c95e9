"""``/metrics`` in the text format (0.0.4), written straight from per-target state.

Why not the collector path (``render.py``) for this: it builds a ``prometheus_client``
``Metric`` and a ``Sample`` for every series on every scrape and formats them one by one.
That is a few milliseconds for one kube-proxy, but 5,000 targets are about 700,000 series
and take many seconds. Here:

- each target's lines are kept as bytes (``TargetState.rendered``) and rewritten only when
  the target changed since they were written (``TargetState.version``, bumped by every
  poll). The poller writes them right after each poll, on the event loop, so a scrape only
  joins bytes (5,000 targets: ~0.1 s instead of ~0.5 s of writing at scrape time, while the
  polls compete for the same core). Within a changed target, a summary that did not change
  (the very ``Summary`` object derive's memo handed back) and counters that did not move
  keep their bytes;
- per-target constants (label sets with the node name, bucket line prefixes) are formatted
  once per target;
- the page is the families' HELP/TYPE lines and every target's pieces, in one join.

The page is the collector's page: the same families in the same order (first appearance,
as ``render._Families`` collects them), the same samples in the same order, the same
HELP/TYPE text (``render.FAMILIES``, ``render.SUMMARY_HELP``), label pairs sorted and
escaped and values formatted as ``prometheus_client.generate_latest`` does.
``tests/test_fastrender.py`` checks that ``prometheus_client.parser`` reads both pages to
the same samples, and that ``promtool check metrics`` accepts this one.

OpenMetrics (asked for with ``Accept``) stays on the collector path.

Thread safety: ``/metrics`` is served from a worker thread while polls update the states
on the event loop (see ``target_pieces``); like the collector path, a scrape that writes a
target while a poll is landing may show that poll half applied, and the next one shows it
whole.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from kpexporter import __version__
from kpexporter.core.derive import Summary
from kpexporter.core.state import ENDPOINTS, POLL_BUCKETS, TargetState
from kpexporter.service.openmetrics import FAMILIES, SUMMARY_HELP, summary_labels

__all__ = ["CONTENT_TYPE", "format_value", "render_text"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
P = "kpexporter_"
_INF = math.inf
_LES = (*(("+Inf" if math.isinf(b) else repr(b)) for b in POLL_BUCKETS), "+Inf")


def format_value(value: float) -> str:
    """A sample value exactly as ``prometheus_client.utils.floatToGoString`` writes it.

    Memoised (4,096 values at most, ~0.5 MB): most values on the page repeat (counts,
    quantiles of the same buckets) and formatting is a third of the cost of writing a line.
    Zero is never looked up (``-0.0 == 0.0`` but prints differently), NaN never stored.
    """
    if value == 0:
        return "-0.0" if math.copysign(1.0, value) < 0 else "0.0"
    s = _FORMATTED.get(value)
    if s is not None:
        return s
    s = _format(value)
    if value == value:
        if len(_FORMATTED) >= _FORMATTED_LIMIT:
            _FORMATTED.clear()
        _FORMATTED[value] = s
    return s


_FORMATTED: dict[float, str] = {}
_FORMATTED_LIMIT = 4096


def _format(value: float) -> str:
    d = float(value)
    if d != d:
        return "NaN"
    if d == _INF:
        return "+Inf"
    if d == -_INF:
        return "-Inf"
    s = repr(d)
    if d > 0:
        dot = s.find(".")
        if dot > 6:  # Go switches to an exponent sooner than Python does
            mantissa = f"{s[0]}.{s[1:dot]}{s[dot + 1:]}".rstrip("0.")
            return f"{mantissa}e+{dot - 1:02d}"
    return s


def _escape(value: str) -> str:
    """A label value as the text format wants it (``\\``, newline and ``"`` escaped)."""
    if "\\" in value or "\n" in value or '"' in value:
        return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
    return value


def _labels(pairs: dict[str, str]) -> str:
    """``{a="x",b="y"}``: pairs sorted by name, as generate_latest writes them."""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(pairs.items())) + "}"


def _header(family: str) -> bytes:
    if family in FAMILIES:
        typ, doc = FAMILIES[family]
    else:
        typ, doc = "summary", SUMMARY_HELP.get(family, family)
    name = P + family + ("_total" if typ == "counter" else "")
    doc = doc.replace("\\", "\\\\").replace("\n", "\\n")
    return f"# HELP {name} {doc}\n# TYPE {name} {typ}\n".encode()


_HEADERS: dict[str, bytes] = {}


def _header_of(family: str) -> bytes:
    h = _HEADERS.get(family)
    if h is None:
        if len(_HEADERS) > 1024:  # summary names come from a fixed table: never in practice
            _HEADERS.clear()
        h = _HEADERS[family] = _header(family)
    return h


Piece = tuple[str, bytes]
"""(family, lines of one target for it)."""


@dataclass(slots=True)
class _TargetText:
    """One target's written lines and what they were written from (``TargetState.rendered``)."""

    node: str
    current: tuple[int, list[Piece]] = (-1, [])
    """(the ``TargetState.version`` they show, the pieces): swapped as one, never edited."""
    node_labels: str = ""  # '{node="x"}'
    bucket_prefixes: dict[str, list[str]] = field(default_factory=dict)
    errors: tuple[object, bytes] | None = None
    error_labels: dict[tuple[str, str], str] = field(default_factory=dict)
    durations: dict[str, tuple[object, bytes]] = field(default_factory=dict)
    summaries: dict[tuple[str, object, str], tuple[Summary, bytes]] = field(default_factory=dict)
    summary_labels: dict[tuple[object, str, tuple[float, ...]], tuple[list[str], str]] = field(
        default_factory=dict)
    """(page labels, window, quantiles) -> the label sets of the quantile lines, and of
    ``_sum``/``_count``: the same few for every poll of the target."""

    def __post_init__(self) -> None:
        node = self.node
        self.node_labels = _labels({"node": node})
        for endpoint in ENDPOINTS:
            base = {"node": node, "endpoint": endpoint}
            self.bucket_prefixes[endpoint] = [
                f"{P}poll_duration_seconds_bucket{_labels({**base, 'le': le})} " for le in _LES
            ] + [f"{P}poll_duration_seconds_sum{_labels(base)} ",
                 f"{P}poll_duration_seconds_count{_labels(base)} "]


def _errors(st: TargetState, cache: _TargetText) -> bytes:
    items = sorted(st.errors.items())
    if cache.errors is not None and cache.errors[0] == items:
        return cache.errors[1]
    lines = []
    for key, n in items:
        labels = cache.error_labels.get(key)
        if labels is None:
            endpoint, reason = key
            labels = cache.error_labels[key] = _labels(
                {"node": st.node, "endpoint": endpoint, "reason": reason})
        lines.append(f"{P}poll_errors_total{labels} {format_value(n)}\n")
    text = "".join(lines).encode()
    cache.errors = (items, text)
    return text


def _durations(st: TargetState, endpoint: str, cache: _TargetText) -> bytes:
    h = st.durations[endpoint]
    key = (h.count, h.sum)
    known = cache.durations.get(endpoint)
    if known is not None and known[0] == key:
        return known[1]
    prefixes = cache.bucket_prefixes[endpoint]
    values = [*h.cumulative(), h.count]
    lines = [f"{prefix}{format_value(v)}\n" for prefix, v in zip(prefixes, values, strict=False)]
    lines.append(f"{prefixes[-2]}{format_value(h.sum)}\n")
    lines.append(f"{prefixes[-1]}{format_value(h.count)}\n")
    text = "".join(lines).encode()
    cache.durations[endpoint] = (key, text)
    return text


def _summary(node: str, s: Summary, cache: _TargetText,
             fresh: dict[tuple[str, object, str], tuple[Summary, bytes]]) -> bytes:
    key = (s.name, s.labels, s.window)
    known = cache.summaries.get(key)
    if known is not None and known[0] is s:
        text = known[1]
    else:
        qs = tuple(q for q, _ in s.quantiles)
        label_key = (s.labels, s.window, qs)
        label_sets = cache.summary_labels.get(label_key)
        if label_sets is None:
            if len(cache.summary_labels) > 64:  # a page that keeps inventing label values
                cache.summary_labels.clear()
            base = summary_labels(node, s)
            label_sets = (
                [_labels({**base, "quantile": repr(q)}) for q in qs], _labels(base))
            if sum(len(v) for _, v in s.labels) <= 1024:  # never keep huge hostile values
                cache.summary_labels[label_key] = label_sets
        name = P + s.name
        lines = [f"{name}{labels} {format_value(v)}\n"
                 for labels, (_, v) in zip(label_sets[0], s.quantiles, strict=True)]
        tail = label_sets[1]
        lines.append(f"{name}_sum{tail} {format_value(s.sum)}\n")
        lines.append(f"{name}_count{tail} {format_value(s.count)}\n")
        text = "".join(lines).encode()
    fresh[key] = (s, text)
    return text


def _write(st: TargetState, cache: _TargetText) -> list[Piece]:
    """One target's pieces, in the order ``render.target_families`` adds its samples."""
    pieces: list[Piece] = [("poll_errors", _errors(st, cache))]
    pieces += [("poll_duration_seconds", _durations(st, e, cache)) for e in ENDPOINTS]
    d = st.derived
    if d is None:
        return pieces
    node = st.node
    lab = cache.node_labels
    gauges: list[tuple[str, str, float]] = [("up", lab, float(d.up))]
    if st.last_success is not None:
        gauges.append(("last_success_timestamp_seconds", lab, st.last_success))
    gauges.append(("healthz_healthy", lab, float(d.healthz_healthy)))
    gauges.append(("healthz_status_code", lab, float(d.healthz_status)))
    if d.healthz_ok:
        if d.node_eligible is not None:
            gauges.append(("healthz_node_eligible", lab, float(d.node_eligible)))
        if d.last_updated is not None:
            gauges.append(("healthz_last_updated_timestamp_seconds", lab, d.last_updated))
        if d.staleness is not None:
            gauges.append(("healthz_staleness_seconds", lab, d.staleness))
        for fam in d.families:
            fl = _labels({"node": node, "ip_family": fam.ip_family})
            gauges.append(("healthz_family_healthy", fl, float(fam.healthy)))
            gauges.append(("healthz_family_staleness_seconds", fl, fam.staleness))
        if d.clock_skew is not None:
            gauges.append(("clock_skew_seconds", lab, d.clock_skew))
    if d.metrics_ok:
        if d.sync_last is not None:
            gauges.append(("sync_last_timestamp_seconds", lab, d.sync_last))
        if d.sync_pending is not None:
            gauges.append(("sync_pending_seconds", lab, d.sync_pending))
    pieces += [(name, f"{P}{name}{labels} {format_value(v)}\n".encode())
               for name, labels, v in gauges]
    fresh: dict[tuple[str, object, str], tuple[Summary, bytes]] = {}
    if d.metrics_ok:
        pieces += [(s.name, _summary(node, s, cache, fresh)) for s in d.summaries]
    cache.summaries = fresh  # only this poll's summaries: the cache never grows
    if d.proxy_mode is not None:
        mode = _labels({"node": node, "mode": d.proxy_mode})
        pieces.append(("proxy_mode_info", f"{P}proxy_mode_info{mode} 1.0\n".encode()))
    return pieces


def target_pieces(st: TargetState) -> list[Piece]:
    """The target's lines, rewritten only if it changed since they were last written.

    The poller calls this right after each poll (so a scrape mostly joins bytes already
    written); a scrape calls it for every target. Two threads may write the same target at
    once: each files its pieces under the version it read *before* writing, in one tuple
    swap, so pieces are never served under a version they do not show.
    """
    cache = st.rendered
    if not isinstance(cache, _TargetText) or cache.node != st.node:
        cache = st.rendered = _TargetText(st.node)
    version = st.version  # read first: a poll landing meanwhile makes the next call rewrite
    known, pieces = cache.current
    if known != version:
        pieces = _write(st, cache)
        cache.current = (version, pieces)
    return pieces


def render_text(states: Iterable[TargetState]) -> bytes:
    """The whole page: ``build_info``, then every family with every target's lines for it."""
    families: dict[str, list[bytes]] = {
        "build_info": [f'{P}build_info{{version="{_escape(__version__)}"}} 1.0\n'.encode()]}
    for st in states:
        for family, text in target_pieces(st):
            parts = families.get(family)
            if parts is None:
                families[family] = [text]
            else:
                parts.append(text)
    out: list[bytes] = []
    for family, parts in families.items():
        out.append(_header_of(family))
        out += parts
    return b"".join(out)
