"""The committed ``alerts/``: what ``kpexporter rules`` renders for the defaults, valid for
``promtool check rules``, and every alert covered by the ``promtool test rules`` unit tests
in ``alerts/tests/`` (firing when it should and silent when it should not)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from kpexporter.config.schema import build_config
from kpexporter.rules.render import render
from tests.promtool import have_promtool, promtool_path, skip_reason

REPO = Path(__file__).resolve().parents[2]
ALERTS = REPO / "alerts"
RULE_FILES = sorted(ALERTS.glob("*.yaml"))
TEST_FILES = sorted((ALERTS / "tests").glob("*.yaml"))
needs_promtool = pytest.mark.skipif(not have_promtool(), reason=skip_reason())


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    exe = promtool_path()
    assert exe is not None
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=120,
                          check=False)


def test_committed_files_are_the_rendering_of_the_defaults() -> None:
    """Fails on drift: regenerate with ``kpexporter rules -o alerts``."""
    want = render(build_config(None, {}, {}))
    have = {p.name: p.read_text(encoding="utf-8") for p in RULE_FILES}
    assert sorted(have) == sorted(want), "alerts/ holds other files than `rules` renders"
    for name, text in want.items():
        assert have[name] == text, f"alerts/{name} drifted: run `kpexporter rules -o alerts`"


def test_the_command_writes_the_committed_files(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "kpexporter", "rules", "-o", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=60, cwd=REPO, env={"PATH": "/usr/bin:/bin"},
        check=False)
    assert proc.returncode == 0, proc.stderr
    for committed in RULE_FILES:
        assert (tmp_path / "out" / committed.name).read_bytes() == committed.read_bytes()


@needs_promtool
@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.name)
def test_promtool_check_rules(path: Path) -> None:
    proc = _promtool("check", "rules", str(path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


@needs_promtool
@pytest.mark.parametrize("path", TEST_FILES, ids=lambda p: p.name)
def test_promtool_unit_tests(path: Path) -> None:
    proc = _promtool("test", "rules", str(path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def _alert_names() -> set[str]:
    names = set()
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            names |= {r["alert"] for r in group["rules"] if "alert" in r}
    return names


def test_every_alert_is_tested_firing_and_silent() -> None:
    fires: set[str] = set()
    silent: set[str] = set()
    for path in TEST_FILES:
        for test in yaml.safe_load(path.read_text())["tests"]:
            for case in test.get("alert_rule_test", []):
                (fires if case.get("exp_alerts") else silent).add(case["alertname"])
    names = _alert_names()
    assert names, "no alerts found"
    assert names - fires == set(), "alerts no unit test sees firing"
    assert names - silent == set(), "alerts no unit test sees silent"


def test_every_alert_has_severity_summary_description_and_a_runbook_section() -> None:
    runbook = (REPO / "docs" / "runbooks.md").read_text(encoding="utf-8")
    headings = {line[3:].strip().lower() for line in runbook.splitlines()
                if line.startswith("## ")}
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if "alert" not in rule:
                    continue
                assert rule["labels"]["severity"] in ("critical", "warning", "info")
                ann = rule["annotations"]
                assert ann["summary"] and "{{ $value" in ann["description"], rule["alert"]
                anchor = ann["runbook_url"].rsplit("#", 1)[1]
                assert anchor == rule["alert"].lower()
                assert anchor in headings, f"docs/runbooks.md has no section {rule['alert']}"
