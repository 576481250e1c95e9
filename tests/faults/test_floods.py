"""A kube-proxy that floods the exporter: endless ``100 Continue``, endless trailers, a stream
of 1-byte chunks, a head trickled byte by byte.

Before: ``check --timeout 2`` never returned (the poll never yielded to the loop, so the
deadline could not fire), and in ``serve`` every other target and ``/metrics`` stalled for as
long as the flood lasted. Now each flood ends at a cap or at the deadline, and the rest of the
exporter keeps working meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import sys
from collections.abc import Callable

import pytest

from kpexporter.config.values import Target
from tests.faults.hostile import (
    Behaviour,
    Exporter,
    HostileKubeProxy,
    answer,
    endless_interim,
    endless_trailers,
    exporter_config,
    one_byte_chunks,
    slow_headers,
)
from tests.faults.test_faults import good_page, healthy_healthz

FLOODS: dict[str, tuple[Callable[[], Behaviour], str]] = {
    # behaviour on /healthz, and the reason its polls fail with
    "endless-100-continue": (endless_interim, "too_large"),
    "endless-trailers": (endless_trailers, "too_large"),
    "one-byte-chunks": (one_byte_chunks, "too_large"),
    "slowloris-headers": (slow_headers, "timeout"),
}
CHECK_RETURNS_WITHIN = 30.0  # seconds: a bound for a hung process, not a speed measure


async def test_check_returns_under_every_flood() -> None:
    """``kpexporter check --timeout 2`` in a subprocess: exit 2 naming the reason."""
    servers: list[HostileKubeProxy] = []
    try:
        for make, _ in FLOODS.values():
            kp = HostileKubeProxy()
            await kp.start(make(), answer(good_page))
            servers.append(kp)

        async def check(kp: HostileKubeProxy) -> tuple[int, str]:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "kpexporter", "check", "--node", "n",
                "--healthz-url", kp.healthz_url, "--metrics-url", kp.metrics_url,
                "--timeout", "2", "--output", "json", stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"})
            try:
                out, err = await asyncio.wait_for(proc.communicate(), CHECK_RETURNS_WITHIN)
            except TimeoutError:
                proc.kill()
                await proc.wait()
                raise AssertionError(f"check still running after {CHECK_RETURNS_WITHIN}s"
                                     ) from None
            assert proc.returncode is not None
            assert b"Traceback" not in err, err.decode()
            return proc.returncode, out.decode()

        results = await asyncio.gather(*(check(kp) for kp in servers))
    finally:
        for kp in servers:
            await kp.close()
    for (name, (_, reason)), (code, text) in zip(FLOODS.items(), results, strict=True):
        assert code == 2, f"{name}: exit {code}\n{text}"
        errors = {(e["endpoint"], e["reason"]) for e in json.loads(text)["errors"]}
        assert errors == {("healthz", reason)}, f"{name}: {text}"


@contextlib.asynccontextmanager
async def two_targets(flooded: Behaviour):  # type: ignore[no-untyped-def]
    """An exporter polling a flooding kube-proxy and an unrelated healthy one."""
    bad, good = HostileKubeProxy(), HostileKubeProxy()
    await bad.start(healthy_healthz(), answer(good_page))
    await good.start(healthy_healthz(), answer(good_page))
    cfg = exporter_config(bad, interval="0.2", timeout="1")
    cfg = dataclasses.replace(cfg, targets_extra=(
        Target("flooded", bad.healthz_url, bad.metrics_url),
        Target("healthy", good.healthz_url, good.metrics_url)))
    exp = Exporter(cfg)
    try:
        await exp.start()
        yield bad, exp
    finally:
        await exp.stop()
        await bad.close()
        await good.close()


@pytest.mark.parametrize("name", FLOODS)
async def test_serve_keeps_answering_during_a_flood(name: str) -> None:
    make, reason = FLOODS[name]
    async with two_targets(answer(good_page)) as (bad, exp):
        flooded, healthy = exp.poller.states
        async with asyncio.timeout(20):
            while healthy.polls < 1 or flooded.polls < 1:
                await asyncio.sleep(0.05)
        await bad.set(healthz=make())
        before = healthy.polls
        async with asyncio.timeout(20):
            while flooded.errors[("healthz", reason)] < 2 or healthy.polls < before + 5:
                s = await exp.scrape()  # answered within Exporter.SCRAPE_DEADLINE every time
                assert s.status == 200
                assert s.value("kpexporter_up", node="healthy") == 1.0
                await asyncio.sleep(0.05)
        s = await exp.scrape()
        assert s.value("kpexporter_up", node="flooded") == 0.0
        counted = s.value("kpexporter_poll_errors_total", node="flooded", endpoint="healthz",
                          reason=reason)
        assert counted is not None and counted >= 2
        # The healthy node's polls never failed, for any reason.
        failed = [k for k, n in healthy.errors.items() if n]
        assert failed == [], failed
