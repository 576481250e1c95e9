"""The ``shard:`` setting: which slice of the targets this replica polls.

Written ``I/N`` (``--shard 1/3``: shard 1 of 3, counted from 0) or ``POD/N`` where POD is a
StatefulSet pod name ending in ``-<ordinal>`` (``--shard $(POD_NAME)/3`` in a manifest: the
kubelet expands ``$(POD_NAME)`` from the downward API, and the ordinal is the shard, as
kube-state-metrics' ``--pod``/``--total-shards``). In the file also
``{index: 1, total: 3}`` or ``{pod: kpexporter-1, total: 3}``. Which nodes a shard owns is
``kpexporter.service.sharding``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

__all__ = ["Shard", "ordinal", "parse_shard"]

MAX_SHARDS = 1 << 16
_ORDINAL = re.compile(r"-(0|[1-9][0-9]{0,8})\Z")


@dataclass(frozen=True, slots=True)
class Shard:
    index: int
    total: int


def ordinal(pod: str) -> int:
    """The StatefulSet ordinal at the end of a pod name (``kpexporter-2`` -> 2)."""
    m = _ORDINAL.search(pod)
    if m is None or len(pod) <= len(m.group(0)):
        raise ValueError(f"pod name {pod!r} does not end in -<ordinal> (a StatefulSet pod)")
    return int(m.group(1))


def _int(raw: Any, what: str) -> int:
    if isinstance(raw, bool) or not isinstance(raw, (int, str)):
        raise ValueError(f"{what} must be an integer")
    try:
        return int(str(raw).strip(), 10)
    except ValueError:
        raise ValueError(f"{what} must be an integer, got {str(raw)[:40]!r}") from None


def parse_shard(raw: Any) -> Shard | None:
    """``I/N``, ``POD/N`` or a mapping (see the module); ``None``/empty: no sharding."""
    if raw is None or raw == "":
        return None
    if isinstance(raw, dict):
        unknown = set(raw) - {"index", "pod", "total"}
        if unknown or "total" not in raw or ("index" in raw) == ("pod" in raw):
            raise ValueError("must be {index: I, total: N} or {pod: NAME-ORDINAL, total: N}")
        total = _int(raw["total"], "total")
        index = _int(raw["index"], "index") if "index" in raw else ordinal(str(raw["pod"]))
    elif isinstance(raw, str) and "/" in raw:
        head, _, tail = raw.strip().rpartition("/")
        total = _int(tail, "N in I/N")
        index = int(head) if head.isdigit() else ordinal(head)
    else:
        raise ValueError("must be I/N (shard I of N, from 0) or POD/N (a StatefulSet pod "
                         "name ending in -<ordinal>)")
    if not 1 <= total <= MAX_SHARDS:
        raise ValueError(f"the number of shards must be 1 to {MAX_SHARDS}, got {total}")
    if not 0 <= index < total:
        raise ValueError(f"shard {index} does not exist with {total} shard(s) (0 to {total - 1})")
    return Shard(index, total)
