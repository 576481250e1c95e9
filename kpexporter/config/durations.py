"""Durations as Prometheus writes them (``30s``, ``5m``, ``1h30m``) and plain seconds.

Window names appear as the ``window`` label, so they must be canonical: ``300s`` and
``5m`` are the same window and must give the same label (``5m``), like Prometheus's own
``model.Duration`` formatting.
"""

from __future__ import annotations

import math
import re

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0,
          "y": 31536000.0}
_PART = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_FULL = re.compile(r"(?:\d+(?:ms|s|m|h|d|w|y))+")


def parse_duration(text: str) -> float:
    """Seconds from ``"15"``, ``"0.5"``, ``"15s"``, ``"1h30m"``; ValueError otherwise."""
    s = text.strip()
    try:
        value = float(s)
    except ValueError:
        if not _FULL.fullmatch(s):
            raise ValueError(f"not a duration: {text!r} (use seconds or e.g. 30s, 5m, 1h)"
                             ) from None
        value = sum(int(n) * _UNITS[u] for n, u in _PART.findall(s))
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"must be a positive duration, got {text!r}")
    return value


def format_duration(seconds: float) -> str:
    """Canonical Prometheus-style name: 300 → ``5m``, 5400 → ``1h30m``, 0.5 → ``500ms``."""
    ms = round(seconds * 1000)
    if ms <= 0:
        return "0s"
    out = []
    for unit, size in (("y", 31536000000), ("w", 604800000), ("d", 86400000), ("h", 3600000),
                       ("m", 60000), ("s", 1000), ("ms", 1)):
        n, ms = divmod(ms, size)
        if n:
            out.append(f"{n}{unit}")
    return "".join(out)
