"""Run ``promtool test rules`` as a test oracle.

Prometheus's own engine is the reference for every PromQL-shaped promise we make (quantiles,
windows, alert rules), and ``promtool test rules`` is the cheapest way to run it: no server,
one process, a pass/fail per assertion. Tests gate on ``have_promtool()`` so a machine
without Debian's ``prometheus`` package skips them instead of failing.

Notes for writing test files (promtool 2.42): values compare with exact float equality;
NaN never equals, so assert it with ``count(X != X)`` -> ``{labels: '{}', value: 1}``;
infinities are ``.inf``/``-.inf``; ``rule_files`` are resolved relative to the test file,
so pass absolute paths (the file is written into ``tmp_path``).
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

__all__ = ["have_promtool", "metrics_problems", "promtool_path", "run_promtool_tests"]

_SKIP_REASON = "promtool not on PATH (Debian: apt-get install prometheus)"


def promtool_path() -> str | None:
    """The promtool executable, or None when it is not installed."""
    return shutil.which("promtool")


def have_promtool() -> bool:
    """True when ``promtool`` is on PATH."""
    return promtool_path() is not None


def skip_reason() -> str:
    """The reason to give ``pytest.mark.skipif`` when promtool is missing."""
    return _SKIP_REASON


def expect(expr: str, eval_time: str, value: float | None, labels: str) -> dict[str, Any]:
    """One promql_expr_test pinning ``expr`` to ``value``: NaN via ``count(x != x)`` (2.42
    compares exactly and NaN never equals NaN), ``None`` for "no output at all"."""
    if value is None:
        return {"expr": expr, "eval_time": eval_time, "exp_samples": []}
    if math.isnan(value):
        return {"expr": f"count(({expr}) != ({expr}))", "eval_time": eval_time,
                "exp_samples": [{"labels": "{}", "value": 1}]}
    return {"expr": expr, "eval_time": eval_time,
            "exp_samples": [{"labels": labels, "value": value}]}


def run_promtool_tests(
    test_file_yaml: str | Mapping[str, Any],
    tmp_path: Path,
    *,
    filename: str = "promtool_test.yaml",
    timeout: float = 300.0,
) -> str:
    """Write the test file into ``tmp_path``, run ``promtool test rules`` on it.

    Returns promtool's output on success; raises ``AssertionError`` carrying promtool's
    full output (which names each failing expression, its expected and its actual value)
    otherwise. A dict is dumped as YAML; floats survive exactly (PyYAML writes ``repr``).
    """
    exe = promtool_path()
    if exe is None:
        raise AssertionError(_SKIP_REASON)
    text = test_file_yaml if isinstance(test_file_yaml, str) else _dump(test_file_yaml)
    path = Path(tmp_path) / filename
    path.write_text(text, encoding="utf-8")
    proc = subprocess.run(
        [exe, "test", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    output = (proc.stdout + proc.stderr).strip()
    if proc.returncode != 0:
        raise AssertionError(
            f"promtool test rules {path} exited {proc.returncode}:\n{_trim(output)}"
        )
    return output


def assert_promtool_accepts(rules: list[dict[str, str]], path: Path) -> None:
    """``promtool check rules`` on ``rules`` (``{"record": ..., "expr": ...}``) written to
    ``path``: every expression must parse as Prometheus parses it."""
    path.write_text(yaml.safe_dump({"groups": [{"name": path.stem, "rules": rules}]}))
    exe = promtool_path()
    assert exe is not None
    proc = subprocess.run([exe, "check", "rules", str(path)], capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(rules)} rules found" in proc.stdout


def _dump(doc: Mapping[str, Any]) -> str:
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return yaml.dump(dict(doc), Dumper=dumper, sort_keys=False, width=1 << 16)


def _trim(output: str, limit: int = 20000) -> str:
    """Keep failure output readable when many assertions fail at once."""
    if len(output) <= limit:
        return output
    return output[:limit] + f"\n... ({len(output) - limit} more characters)"


_KUBE_PROXY_LINT = re.compile(
    r"^(kubeproxy_|rest_client_|process_|go_)\S* (non-counter metrics should not have "
    r"\"_total\" suffix|use base unit \"seconds\" instead of \"microseconds\")$")
"""promtool's lint of names kube-proxy chose, which the pass-through re-exposes unchanged
(gauges ending in ``_total``, the pre-1.14 microseconds): not ours to fix."""


def metrics_problems(page: str, timeout: float = 60.0) -> list[str]:
    """What ``promtool check metrics`` finds wrong with ``page``, minus the lint of
    kube-proxy's own names (exit 3 with only those is a page that parses and lints clean
    where it is ours). Empty: valid."""
    exe = promtool_path()
    if exe is None:
        raise AssertionError(_SKIP_REASON)
    proc = subprocess.run([exe, "check", "metrics"], input=page, text=True,
                          capture_output=True, timeout=timeout, check=False)
    lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()]
    if proc.returncode == 0:
        return []
    if proc.returncode != 3:  # not lint: the page does not parse
        return [f"exit {proc.returncode}", *lines]
    return [ln for ln in lines if not _KUBE_PROXY_LINT.match(ln)]
