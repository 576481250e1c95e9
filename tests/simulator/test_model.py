"""Scenario behaviour with a fake clock: every instant is passed in, nothing sleeps."""

from __future__ import annotations

import itertools
import json
import re

from kpexporter.simulator.bodies import NS
from kpexporter.simulator.model import FamilyState, NodeConfig, NodeModel, Policy
from kpexporter.simulator.page import render_metrics
from kpexporter.simulator.scenarios import DESCRIPTIONS, SCENARIOS, policy_for
from kpexporter.simulator.versions import Version

T0 = 1_714_040_000 * NS
S = NS


def node(scenario: str, minor: int = 30, mode: str = "iptables", scale: float = 1.0,
         families: tuple[str, ...] = ("IPv4",), seed: int = 0) -> NodeModel:
    cfg = NodeConfig(version=Version(minor), mode=mode, ip_families=families, uptime_s=900,
                     time_scale=scale, seed=seed)
    return NodeModel(cfg, policy_for(scenario, clock_skew_s=30.0), T0)


def fields(body: bytes) -> tuple[str, str]:
    m = re.match(rb'\{"lastUpdated": "([^"]+)","currentTime": "([^"]+)"', body)
    assert m is not None, body
    return m.group(1).decode(), m.group(2).decode()


def test_every_scenario_runs_an_hour_on_every_generation() -> None:
    for name in SCENARIOS:
        for minor, mode in ((12, "iptables"), (20, "ipvs"), (26, "iptables"), (30, "nftables"),
                            (33, "iptables")):
            m = node(name, minor, mode, families=("IPv4", "IPv6"))
            for t in range(0, 3600, 300):
                probe = m.probe("/healthz", T0 + t * S)
                assert probe is not None and probe.status in (200, 503)
            render_metrics(m, T0 + 3600 * S)


def test_stuck_turns_503_after_exactly_two_sync_periods() -> None:
    m = node("stuck")
    m.queue_change(T0 + S)
    oldest = m.families[0].oldest_pending_ns
    assert oldest is not None
    timeout = 60 * S
    before = m.probe("/healthz", oldest + timeout - 1)
    assert before is not None and before.status == 200
    after = m.probe("/healthz", oldest + timeout)
    assert after is not None and after.status == 503
    last, current = fields(after.body)
    assert last != current  # the 503 body shows the last successful sync, with its own m=
    assert "m=+" in last
    livez = m.probe("/livez", oldest + timeout)
    assert livez is not None and livez.status == 503
    page = render_metrics(m, oldest + timeout + 30 * S)
    queued = float(page.split("\nkubeproxy_sync_proxy_rules_last_queued_timestamp_seconds ")[1]
                   .split()[0])
    synced = float(page.split("\nkubeproxy_sync_proxy_rules_last_timestamp_seconds ")[1]
                   .split()[0])
    assert queued > synced


def test_time_scale_shrinks_the_503_threshold() -> None:
    m = node("stuck", scale=10.0)
    m.queue_change(T0 + S)
    oldest = m.families[0].oldest_pending_ns
    assert oldest is not None
    assert m.health_timeout_ns == 6 * S
    probe = m.probe("/healthz", oldest + 6 * S)
    assert probe is not None and probe.status == 503


def test_idle_iptables_does_not_sync_for_an_hour_yet_stays_healthy() -> None:
    m = node("idle")
    f = m.families[0]
    last_run = f.last_run_ns
    assert last_run is not None and f.last_ok_ns is not None
    first_ok, syncs = f.last_ok_ns, f.sync.count
    hourly = last_run + 3600 * S
    for t in range(T0, hourly - S, 60 * S):
        probe = m.probe("/healthz", t)
        assert probe is not None and probe.status == 200
    assert (f.last_ok_ns, f.sync.count) == (first_ok, syncs)
    assert (hourly - S - first_ok) / S > 3000  # the age an alert on age alone would fire on
    m.advance(hourly + 60 * S)
    assert f.sync.count == syncs + 1
    assert f.full.count >= 2  # the hourly sync is a full one


def test_ipvs_resyncs_every_sync_period_when_idle() -> None:
    m = node("idle", mode="ipvs")
    f = m.families[0]
    oks = []
    for t in range(T0, T0 + 300 * S, S):
        m.advance(t)
        if not oks or f.last_ok_ns != oks[-1]:
            oks.append(f.last_ok_ns)
    gaps = [(b - a) / S for a, b in itertools.pairwise(oks[1:])]
    assert len(gaps) >= 8
    assert all(29.9 < g < 31 for g in gaps)


def test_restart_resets_counters_monotonic_and_start_time() -> None:
    m = node("restart")
    m.probe("/healthz", T0 + 10 * S)
    before = m.families[0].sync.count
    start_before = m.process_start_ns
    probe = m.probe("/healthz", T0 + 301 * S)
    assert probe is not None
    assert m.process_start_ns == T0 + 300 * S != start_before
    assert m.families[0].sync.count < before
    assert m.healthz_total == {"200": 1}
    _, current = fields(probe.body)
    assert current.endswith("m=+1.000000000")
    page = render_metrics(m, T0 + 302 * S)
    assert "process_start_time_seconds 1.7140403e+09" in page


def test_draining_is_503_on_healthz_only_from_128() -> None:
    m = node("draining", 30)
    hz, lz = m.probe("/healthz", T0 + 5 * S), m.probe("/livez", T0 + 5 * S)
    assert hz is not None and lz is not None
    assert hz.status == 503 and hz.body.endswith(b', "nodeEligible": false}')
    assert lz.status == 200 and b"nodeEligible" not in lz.body
    old = node("draining", 27).probe("/healthz", T0 + 5 * S)
    assert old is not None and old.status == 200
    new = node("draining", 33).probe("/healthz", T0 + 5 * S)
    assert new is not None and new.status == 503
    doc = json.loads(new.body)
    assert doc["nodeEligible"] is False and doc["healthy"] is True


def test_never_synced_reports_the_zero_time() -> None:
    m = node("never-synced", 30)
    m.queue_change(T0 + 5 * S)
    early = m.probe("/healthz", T0 + 64 * S)
    assert early is not None and early.status == 200  # the change has waited 59 s
    probe = m.probe("/healthz", T0 + 65 * S)
    assert probe is not None and probe.status == 503
    last, _ = fields(probe.body)
    assert last == "0001-01-01 00:00:00 +0000 UTC"
    assert "kubeproxy_sync_proxy_rules_last_timestamp_seconds 0\n" in render_metrics(m, T0 + 66 * S)
    j = node("never-synced", 33)
    j.queue_change(T0 + 5 * S)
    jp = j.probe("/healthz", T0 + 65 * S)
    assert jp is not None and jp.status == 503
    assert json.loads(jp.body)["lastUpdated"] == "0001-01-01T00:00:00Z"


def test_first_sync_fails_is_faithful_to_the_startup_rule() -> None:
    for minor, status in ((24, 200), (26, 503), (30, 200), (33, 200)):
        m = node("first-sync-fails", minor)
        m.queue_change(T0 + 5 * S)
        probe = m.probe("/healthz", T0 + 70 * S)
        assert probe is not None and probe.status == status, minor


def test_restore_failures_are_timed_but_never_advance_last_sync() -> None:
    m = node("restore-failures")
    f = m.families[0]
    m.advance(T0)
    ok, attempts = f.last_ok_ns, f.sync.count
    m.queue_change(T0 + S)
    m.advance(T0 + 600 * S)
    assert f.last_ok_ns == ok
    assert f.sync.count > attempts + 10
    assert f.restore_failures >= f.sync.count - attempts - 1
    probe = m.probe("/healthz", T0 + 600 * S)
    assert probe is not None and probe.status == 503


def test_constant_churn_hides_failures_before_125() -> None:
    """kubernetes#105742: with lastQueued (not the oldest) a busy node never turns 503."""
    m = node("restore-failures", 24)
    for t in range(1, 600, 10):
        m.queue_change(T0 + t * S)
        probe = m.probe("/healthz", T0 + t * S)
        assert probe is not None and probe.status == 200


def test_clock_skew_moves_reported_times_not_the_monotonic_clock() -> None:
    m = node("clock-skew")
    straight = node("healthy")
    probe, plain = m.probe("/healthz", T0 + 7 * S), straight.probe("/healthz", T0 + 7 * S)
    assert probe is not None and plain is not None
    _, current = fields(probe.body)
    assert current.startswith("2024-04-25 10:13:57 +0000 UTC m=+")  # T0 + 7 s + 30 s
    assert fields(plain.body)[1].startswith("2024-04-25 10:13:27 +0000 UTC m=+")
    assert current.split("m=")[1] == fields(plain.body)[1].split("m=")[1]


def test_flapping_alternates() -> None:
    m = node("flapping")
    seen = set()
    for t in range(0, 960, 5):
        probe = m.probe("/healthz", T0 + t * S)
        assert probe is not None
        seen.add(probe.status)
    assert seen == {200, 503}


def test_pre_117_body_shows_the_raw_last_update() -> None:
    m = node("healthy", 15)
    probe = m.probe("/healthz", T0 + 7 * S)
    assert probe is not None and probe.status == 200
    last, current = fields(probe.body)
    assert last != current
    assert m.probe("/livez", T0 + 8 * S) is None


def test_same_seed_same_node_different_seed_different_node() -> None:
    a, b, c = node("churn"), node("churn"), node("churn", seed=1)
    t = T0 + 120 * S
    assert render_metrics(a, t) == render_metrics(b, t)
    assert render_metrics(a, t) != render_metrics(c, t)


def test_switching_scenario_back_to_healthy_recovers() -> None:
    m = node("healthy")
    m.set_scenario(policy_for("stuck"), T0 + 10 * S)
    m.queue_change(T0 + 11 * S)
    stuck = m.probe("/healthz", T0 + 200 * S)
    assert stuck is not None and stuck.status == 503
    m.set_scenario(policy_for("healthy"), T0 + 201 * S)
    ok = m.probe("/healthz", T0 + 203 * S)
    assert ok is not None and ok.status == 200


class _TimedNode(NodeModel):
    """A node that also lists each sync's duration (the histograms keep only buckets)."""

    def __init__(self, config: NodeConfig, policy: Policy, start_ns: int) -> None:
        self.durations: list[float] = []
        super().__init__(config, policy, start_ns)

    def _complete(self, f: FamilyState, end: int, dur_s: float, ok: bool) -> None:
        self.durations.append(dur_s)
        super()._complete(f, end, dur_s, ok)


def test_slow_sync_keeps_to_the_range_its_description_states() -> None:
    stated = re.search(r"syncs take ([\d.]+)-([\d.]+) s", DESCRIPTIONS["slow-sync"])
    assert stated is not None, DESCRIPTIONS["slow-sync"]
    low, high = float(stated.group(1)), float(stated.group(2))
    cfg = NodeConfig(version=Version(30), uptime_s=900)
    m = _TimedNode(cfg, policy_for("slow-sync"), T0)
    m.durations.clear()  # from the scenario's start: the history before it is the healthy one
    m.advance(T0 + 6 * 3600 * S)
    assert len(m.durations) > 1000  # enough draws that a 2-sigma tail would show
    assert low <= min(m.durations) and max(m.durations) <= high, (min(m.durations),
                                                                  max(m.durations))
