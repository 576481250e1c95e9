"""``/`` in a real headless browser, with JavaScript off, against simulated kube-proxies.

Debian's chromium driven by playwright (PyPI) — playwright's own browser download is not
used. The exporter runs in-process (poller, app, uvicorn) in a thread, polling a simulator
(time ×60) every 0.5 s whose nodes are healthy, stuck and draining, plus a target on a
closed port; its page history keeps a sample per poll so the charts fill within seconds.
The nodes run healthy for a few polls before they turn, as real nodes do. The browser must
show each node's verdict and why, draw points in every chart of every
reached node, fetch nothing but the page itself, and carry the refresh; the screenshot it
takes is the README's ``docs/img/page.png``.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
import yaml

from kpexporter.config.schema import build_config
from kpexporter.service.app import create_app
from kpexporter.service.history import PageHistory
from kpexporter.service.poller import Poller
from kpexporter.simulator import SimOptions, start_simulator

sync_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]
README_SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "img" / "page.png"
"""Rewritten only with KPX_UPDATE_SCREENSHOT=1, so a test run leaves the work tree clean."""
SCENARIOS = {"node-healthy": "healthy", "node-stuck": "stuck", "node-draining": "draining"}
GONE = "node-gone"
EXPECTED = {"node-healthy": ("healthy", r"/healthz 200"),
            "node-stuck": ("unhealthy", r"/healthz answered 503"),
            "node-draining": ("unhealthy", r"node not eligible"),
            GONE: ("unreachable", r"connect")}
CHARTS = 3  # pending age, sync p99 per window, burn rate

pytestmark = pytest.mark.skipif(shutil.which(CHROMIUM) is None and not Path(CHROMIUM).exists(),
                                reason=f"no {CHROMIUM} (Debian: apt-get install chromium)")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port  # nobody listens on it now: connection refused


class Served:
    """The simulator and the exporter's app on a loop of their own, in a thread."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.url = ""
        self._ready = threading.Event()
        self._server: uvicorn.Server | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="page-server", daemon=True)

    def start(self) -> Served:
        self._thread.start()
        if not self._ready.wait(60) or self._error is not None:
            raise RuntimeError(f"the exporter did not start: {self._error!r}")
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        self._thread.join(30)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as e:  # reported to the test through start()
            self._error = e
            self._ready.set()

    async def _main(self) -> None:
        sim = await start_simulator(SimOptions(healthz_port=0, metrics_port=0,
                                               nodes=len(SCENARIOS), time_scale=60.0))
        try:
            gone = f"http://127.0.0.1:{_closed_port()}"
            targets = [{"node": name, "healthz_url": n.healthz_url, "metrics_url": n.metrics_url}
                       for name, n in zip(SCENARIOS, sim.nodes, strict=True)]
            targets.append({"node": GONE, "healthz_url": f"{gone}/healthz",
                            "metrics_url": f"{gone}/metrics"})
            path = self.workdir / "page.yaml"
            path.write_text(yaml.safe_dump({"targets": targets, "interval": 0.5,
                                            "timeout": 1}))
            cfg = build_config(path, {}, {})
            poller = Poller(cfg)
            history = PageHistory(cfg, span=20.0, points=40)  # a sample every 0.5 s
            app = create_app(poller, history=history)
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
            self._server = uvicorn.Server(uvicorn.Config(
                app, log_config=None, access_log=False, lifespan="on"))
            serving = asyncio.create_task(self._server.serve(sockets=[sock]))
            while not self._server.started and not serving.done():
                await asyncio.sleep(0.05)
            # Healthy for a few polls first, as a real node is before it goes wrong: its
            # windows then hold syncs (a node stuck from birth has no sync latency to draw).
            await asyncio.sleep(3)
            for i, scenario in enumerate(SCENARIOS.values()):
                await sim.set_scenario(scenario, i)
            self._ready.set()
            await serving
        finally:
            await sim.stop()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    s = Served(tmp_path_factory.mktemp("page")).start()
    try:
        yield s
    finally:
        s.stop()


def _cards(page: Any) -> dict[str, dict[str, object]]:
    """Per node card: verdict, why, and per chart the points drawn and the lines' widths."""
    out: dict[str, dict[str, object]] = {}
    for card in page.locator("article.node").all():
        node = str(card.get_attribute("id")).removeprefix("node-")
        charts = []
        for svg in card.locator("svg.chart").all():
            boxes = [line.bounding_box() for line in svg.locator(".series").all()]
            charts.append((int(svg.get_attribute("data-points") or 0),
                           max((b["width"] for b in boxes if b), default=0.0),
                           svg.locator("line.threshold").count()))
        out[node] = {"verdict": card.locator(".verdict").inner_text(),
                     "why": card.locator(".why").inner_text(), "charts": charts}
    return out


def _settled(cards: dict[str, dict[str, object]]) -> bool:
    if set(cards) != set(EXPECTED):
        return False
    for node, (verdict, why) in EXPECTED.items():
        c = cards[node]
        if c["verdict"] != verdict or not re.search(why, str(c["why"])):
            return False
        charts = c["charts"]
        assert isinstance(charts, list)
        if node != GONE and (len(charts) != CHARTS or any(n < 10 for n, _, _ in charts)):
            return False
        if node == GONE and (len(charts) != CHARTS or charts[2][0] < 10):
            return False  # its burn-rate chart fills a poll at a time, like the others
    return True


def test_the_page_in_a_browser_without_javascript(served: Served) -> None:
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            ctx = browser.new_context(java_script_enabled=False,
                                      viewport={"width": 1280, "height": 900})
            page = ctx.new_page()
            requested: list[str] = []
            page.on("request", lambda r: requested.append(r.url))
            deadline = time.monotonic() + 60
            while True:
                page.goto(served.url + "/")
                cards = _cards(page)
                if _settled(cards) or time.monotonic() > deadline:
                    break
                time.sleep(1)
            assert _settled(cards), repr(cards)[:3000]
            # Worst first: the unreachable node, then the unhealthy ones, the healthy last.
            order = list(cards)
            assert order[0] == GONE and order[-1] == "node-healthy"
            for node, c in cards.items():
                charts = c["charts"]
                assert isinstance(charts, list)
                if node == GONE:  # nothing read from it: no pending age, no sync latency to
                    # draw (the charts say "no data"); its availability budget burns
                    assert [n for n, _, _ in charts[:2]] == [0, 0], charts
                    assert charts[2][0] >= 10, charts
                    card = page.locator(f"#node-{GONE}")
                    assert card.locator("svg.chart text.empty").count() == 2
                    continue
                # pending (stuck line), sync p99 (SLO threshold), burn rate (1x and page)
                for (points, width, lines), want in zip(charts, (1, 1, 2), strict=True):
                    assert points >= 10 and width > 20, (node, charts)  # drawn, not a dot
                    assert lines == want, (node, charts)
            assert page.locator('meta[http-equiv="refresh"]').get_attribute("content") == "5"
            assert page.locator("table tr").count() == 1 + len(EXPECTED)
            assert {u.split("/", 3)[2] for u in requested} == {served.url.split("/", 3)[2]}
            shot = served.workdir / "page.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert shot.stat().st_size > 10_000
    if os.environ.get("KPX_UPDATE_SCREENSHOT") == "1":
        README_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        README_SCREENSHOT.write_bytes(shot.read_bytes())
