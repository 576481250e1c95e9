"""Remote write's own counters, per receiver: what its process-level families read.

Apart from ``service.remote_write`` so that the family table (``service.families``) can read
them without importing the sender, which walks that table.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["DROP_REASONS", "RECEIVERS", "ReceiverStats", "receiver", "rows"]

DROP_REASONS = ("queue_full",)
"""Why samples were dropped unsent: ``queue_full`` (the oldest, while the receiver could not
keep up or was down)."""


@dataclass(slots=True)
class ReceiverStats:
    url: str  # as shown: a password in it redacted
    sent: int = 0
    failed: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    pending: int = 0
    last_send: float | None = None


RECEIVERS: dict[str, ReceiverStats] = {}
"""By shown URL, in configuration order; empty without ``remote_write:``."""


def receiver(url: str) -> ReceiverStats:
    """The stats of ``url``, created (at zero) on first use."""
    st = RECEIVERS.get(url)
    if st is None:
        st = RECEIVERS[url] = ReceiverStats(url)
        for reason in DROP_REASONS:
            st.dropped[reason] += 0
    return st


Row = tuple[tuple[str, ...], float]


def rows(what: str) -> Sequence[Row]:
    """Family rows: ``sent``/``failed``/``pending``/``last_send`` by url, ``dropped`` by url
    and reason."""
    out: list[Row] = []
    for st in RECEIVERS.values():
        if what == "dropped":
            out += [((st.url, reason), float(n)) for reason, n in sorted(st.dropped.items())]
        elif what == "last_send":
            if st.last_send is not None:
                out.append(((st.url,), st.last_send))
        else:
            out.append(((st.url,), float(getattr(st, what))))
    return out
