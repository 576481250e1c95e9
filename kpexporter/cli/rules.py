"""``kpexporter rules``: render the Prometheus rule files from the exporter's own config.

The same file the exporter reads (thresholds, windows, objectives, ``alerting:``), so a user
who changes an objective regenerates rules that agree with the exporter. The committed
``alerts/*.yaml`` are this command's output for the defaults, ``alerts/nightingale/*.json``
its ``--format nightingale`` output (the same rules as Nightingale's alert and recording rules).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from kpexporter.cli.artifacts import write_files
from kpexporter.config.schema import build_config
from kpexporter.rules import nightingale
from kpexporter.rules.render import render, render_one

FORMATS = ("prometheus", "nightingale")


def add_rules_parser(sub: Any) -> None:
    """Register the ``rules`` subcommand on the CLI's subparsers."""
    p = sub.add_parser(
        "rules", help="render the Prometheus alerting and recording rules",
        description="Render the Prometheus rule files (alerts and recording rules) from the "
        "config the exporter reads: thresholds, windows, SLO objectives and the alerting: "
        "section. Without -o, every group is printed as one rule file (with --format "
        "nightingale: one JSON object, file name to its rules).")
    p.add_argument("--config", metavar="FILE", help="YAML config file (as for serve)")
    p.add_argument("-o", "--output-dir", metavar="DIR", help="write one file per rule "
                   "group set into DIR (created if missing) instead of printing")
    p.add_argument("--format", choices=FORMATS, default="prometheus", help="prometheus: "
                   "rule files (YAML, the default); nightingale: n9e's alert-rule and "
                   "recording-rule JSON, one list per file, as its import takes them")


async def _done(directory: Path | None, files: dict[str, str], one: str) -> int:
    if directory is None:
        sys.stdout.write(one)
        return 0
    return write_files(directory, files)


def prepare_rules(args: argparse.Namespace) -> Coroutine[Any, Any, int]:
    """Read the config and render everything now, so a bad config exits 64 before output."""
    path = Path(args.config) if args.config else None
    cfg = build_config(path, os.environ, {})
    source = "the default config" if path is None else f"--config {path.name}"
    directory = Path(args.output_dir) if args.output_dir else None
    if args.format == "nightingale":
        files = nightingale.render(cfg)
        return _done(directory, files, nightingale.to_json(nightingale.n9e_rules(cfg)))
    return _done(directory, render(cfg, source), render_one(cfg, source))
