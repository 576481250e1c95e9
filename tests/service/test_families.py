"""The family table: the one place a family is described, and what every writer makes of it.

Oracles: the package's own source (no other module spells a family name), the README (every
family documented), ``prometheus_client`` (the text page and the collector's page are the same
bytes, also for a table extended with new kinds of entry), promtool, and the pages themselves
(what ``/api/v1/targets`` and ``/`` say is what ``/metrics`` says).
"""

from __future__ import annotations

import ast
import html
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

import kpexporter
from kpexporter.config.schema import Target
from kpexporter.core.state import TargetState
from kpexporter.service.api import target_json
from kpexporter.service.families import (
    FAMILIES,
    PREFIX,
    Family,
    PassThrough,
    PerNode,
    ProcessScalars,
    RawFamily,
    Scalars,
    Summaries,
    per_node,
)
from kpexporter.service.openmetrics import make_registry
from kpexporter.service.page import index_html
from kpexporter.service.text import render_text
from tests.builders import HEALTHY_128, config, poll_result
from tests.fixtures import V1_30, fixture_bytes

PACKAGE = Path(kpexporter.__file__).parent
README = PACKAGE.parent / "README.md"
SUFFIXES = ("_total", "_bucket", "_sum", "_count", "_created")

HEALTHY_133 = (b'{"lastUpdated":"2025-05-01T10:00:00Z","currentTime":"2025-05-01T10:00:01Z",'
               b'"nodeEligible":true,"healthy":true,"status":{"IPv4":{"lastUpdated":'
               b'"2025-05-01T10:00:00.5Z","healthy":true},"IPv6":{"lastUpdated":'
               b'"0001-01-01T00:00:00Z","healthy":false}}}')
NEVER_SYNCED = (b'{"lastUpdated": "0001-01-01 00:00:00 +0000 UTC","currentTime": '
                b'"2024-06-21 11:08:45.074765635 +0000 UTC m=+80.277574766"}')


def state(node: str, *polls: tuple[bytes | None, int, bytes | None]) -> TargetState:
    cfg = config()
    st = TargetState(Target(node, cfg.healthz_url, cfg.metrics_url), horizon=cfg.horizon)
    for healthz, status, page in polls:
        st.record(poll_result(healthz, status, page), cfg)
    return st


def states() -> list[TargetState]:
    page = fixture_bytes(V1_30)
    return [state("healthy", (HEALTHY_128, 200, page)), state("v133", (HEALTHY_133, 200, page)),
            state("down", (None, 0, None)), state("never-synced", (NEVER_SYNCED, 503, None)),
            state("never-polled")]


def test_names_types_and_help() -> None:
    names = [f.name for f in FAMILIES if not isinstance(f, PassThrough)]
    assert len(names) == len(set(names))
    for f in FAMILIES:
        if isinstance(f, PassThrough):
            continue
        assert re.fullmatch(r"kpexporter_[a-z0-9_]+", f.name), f.name
        assert not f.name.endswith(SUFFIXES), f.name  # a counter is named without _total
        assert f.type in ("gauge", "counter", "histogram", "summary"), f.name
        assert f.help and "\n" not in f.help, f.name
        assert "node" not in f.labels and len(set(f.labels)) == len(f.labels), f.name


def _code_strings(tree: ast.AST) -> list[str]:
    """String constants that are code, not docs (a string statement is a docstring)."""
    docs = {id(node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)}
    return [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)
            and isinstance(n.value, str) and id(n) not in docs]


def test_each_family_name_is_spelled_in_one_module_only() -> None:
    """``rules/`` and ``dashboards/`` are left out: alerting rules and dashboards are PromQL
    text that names the series it queries (consumers of the page, as the docs are)."""
    names = {f.name for f in FAMILIES if not isinstance(f, PassThrough)}
    where: dict[str, set[str]] = {name: set() for name in names}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel.startswith(("simulator/", "rules/", "dashboards/")):
            continue
        for text in _code_strings(ast.parse(path.read_text())):
            for name in re.findall(r"kpexporter_[a-z0-9_]+", text):
                base = name
                for suffix in SUFFIXES:
                    base = base.removesuffix(suffix)
                if base in where:
                    where[base].add(rel)
                elif name in where:
                    where[name].add(rel)
    assert {name: mods for name, mods in where.items() if mods != {"service/families.py"}} == {}


def test_every_family_is_documented_in_the_readme() -> None:
    readme = README.read_text()
    for f in FAMILIES:
        if isinstance(f, PassThrough):
            continue
        shown = f.name + ("_total" if f.type == "counter" else "")
        assert f"`{shown}`" in readme, shown


def page_samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(text) for s in f.samples}


def _json_at(doc: Any, path: str) -> Any:
    for key in path.split("."):
        doc = doc.get(key) if isinstance(doc, dict) else None
    return doc


def _same(json_value: Any, page_value: float | None) -> bool:
    if page_value is None:
        return json_value is None
    if isinstance(json_value, str):  # NaN, +Inf, -Inf
        return json_value == {"nan": "NaN", "inf": "+Inf", "-inf": "-Inf"}[str(page_value)]
    return float(json_value) == page_value


def test_the_json_api_says_what_the_page_says() -> None:
    sts = states()
    page = page_samples(render_text(sts).decode())
    checked = 0
    for st in sts:
        doc = target_json(st)
        assert doc["node"] == st.node
        for f in FAMILIES:
            if f.json is None or (st.derived is None and f.json.startswith("derived.")):
                continue
            if isinstance(f, Summaries):
                got = [s for s in _json_at(doc, f.json.removesuffix("[]"))
                       if PREFIX + s["name"] == f.name]
                for s in got:
                    labels = {"node": st.node, "window": s["window"], **s["labels"]}
                    for q, v in s["quantiles"].items():
                        key = (f.name, tuple(sorted({**labels, "quantile": q}.items())))
                        assert _same(v, page[key]), key
                    assert _same(s["count"], page[(f.name + "_count",
                                                   tuple(sorted(labels.items())))])
                    checked += 1
                assert len(got) == sum(1 for (n, _) in page if n == f.name + "_count"
                                       and ("node", st.node) in _)
            elif isinstance(f, Scalars) and "[]." in f.json:
                list_path, field = f.json.split("[].")
                for entry in _json_at(doc, list_path) or ():
                    if field not in entry:
                        continue
                    labels = {"node": st.node, **{k: entry[k] for k in f.labels}}
                    sample = f.name + ("_total" if f.type == "counter" else "")
                    assert _same(entry[field], page[(sample, tuple(sorted(labels.items())))])
                    checked += 1
            elif isinstance(f, Scalars) and f.info:
                shown = [dict(k)[f.labels[-1]] for (n, k) in page
                         if n == f.name and ("node", st.node) in k]
                assert _json_at(doc, f.json) == (shown[0] if shown else None)
                checked += 1
            elif isinstance(f, Scalars):
                sample = f.name + ("_total" if f.type == "counter" else "")
                assert _same(_json_at(doc, f.json),
                             page.get((sample, (("node", st.node),)))), (st.node, f.name)
                checked += 1
    assert checked > 50
    healthy = target_json(sts[0])["derived"]
    assert healthy["healthz"]["status_code"] == 200 and healthy["healthz"]["healthy"] is True
    assert healthy["proxy_mode"] == "iptables" and healthy["up"] is True
    assert target_json(sts[3])["derived"]["healthz"]["staleness_seconds"] == "+Inf"
    assert target_json(sts[4])["derived"] is None


def test_the_html_columns_are_the_tables() -> None:
    sts = states()
    page = index_html(sts)
    columns = [f for f in FAMILIES if isinstance(f, Scalars) and f.column]
    assert columns
    for f in columns:
        assert f"<th>{html.escape(f.column or '')}</th>" in page
    assert "<td>200</td>" in page and "<td>iptables</td>" in page
    assert "not polled yet" in page


# A table extended with one entry of each kind a later change will add.
SENT = {"ok": 7.0, "failed": 1.0}
RAW = (RawFamily("kubeproxy_sync_proxy_rules_iptables_rules", "gauge",
                 'Rules "in" \\ the table.', (
                     ("kubeproxy_sync_proxy_rules_iptables_rules", (("table", "nat"),), 42.0),
                     ("kubeproxy_sync_proxy_rules_iptables_rules", (("table", "filter"),), 7.0),
                 )),
       RawFamily("kubeproxy_sync_proxy_rules_endpoint_changes", "counter", "Changes.",
                 (("kubeproxy_sync_proxy_rules_endpoint_changes_total", (), 5.0),)))
EXTENDED: tuple[Family, ...] = (
    *FAMILIES,
    per_node("kpexporter_test_polls", "Polls so far.", lambda d: 3.0 if d.up else None,
             json="derived.test.polls", column="polls"),
    ProcessScalars("kpexporter_test_remote_write_samples", "counter", "Samples sent.",
                   ("status",), read=lambda: [((k,), v) for k, v in sorted(SENT.items())]),
    PassThrough("kube-proxy's own", "unknown", "passed through",
                read=lambda st: RAW if st.derived is not None and st.derived.up else ()),
)


def test_an_extended_table_is_written_the_same_by_every_writer() -> None:
    sts = states()
    text = render_text(sts, EXTENDED).decode()
    assert text == generate_latest(make_registry(lambda: sts, EXTENDED)).decode()
    got = page_samples(text)
    assert got[("kpexporter_test_polls", (("node", "healthy"),))] == 3.0
    assert ("kpexporter_test_polls", (("node", "down"),)) not in got
    assert got[("kpexporter_test_remote_write_samples_total", (("status", "ok"),))] == 7.0
    assert got[("kubeproxy_sync_proxy_rules_iptables_rules",
                (("node", "v133"), ("table", "nat")))] == 42.0
    assert text.count("# TYPE kubeproxy_sync_proxy_rules_iptables_rules gauge") == 1
    assert got[("kubeproxy_sync_proxy_rules_endpoint_changes_total", (("node", "v133"),))] == 5
    one = render_text([sts[2]], EXTENDED).decode()  # a per-node page: process-level too
    assert "kpexporter_test_remote_write_samples_total" in one and "kubeproxy_" not in one
    assert target_json(sts[0], EXTENDED)["derived"]["test"] == {"polls": 3.0}
    assert "<th>polls</th>" in index_html(sts, EXTENDED)
    assert isinstance(EXTENDED[-3], PerNode)


@pytest.mark.promtool
@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_promtool_accepts_the_extended_page() -> None:
    text = render_text(states(), EXTENDED).decode()
    out = subprocess.run(["promtool", "check", "metrics"], input=text, text=True,
                         capture_output=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
