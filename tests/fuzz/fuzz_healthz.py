"""atheris target: the healthz parser. Only ``HealthzParseError`` may escape, for any bytes
and any status code; a report it returns must hold up (finite staleness or +Inf, no NaN)."""

from __future__ import annotations

import math

import atheris  # type: ignore[import-untyped]

from tests.fuzz import _common

with atheris.instrument_imports(include=["kpexporter"]):
    from kpexporter.kubeproxy.healthz import HealthzParseError, parse_healthz


def test_one_input(data: bytes) -> None:
    status = 503 if data[:1] == b"5" else 200
    try:
        report = parse_healthz(data, status)
    except HealthzParseError as e:
        assert "\n" not in str(e), "a parse error must be one line"
        return
    s = report.staleness_seconds
    assert not math.isnan(s) and s >= 0, f"staleness {s!r}"
    assert isinstance(report.current_time.unix, float)
    for fam in report.families:
        assert fam.ip_family in ("IPv4", "IPv6")


if __name__ == "__main__":
    _common.run(test_one_input)
