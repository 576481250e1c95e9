"""``kpexporter check``'s text as a person reads it, run as a real subprocess.

Each failure is said once, with the URL that failed; a never-synced kube-proxy says so
instead of an empty age; a wait known only from below is printed as a bound (``≥``).
"""

from __future__ import annotations

import asyncio
import os

from kpexporter.simulator import RunningSimulator
from tests.cli.conftest import run, sim

# The caller's environment without what would configure kpexporter.
ENV = {k: v for k, v in os.environ.items() if not k.startswith("KPEXPORTER_")}
ENV.pop("NODE_NAME", None)


async def check_until_unhealthy(s: RunningSimulator, healthz_url: str | None = None
                                ) -> tuple[int, str, str]:
    """At time scale 60 kube-proxy's 60 s rules take 1 s: poll until they have."""
    n = s.nodes[0]
    code, out, err = 0, "", ""
    for _ in range(40):
        code, out, err = await run("check", "--healthz-url", healthz_url or n.healthz_url,
                                   "--metrics-url", n.metrics_url, "--node", n.name,
                                   "--pending-threshold", "1", env=ENV)
        if code == 1:
            break
        await asyncio.sleep(0.25)
    return code, out, err


async def test_each_failure_is_said_once_with_its_url() -> None:
    code, out, err = await run("check", "--healthz-url", "http://127.0.0.1:1/nope",
                               "--metrics-url", "http://127.0.0.1:1/metrics", "--timeout", "1",
                               env=ENV)
    assert code == 2 and "Traceback" not in err
    lines = out.splitlines()
    assert lines[0].startswith("UNREACHABLE: ")
    for url in ("http://127.0.0.1:1/nope", "http://127.0.0.1:1/metrics",
                "http://127.0.0.1:1/proxyMode"):
        assert sum(url in line for line in lines) == 1, out
    assert sum("cannot connect" in line for line in lines) == 3, out  # one per endpoint


async def test_a_wrong_healthz_path_is_named() -> None:
    async for s in sim():
        n = s.nodes[0]
        wrong = n.healthz_url.replace("/healthz", "/nope")
        code, out, _ = await run("check", "--healthz-url", wrong, "--metrics-url", n.metrics_url,
                                 env=ENV)
        assert code == 2
        (line,) = [line for line in out.splitlines() if "404" in line]
        assert wrong in line, out


async def test_never_synced_says_so_and_since_when() -> None:
    async for s in sim(version="1.30", scenario="first-sync-fails", time_scale=60.0):
        code, out, _ = await check_until_unhealthy(s)
        assert code == 1, out
        # 1.30 answers 200 by its startup rule: only the metrics show it never synced.
        assert "HTTP 200" in out and "why: no sync since kube-proxy started" in out, out
        (sync,) = [line for line in out.splitlines() if line.startswith("  sync ")]
        assert "never synced" in sync and " - ago" not in sync and " up " in sync, sync


async def test_a_stuck_133_node_shows_the_bound_and_the_family_behind() -> None:
    async for s in sim(version="1.33", scenario="stuck", time_scale=60.0):
        code, out, _ = await check_until_unhealthy(s)
        assert code == 1, out
        assert "why: /healthz answered 503 (IPv4 last synced " in out, out
        (sync,) = [line for line in out.splitlines() if line.startswith("  sync ")]
        assert "pending ≥ " in sync and ": the last sync)" in sync, sync
        assert sum(line.startswith("  why: ") and "503" in line
                   for line in out.splitlines()) == 1, out
