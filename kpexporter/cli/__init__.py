"""The ``kpexporter`` command line."""

from kpexporter.cli.main import main

__all__ = ["main"]
