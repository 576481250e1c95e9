"""Nightingale (n9e)'s own built-in integration files, as the reference for our n9e JSON.

``tests/data/nightingale`` holds three of them, copied as fetched (``SOURCES.md``). A generated
object has n9e's shape when every key it writes is one n9e's file has (or one n9e's model
declares, listed with its source where a test allows it) and each value has the JSON type
n9e's file gives that key. ``null`` in n9e's file is Go's empty slice or map: a list or an
object stands in for it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from kpexporter.kubeproxy.healthz import json_type

DATA = Path(__file__).resolve().parent / "data" / "nightingale"
ALERTS = DATA / "Kubernetes" / "alerts" / "Load.json"
BOARD = DATA / "Kubernetes" / "dashboards" / "proxy.json"
RECORDING = DATA / "Kubernetes" / "record-rules" / "node-exporter.json"

DANGEROUS = ("<", ">", "&", "'", '"', "://", "../")
"""What n9e's ``str.Dangerous`` refuses in an alert-rule or board name (toolkits/pkg/str)."""
METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def compatible(ours: Any, theirs: Any) -> bool:
    a, b = json_type(ours), json_type(theirs)
    return a == b or (b == "null" and a in ("array", "object"))


def reference(examples: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Key → the first non-null value n9e's examples give it (null when all are null)."""
    out: dict[str, Any] = {}
    for ex in examples:
        for k, v in ex.items():
            if out.get(k) is None:
                out[k] = v
    return out


def shape_problems(ours: Mapping[str, Any], examples: Iterable[Mapping[str, Any]],
                   extra: Mapping[str, str] = {}, where: str = "") -> list[str]:
    """Keys of ``ours`` n9e's ``examples`` do not have (unless in ``extra``: key → the n9e
    source declaring it), and values whose JSON type differs from n9e's."""
    ref = reference(examples)
    out = []
    for k, v in ours.items():
        if k in ref:
            if not compatible(v, ref[k]):
                out.append(f"{where}{k}: {json_type(v)}, n9e has {json_type(ref[k])}")
        elif k not in extra:
            out.append(f"{where}{k}: not a key n9e's file has")
    return out


def dangerous(name: str) -> bool:
    return any(bad in name for bad in DANGEROUS)


def assert_committed(folder: Path, want: dict[str, str], regenerate: str) -> None:
    """``folder`` holds exactly the rendered files ``want``, byte for byte."""
    have = {p.name: p.read_text(encoding="utf-8") for p in sorted(folder.glob("*"))}
    assert sorted(have) == sorted(want), f"{folder} holds other files than rendered"
    for name, text in want.items():
        assert have[name] == text, f"{folder.name}/{name} drifted: run `{regenerate}`"
