"""The families of ``service.families`` as ``prometheus_client`` metrics (OpenMetrics).

A custom collector: every scrape walks the table and builds fresh ``Metric`` objects from
the last poll's state, so the OpenMetrics page (asked for with ``Accept``) is byte for byte
what ``prometheus_client`` writes, and nothing lingers after a target goes. It is also the
oracle the fast text writer (``service.text``) is tested against. Samples never carry
timestamps.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence

from prometheus_client.core import Metric
from prometheus_client.registry import Collector, CollectorRegistry

from kpexporter.core.state import TargetState
from kpexporter.service.families import (
    FAMILIES,
    PassThrough,
    ProcessScalars,
    Table,
    process_samples,
    target_samples,
)

__all__ = ["StateCollector", "build_families", "make_registry"]


def build_families(states: Sequence[TargetState], table: Table = FAMILIES) -> list[Metric]:
    """The table's families with every target's samples; a family with none is left out."""
    out: list[Metric] = []
    for fam in table:
        if isinstance(fam, PassThrough):  # one family per name found, across targets
            raw: dict[str, Metric] = {}
            for st in states:
                for rf in fam.read(st):
                    m = raw.get(rf.name)
                    if m is None:
                        m = raw[rf.name] = Metric(rf.name, rf.help, rf.type)
                    for sample, pairs, value in rf.samples:
                        m.add_sample(sample, {"node": st.node, **dict(pairs)}, value)
            out += raw.values()
            continue
        m = Metric(fam.name, fam.help, fam.type)
        if isinstance(fam, ProcessScalars):
            for name, labels, v in process_samples(fam):
                m.add_sample(name, labels, v)
        else:
            for st in states:
                for name, labels, v in target_samples(fam, st):
                    m.add_sample(name, labels, v)
        if m.samples:
            out.append(m)
    return out


class StateCollector(Collector):
    """Renders whatever the poller last stored; never does I/O at scrape time."""

    def __init__(self, states: Callable[[], Iterable[TargetState]],
                 table: Table = FAMILIES) -> None:
        self._states = states
        self._table = table

    def describe(self) -> list[Metric]:
        return []  # no collect() at registration time

    def collect(self) -> Iterator[Metric]:
        yield from build_families(list(self._states()), self._table)


def make_registry(states: Callable[[], Iterable[TargetState]],
                  table: Table = FAMILIES) -> CollectorRegistry:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(StateCollector(states, table))
    return reg
