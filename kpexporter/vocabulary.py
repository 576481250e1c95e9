"""The words the exporter's metrics and logs use for endpoints and failure reasons.

A leaf module (imports nothing from the package) so every layer can name an endpoint or a
reason without depending on the layer that produces it. The values are label values in
``kpexporter_poll_errors_total`` and ``kpexporter_poll_duration_seconds``: they are part of
the external contract and must not change.
"""

from __future__ import annotations

from enum import StrEnum


class Endpoint(StrEnum):
    """A kube-proxy endpoint one poll reads (the ``endpoint`` label)."""

    HEALTHZ = "healthz"
    METRICS = "metrics"
    PROXY_MODE = "proxymode"


class Reason(StrEnum):
    """Why a poll of one endpoint failed (the ``reason`` label)."""

    TIMEOUT = "timeout"
    """No complete answer before the poll's deadline."""
    CONNECT = "connect"
    """No connection: name resolution, refused, unreachable, out of sockets or descriptors."""
    READ = "read"
    """The connection broke or the peer spoke something that is not HTTP."""
    HTTP_STATUS = "http_status"
    """An HTTP answer, but not the one expected (status, unsupported encoding)."""
    PARSE = "parse"
    """The body could not be read as the endpoint's format (also counts skipped lines)."""
    TOO_LARGE = "too_large"
    """The answer (head, framing or body) went over its byte cap."""
    TOO_MANY_SERIES = "too_many_series"
    """The page held more series than ``max_series``, or a label over the label limits."""
    INTERNAL = "internal"
    """An unexpected exception in the exporter while polling: still a failed poll."""


ENDPOINTS: tuple[Endpoint, ...] = tuple(Endpoint)

PREDECLARED_REASONS: tuple[Reason, ...] = (
    Reason.TIMEOUT, Reason.CONNECT, Reason.READ, Reason.HTTP_STATUS, Reason.PARSE,
    Reason.TOO_LARGE)
"""Reasons whose counters exist at 0 from the start (the rest appear when first counted)."""
