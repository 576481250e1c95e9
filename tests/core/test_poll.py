"""``poll_target`` through the ``Fetcher`` interface: any transport, one shared deadline, and
every failure an endpoint error with a reason (never an exception, never ``up``)."""

from __future__ import annotations

import time

from kpexporter.core.poll import poll_target
from kpexporter.net.fetcher import Fetched, FetchError
from kpexporter.vocabulary import Reason
from tests.builders import HEALTHY_128, config
from tests.fixtures import V1_30, fixture_bytes


class FakeFetcher:
    """Answers by URL suffix; records the deadline and cap of every request."""

    def __init__(self, answers: dict[str, bytes | BaseException]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, int, float]] = []

    async def fetch(self, url: str, *, max_bytes: int, deadline: float,
                    accept: str = "*/*") -> Fetched:
        self.calls.append((url.rsplit("/", 1)[1], max_bytes, deadline))
        got = self.answers[url.rsplit("/", 1)[1]]
        if isinstance(got, BaseException):
            raise got
        return Fetched(200, got, "text/plain; version=0.0.4", time.time(), 0.001)

    async def aclose(self) -> None:
        pass


GOOD = {"healthz": HEALTHY_128, "metrics": fixture_bytes(V1_30), "proxyMode": b"iptables"}


async def test_a_good_poll_shares_one_deadline() -> None:
    cfg = config(timeout="3")
    fetcher = FakeFetcher(GOOD)
    before = time.monotonic()
    result = await poll_target(fetcher, cfg.targets[0], cfg, want_proxy_mode=True)
    assert result.up and result.proxy_mode == "iptables" and result.errors == ()
    deadlines = {d for _, _, d in fetcher.calls}
    assert len(deadlines) == 1 and before + 3 <= deadlines.pop() <= time.monotonic() + 3
    caps = {name: cap for name, cap, _ in fetcher.calls}
    assert caps == {"healthz": cfg.max_healthz_bytes, "metrics": cfg.max_body_bytes,
                    "proxyMode": 1024}


async def test_fetch_errors_keep_their_reason() -> None:
    cfg = config()
    fetcher = FakeFetcher({**GOOD, "metrics": FetchError(Reason.TOO_LARGE, "big", 0.2)})
    result = await poll_target(fetcher, cfg.targets[0], cfg, want_proxy_mode=False)
    assert not result.up
    assert [(e.endpoint, e.reason, e.duration) for e in result.errors] == [
        ("metrics", "too_large", 0.2)]


async def test_any_other_exception_is_reason_internal() -> None:
    cfg = config()
    fetcher = FakeFetcher({**GOOD, "healthz": KeyError("surprise")})
    result = await poll_target(fetcher, cfg.targets[0], cfg, want_proxy_mode=False)
    assert not result.up
    assert [(e.endpoint, e.reason) for e in result.errors] == [("healthz", "internal")]
    assert "KeyError" in result.errors[0].message
