"""The fast reader of the few kube-proxy series we use from a Prometheus text page.

Why not ``prometheus_client.parser``: it parses the whole page (thousands of ``go_*``,
``rest_client_*``, ``apiserver_*`` ... lines) character by character, when we need a few hundred
``kubeproxy_*`` lines and one ``process_start_time_seconds``. So:

1. **Find** each prefix's span with one ``str.find`` and one ``str.rfind`` (C speed); the rest
   of the page is never split into lines. client_golang sorts families by name, so the
   ``kubeproxy_`` lines are normally one contiguous block. Correctness does not rely on that:
   foreign lines inside a span (an interleaved page) are skipped one by one, so such a page is
   read the same, only more slowly.
2. **Split** each sample line at the last ``"`` into a *head* (``name{a="x",le="1``) and a
   *tail* (``} 0``), or at the first space when it has no labels. Each piece is valid or not
   on its own, whatever the other piece is, so each is checked once and remembered
   (head -> name and label set, tail -> value). On a kube-proxy page the tails repeat
   (``} 0``, ``} 1``); from one poll to the next the heads repeat too, so a steady-state read
   is a few dict look-ups per line. The memos are module-level, bounded, and only ever hold
   what the checks accepted: results never depend on them, only speed does.
3. **Fall back** to a strict, regex-driven reading of the whole line (:func:`_slow_sample`)
   when a piece fails its quick check: backslash escapes, whitespace variants, ``{}``, bad
   input. The slow path is the definition of what is valid and says what is wrong; the quick
   checks only accept a subset of what it accepts (the fuzz tests compare both with
   ``prometheus_client``).

Validity follows Prometheus 2.42's text lexer: names ``[a-zA-Z_:][a-zA-Z0-9_:]*``, label names
``[a-zA-Z_][a-zA-Z0-9_]*``, spaces/tabs allowed between tokens, an optional trailing comma in
the label set, values through Go's ``strconv.ParseFloat`` minus ``p``/``P``/``_`` (Prometheus
rejects those), an optional integer timestamp (checked, then ignored), label values unescaped
for ``\\\\``, ``\\n`` and ``\\"`` only (any other escape stays as written, as in Prometheus).

Where Prometheus would fail the whole scrape we degrade instead: a malformed line, a duplicate
label name, a duplicate series (the first is kept), a repeated ``# TYPE`` (the first is kept)
is counted in ``bad_lines``, described in ``errors`` and skipped; the rest of the page is read.
Deliberate leniencies: bytes that are not UTF-8 are decoded with ``errors="replace"`` (bad
bytes spoil only the lines that hold them); CRLF line endings are accepted (Prometheus would
reject the ``\\r`` as part of the value; a proxy that rewrites line endings should not cost us
the node). Stricter than Prometheus: a raw control character other than tab (CR, NUL, ESC …)
inside a label value makes the line malformed. Prometheus 2.42 keeps such bytes verbatim (its
scrape stores them, ``/federate`` writes them back raw: the text format has no escape for
them), so passing them on would put terminal escapes and bare CRs on our page and in our
logs; kube-proxy never writes one. ``# HELP`` and other comments are not checked. Quoted
(UTF-8) metric names, which Prometheus 2.42 cannot read either, are not matched.

Pure as far as anyone can tell: no I/O, no clock, never raises, same answer for the same input.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import pairwise
from typing import TypeVar

from kpexporter.memo import Memo
from kpexporter.promtext.gofloat import parse_go_float

__all__ = [
    "DEFAULT_PREFIXES",
    "MAX_ERRORS",
    "Exposition",
    "LabelSet",
    "read_exposition",
    "reset_memos",
]

LabelSet = tuple[tuple[str, str], ...]
"""Label pairs sorted by label name (``le`` included where the series has it)."""

DEFAULT_PREFIXES: tuple[str, ...] = ("kubeproxy_", "process_start_time_seconds")
MAX_ERRORS = 5
"""How many error messages are kept; ``bad_lines`` counts them all."""

_TYPES = frozenset({"counter", "gauge", "histogram", "summary", "untyped"})
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_TIMESTAMP = re.compile(r"-?[0-9]+")
# The slow path: Prometheus's lexer as regexes, each anchored with .match(line, pos).
_NAME_AT = re.compile(r"[ \t]*([a-zA-Z_:][a-zA-Z0-9_:]*)")
_LABEL_PAIR = re.compile(
    r'[ \t]*([a-zA-Z_][a-zA-Z0-9_]*)[ \t]*=[ \t]*"((?:[^"\\]|\\.)*)"[ \t]*(,?)'
)
_LABELS_END = re.compile(r"[ \t]*\}")
_TAIL = re.compile(r"[ \t]*([^ \t]+)(?:[ \t]+([^ \t]+))?[ \t]*")
_ESCAPE = re.compile(r"\\(.)")
_UNESCAPED = {"\\": "\\", "n": "\n", '"': '"'}
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
"""Raw control characters (tab aside) in a label value: the line is refused (see above)."""
_HELP_ESCAPE = re.compile(r"\\([\\n])")  # HELP escapes only \\ and \n
# Comments: what may stand before a prefix on a line that is ours; a TYPE line.
_META_PREFIX = re.compile(r"[ \t]*#[ \t]+(?:TYPE|HELP)[ \t]+")
_TYPE_START = re.compile(r"[ \t]*#[ \t]+TYPE[ \t]")
_TYPE_LINE = re.compile(r"[ \t]*#[ \t]+TYPE[ \t]+([^ \t]*)[ \t]*([^ \t]*)[ \t]*(.*)")

# Memos of validated line pieces, shared by all reads (see the module docstring, point 2).
_MEMO_LIMIT = 16384
"""Entries per memo; a full memo is emptied, so a hostile page costs speed, never memory."""
_HEADS: Memo[str, tuple[str, LabelSet]] = Memo(_MEMO_LIMIT)  # 'name{a="x",le="1' -> (name, pairs)
_NAMES: Memo[str, tuple[str, LabelSet]] = Memo(_MEMO_LIMIT)  # 'name' (no labels) -> (name, ())
_BRACE_TAILS: Memo[str, float] = Memo(_MEMO_LIMIT)  # '} 0' -> 0.0: what follows the last '"'
_SPACE_TAILS: Memo[str, float] = Memo(_MEMO_LIMIT)  # '0' -> 0.0: after 'name ' without labels
_FIRST_KEYS: Memo[str, str] = Memo(_MEMO_LIMIT)  # text before a set's first value -> label name
_LATER_KEYS: Memo[str, str] = Memo(_MEMO_LIMIT)  # text between two values -> label name
_TYPE_LINES: Memo[str, tuple[str, str]] = Memo(_MEMO_LIMIT)  # '# TYPE name kind' -> (name, kind)
_FIRST_KEYS["le="] = "le"
_LATER_KEYS[",le="] = "le"


_V = TypeVar("_V")


_MEMO_KEY_MAX = 512
"""Longer pieces are not memoised: entries times this bounds each memo in bytes too."""


def _remember(memo: Memo[str, _V], key: str, value: _V) -> _V:
    """Store in a bounded memo and return ``value``."""
    if len(key) > _MEMO_KEY_MAX:  # real kube-proxy heads are < 150 characters
        return value
    return memo.put(key, value)


def reset_memos() -> None:
    """Forget every memo, as at import. Only speed changes: benchmarks time a cold read."""
    for memo in (_HEADS, _NAMES, _BRACE_TAILS, _SPACE_TAILS, _TYPE_LINES):
        memo.clear()
    _FIRST_KEYS.clear()
    _FIRST_KEYS["le="] = "le"
    _LATER_KEYS.clear()
    _LATER_KEYS[",le="] = "le"


@dataclass(slots=True)
class Exposition:
    """The prefixed series of one page, plus how much of it was unreadable."""

    samples: dict[str, dict[LabelSet, float]] = field(default_factory=dict)
    """Sample name (``…_bucket``, ``…_sum``, …) -> label set -> value, in page order."""
    types: dict[str, str] = field(default_factory=dict)
    """Family name -> type, from the ``# TYPE`` lines of prefixed families."""
    helps: dict[str, str] = field(default_factory=dict)
    """Family name -> HELP text (unescaped), from the ``# HELP`` lines of prefixed families
    (the first one kept; never checked: only the pass-through re-exposes it)."""
    bad_lines: int = 0
    """Malformed or duplicate lines skipped among those we looked at."""
    errors: list[str] = field(default_factory=list)
    """The first few (``MAX_ERRORS``) problems, as ``"line N: why"``."""


class _BadLine(ValueError):
    """A line we looked at and could not accept; the message says why."""


def read_exposition(data: bytes | str, prefixes: tuple[str, ...] = DEFAULT_PREFIXES) -> Exposition:
    """Read the samples whose metric names start with one of ``prefixes`` (and their TYPE).

    Lines of other families are not looked at, so their errors are not ours to count. A
    prefix ``""`` reads every family (slowly); one that cannot begin a metric name, none.
    """
    exp = Exposition()
    try:
        text = data if isinstance(data, str) else data.decode("utf-8", "replace")
        prefixes = _name_prefixes(tuple(prefixes))
        if text and prefixes:
            _Reader(text, prefixes, exp).read()
    except Exception as exc:  # pragma: no cover - a bug, not an input: still never fail a poll
        exp.bad_lines += 1
        if len(exp.errors) < MAX_ERRORS:
            exp.errors.append(f"internal error: {type(exc).__name__}: {exc}")
    return exp


_NAME_START = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_:"


@lru_cache(maxsize=64)
def _name_prefixes(prefixes: tuple[str, ...]) -> tuple[str, ...]:
    """Only what can begin a metric name; ``""`` means every name (a comment never does)."""
    if "" in prefixes:
        return tuple(_NAME_START)
    return tuple(p for p in prefixes if p[0] in _NAME_START)


class _Reader:
    """One read of one page."""

    __slots__ = ("exp", "prefixes", "text")

    def __init__(self, text: str, prefixes: tuple[str, ...], exp: Exposition) -> None:
        self.text = text
        self.prefixes = prefixes
        self.exp = exp

    def read(self) -> None:
        """Read from each prefix's first line to its last; nothing else is looked at.

        A mention of a prefix inside a foreign line (a label value, a HELP text) neither
        starts nor ends a span.
        """
        text, prefixes = self.text, self.prefixes
        hits = [text.find(p) for p in prefixes]
        lasts: list[int | None] = [None] * len(prefixes)  # end of each prefix's last line
        pos = 0
        while True:
            for k, hit in enumerate(hits):
                if 0 <= hit < pos:
                    last = lasts[k]
                    hits[k] = -1 if last is not None and last < pos else text.find(prefixes[k], pos)
            live = [h for h in hits if h >= 0]
            if not live:
                return
            hit = min(live)
            start = text.rfind("\n", 0, hit) + 1
            end = self._line_end(hit)
            if start != hit and not _owns(text[start:hit]):
                pos = end + 1  # the prefix is inside some other line
                continue
            k = hits.index(hit)
            last = lasts[k]
            if last is None:
                last = lasts[k] = self._last_line_end(prefixes[k], hit)
            end = max(end, last)
            self._read_lines(start, end)
            pos = end + 1

    def _line_end(self, at: int) -> int:
        """Index of the newline ending the line at ``at`` (or the text's length)."""
        end = self.text.find("\n", at)
        return len(self.text) if end < 0 else end

    def _last_line_end(self, prefix: str, floor: int) -> int:
        """End of the last line at or after ``floor`` that is ours for ``prefix``."""
        text = self.text
        high = len(text)
        while True:
            at = text.rfind(prefix, floor, high)
            if at <= floor:
                return self._line_end(floor)
            start = text.rfind("\n", 0, at) + 1
            if start == at or _owns(text[start:at]):
                return self._line_end(at)
            high = at + len(prefix) - 1  # a mention inside a foreign line: look further back

    def _read_lines(self, start: int, end: int) -> None:
        """Read the lines of ``text[start:end]``: ours are parsed, comments checked for TYPE."""
        chunk = self.text[start:end]
        lines = chunk.split("\n")
        if "\r" in chunk:
            lines = [line[:-1] if line.endswith("\r") else line for line in lines]
        prefixes = self.prefixes
        samples = self.exp.samples
        head_of, name_of = _HEADS.get, _NAMES.get
        brace_value, space_value = _BRACE_TAILS.get, _SPACE_TAILS.get
        for index, line in enumerate(lines):
            if line.startswith(prefixes):
                head, quote, tail = line.rpartition('"')
                if quote:
                    parsed = head_of(head) or _labelled_head(head)
                    value = brace_value(tail)
                    if value is None:
                        value = _brace_tail(tail)
                else:
                    head, _, tail = line.partition(" ")
                    parsed = name_of(head) or _plain_head(head)
                    value = space_value(tail)
                    if value is None:
                        value = _space_tail(tail)
                if parsed is None or value is None:
                    self._slow(line, start, index)
                    continue
                name, key = parsed
                series = samples.get(name)
                if series is None:
                    samples[name] = {key: value}
                else:
                    size = len(series)
                    series.setdefault(key, value)  # one hash of the key, not two
                    if len(series) == size:
                        self._duplicate(name, key, start, index)
            elif line[:1] == "#":
                if line.startswith("# HELP "):
                    self._help_line(line)
                elif line.startswith("# TYPE ") or _TYPE_START.match(line):
                    self._type_line(line, start, index)
            elif line[:1] in (" ", "\t"):  # leading blanks: valid, unusual
                stripped = line.lstrip(" \t")
                if stripped.startswith(prefixes):
                    self._slow(line, start, index)
                elif stripped[:1] == "#" and _TYPE_START.match(line):
                    self._type_line(line, start, index)
            # else: an empty line, or a foreign one inside an interleaved span

    def _slow(self, line: str, start: int, index: int) -> None:
        """Read a line strictly and store it, or count it as bad with the reason."""
        try:
            parsed = _slow_sample(line, self.prefixes)
        except _BadLine as exc:
            self._bad(start, index, str(exc))
            return
        if parsed is None:
            return
        name, key, value = parsed
        series = self.exp.samples.setdefault(name, {})
        if key in series:
            self._duplicate(name, key, start, index)
        else:
            series[key] = value

    def _duplicate(self, name: str, key: LabelSet, start: int, index: int) -> None:
        """Prometheus fails the scrape on a repeated series; we keep the first and go on."""
        self._bad(start, index, f"duplicate series {name}{_show(key)} (first kept)")

    def _type_line(self, line: str, start: int, index: int) -> None:
        """Keep ``# TYPE`` of our families; a bad or repeated one of ours is a bad line."""
        known = _TYPE_LINES.get(line)
        if known is not None:
            name, kind = known
            if not name.startswith(self.prefixes):
                return
        else:
            parts = line.split(" ")
            if len(parts) == 4 and "\t" not in line and "" not in parts:  # "# TYPE name kind"
                name, kind, extra = parts[2], parts[3], ""
            else:
                m = _TYPE_LINE.match(line)
                if m is None:  # pragma: no cover - _TYPE_START matched, so _TYPE_LINE does
                    return
                name, kind, extra = m.groups()
            if not name.startswith(self.prefixes):
                return
            if not _valid_name(name):
                self._bad(start, index, f"invalid metric name in TYPE: {_clip(name)}")
                return
            if kind not in _TYPES or extra:
                self._bad(start, index, f"invalid TYPE for {name}: {_clip(line)}")
                return
            _remember(_TYPE_LINES, line, (name, kind))
        types = self.exp.types
        if name in types:
            self._bad(start, index, f"second TYPE for {name} (first kept)")
        else:
            types[name] = kind

    def _help_line(self, line: str) -> None:
        """Keep the HELP text of our families (``# HELP name text``, text unescaped)."""
        name, _, text = line[7:].partition(" ")
        if name.startswith(self.prefixes) and name not in self.exp.helps:
            if "\\" in text:
                text = _HELP_ESCAPE.sub(lambda m: "\n" if m.group(1) == "n" else m.group(1),
                                        text)
            self.exp.helps[name] = text

    def _bad(self, start: int, index: int, why: str) -> None:
        """Count one bad line; describe it while fewer than MAX_ERRORS are described."""
        exp = self.exp
        exp.bad_lines += 1
        if len(exp.errors) < MAX_ERRORS:
            number = self.text.count("\n", 0, start) + index + 1
            exp.errors.append(f"line {number}: {why}")


def _owns(before: str) -> bool:
    """Whether a prefix preceded by ``before`` on its line starts one of our lines."""
    return not before.strip(" \t") or _META_PREFIX.fullmatch(before) is not None


def _valid_name(name: str) -> bool:
    """``[a-zA-Z_:][a-zA-Z0-9_:]*``, checked with C-speed str methods."""
    return name.isascii() and name.replace(":", "_").isidentifier()


# --- quick checks of line pieces: accept the common shapes, None sends the line to _slow ---


def _labelled_head(head: str) -> tuple[str, LabelSet] | None:
    """``name{a="x",le="1`` (up to the closing quote of the last value), without escapes.

    Without a backslash every ``"`` opens or closes a value, so splitting on ``"`` puts the
    values at odd indexes and ``name=`` / ``,name=`` at even ones: commas, braces and ``=``
    inside values need no special care.
    """
    name, _, labels = head.partition("{")
    if ("\\" in labels or (name not in _NAMES and _plain_head(name) is None)
            or (not labels.isprintable() and _CONTROL.search(labels))):
        return None
    segment, _, value = labels.partition('"')
    if '"' not in value:  # one label: every bucket line before kube-proxy 1.33
        label = _FIRST_KEYS.get(segment) or _label_key(segment, first=True)
        if label is None:
            return None
        out: tuple[str, LabelSet] = (name, ((label, value),))
        if len(head) <= _MEMO_KEY_MAX:  # _remember, inlined: this is the cold read's hot spot
            if len(_HEADS) >= _MEMO_LIMIT:
                _HEADS.clear()
            _HEADS[head] = out
        return out
    parts = labels.split('"')
    if len(parts) % 2:
        return None
    pairs: list[tuple[str, str]] = []
    keys = _FIRST_KEYS
    for j in range(0, len(parts), 2):
        label = keys.get(parts[j]) or _label_key(parts[j], first=j == 0)
        if label is None:
            return None
        pairs.append((label, parts[j + 1]))
        keys = _LATER_KEYS
    pairs.sort()
    if any(a[0] == b[0] for a, b in pairwise(pairs)):
        return None
    out = (name, tuple(pairs))
    if len(head) <= _MEMO_KEY_MAX:
        if len(_HEADS) >= _MEMO_LIMIT:
            _HEADS.clear()
        _HEADS[head] = out
    return out


def _label_key(segment: str, *, first: bool) -> str | None:
    """The label name in ``le=`` (first) or ``,le=`` (later), blanks allowed around each token."""
    s = segment.strip(" \t")
    if not first:
        if not s.startswith(","):
            return None
        s = s[1:].lstrip(" \t")
    if not s.endswith("="):
        return None
    label = s[:-1].rstrip(" \t")
    if not _LABEL_NAME.fullmatch(label):
        return None
    return _remember(_FIRST_KEYS if first else _LATER_KEYS, segment, label)


def _plain_head(name: str) -> tuple[str, LabelSet] | None:
    """The name of a line without labels (the text before its first space)."""
    return _remember(_NAMES, name, (name, ())) if _valid_name(name) else None


def _brace_tail(tail: str) -> float | None:
    """The value in ``} 0`` or ``,} 1 1700000000000`` (what follows the last ``"``)."""
    digits = tail[2:]
    if tail[:2] == "} " and digits.isascii() and digits.isdigit() and len(digits) < 300:
        value = float(digits)  # the usual: an integer count (_remember, inlined)
        if len(_BRACE_TAILS) >= _MEMO_LIMIT:
            _BRACE_TAILS.clear()
        _BRACE_TAILS[tail] = value
        return value
    m = _LABELS_END.match(tail, 1 if tail[:1] == "," else 0)
    if m is None:
        return None
    try:
        return _remember(_BRACE_TAILS, tail, _parse_tail(tail[m.end() :]))
    except _BadLine:
        return None


def _space_tail(tail: str) -> float | None:
    """The value after ``name `` on a line without labels."""
    try:
        return _remember(_SPACE_TAILS, tail, _parse_tail(tail))
    except _BadLine:
        return None


# --- the strict slow path ---


def _slow_sample(line: str, prefixes: tuple[str, ...]) -> tuple[str, LabelSet, float] | None:
    """Read one sample line token by token; raise _BadLine saying what is wrong.

    Returns None for a line that turns out not to be ours (a foreign name after blanks).
    """
    m = _NAME_AT.match(line)
    if m is None:
        raise _BadLine(f"invalid metric name: {_clip(line)}")
    name = m.group(1)
    if not name.startswith(prefixes):
        return None
    pos = m.end()
    if pos < len(line) and line[pos] not in " \t{":
        raise _BadLine(f"invalid metric name: {_clip(line)}")
    pairs: list[tuple[str, str]] = []
    if line[pos:].lstrip(" \t").startswith("{"):
        pos = line.index("{", pos) + 1
        while True:
            end = _LABELS_END.match(line, pos)
            if end is not None:  # "{}" or after a trailing comma
                pos = end.end()
                break
            pair = _LABEL_PAIR.match(line, pos)
            if pair is None:
                why = "unterminated label set" if "}" not in line[pos:] else "malformed label set"
                raise _BadLine(f"{why}: {_clip(line)}")
            label, raw, comma = pair.groups()
            if _CONTROL.search(raw):
                raise _BadLine(f"control character in label value: {_clip(line)}")
            pairs.append((label, _ESCAPE.sub(_unescape, raw) if "\\" in raw else raw))
            pos = pair.end()
            if not comma:
                end = _LABELS_END.match(line, pos)
                if end is None:
                    raise _BadLine(f"malformed label set: {_clip(line)}")
                pos = end.end()
                break
    elif pos >= len(line) or line[pos] not in " \t":
        raise _BadLine(f"no value: {_clip(line)}")
    pairs.sort()
    for (a, _), (b, _) in pairwise(pairs):
        if a == b:
            raise _BadLine(f"duplicate label {a!r}: {_clip(line)}")
    return name, tuple(pairs), _parse_tail(line[pos:])


def _unescape(m: re.Match[str]) -> str:
    """Prometheus's replacer: ``\\\\``, ``\\n``, ``\\"``; any other escape stays as written."""
    return _UNESCAPED.get(m.group(1), m.group(0))


def _parse_tail(tail: str) -> float:
    """The value (and optional integer timestamp, ignored) after the name or label set."""
    m = _TAIL.fullmatch(tail)
    if m is None:
        raise _BadLine("no value" if not tail.strip(" \t") else f"bad value: {_clip(tail)}")
    value, timestamp = m.groups()
    if timestamp is not None and not _TIMESTAMP.fullmatch(timestamp):
        raise _BadLine(f"bad timestamp: {_clip(timestamp)}")
    return _parse_value(value)


def _parse_value(text: str) -> float:
    """Go's ParseFloat as Prometheus uses it (no hex ``p`` exponents, no ``_``)."""
    if _DECIMAL.fullmatch(text):
        value = float(text)  # correctly rounded, like Go
        if math.isinf(value):
            raise _BadLine(f"value out of range: {_clip(text)}")
        return value
    if "p" in text or "P" in text or "_" in text:
        raise _BadLine(f"bad value: {_clip(text)}")
    try:
        return parse_go_float(text)
    except ValueError:
        raise _BadLine(f"bad value: {_clip(text)}") from None


def _clip(text: str, limit: int = 60) -> str:
    """A line fragment short enough for an error message."""
    return repr(text if len(text) <= limit else text[:limit] + "…")


def _show(key: LabelSet) -> str:
    """``{a="b"}`` for messages."""
    return "{" + ",".join(f"{k}={v!r}" for k, v in key) + "}" if key else ""
