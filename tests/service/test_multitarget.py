"""Multi-target mode: one process polls many kube-proxies from the config file's ``targets:``.

Every target is polled every interval with its own ``node`` label, at most ``concurrency``
polls run at once, one target's failure is only that target's, and ``/metrics`` (the fast
writer) shows them all. Waits are bounded; nothing asserts on how long anything took.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kpexporter.config.schema import build_config
from kpexporter.service.app import render_metrics
from kpexporter.service.poller import Poller
from tests.builders import HEALTHY_128
from tests.fixtures import V1_30, fixture_bytes


class KubeProxies:
    """Loopback kube-proxies on one listener (every target's URLs name its own path)."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.open = 0
        self.most_open = 0
        self.refused: set[str] = set()

    async def start(self) -> str:
        page = fixture_bytes(V1_30)

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.open += 1
            self.most_open = max(self.most_open, self.open)
            try:
                head = await reader.readuntil(b"\r\n\r\n")
                path = head.split(b" ", 2)[1].decode()
                node, _, endpoint = path.strip("/").partition("/")
                if node in self.refused:
                    writer.transport.abort()
                    return
                await asyncio.sleep(self.delay)
                body = {"healthz": HEALTHY_128, "metrics": page}.get(endpoint, b"iptables")
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
                await writer.drain()
                writer.close()
            finally:
                self.open -= 1

        self.server = await asyncio.start_server(handle, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def close(self) -> None:
        self.server.close()
        await self.server.wait_closed()


def config_file(tmp: Path, base: str, n: int, **extra: object) -> Path:
    lines = [f"{k}: {v}" for k, v in extra.items()]
    lines.append("targets:")
    for i in range(n):
        lines.append(f"  - {{node: kp-{i:03d}, healthz_url: '{base}/kp-{i:03d}/healthz', "
                     f"metrics_url: '{base}/kp-{i:03d}/metrics'}}")
    path = tmp / "targets.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


async def wait_until(check: Callable[[], bool], what: str, deadline: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while not check():
        assert loop.time() < end, f"{what}: not within {deadline}s"
        await asyncio.sleep(0.02)


def up_values(page: str) -> dict[str, str]:
    return dict(re.findall(r'^kpexporter_up\{node="([^"]+)"\} (\S+)$', page, re.M))


async def test_every_target_polled_each_interval_with_its_own_label(tmp_path: Path) -> None:
    kp = KubeProxies()
    base = await kp.start()
    kp.refused.add("kp-007")
    cfg = build_config(config_file(tmp_path, base, 40, interval=0.2, log_level="error"), {}, {})
    assert len(cfg.targets) == 40
    poller = Poller(cfg)
    try:
        await poller.start()
        await wait_until(lambda: poller.ready, "first round")
        await wait_until(lambda: all(st.polls >= 3 for st in poller.snapshot()),
                         "three polls of every target")
        page = render_metrics(poller, None)[0].decode()
    finally:
        await poller.stop()
        await kp.close()
    ups = up_values(page)
    assert len(ups) == 40
    assert ups.pop("kp-007") == "0.0"  # only the refusing one is down
    assert set(ups.values()) == {"1.0"}
    assert page.count("# TYPE kpexporter_up gauge") == 1  # one family, 40 series
    assert re.search(r'kpexporter_poll_errors_total\{endpoint="healthz",node="kp-007",'
                     r'reason="read"\} [1-9]', page)


async def test_concurrency_bounds_the_requests_in_flight(tmp_path: Path) -> None:
    kp = KubeProxies(delay=0.02)
    base = await kp.start()
    cfg = build_config(config_file(tmp_path, base, 30, interval=0.05, concurrency=3,
                                   log_level="error"), {}, {})
    poller = Poller(cfg)
    try:
        await poller.start()
        await wait_until(lambda: all(st.polls >= 2 for st in poller.snapshot()),
                         "two polls of every target")
    finally:
        await poller.stop()
        await kp.close()
    # Three polls at a time, each at most three requests (healthz, metrics, /proxyMode once).
    assert 1 <= kp.most_open <= 9


async def test_the_page_is_the_same_whichever_path_renders_it(tmp_path: Path) -> None:
    from prometheus_client.exposition import generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from kpexporter.service.openmetrics import make_registry

    kp = KubeProxies()
    base = await kp.start()
    cfg = build_config(config_file(tmp_path, base, 5, interval=0.1, log_level="error"), {}, {})
    poller = Poller(cfg)
    try:
        await poller.start()
        await wait_until(lambda: all(st.polls >= 2 for st in poller.snapshot()), "two polls")
        await poller.stop()  # freeze the states
        fast = render_metrics(poller, None)[0].decode()
        slow = generate_latest(make_registry(poller.snapshot)).decode()
    finally:
        await poller.stop()
        await kp.close()

    def samples(text: str) -> list[tuple[str, tuple[tuple[str, str], ...], str]]:
        return [(s.name, tuple(sorted(s.labels.items())), repr(s.value))  # NaN == NaN
                for f in text_string_to_metric_families(text) for s in f.samples]

    assert samples(fast) == samples(slow)


async def test_per_node_pages_add_up_to_the_full_page(tmp_path: Path) -> None:
    """``/metrics?node=X`` for every node: the union of their samples is the full page,
    process-level families (no ``node`` label) on each of them, in text and OpenMetrics."""
    import httpx
    from prometheus_client.openmetrics.parser import (
        text_string_to_metric_families as om_families,
    )
    from prometheus_client.parser import text_string_to_metric_families

    from kpexporter.service.app import create_app

    kp = KubeProxies()
    base = await kp.start()
    kp.refused.add("kp-002")
    cfg = build_config(config_file(tmp_path, base, 5, interval=0.1, log_level="error"), {}, {})
    poller = Poller(cfg)
    try:
        await poller.start()
        await wait_until(lambda: all(st.polls >= 2 for st in poller.snapshot()), "two polls")
        await poller.stop()  # freeze the states
    finally:
        await poller.stop()
        await kp.close()
    nodes = [st.node for st in poller.snapshot()]
    app = create_app(poller, manage_poller=False)
    Sample = tuple[str, tuple[tuple[str, str], ...], str]
    for accept, parse in ((None, text_string_to_metric_families),
                          ("application/openmetrics-text;version=1.0.0", om_families)):
        headers = {"Accept": accept} if accept else {}

        def samples(text: str, parse: Any = parse) -> list[Sample]:
            return [(s.name, tuple(sorted(s.labels.items())), repr(s.value))
                    for f in parse(text) for s in f.samples]

        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
        async with client:
            full = samples((await client.get("/metrics", headers=headers)).text)
            pages = {n: samples((await client.get("/metrics", params={"node": n},
                                                  headers=headers)).text) for n in nodes}
            pair = samples((await client.get("/metrics", params=[("node", nodes[3]),
                                                                 ("node", nodes[0])],
                                             headers=headers)).text)
        process = [s for s in full if "node" not in dict(s[1])]
        assert "kpexporter_build_info" in {s[0] for s in process}
        union: set[Sample] = set()
        for node, page in pages.items():
            assert len(page) == len(set(page))  # no duplicate series
            assert [s for s in page if "node" not in dict(s[1])] == process
            assert {dict(s[1])["node"] for s in page if "node" in dict(s[1])} == {node}
            assert any(s[0] == "kpexporter_up" for s in page)
            union |= set(page)
        assert union == set(full) and len(full) == len(set(full))
        assert set(pair) == set(pages[nodes[0]]) | set(pages[nodes[3]])
