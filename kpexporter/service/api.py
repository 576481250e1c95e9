"""``/api/v1/targets``: per node, the last poll's outcome, errors and every derived value.

The values come from walking the family table (``service.families``: each family's ``json``
path says where its value goes), so the JSON names what ``/metrics`` shows without a second
list. Values keep their type (``true``, ``200``, ``0.5``); ``NaN`` and ``±Inf``, which JSON
cannot hold, are the strings ``/metrics`` writes (``promtext.floats.json_number``).
"""

from __future__ import annotations

from typing import Any

from kpexporter.config.schema import redacted
from kpexporter.core.state import TargetState
from kpexporter.promtext.floats import json_number
from kpexporter.service.families import FAMILIES, Family, Scalars, Summaries, Table, Value

__all__ = ["target_json"]


def _json_value(v: Value | None) -> Any:
    return v if v is None or isinstance(v, bool | int) else json_number(v)


def _place(doc: dict[str, Any], path: str) -> tuple[dict[str, Any], str]:
    """The object that holds the last key of ``path`` (created on the way), and that key."""
    *parents, last = path.split(".")
    for key in parents:
        doc = doc.setdefault(key, {})
    return doc, last


def _family(doc: dict[str, Any], fam: Family, st: TargetState) -> None:
    assert fam.json is not None
    if isinstance(fam, Summaries):
        parent, key = _place(doc, fam.json.removesuffix("[]"))
        parent.setdefault(key, []).extend(
            {"name": s.name, "labels": dict(s.labels), "window": s.window,
             "quantiles": {repr(q): json_number(v) for q, v in s.quantiles},
             "sum": json_number(s.sum), "count": json_number(s.count)} for s in fam.read(st))
        return
    if not isinstance(fam, Scalars):
        return
    rows = fam.read(st)
    if "[]." in fam.json:  # a list of objects, one per label set
        list_path, field = fam.json.split("[].")
        parent, key = _place(doc, list_path)
        entries: list[dict[str, Any]] = parent.setdefault(key, [])
        for values, v in rows:
            labels = dict(zip(fam.labels, values, strict=True))
            entry = next((e for e in entries if all(e.get(k) == x for k, x in labels.items())),
                         None)
            if entry is None:
                entry = dict(labels)
                entries.append(entry)
            entry[field] = _json_value(v)
        return
    parent, key = _place(doc, fam.json)
    if fam.info:
        parent[key] = rows[0][0][-1] if rows else None
    else:
        parent[key] = _json_value(rows[0][1]) if rows else None


def target_json(st: TargetState, table: Table = FAMILIES) -> dict[str, Any]:
    """One entry of ``/api/v1/targets``: the poll's facts, then every family with a path."""
    last = st.last
    d = st.derived
    doc: dict[str, Any] = {
        "node": st.node,
        "healthz_url": redacted(st.target.healthz_url),
        "metrics_url": redacted(st.target.metrics_url),
        "polls": st.polls,
        "last_poll": last.started if last else None,
        "errors": [{"endpoint": e.endpoint, "reason": e.reason, "message": e.message}
                   for e in (last.errors if last else ())],
        "derived": None if d is None else {"verdict": d.verdict, "reasons": list(d.reasons)},
    }
    for fam in table:
        if fam.json is None or (d is None and fam.json.startswith("derived.")):
            continue
        _family(doc, fam, st)
    return doc
