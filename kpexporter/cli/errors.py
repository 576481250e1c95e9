"""Exit codes and the usage error every command answers bad arguments with."""

from __future__ import annotations

EX_USAGE = 64  # sysexits.h: bad usage or configuration
EX_SOFTWARE = 70  # sysexits.h: a bug of ours


class UsageError(Exception):
    """Bad usage: ``str()`` is one line naming the argument; the CLI exits 64."""
