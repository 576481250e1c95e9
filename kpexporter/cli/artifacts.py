"""What ``kpexporter rules`` and ``kpexporter dashboards`` share: write rendered files.

Each file is written to a temporary name and renamed, so a Prometheus or Grafana that reloads
the folder never reads half a file; the names written are printed, one a line.
"""

from __future__ import annotations

from pathlib import Path

from kpexporter.cli.errors import UsageError


def write_files(directory: Path, files: dict[str, str]) -> int:
    """Write ``files`` (name → text) into ``directory``; a failure is bad usage (exit 64)."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            tmp = directory / f".{name}.tmp"
            tmp.write_text(text, encoding="utf-8")
            tmp.replace(directory / name)
    except OSError as e:
        raise UsageError(f"-o {directory}: cannot write: {e.strerror or e}") from None
    for name in files:
        print(directory / name)
    return 0
