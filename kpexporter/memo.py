"""A bounded memo: a dict that empties itself when full.

Parsers and writers remember small, repeating things (a label head, a formatted value, a
request plan); what a peer sends must never make that memory grow. Clear-when-full rather
than LRU because lookups stay the plain ``dict.get`` (the hot paths call it per line) and a
hostile stream of new keys costs speed, never memory: at most ``limit`` entries.
"""

from __future__ import annotations

from typing import TypeVar

__all__ = ["Memo"]

K = TypeVar("K")
V = TypeVar("V")


class Memo(dict[K, V]):
    """``dict`` plus :meth:`put`, which keeps at most ``limit`` entries (read with ``get``)."""

    __slots__ = ("limit",)

    def __init__(self, limit: int) -> None:
        super().__init__()
        if limit < 1:
            raise ValueError(f"memo limit must be >= 1, got {limit}")
        self.limit = limit

    def put(self, key: K, value: V) -> V:
        """Remember ``value`` under ``key`` (emptying the memo first if it is full); return it."""
        if len(self) >= self.limit and key not in self:
            self.clear()
        self[key] = value
        return value
