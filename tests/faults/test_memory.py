"""Memory stays bounded while kube-proxy sends the worst it can, poll after poll.

tracemalloc traces every Python allocation of the process (exporter and hostile server alike):
the peak over many bad polls must stay far below what the hostile answers would cost if read
whole (a 64 MiB gzip bomb, an endless chunked body), and what is still allocated after them
must not grow with the number of polls (no leak per failed poll), nor may the number of open
file descriptors.
"""

from __future__ import annotations

import gc
import os
import tracemalloc

import pytest

from tests.faults.hostile import (
    Behaviour,
    answer,
    endless,
    endless_interim,
    endless_trailers,
    fixture_page,
    footprint,
    gzip_bomb,
    hang,
    histogram_page,
    one_byte_chunks,
    refuse,
    reset_mid_body,
    running,
)
from tests.faults.test_faults import CAP, healthy_healthz
from tests.fixtures import V1_30

MiB = 1024 * 1024


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


POLLS = 8
PEAK_BOUND = 24 * MiB  # the body cap is 256 KiB; reading a bomb or endless body would be 64 MiB
# Retained growth over POLLS bad polls after a warm-up, measured between polls (caches that
# are still filling account for a few KiB a poll): a leak of 16 KiB a poll shows.
LEAK_BOUND = 128 * 1024


def nan_page() -> bytes:
    return histogram_page([], raw_values=["NaN"] * 16)


CASES: dict[str, object] = {
    "gzip-bomb": gzip_bomb,
    "endless-chunked": endless,
    "over-cap-declared": lambda: answer(b"# x\n" * (CAP // 2)),
    "garbage-just-under-cap": lambda: answer(bytes(range(256)) * (CAP // 256 - 1)),
    "nan-histograms": lambda: answer(nan_page()),
    "reset-mid-body": lambda: reset_mid_body(fixture_page(V1_30)),
    "refused": refuse,
    "hang": hang,
    "endless-100-continue": endless_interim,
    "endless-trailers": endless_trailers,
    "one-byte-chunks": one_byte_chunks,
}


@pytest.mark.parametrize("case", sorted(CASES))
async def test_memory_bounded_over_many_bad_polls(case: str) -> None:
    make = CASES[case]
    assert callable(make)
    behaviour: Behaviour = make()
    # Polls 0.1 s apart, each over in 0.05 s at most: right after one is recorded nothing is
    # in flight, so memory is measured at quiet points and a per-poll leak stands out.
    flags = {"max_body_bytes": str(CAP), "interval": "0.1", "timeout": "0.05"}
    async with running(healthy_healthz(), behaviour, **flags) as (_, exp):
        await exp.settle(3)  # warm-up: connection pool, caches, first log lines
        gc.collect()
        tracemalloc.start()
        try:
            base, _ = tracemalloc.get_traced_memory()
            size = footprint(exp.state)
            await exp.wait_polls(3, deadline=30)
            gc.collect()
            middle, _ = tracemalloc.get_traced_memory()
            fds = open_fds()
            await exp.wait_polls(POLLS, deadline=30)
            gc.collect()
            end, peak = tracemalloc.get_traced_memory()
            fd_growth = open_fds() - fds
        finally:
            tracemalloc.stop()
        s = await exp.scrape()
        print(f"{case}: peak +{(peak - base) / MiB:.2f} MiB, retained "
              f"{(end - middle) / 1024:+.0f} KiB over {POLLS} polls")
        assert s.status == 200
        assert footprint(exp.state) == size
        # Both ends of every connection live in this process: a socket the exporter forgets
        # to close (a timed-out request, say) shows as two descriptors a poll.
        assert fd_growth <= 2, f"{fd_growth} more open descriptors after {POLLS} polls"
        assert peak - base < PEAK_BOUND, f"peak {(peak - base) / MiB:.1f} MiB above the base"
        # Growth between the middle and the end: a per-poll leak would show here.
        assert end - middle < LEAK_BOUND, f"{(end - middle) / 1024:.0f} KiB retained"


def long_label_page(poll: int, lines: int = 20, value_len: int = 20_000) -> bytes:
    """A page whose label values are long and new every poll (well under the body cap)."""
    v = f"{poll:08d}" * (value_len // 8)
    name = "kubeproxy_sync_proxy_rules_duration_seconds_bucket"
    return "".join(f'{name}{{a="{v}{j}",le="1"}} 1\n' for j in range(lines)).encode()


def test_long_label_values_new_every_poll_are_not_kept() -> None:
    from kpexporter.core.poll import interpret_metrics
    from kpexporter.net.fetcher import Fetched

    def read(i: int) -> None:
        interpret_metrics(Fetched(200, long_label_page(i), "text/plain", 0.0, 0.0))

    for i in range(3):  # warm-up
        read(i)
    gc.collect()
    tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()
        for i in range(3, 15):
            read(i)
        gc.collect()
        end, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert end - base < 2 * MiB, f"{(end - base) / MiB:.1f} MiB kept after 12 polls"


async def test_exporter_memory_bounded_when_label_values_change_every_poll() -> None:
    polls = iter(range(1_000_000))

    def page() -> bytes:
        return long_label_page(next(polls), lines=10, value_len=50_000)

    flags = {"interval": "0.1", "timeout": "1"}
    async with running(healthy_healthz(), answer(page), **flags) as (_, exp):
        await exp.settle(2)
        await exp.client.get("/metrics")  # not parsed here: megabytes of label values
        gc.collect()
        tracemalloc.start()
        try:
            base, _ = tracemalloc.get_traced_memory()
            for _ in range(10):
                await exp.wait_polls(1)
                assert (await exp.client.get("/metrics")).status_code == 200
            gc.collect()
            end, _ = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    # Each page is ~0.5 MiB; what a poll leaves behind must not add up.
    assert end - base < 4 * MiB, f"{(end - base) / MiB:.1f} MiB kept after 10 polls"
