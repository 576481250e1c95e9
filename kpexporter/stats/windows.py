"""Sliding windows over one histogram series, with Prometheus ``increase()`` semantics.

The windowed summaries must equal ``histogram_quantile(q, increase(x_bucket[w]))`` as
Prometheus 2.42 evaluates it when samples sit on both ends of the (closed) range: the last
value minus the first, plus the previous value at every drop (a drop is a counter reset,
e.g. a kube-proxy restart), per series, with no extrapolation.

How it stays exact:

* Every snapshot has a reset correction ``R`` (the sum of the previous values at all resets
  seen so far, per series). ``v + R`` is a reset-free cumulative counter, so any window is a
  subtraction of two snapshots: exactly Prometheus's sum of deltas, and no intermediate
  snapshot is needed to answer it. ``R`` only changes at a reset: snapshots between two
  resets share one *epoch* and one ``R``.
* A snapshot equal to the previous one is not stored (an idle kube-proxy's histograms do not
  move for an hour). That loses nothing: the value "as of" any time is that of the newest
  stored snapshot at or before it, and the reset rule compares with the previous *value*.
* Snapshots older than needed for ``horizon`` are dropped, keeping the newest one at or
  before ``latest time - horizon`` as the baseline of the longest window. Past
  ``max_snapshots`` (polls much faster than ``horizon`` needs), every other interior snapshot
  is dropped; windows then start at most one (doubled) poll gap earlier than asked.

How it stays small (what Prometheus's own chunks do, in the same spirit): bucket counts and
``_count`` are integers, so a snapshot is stored as its integer increase over the previous
one, differenced along ``le`` (an observation bumps every bucket from its own up: one
non-zero number) and written as (zero run, value) zig-zag varints — a busy series costs a few
bytes a poll, plus 8 for ``_sum`` (a double, as scraped) and 8 for the time. Two full integer
vectors are kept: the oldest snapshot (``base``) and the newest (``head``); a window start is
rebuilt from the nearer one, then followed poll by poll (one record each) by a cursor per
window length. Integer arithmetic on counts below 2**53 gives the very doubles Prometheus
computes. A series whose counts are not such integers (never kube-proxy's) falls back to full
double vectors per snapshot, the exact layout this module used before.

Floating point: every result on integer counts is exact. A non-integer ``_sum`` matches
Prometheus bit for bit while the window holds no reset; across resets it may differ in the
last bits, because Prometheus adds the corrections one by one while this subtracts two
running totals. A NaN value poisons the correction of its series from then on (Prometheus
recovers once the NaN leaves the window); kube-proxy never emits one.
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_right
from collections.abc import Iterator, Sequence
from itertools import pairwise

from kpexporter.stats.histogram import Buckets

__all__ = ["HistogramHistory"]

_EXACT = 2**53
"""Integers below this are exact doubles: integer math then equals Prometheus's float math."""

_CURSORS = 8
"""Window lengths followed by a cursor each (the exporter asks two by default)."""

_SMALL = 256
_FLOATS = tuple(float(i) for i in range(_SMALL))
"""Small increases as shared floats: an idle window is zeros, not a fresh float per bucket."""

Increase = tuple[list[float], float, float]
"""A window: bucket increases (page order), ``_sum`` increase, ``_count`` increase."""


# --- varint records -----------------------------------------------------------------------


def _put(out: bytearray, v: int) -> None:
    """Append ``v`` (any int) zig-zag encoded as a little-endian base-128 varint."""
    z = v << 1 if v >= 0 else ((-v) << 1) - 1
    while z >= 0x80:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)


def _encode(delta: Sequence[int], out: bytearray) -> None:
    """One snapshot's increase per series, differenced along the vector, as (zero run, value)
    pairs; trailing zeros are implied by the record's end."""
    prev = run = 0
    for d in delta:
        e = d - prev
        prev = d
        if e:
            _put(out, run)
            _put(out, e)
            run = 0
        else:
            run += 1


def _decode_into(log: bytearray, i: int, end: int, acc: list[int], sign: int) -> None:
    """Add ``sign`` × the differenced record ``log[i:end]`` into ``acc`` (still differenced)."""
    pos = 0
    first = True
    while i < end:
        z = log[i]
        i += 1
        if z >= 0x80:
            z &= 0x7F
            shift = 7
            while True:
                b = log[i]
                i += 1
                z |= (b & 0x7F) << shift
                if b < 0x80:
                    break
                shift += 7
        v = (z >> 1) if not z & 1 else -((z + 1) >> 1)
        if first:  # a zero run
            pos += v
        else:
            acc[pos] += sign * v
            pos += 1
        first = not first


def _integers(vec: Sequence[float]) -> list[int] | None:
    """``vec`` as ints when every value is an integer below 2**53 in magnitude, else None."""
    try:
        ints = [int(x) for x in vec]
    except (ValueError, OverflowError):  # NaN, infinity
        return None
    if ints != list(vec) or (ints and (max(ints) >= _EXACT or min(ints) <= -_EXACT)):
        return None
    return ints


# --- the two layouts ----------------------------------------------------------------------


class _IntLog:
    """Integer counts as varint records of per-poll increases; sums and times as doubles."""

    __slots__ = ("_base", "_corr", "_cursors", "_epoch", "_epochs", "_head", "_log", "_offs",
                 "_prev", "_seq0", "_sumcorr", "_sums", "_times")

    def __init__(self) -> None:
        self._times = array("d")
        self._sums = array("d")  # raw ``_sum`` per snapshot
        self._epoch = array("I")  # which reset epoch each snapshot belongs to
        self._offs = array("I")  # where each snapshot's record starts in ``_log``
        self._log = bytearray()
        self._base = array("q")  # v + R of the oldest snapshot: counts then ``_count``
        self._head = array("q")  # v + R of the newest
        self._corr = array("q")  # R of the newest epoch (counts then ``_count``)
        self._sumcorr = 0.0  # R of ``_sum`` in the newest epoch
        self._epochs: dict[int, tuple[float, array[int]]] = {}  # epoch -> (sum R, counts R)
        self._prev: tuple[Sequence[float], float, float] = ((), math.nan, math.nan)
        self._seq0 = 0  # running number of snapshot 0 (stays valid across pruning)
        self._cursors: dict[float, tuple[int, array[int]]] = {}  # window -> (seq, v + R)

    def __len__(self) -> int:
        return len(self._times)

    def add(self, t: float, counts: Sequence[float], s: float, c: float) -> bool | None:
        """Store a snapshot; False when it cannot be held as integers (nothing changed),
        None when it equals the previous one (not stored)."""
        pc, ps, pcount = self._prev
        if self._times and counts == pc and c == pcount and s == ps:
            return None
        ints = _integers((*counts, c))
        if ints is None:
            return False
        if not self._times:
            self._base = self._head = array("q", ints)  # never changed in place: shareable
            self._corr = array("q", bytes(8 * len(ints)))
            self._epochs = {0: (0.0, self._corr)}
            self._append(t, s, 0)
            self._prev = (counts, s, c)
            return True
        head, corr = self._head, self._corr
        prev_raw = [h - r for h, r in zip(head, corr, strict=True)]
        epoch = self._epoch[-1]
        sumcorr = self._sumcorr
        if s < ps or any(n < o for n, o in zip(ints, prev_raw, strict=True)):
            corr = array("q", (r + o if n < o else r
                               for n, o, r in zip(ints, prev_raw, corr, strict=True)))
            if s < ps:
                sumcorr = sumcorr + ps
            epoch += 1
        new_head = [n + r for n, r in zip(ints, corr, strict=True)]
        if max(new_head) >= _EXACT or min(new_head) <= -_EXACT:
            return False
        if epoch != self._epoch[-1]:
            self._corr, self._sumcorr = corr, sumcorr
            self._epochs[epoch] = (sumcorr, corr)
        offset = len(self._log)
        _encode([n - h for n, h in zip(new_head, head, strict=True)], self._log)
        self._head = array("q", new_head)
        self._append(t, s, epoch, offset)
        self._prev = (counts, s, c)
        return True

    def _append(self, t: float, s: float, epoch: int, offset: int = 0) -> None:
        self._times.append(t)
        self._sums.append(s)
        self._epoch.append(epoch)
        self._offs.append(offset)

    def times(self) -> array[float]:
        return self._times

    def _end(self, i: int) -> int:
        return self._offs[i + 1] if i + 1 < len(self._offs) else len(self._log)

    def _walk(self, start: array[int], a: int, b: int, sign: int) -> array[int]:
        """``start`` plus (sign 1) or minus (sign -1) the records ``a..b-1``."""
        acc = [0] * len(start)
        for r in range(a, b):
            _decode_into(self._log, self._offs[r], self._end(r), acc, sign)
        out = array("q", start)
        run = 0
        for j, e in enumerate(acc):
            run += e
            if run:
                out[j] += run
        return out

    def value(self, i: int) -> array[int]:
        """``v + R`` of snapshot ``i``, from the nearer of the two full vectors."""
        last = len(self._times) - 1
        if i == last:
            return self._head
        if i == 0:
            return self._base
        if i <= last - i:
            return self._walk(self._base, 1, i + 1, 1)
        return self._walk(self._head, i + 1, last + 1, -1)

    def _start(self, i: int, key: float) -> array[int]:
        """Snapshot ``i`` as a window start, following the window's cursor when it can."""
        seq = self._seq0 + i
        cur = self._cursors.get(key)
        if cur is not None and cur[0] == seq:
            return cur[1]
        if cur is not None and self._seq0 <= cur[0] < seq and seq - cur[0] <= i:
            vec = self._walk(cur[1], cur[0] - self._seq0 + 1, i + 1, 1)
        else:
            vec = self.value(i)
        if len(self._cursors) >= _CURSORS and key not in self._cursors:
            self._cursors.clear()  # callers ask a few fixed windows; anything else is a test
        self._cursors[key] = (seq, vec)
        return vec

    def window(self, start: int, key: float) -> Increase:
        end = len(self._times) - 1
        a, b = self._start(start, key), self._head
        sa, sb = self._sums[start], self._sums[end]
        ea, eb = self._epoch[start], self._epoch[end]
        s = sb - sa
        if ea != eb:
            s += self._epochs[eb][0] - self._epochs[ea][0]
        inc = [_FLOATS[d] if 0 <= d < _SMALL else float(d)
               for d in map(int.__sub__, b, a)]
        return inc[:-1], s, inc[-1]

    def prune(self, keep_from: int) -> None:
        """Drop snapshots before ``keep_from``; the first kept becomes the base."""
        self._base = self.value(keep_from)
        del self._times[:keep_from]
        del self._sums[:keep_from]
        del self._epoch[:keep_from]
        del self._offs[:keep_from]
        self._seq0 += keep_from
        first = self._epoch[0]
        for e in [e for e in self._epochs if e < first]:
            del self._epochs[e]
        dead = self._offs[1] if len(self._offs) > 1 else len(self._log)  # record 0 is in base
        if dead > len(self._log) // 2:
            del self._log[:dead]
            self._offs = array("I", (max(o - dead, 0) for o in self._offs))

    def thin(self, keep: list[int]) -> None:
        """Keep only the snapshots ``keep`` (sorted, first and last included)."""
        values = self._values()
        kept = [values[i] for i in keep]
        self._log = bytearray()
        self._offs = array("I", [0])
        for prev, cur in pairwise(kept):
            self._offs.append(len(self._log))
            _encode([y - x for x, y in zip(prev, cur, strict=True)], self._log)
        self._times = array("d", (self._times[i] for i in keep))
        self._sums = array("d", (self._sums[i] for i in keep))
        self._epoch = array("I", (self._epoch[i] for i in keep))
        self._cursors.clear()
        self._seq0 += len(values)  # no cursor may match an old running number

    def _values(self) -> list[array[int]]:
        if not self._times:
            return []
        out = [self._base]
        for r in range(1, len(self._times)):
            out.append(self._walk(out[-1], r, r + 1, 1))
        return out

    def snapshots(self) -> Iterator[tuple[float, array[float], array[float]]]:
        """Every snapshot as (time, raw values, correction) double vectors in the float
        layout (buckets, sum, count); one correction array per epoch, shared."""
        corrs: dict[int, array[float]] = {}
        for i, vec in enumerate(self._values()):
            e = self._epoch[i]
            sumcorr, r = self._epochs[e]
            raw = array("d", (float(x - y) for x, y in zip(vec[:-1], r[:-1], strict=True)))
            raw.append(self._sums[i])
            raw.append(float(vec[-1] - r[-1]))
            if e not in corrs:
                corrs[e] = array("d", (float(x) for x in r[:-1]))
                corrs[e].append(sumcorr)
                corrs[e].append(float(r[-1]))
            yield self._times[i], raw, corrs[e]


class _FloatLog:
    """Full double vectors (buckets, sum, count) and their corrections, per snapshot."""

    __slots__ = ("_corr", "_raw", "_times")

    def __init__(self) -> None:
        self._times = array("d")
        self._raw: list[array[float]] = []
        self._corr: list[array[float]] = []

    @classmethod
    def of(cls, log: _IntLog) -> _FloatLog:
        out = cls()
        for t, raw, corr in log.snapshots():
            out._times.append(t)
            out._raw.append(raw)
            out._corr.append(corr)
        return out

    def __len__(self) -> int:
        return len(self._times)

    def times(self) -> array[float]:
        return self._times

    def add(self, t: float, counts: Sequence[float], s: float, c: float) -> bool | None:
        raw = array("d", counts)
        raw.append(s)
        raw.append(c)
        if not self._raw:
            self._append(t, raw, array("d", bytes(8 * len(raw))))
            return True
        prev = self._raw[-1]
        if raw == prev:
            return None
        corr = self._corr[-1]
        if any(new < old for new, old in zip(raw, prev, strict=True)):
            corr = array(
                "d",
                (c + old if new < old else c for new, old, c in zip(raw, prev, corr, strict=True)),
            )
        self._append(t, raw, corr)
        return True

    def _append(self, t: float, raw: array[float], corr: array[float]) -> None:
        self._times.append(t)
        self._raw.append(raw)
        self._corr.append(corr)

    def window(self, start: int, key: float) -> Increase:
        end = len(self._times) - 1
        raw_a, raw_b = self._raw[start], self._raw[end]
        corr_a, corr_b = self._corr[start], self._corr[end]
        if corr_a is corr_b:  # no reset in between: plain ``last - first``, as Prometheus
            inc = [vb - va for va, vb in zip(raw_a, raw_b, strict=True)]
        else:
            inc = [
                (vb - va) + (cb - ca)
                for va, vb, ca, cb in zip(raw_a, raw_b, corr_a, corr_b, strict=True)
            ]
        return inc[:-2], inc[-2], inc[-1]

    def prune(self, keep_from: int) -> None:
        del self._times[:keep_from]
        del self._raw[:keep_from]
        del self._corr[:keep_from]

    def thin(self, keep: list[int]) -> None:
        self._times = array("d", (self._times[i] for i in keep))
        self._raw[:] = [self._raw[i] for i in keep]
        self._corr[:] = [self._corr[i] for i in keep]


class HistogramHistory:
    """Bounded, reset-corrected history of ONE histogram series for sliding windows.

    Times are seconds on any clock that does not jump; ``time.monotonic()`` is the safest.
    Feed it every poll's cumulative ``Buckets`` with ``add`` and ask ``window`` for the
    increase over the last N seconds.
    """

    __slots__ = ("_horizon", "_last_t", "_latest", "_log", "_max")

    def __init__(self, horizon: float, max_snapshots: int = 4096) -> None:
        """``horizon``: the longest window that will be asked for, in seconds.

        ``max_snapshots`` caps memory when polls are much denser than ``horizon`` needs
        (4096 covers one hour at about one poll per second without thinning).
        """
        if not horizon >= 0 or math.isinf(horizon):
            raise ValueError(f"horizon must be finite and >= 0, got {horizon!r}")
        if max_snapshots < 2:
            raise ValueError(f"max_snapshots must be >= 2, got {max_snapshots!r}")
        self._horizon = float(horizon)
        self._max = max_snapshots
        self._log: _IntLog | _FloatLog = _IntLog()
        self._latest: Buckets | None = None
        self._last_t = -math.inf

    def add(self, t: float, b: Buckets) -> None:
        """Record the poll at time ``t`` whose cumulative buckets were ``b``.

        Times should not decrease. If ``t`` is earlier than the last poll (a clock stepped
        back), the snapshot is still recorded, as taken at the last poll's time: its values
        are real and its resets must be seen, and history never reorders. A different ``le``
        layout restarts the history at this snapshot. A NaN time is a caller bug: ValueError.
        """
        if math.isnan(t):
            raise ValueError("poll time is NaN")
        if self._latest is not None and self._latest.les != b.les:
            self._log = _IntLog()
        self._latest = b
        t = max(float(t), self._last_t)
        self._last_t = t
        log = self._log
        stored = log.add(t, b.counts, float(b.sum), float(b.count))
        if stored is False:
            assert isinstance(log, _IntLog)
            self._log = log = _FloatLog.of(log)
            log.add(t, b.counts, float(b.sum), float(b.count))
        self._prune(t)

    def latest(self) -> Buckets | None:
        """The last ``Buckets`` added, as scraped: the ``lifetime`` value."""
        return self._latest

    def window(self, now: float, seconds: float) -> Buckets | None:
        """The increase over the last ``seconds`` before ``now``, per series.

        From the newest snapshot taken at or before ``now - seconds`` (or the first one, while
        the history is younger than the window) to the newest snapshot. One snapshot gives
        all zeros. ``None`` before any snapshot. Windows longer than ``horizon`` start at the
        oldest snapshot kept.
        """
        log = self._log
        if self._latest is None or not len(log):
            return None
        start = max(bisect_right(log.times(), now - seconds) - 1, 0)
        counts, s, c = log.window(start, float(seconds))
        return Buckets(les=self._latest.les, bounds=self._latest.bounds,
                       counts=tuple(counts), sum=s, count=c)

    def __len__(self) -> int:
        """Snapshots held, for memory accounting."""
        return len(self._log)

    def _prune(self, t: float) -> None:
        """Keep the newest snapshot at or before ``t - horizon`` and everything after it;
        past ``max_snapshots``, drop every other interior snapshot (the baseline and the
        newest always stay; corrections are cumulative, so no reset is ever lost)."""
        log = self._log
        keep_from = bisect_right(log.times(), t - self._horizon) - 1
        if keep_from > 0:
            log.prune(keep_from)
        if len(log) > self._max:
            last = len(log) - 1
            log.thin([0, *range(2, last, 2), last])
