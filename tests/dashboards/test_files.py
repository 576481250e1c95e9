"""The committed ``dashboards/``: what ``kpexporter dashboards`` renders for the defaults, and
every query valid PromQL for Prometheus's own parser (``promtool check rules``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from kpexporter.config.schema import build_config
from kpexporter.dashboards import render
from tests.dashboards.grafana import (
    DASHBOARDS,
    REPO,
    committed,
    expand,
    label_values,
    queries,
    unexpanded,
    variables,
)
from tests.promtool import assert_promtool_accepts, have_promtool, skip_reason

needs_promtool = pytest.mark.skipif(not have_promtool(), reason=skip_reason())


def test_committed_files_are_the_rendering_of_the_defaults() -> None:
    """Fails on drift: regenerate with ``kpexporter dashboards -o dashboards``."""
    want = render(build_config(None, {}, {}))
    have = {p.name: p.read_text(encoding="utf-8") for p in sorted(DASHBOARDS.glob("*.json"))}
    assert sorted(have) == sorted(want), "dashboards/ holds other files than it renders"
    for name, text in want.items():
        assert have[name] == text, (f"dashboards/{name} drifted: run "
                                    "`kpexporter dashboards -o dashboards`")


def test_the_command_writes_the_committed_files(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "kpexporter", "dashboards", "-o", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=60, cwd=REPO, env={"PATH": "/usr/bin:/bin"},
        check=False)
    assert proc.returncode == 0, proc.stderr
    for committed_file in sorted(DASHBOARDS.glob("*.json")):
        assert ((tmp_path / "out" / committed_file.name).read_bytes()
                == committed_file.read_bytes())
    printed = subprocess.run(
        [sys.executable, "-m", "kpexporter", "dashboards"], capture_output=True, text=True,
        timeout=60, cwd=REPO, env={"PATH": "/usr/bin:/bin"}, check=False)
    assert printed.returncode == 0, printed.stderr
    assert json.loads(printed.stdout) == {p.name: json.loads(p.read_text())
                                          for p in sorted(DASHBOARDS.glob("*.json"))}


@pytest.mark.parametrize("config, field", [
    ("slos: {sync_latency: {threshold: 1.0}}", "sync_latency.threshold"),
    ("quantiles: [0.5]", "quantiles"),
    ("alerting: {runbook_url: nope}", "runbook_url"),
])
def test_a_bad_config_is_one_line_and_exit_64(tmp_path: Path, config: str, field: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(config)
    proc = subprocess.run(
        [sys.executable, "-m", "kpexporter", "dashboards", "--config", str(path), "-o",
         str(tmp_path / "out")], capture_output=True, text=True, timeout=60, cwd=REPO,
        env={"PATH": "/usr/bin:/bin"}, check=False)
    assert proc.returncode == 64, proc.stderr
    assert field in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "out").exists()


@needs_promtool
def test_every_query_parses_in_prometheus(tmp_path: Path) -> None:
    """Each target and each variable's selector, variables substituted as Grafana does, as
    a recording rule: ``promtool check rules`` runs Prometheus's parser over every one."""
    rules: list[dict[str, str]] = []
    for name, model in committed().items():
        values = {"cluster": ".*", "node": ".+", "region": ".*"}
        for q in queries(name, model):
            expr = expand(q.expr, values)
            assert not unexpanded(expr), (q.panel, expr)
            rules.append({"record": f"dashboard:query:{len(rules)}", "expr": expr})
        for var in variables(model).values():
            if var["type"] == "query":
                selector, _ = label_values(var)
                assert selector is not None
                rules.append({"record": f"dashboard:variable:{len(rules)}",
                              "expr": expand(selector, values)})
    assert_promtool_accepts(rules, tmp_path / "queries.yaml")
