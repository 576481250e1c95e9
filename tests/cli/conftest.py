"""What the CLI tests share: ``kpexporter`` run as a real subprocess, and the simulator
in-process for it to poll."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Mapping

from kpexporter.simulator import RunningSimulator, SimOptions, start_simulator

KPEXPORTER = (sys.executable, "-m", "kpexporter")
# Only PATH: no KPEXPORTER_* or NODE_NAME of whoever runs the tests reaches the command.
BARE_ENV = {"PATH": "/usr/bin:/bin"}


async def run(*args: str, env: Mapping[str, str] = BARE_ENV) -> tuple[int, str, str]:
    """``kpexporter ARGS`` to its end: exit code, stdout, stderr."""
    proc = await asyncio.create_subprocess_exec(
        *KPEXPORTER, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env=dict(env))
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def sim(**kw: object) -> AsyncIterator[RunningSimulator]:
    """A simulator on free ports (``async for s in sim(...)``), stopped afterwards."""
    opts = SimOptions(healthz_port=0, metrics_port=0, **kw)  # type: ignore[arg-type]
    s = await start_simulator(opts)
    try:
        yield s
    finally:
        await s.stop()
