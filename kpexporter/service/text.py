"""``/metrics`` in the text format (0.0.4), written from the family table, cached per target.

Why not the collector (``service.openmetrics``) for this: it builds a ``prometheus_client``
``Metric`` and a ``Sample`` for every series on every scrape and formats them one by one.
That is a few milliseconds for one kube-proxy, but 5,000 targets are about 700,000 series
and take many seconds. Here:

- each target's lines are kept as bytes, one piece per family of the table, in a cache that
  belongs to this module (keyed weakly by the ``TargetState``, so it goes with its target)
  and rewritten only when the target changed since they were written
  (``TargetState.version``, bumped by every poll). The poller writes them right after each
  poll (:func:`target_pieces`), so a scrape only joins bytes. Within a changed target, a
  family whose rows did not change, a summary that did not change (the very ``Summary``
  object derive's memo handed back) and a histogram that did not move keep their bytes;
- per-target constants (label sets with the node name, bucket line prefixes) are formatted
  once per target;
- the page is each family's HELP/TYPE lines and every target's piece for it, in one join.

The page is the collector's page byte for byte (``generate_latest`` over
``service.openmetrics``): the same families in the table's order, the same samples, label
pairs sorted and escaped, values formatted by ``promtext.floats``; ``tests/service/test_text.py``
checks that, and that ``promtool check metrics`` accepts it.

Thread safety: ``/metrics`` is served from a worker thread while polls update the states
on the event loop (see :func:`target_pieces`); like the collector, a scrape that writes a
target while a poll is landing may show that poll half applied, and the next one shows it
whole.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from kpexporter.core.derive import Summary
from kpexporter.core.state import TargetState
from kpexporter.memo import Memo
from kpexporter.promtext.floats import format_value
from kpexporter.service.families import (
    FAMILIES,
    Family,
    Histograms,
    PassThrough,
    PerNode,
    ProcessScalars,
    RawFamily,
    Row,
    Scalars,
    Summaries,
    Table,
    Value,
    le_text,
    sample_name,
    summary_labels,
)

__all__ = ["CONTENT_TYPE", "render_openmetrics", "render_text", "target_pieces"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

RawPiece = tuple[tuple[str, str, str], bytes]
"""((name, type, help) of a passed-through family, one target's lines for it)."""
Piece = tuple[int, bytes | tuple[RawPiece, ...]]
"""(index of a table entry, one target's lines for it: a tuple for a pass-through block)."""


def _escape(value: str) -> str:
    """A label value as the text format wants it (``\\``, newline and ``"`` escaped)."""
    if "\\" in value or "\n" in value or '"' in value:
        return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
    return value


def _labels(pairs: dict[str, str]) -> str:
    """``{a="x",b="y"}``: pairs sorted by name, as generate_latest writes them."""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(pairs.items())) + "}"


def header(name: str, typ: str, help: str) -> bytes:
    """HELP and TYPE lines as generate_latest writes them (a counter's name with ``_total``)."""
    name = sample_name(name, typ)
    typ = {"info": "gauge", "unknown": "untyped"}.get(typ, typ)
    doc = help.replace("\\", "\\\\").replace("\n", "\\n")
    return f"# HELP {name} {doc}\n# TYPE {name} {typ}\n".encode()


def openmetrics_header(name: str, typ: str, help: str) -> bytes:
    """HELP and TYPE lines as prometheus_client's OpenMetrics writer puts them: the family's
    own name (a counter's without ``_total``), ``unknown`` for untyped, ``"`` escaped too."""
    typ = "unknown" if typ == "untyped" else typ
    doc = help.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
    return f"# HELP {name} {doc}\n# TYPE {name} {typ}\n".encode()


_HEADERS: Memo[tuple[str, str, str], bytes] = Memo(4096)
_OM_HEADERS: Memo[tuple[str, str, str], bytes] = Memo(4096)


def _header_of(key: tuple[str, str, str], openmetrics: bool = False) -> bytes:
    memo, write = (_OM_HEADERS, openmetrics_header) if openmetrics else (_HEADERS, header)
    h = memo.get(key)
    return h if h is not None else memo.put(key, write(*key))


@dataclass(slots=True)
class _TargetText:
    """One target's written pieces and what they were written from."""

    node: str
    table: Table
    owner: weakref.ref[TargetState]
    current: tuple[int, tuple[Piece, ...]] = (-1, ())
    """(the ``TargetState.version`` they show, the pieces): swapped as one, never edited."""
    node_labels: str = ""  # '{node="x"}'
    labels: Memo[tuple[int, tuple[str, ...]], str] = field(default_factory=lambda: Memo(256))
    """(family index, label values) -> the label set's text."""
    rows: dict[int, tuple[Sequence[Row], bytes]] = field(default_factory=dict)
    values: dict[int, tuple[Value, bytes]] = field(default_factory=dict)
    histograms: Memo[tuple[int, tuple[str, ...]], tuple[tuple[int, float], bytes]] = field(
        default_factory=lambda: Memo(64))
    prefixes: Memo[tuple[int, tuple[str, ...]], list[str]] = field(
        default_factory=lambda: Memo(64))
    summaries: dict[tuple[str, object, str], tuple[Summary, bytes]] = field(default_factory=dict)
    summary_labels: Memo[tuple[object, str, tuple[float, ...]], tuple[list[str], str]] = field(
        default_factory=lambda: Memo(64))
    """(page labels, window, quantiles) -> the label sets of the quantile lines, and of
    ``_sum``/``_count``: the same few for every poll of the target."""
    raw: dict[int, tuple[object, tuple[RawPiece, ...]]] = field(default_factory=dict)
    raw_heads: Memo[tuple[str, tuple[tuple[str, str], ...]], str] = field(
        default_factory=lambda: Memo(16384))
    """(sample name, page labels) -> ``name{labels,node="x"} ``: the same every poll."""
    plan: list[tuple[int, Family]] = field(default_factory=list)
    """(index, entry) of the table's per-target entries."""
    fresh: dict[tuple[str, object, str], tuple[Summary, bytes]] = field(default_factory=dict)
    """This write's summaries (see ``summaries``)."""

    def __post_init__(self) -> None:
        self.node_labels = _labels({"node": self.node})
        self.plan = [(i, f) for i, f in enumerate(self.table)
                     if not isinstance(f, ProcessScalars)]

    def label_text(self, i: int, fam: Family, values: tuple[str, ...]) -> str:
        if not values:
            return self.node_labels
        key = (i, values)
        text = self.labels.get(key)
        if text is None:
            text = _labels({"node": self.node, **dict(zip(fam.labels, values, strict=True))})
            if sum(map(len, values)) <= 1024:  # never keep huge hostile values
                self.labels.put(key, text)
        return text


def _scalars(i: int, fam: Scalars, st: TargetState, cache: _TargetText,
             out: list[Piece]) -> None:
    rows = fam.read(st)
    if not rows:
        return
    known = cache.rows.get(i)
    if known is not None and known[0] == rows:
        out.append((i, known[1]))
        return
    name = sample_name(fam.name, fam.type)
    text = "".join([f"{name}{cache.label_text(i, fam, values)} {format_value(v)}\n"
                    for values, v in rows]).encode()
    cache.rows[i] = (rows, text)
    out.append((i, text))


def _per_node(i: int, fam: PerNode, v: Value, cache: _TargetText, out: list[Piece]) -> None:
    known = cache.values.get(i)
    if known is not None and known[0] == v:
        out.append((i, known[1]))
        return
    text = f"{fam.name}{cache.node_labels} {format_value(v)}\n".encode()
    cache.values[i] = (v, text)
    out.append((i, text))


def _histograms(i: int, fam: Histograms, st: TargetState, cache: _TargetText,
                out: list[Piece]) -> None:
    for values, h in fam.read(st):
        key = (h.count, h.sum)
        hkey = (i, values)
        known = cache.histograms.get(hkey)
        if known is not None and known[0] == key:
            out.append((i, known[1]))
            continue
        prefixes = cache.prefixes.get(hkey)
        if prefixes is None:
            base = {"node": st.node, **dict(zip(fam.labels, values, strict=True))}
            prefixes = cache.prefixes.put(hkey, [
                f"{fam.name}_bucket{_labels({**base, 'le': le_text(b)})} " for b in fam.buckets
            ] + [f"{fam.name}_bucket{_labels({**base, 'le': '+Inf'})} ",
                 f"{fam.name}_sum{_labels(base)} ", f"{fam.name}_count{_labels(base)} "])
        counts = [*h.cumulative(), h.count]
        lines = [f"{prefix}{format_value(v)}\n" for prefix, v in zip(prefixes, counts,
                                                                      strict=False)]
        lines.append(f"{prefixes[-2]}{format_value(h.sum)}\n")
        lines.append(f"{prefixes[-1]}{format_value(h.count)}\n")
        text = "".join(lines).encode()
        cache.histograms.put(hkey, (key, text))
        out.append((i, text))


def _summary_lines(name: str, node: str, s: Summary, cache: _TargetText) -> bytes:
    quantiles = s.quantiles
    label_key = (s.labels, s.window, tuple([q for q, _ in quantiles]))
    label_sets = cache.summary_labels.get(label_key)
    if label_sets is None:
        base = summary_labels(node, s)
        label_sets = ([_labels({**base, "quantile": repr(q)}) for q, _ in quantiles],
                      _labels(base))
        if sum(len(v) for _, v in s.labels) <= 1024:  # never keep huge hostile values
            cache.summary_labels.put(label_key, label_sets)
    lines = [f"{name}{labels} {format_value(v)}\n"
             for labels, (_, v) in zip(label_sets[0], quantiles, strict=True)]
    tail = label_sets[1]
    lines.append(f"{name}_sum{tail} {format_value(s.sum)}\n")
    lines.append(f"{name}_count{tail} {format_value(s.count)}\n")
    return "".join(lines).encode()


def _raw(i: int, fam: PassThrough, st: TargetState, cache: _TargetText,
         out: list[Piece]) -> None:
    block = fam.read(st)
    known = cache.raw.get(i)
    if known is not None and known[0] is block:
        pieces = known[1]
    else:
        pieces = tuple(((rf.name, rf.type, rf.help), _raw_lines(st.node, rf, cache.raw_heads))
                       for rf in block)
        cache.raw[i] = (block, pieces)
    if pieces:
        out.append((i, pieces))


def _raw_lines(node: str, rf: RawFamily,
               heads: Memo[tuple[str, tuple[tuple[str, str], ...]], str]) -> bytes:
    out = []
    for name, labels, v in rf.samples:
        head = heads.get((name, labels))
        if head is None:
            head = f"{name}{_labels({'node': node, **dict(labels)})} "
            if sum(len(v) for _, v in labels) <= 1024:  # never keep huge hostile values
                heads.put((name, labels), head)
        out.append(f"{head}{format_value(v)}\n")
    return "".join(out).encode()


def _write(st: TargetState, cache: _TargetText) -> tuple[Piece, ...]:
    """One target's pieces in table order: (entry index, lines), only entries with lines."""
    pieces: list[Piece] = []
    cache.fresh = {}
    node = st.node
    d = st.derived
    groups: dict[str, list[Summary]] = {}
    if d is not None:
        for s in d.summaries:
            group = groups.get(s.name)
            if group is None:
                groups[s.name] = [s]
            else:
                group.append(s)
    fresh = cache.fresh
    known_summaries = cache.summaries
    for i, fam in cache.plan:
        if isinstance(fam, PerNode):
            if d is not None:
                v = fam.value(d)
                if v is not None:
                    _per_node(i, fam, v, cache, pieces)
        elif isinstance(fam, Summaries):  # derive's summaries, grouped once (== fam.read)
            for s in groups.get(fam.source, ()):
                key = (s.name, s.labels, s.window)
                known = known_summaries.get(key)
                text = known[1] if known is not None and known[0] is s else _summary_lines(
                    fam.name, node, s, cache)
                fresh[key] = (s, text)
                pieces.append((i, text))
        elif isinstance(fam, Scalars):
            _scalars(i, fam, st, cache, pieces)
        elif isinstance(fam, Histograms):
            _histograms(i, fam, st, cache, pieces)
        elif isinstance(fam, PassThrough):
            _raw(i, fam, st, cache, pieces)
    cache.summaries = cache.fresh  # only this poll's summaries: the cache never grows
    return tuple(pieces)


_TEXT: dict[int, _TargetText] = {}
"""``id(state)`` -> that target's written lines; an entry goes when its ``TargetState`` does
(a weak reference's callback), and ``_TargetText.owner`` guards against a reused id."""


def _forget(key: int) -> Callable[[object], object]:
    return lambda _: _TEXT.pop(key, None)


def target_pieces(st: TargetState, table: Table = FAMILIES) -> tuple[Piece, ...]:
    """The target's lines, rewritten only if it changed since they were last written.

    The poller calls this right after each poll (so a scrape mostly joins bytes already
    written); a scrape calls it for every target. Two threads may write the same target at
    once: each files its pieces under the version it read *before* writing, in one tuple
    swap, so pieces are never served under a version they do not show.
    """
    key = id(st)
    cache = _TEXT.get(key)
    if cache is None or cache.owner() is not st or cache.node != st.node or (
            cache.table is not table):
        cache = _TEXT[key] = _TargetText(st.node, table, weakref.ref(st, _forget(key)))
    version = st.version  # read first: a poll landing meanwhile makes the next call rewrite
    known, pieces = cache.current
    if known != version:
        pieces = _write(st, cache)
        cache.current = (version, pieces)
    return pieces


def _process(fam: ProcessScalars) -> bytes:
    name = sample_name(fam.name, fam.type)
    return "".join([
        f"{name}{_labels(dict(zip(fam.labels, values, strict=True))) if values else ''} "
        f"{format_value(v)}\n" for values, v in fam.read()]).encode()


def render_text(states: Iterable[TargetState], table: Table = FAMILIES) -> bytes:
    """The page for ``states`` (all targets, or the ones a ``?node=`` asked for).

    Process-level families appear once whatever the states; a family without a sample is
    left out, HELP and TYPE included.
    """
    page = _render(states, table, openmetrics=False)
    assert page is not None
    return page


def render_openmetrics(states: Iterable[TargetState], table: Table = FAMILIES) -> bytes | None:
    """The same page in OpenMetrics 1.0.0, byte for byte what prometheus_client's writer
    (``openmetrics.exposition.generate_latest``, escaping ``underscores``) makes of
    ``service.openmetrics``: the same sample lines under other HELP/TYPE lines, then ``# EOF``.

    Why: Prometheus asks for OpenMetrics first, so with per-node scrapes nearly every scrape
    is one of these; through the collector one node's page took ~6 ms, the text page's
    lines take a join. None when a passed-through family is one that writer treats apart
    (an ``info``/``stateset``/``gaugehistogram`` type, a name with ``:``, whose sample names it
    rewrites): the caller then asks the collector.
    """
    return _render(states, table, openmetrics=True)


_OM_APART = frozenset({"info", "stateset", "gaugehistogram"})


def _render(states: Iterable[TargetState], table: Table, openmetrics: bool) -> bytes | None:
    parts: list[list[bytes | tuple[RawPiece, ...]]] = [[] for _ in table]
    for st in states:
        for i, lines in target_pieces(st, table):
            parts[i].append(lines)
    out: list[bytes] = []
    for i, fam in enumerate(table):
        if isinstance(fam, ProcessScalars):
            body = _process(fam)
            if body:
                out += (_header_of((fam.name, fam.type, fam.help), openmetrics), body)
        elif not parts[i]:
            continue
        elif isinstance(fam, PassThrough):
            grouped: dict[str, tuple[tuple[str, str, str], list[bytes]]] = {}
            for block in parts[i]:
                assert isinstance(block, tuple)
                for key, lines in block:
                    known = grouped.get(key[0])
                    if known is None:
                        grouped[key[0]] = (key, [lines])
                    else:
                        known[1].append(lines)
            for key, texts in grouped.values():
                if openmetrics and (key[1] in _OM_APART or ":" in key[0]):
                    return None
                out.append(_header_of(key, openmetrics))
                out += texts
        else:
            if openmetrics and fam.type in _OM_APART:
                return None
            out.append(_header_of((fam.name, fam.type, fam.help), openmetrics))
            out += parts[i]  # type: ignore[arg-type]
    if openmetrics:
        out.append(b"# EOF\n")
    return b"".join(out)
