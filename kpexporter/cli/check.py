"""``kpexporter check``: poll each endpoint once, print the verdict, exit 0/1/2."""

from __future__ import annotations

import json
import sys
import time

from kpexporter.config.schema import Config, redacted
from kpexporter.config.values import Target
from kpexporter.core.derive import LIFETIME, Derived
from kpexporter.core.state import TargetState
from kpexporter.promtext.floats import non_finite
from kpexporter.vocabulary import Endpoint


def _fmt(v: float | None, unit: str = "s") -> str:
    if v is None:
        return "-"
    special = non_finite(v)
    if special is not None:
        return special
    return f"{v:.3f}{unit}" if abs(v) < 100 else f"{v:.0f}{unit}"


def _pending(d: Derived) -> str:
    """The wait of the oldest queued change, as far as it is known: exact, or ``≥`` a bound."""
    low, high = d.sync_pending, d.sync_pending_max
    if low is None:
        return "pending unknown (no queued-change gauge on the page)"
    if high is not None and high <= low:
        return f"pending {_fmt(low)}"
    if high is None:
        return f"pending ≥ {_fmt(low)}"
    return f"pending ≥ {_fmt(low)} (≤ {_fmt(high)}: the last sync)"


def _url(target: Target, endpoint: Endpoint) -> str:
    url = {Endpoint.HEALTHZ: target.healthz_url, Endpoint.METRICS: target.metrics_url,
           Endpoint.PROXY_MODE: target.proxy_mode_url}.get(endpoint)
    return redacted(url) if url else "?"


def check_text(cfg: Config, st: TargetState) -> str:
    """What one poll showed, for a person: each failure said once, bounds marked ``≥``."""
    d, res = st.derived, st.last
    assert d is not None and res is not None
    out = [f"{d.verdict.upper()}: kube-proxy on node {st.node}"]
    said: set[str] = set()
    if d.up:
        out += [f"  why: {r}" for r in d.reasons]
    else:  # the reasons are the failed requests: name each with its URL, once
        for e in res.errors:
            if e.endpoint != Endpoint.PROXY_MODE:
                out.append(f"  why: {e.endpoint}: {e.message} ({_url(st.target, e.endpoint)})")
                said.add(e.endpoint)
    kube_now = time.time() + (d.clock_skew or 0.0)  # ages on kube-proxy's own clock
    h = res.healthz
    if h is not None:
        elig = "" if d.node_eligible is None else f"  nodeEligible={str(d.node_eligible).lower()}"
        out.append(f"  healthz   {_url(st.target, Endpoint.HEALTHZ)}  HTTP {d.healthz_status}  "
                   f"body generation {h.generation}+{elig}  staleness {_fmt(d.staleness)}  "
                   f"clock skew {_fmt(d.clock_skew)}")
        for f in d.families:
            out.append(f"            {f.ip_family}: healthy={str(f.healthy).lower()} "
                       f"staleness {_fmt(f.staleness)}")
    m = res.metrics
    if m is not None:
        started = m.process_start_time
        uptime = "" if started is None else f"  up {_fmt(max(kube_now - started, 0.0))}"
        if d.sync_last is not None:
            last = f"last {_fmt(max(kube_now - d.sync_last, 0.0))} ago"
        elif d.never_synced:
            last = "never synced"
        else:
            last = "no sync gauges on the page"
        out.append(f"  sync      {last}  {_pending(d)}  (threshold "
                   f"{cfg.pending_threshold:g}s)  mode {d.proxy_mode or '?'}{uptime}")
        for s in d.summaries:
            if s.window != LIFETIME:
                continue
            qs = "  ".join(f"p{q * 100:g}={_fmt(v)}" for q, v in s.quantiles)
            lab = "".join(f" {k}={v}" for k, v in s.labels)
            out.append(f"  {s.name}{lab}: {qs}  (n={s.count:.0f}, lifetime)")
        if not d.summaries:
            out.append("  no kube-proxy latency histograms on the page (userspace mode?)")
    out += _slo_lines(st)
    for e in res.errors:
        if e.endpoint not in said:
            out.append(f"  error     {e.endpoint}: {e.reason}: {e.message} "
                       f"({_url(st.target, e.endpoint)})")
    return "\n".join(out)


_EVENTS = {"sync_latency": "syncs", "network_programming_latency": "observations"}


def _slo_lines(st: TargetState) -> list[str]:
    """The SLO ratios one poll can know: kube-proxy's lifetime counts (and this poll)."""
    values = st.slo.values if st.slo is not None else ()
    out = [f"  slo       {v.slo}: this poll {'good' if v.good_total else 'bad'} "
           f"(objective {v.objective * 100:g}%)" if v.slo == "availability" else
           f"  slo       {v.slo}: {v.lifetime_ratio:.3%} good of {v.events_total:.0f} "
           f"{_EVENTS.get(v.slo, 'events')} (kube-proxy's lifetime; objective "
           f"{v.objective * 100:g}%)"
           for v in values if v.events_total > 0]
    if out:
        out.append("            windowed SLIs, burn rates and error budgets need `serve` "
                   "(they compare polls over time)")
    return out


async def _check(cfg: Config, output: str) -> int:
    from kpexporter.service.poller import Poller
    poller = Poller(cfg)
    await poller.open()
    try:
        st = poller.states[0]
        await poller.poll_once(st)
    finally:
        await poller.stop()
    if st.derived is None:
        print(f"UNREACHABLE: kube-proxy on node {st.node}: poll failed", file=sys.stderr)
        return 2
    if output in ("json", "prometheus"):  # the web app's renderers (importing it costs ~0.4 s)
        from kpexporter.service.app import render_metrics, target_json
        if output == "json":
            print(json.dumps(target_json(st), indent=2, allow_nan=False))
        else:
            sys.stdout.write(render_metrics(poller, None)[0].decode())
    else:
        print(check_text(cfg, st))
    return st.derived.exit_code
