"""What every fuzz target shares: the atheris entry point.

Targets run as scripts with the repository root on ``PYTHONPATH`` (``run_fuzz.py`` sets it;
by hand: ``PYTHONPATH=. python tests/fuzz/fuzz_healthz.py CRASH_FILE`` replays a finding).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(test_one_input: Callable[[bytes], None]) -> None:
    """Hand the target to libFuzzer; argv carries libFuzzer's flags (see run_fuzz.py)."""
    import atheris  # type: ignore[import-untyped]

    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
