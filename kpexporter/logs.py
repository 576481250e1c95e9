"""Structured logs: one line per event, ``key=value`` (logfmt) or JSON.

Operators grep these at 3 a.m.; every line carries an ``event`` name and the fields that
explain it, never a traceback for an expected failure (a down kube-proxy is data, not a
crash).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Mapping
from typing import Any, Literal

from kpexporter.promtext.floats import non_finite

LogFormat = Literal["logfmt", "json"]
LOGGER_NAME = "kpexporter"
_FIELDS = "kpx_fields"


def get_logger() -> logging.Logger:
    return logging.getLogger(LOGGER_NAME)


def event(level: int, name: str, /, **fields: Any) -> None:
    """Log one event with structured fields."""
    logger = get_logger()
    if logger.isEnabledFor(level):
        logger.log(level, name, extra={_FIELDS: fields})


def _logfmt_value(value: Any) -> str:
    text = (non_finite(value) or repr(value)) if isinstance(value, float) else str(value)
    if text == "" or any(c in text for c in ' "=\\\n\t'):
        return json.dumps(text, ensure_ascii=False)
    return text


class _Formatter(logging.Formatter):
    def __init__(self, fmt: LogFormat) -> None:
        super().__init__()
        self._json = fmt == "json"

    def format(self, record: logging.LogRecord) -> str:
        fields: Mapping[str, Any] = getattr(record, _FIELDS, {})
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        ts += f".{int(record.msecs):03d}Z"
        base: dict[str, Any] = {"ts": ts, "level": record.levelname.lower()}
        base["event"] = record.getMessage()
        base.update(fields)
        if record.exc_info and record.levelno >= logging.ERROR:
            # Unexpected bugs only: a single-line summary, never a multi-line traceback.
            exc = record.exc_info[1]
            base["error"] = f"{type(exc).__name__}: {exc}"
        if self._json:
            return json.dumps(base, default=str, ensure_ascii=False)
        return " ".join(f"{k}={_logfmt_value(v)}" for k, v in base.items())


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a line is logged, not when set up.

    A handler bound to the stream of its day outlives it: an embedding program or a test
    runner that swaps and closes stderr would turn every later line into a logging error.
    """

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass  # StreamHandler.__init__ assigns one; stderr is always looked up afresh


def setup_logging(fmt: LogFormat = "logfmt", level: str = "info") -> None:
    """Route kpexporter's and uvicorn's logs through one formatter on stderr."""
    handler = _StderrHandler()
    handler.setFormatter(_Formatter(fmt))
    root = get_logger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
    for name in ("uvicorn", "uvicorn.error"):
        lg = logging.getLogger(name)
        lg.handlers[:] = [handler]
        lg.setLevel(logging.WARNING)
        lg.propagate = False
    logging.getLogger("uvicorn.access").disabled = True
    logging.getLogger("httpx").setLevel(logging.WARNING)
