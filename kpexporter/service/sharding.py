"""Which nodes a shard polls: a stable hash of the node name, nothing else.

``shard_of(node, n)`` is Prometheus's ``hashmod`` relabel action on the node name: the last
8 bytes of the MD5 of its UTF-8 bytes, read big-endian, modulo ``n``. Every replica computes
the same answer from the name alone, so two replicas with the same ``n`` never both poll a
node, and a node changes shard only when ``n`` changes (kube-state-metrics does the same with
FNV of the object's UID). Prometheus's own hash, rather than FNV or xxhash, because then a
Prometheus that scrapes each node as its own target (``/metrics?node=NAME``) finds the
replica polling that node with one ``hashmod`` relabel on ``__meta_kubernetes_node_name``
(``deploy/kubernetes/overlays/sharded``). Changing ``n`` restarts every replica anyway (the
StatefulSet's arguments change), so a consistent hash would save no history.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from kpexporter.config.schema import Target
from kpexporter.config.shard import Shard

__all__ = ["key", "mine", "shard_of"]


def key(node: str) -> int:
    """The 64-bit hash of a node name that Prometheus's ``hashmod`` takes the modulus of."""
    digest = hashlib.md5(node.encode("utf-8", "surrogatepass"), usedforsecurity=False).digest()
    return int.from_bytes(digest[8:], "big")


def shard_of(node: str, total: int) -> int:
    """The shard (0 to ``total - 1``) that polls ``node``."""
    return key(node) % total


def mine(targets: Iterable[Target], shard: Shard | None) -> list[Target]:
    """The targets this replica polls: all of them without sharding."""
    if shard is None or shard.total == 1:
        return list(targets)
    return [t for t in targets if shard_of(t.node, shard.total) == shard.index]
