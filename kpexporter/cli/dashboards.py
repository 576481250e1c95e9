"""``kpexporter dashboards``: render the Grafana dashboards from the exporter's own config.

The same file the exporter reads (windows, quantiles, SLO objectives and thresholds, the
``alerting:`` selectors and runbook URL), so the thresholds a panel draws are the ones the
exporter and the rules judge by. The committed ``dashboards/*.json`` are this command's
output for the defaults, ``dashboards/nightingale/*.json`` its ``--format nightingale`` output
(the same boards in Nightingale's board JSON).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from kpexporter.cli.artifacts import write_files
from kpexporter.cli.errors import UsageError
from kpexporter.config.schema import build_config

FORMATS = ("grafana", "nightingale")
SDK_MISSING = ("kpexporter dashboards needs grafana-foundation-sdk: "
               "pip install grafana-foundation-sdk")


def add_dashboards_parser(sub: Any) -> None:
    """Register the ``dashboards`` subcommand on the CLI's subparsers."""
    p = sub.add_parser(
        "dashboards", help="render the Grafana dashboards",
        description="Render the Grafana dashboards (cluster health & SLO, node detail, the "
        "kubernetes-mixin Proxy panels fixed) from the config the exporter reads. Without "
        "-o, they are printed as one JSON object keyed by file name.")
    p.add_argument("--config", metavar="FILE", help="YAML config file (as for serve)")
    p.add_argument("--output-dir", "-o", metavar="DIR", help="write one JSON file per "
                   "dashboard into DIR (created if missing) instead of printing")
    p.add_argument("--format", choices=FORMATS, default="grafana", help="grafana: "
                   "Grafana dashboard JSON (the default); nightingale: n9e's board JSON, "
                   "as its dashboard import takes it")


async def _done(directory: Path | None, files: dict[str, str]) -> int:
    if directory is None:
        sys.stdout.write("{\n" + ",\n".join(
            f'"{name}": {text.rstrip()}' for name, text in files.items()) + "\n}\n")
        return 0
    return write_files(directory, files)


def prepare_dashboards(args: argparse.Namespace) -> Coroutine[Any, Any, int]:
    """Read the config and render everything now, so a bad config exits 64 before output."""
    path = Path(args.config) if args.config else None
    cfg = build_config(path, os.environ, {})
    try:  # imported here: the SDK is only needed by this command, not by serve
        from kpexporter.dashboards import nightingale, render
    except ImportError:
        raise UsageError(SDK_MISSING) from None
    # ConfigError (exit 64) when the rules' settings refuse the config
    files = nightingale.render(cfg) if args.format == "nightingale" else render(cfg)
    directory = Path(args.output_dir) if args.output_dir else None
    return _done(directory, files)
