"""atheris target: the exposition reader and the family extraction, then the quantile math
and ``derive`` on what they found. Nothing may escape for any page."""

from __future__ import annotations

import atheris  # type: ignore[import-untyped]

from tests.fuzz import _common

with atheris.instrument_imports(include=["kpexporter"]):
    from kpexporter.config.schema import build_config
    from kpexporter.core.derive import derive
    from kpexporter.core.poll import interpret_metrics
    from kpexporter.core.result import EndpointError, PollResult
    from kpexporter.net.fetcher import Fetched

CFG = build_config(None, {}, {"node": "fuzz"})


def test_one_input(data: bytes) -> None:
    # The real path: interpret_metrics reads the page (read_exposition) and extracts the
    # families (extract); derive then runs the quantile math on every histogram found.
    got = interpret_metrics(Fetched(200, data, "text/plain; version=0.0.4", 1.7e9, 0.001))
    metrics = None if isinstance(got, EndpointError) else got
    if metrics is not None:
        assert metrics.bad_lines >= 0
        for series in metrics.histograms.values():
            for labels, b in series.items():
                assert list(labels) == sorted(labels), "label sets must be sorted"
                assert len(b.les) == len(b.bounds) == len(b.counts) > 0
    result = PollResult("fuzz", 1.7e9, None, 0, None, metrics, 1.7e9 if metrics else None,
                        None, (), ())
    d = derive(result, None, CFG)
    for s in d.summaries:
        assert all(isinstance(v, float) for _, v in s.quantiles)


if __name__ == "__main__":
    _common.run(test_one_input)
