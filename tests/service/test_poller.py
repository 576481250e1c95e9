"""The poller: a poll that fails for any reason is a failed poll.

Before: ``socket()`` raising ``EMFILE`` (descriptors exhausted) escaped the poll as
``event=poll_bug``, so ``kpexporter_up`` stayed 1 and no error counter moved while no poll
succeeded. Now every failure sets ``up`` 0, counts a reason (``connect`` for an ``OSError``,
``internal`` for anything unexpected) and is logged once per change of state.
"""

from __future__ import annotations

import errno
import logging
import socket
import types
from typing import Any

import pytest

from kpexporter.net import http1
from kpexporter.service import poller as poller_module
from tests.faults.hostile import Exporter, answer, running
from tests.faults.test_faults import assert_clean_log, good_page, healthy_healthz


def no_descriptors(*args: Any, **kwargs: Any) -> socket.socket:
    raise OSError(errno.EMFILE, "Too many open files")


def events(caplog: pytest.LogCaptureFixture, name: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage() == name]


async def up_and_errors(exp: Exporter, reason: str) -> tuple[float | None, float, float]:
    s = await exp.scrape()
    assert s.status == 200
    return (s.value("kpexporter_up"), s.errors("healthz", reason), s.errors("metrics", reason))


async def test_emfile_from_socket_is_a_failed_poll(caplog: pytest.LogCaptureFixture,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    caplog.set_level(logging.DEBUG, logger="kpexporter")
    async with running(healthy_healthz(), answer(good_page)) as (_, exp):
        await exp.settle(1)
        up, _, _ = await up_and_errors(exp, "connect")
        assert up == 1.0
        fake = types.SimpleNamespace(**{**vars(socket), "socket": no_descriptors})
        monkeypatch.setattr(http1, "socket", fake)  # only the poller's sockets run out
        await exp.settle(4)
        up, healthz, metrics = await up_and_errors(exp, "connect")
        assert up == 0.0
        assert healthz >= 4 and metrics >= 4
        problems = events(caplog, "poll_problem")
        assert len(problems) == 1, [vars(r) for r in problems]  # once, not every poll
        monkeypatch.undo()
        await exp.settle(1)
        up, _, _ = await up_and_errors(exp, "connect")
        assert up == 1.0
    assert len(events(caplog, "poll_recovered")) == 1
    assert_clean_log(caplog)


async def test_an_unexpected_exception_in_a_fetch_is_reason_internal(
        caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    caplog.set_level(logging.DEBUG, logger="kpexporter")

    async def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("a bug in a transport")

    async with running(healthy_healthz(), answer(good_page)) as (_, exp):
        await exp.settle(1)
        monkeypatch.setattr(http1.Http1Fetcher, "fetch", broken)
        await exp.settle(3)
        up, healthz, metrics = await up_and_errors(exp, "internal")
        assert up == 0.0 and healthz >= 3 and metrics >= 3
    assert len(events(caplog, "poll_problem")) == 1
    assert_clean_log(caplog)


async def test_an_exception_outside_the_fetches_is_still_a_failed_poll(
        caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    caplog.set_level(logging.DEBUG, logger="kpexporter")

    async def broken(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.ENOBUFS, "No buffer space available")

    async with running(healthy_healthz(), answer(good_page)) as (_, exp):
        await exp.settle(1)
        monkeypatch.setattr(poller_module, "poll_target", broken)
        await exp.settle(3)
        up, healthz, metrics = await up_and_errors(exp, "internal")
        assert up == 0.0 and healthz >= 3 and metrics >= 3
        assert exp.state.last_success is not None  # the last good poll is still known
    assert len(events(caplog, "poll_problem")) == 1
    assert_clean_log(caplog)
