"""The samples of ``/metrics`` as data: (sample name, labels, value), walked from the family table.

What the text writer (``service.text``) writes as lines, this yields as tuples, with the same
names (a counter's with ``_total``; ``_bucket``/``_sum``/``_count``), the same labels
(``node`` first, a page label that clashes renamed ``exported_*``) and the same values — so
remote write pushes exactly the series a scrape would store. ``tests/service/test_series.py``
checks that against the parsed text page.
"""

from __future__ import annotations

from collections.abc import Iterator

from kpexporter.core.state import TargetState
from kpexporter.service import families
from kpexporter.service.families import FAMILIES, ProcessScalars, Table

__all__ = ["SeriesSample", "process_samples", "target_samples"]

SeriesSample = families.Sample
"""(sample name, labels without ``__name__``, value)."""


def process_samples(table: Table = FAMILIES) -> Iterator[SeriesSample]:
    """The process-level samples (``build_info``, SLO objectives, remote write's own)."""
    for fam in table:
        if isinstance(fam, ProcessScalars):
            yield from families.process_samples(fam)


def target_samples(st: TargetState, table: Table = FAMILIES) -> Iterator[SeriesSample]:
    """One target's samples, in the page's order."""
    for fam in table:
        yield from families.target_samples(fam, st)
