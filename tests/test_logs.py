"""Structured logs: one line per event, logfmt or JSON, never a traceback."""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Iterator

import pytest

from kpexporter.logs import LOGGER_NAME, event, setup_logging

ROUTED = (LOGGER_NAME, "uvicorn", "uvicorn.error", "uvicorn.access", "httpx")


@pytest.fixture(autouse=True)
def restore_loggers() -> Iterator[None]:
    """setup_logging changes process-wide loggers: put them back for the other tests."""
    saved = {name: (lg.handlers[:], lg.level, lg.propagate, lg.disabled)
             for name in ROUTED for lg in [logging.getLogger(name)]}
    try:
        yield
    finally:
        for name, (handlers, level, propagate, disabled) in saved.items():
            lg = logging.getLogger(name)
            lg.handlers[:], lg.level, lg.propagate, lg.disabled = (handlers, level, propagate,
                                                                   disabled)


def lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    captured = capsys.readouterr()
    assert captured.out == ""  # logs never go to stdout: check's output is there
    return captured.err.splitlines()


def test_logfmt_line_carries_time_level_event_and_fields(
        capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("logfmt", "info")
    event(logging.WARNING, "poll_problem", node="node-a", polls=3, detail="healthz/connect")
    (line,) = lines(capsys)
    assert re.fullmatch(r"ts=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z level=warning "
                        r"event=poll_problem node=node-a polls=3 detail=healthz/connect", line)


def test_logfmt_quotes_what_would_break_the_line(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("logfmt", "info")
    event(logging.INFO, "x", space="a b", quote='say "hi"', eq="k=v", newline="1\n2", empty="",
          plain="näive")
    (line,) = lines(capsys)
    fields = line.split(" event=x ", 1)[1]
    assert fields == ('space="a b" quote="say \\"hi\\"" eq="k=v" newline="1\\n2" empty="" '
                      "plain=näive")


def test_floats_are_spelled_as_prometheus_does(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("logfmt", "info")
    event(logging.INFO, "x", nan=math.nan, up=math.inf, down=-math.inf, v=0.1, big=1e300)
    (line,) = lines(capsys)
    assert line.endswith(" nan=NaN up=+Inf down=-Inf v=0.1 big=1e+300")


def test_json_lines_parse_and_keep_types(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("json", "info")
    event(logging.INFO, "start", listen="127.0.0.1:9100", targets=2, tls=False, path=None)
    (line,) = lines(capsys)
    doc = json.loads(line)
    assert doc["event"] == "start" and doc["level"] == "info"
    assert (doc["listen"], doc["targets"], doc["tls"], doc["path"]) == (
        "127.0.0.1:9100", 2, False, None)
    assert list(doc)[:3] == ["ts", "level", "event"]


def test_the_level_filters(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("logfmt", "warning")
    event(logging.INFO, "quiet")
    event(logging.ERROR, "loud")
    assert [line.split(" event=")[1] for line in lines(capsys)] == ["loud"]


def test_an_unexpected_exception_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("logfmt", "info")
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        logging.getLogger(LOGGER_NAME).exception("poll_bug")
    (line,) = lines(capsys)  # no traceback lines
    assert line.endswith('event=poll_bug error="ValueError: bad\\nthing"')


def test_uvicorn_warnings_share_the_format_and_access_lines_are_off(
        capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("json", "info")
    logging.getLogger("uvicorn.error").warning("port busy")
    logging.getLogger("uvicorn.error").info("started")  # below WARNING: dropped
    logging.getLogger("uvicorn.access").warning("GET /metrics")
    (line,) = lines(capsys)
    assert json.loads(line)["event"] == "port busy"


def test_lines_go_to_the_stderr_of_the_moment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stderr swapped (and closed) after set-up is not written to: no 'Logging error'."""
    import io
    import sys
    setup_logging("logfmt", "info")
    old, new = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stderr", old)
    old.close()
    monkeypatch.setattr(sys, "stderr", new)
    event(logging.WARNING, "after_swap", n=1)
    assert new.getvalue().endswith("event=after_swap n=1\n")
