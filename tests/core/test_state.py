"""TargetState: folding polls into one kube-proxy's state, and logging only what changes.

The polls come from the simulator's model on a fake clock (its exact bodies and pages, no
sockets), so a "50 polls of a stuck kube-proxy" test takes milliseconds.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from kpexporter.config.schema import Config, Target
from kpexporter.core.result import PollResult
from kpexporter.core.state import TargetState
from kpexporter.logs import get_logger
from kpexporter.simulator.bodies import NS
from kpexporter.simulator.model import NodeConfig, NodeModel
from kpexporter.simulator.page import render_metrics
from kpexporter.simulator.scenarios import policy_for
from kpexporter.simulator.versions import Version
from tests.builders import HEALTHY_128, HEALTHY_128_NOW, config, poll_result

T0 = 1_750_000_000 * NS
INTERVAL = 15  # seconds between polls: serve's default


class Events(logging.Handler):
    """The ``event`` names logged, with their fields."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def named(self, name: str) -> list[dict[str, object]]:
        return [dict(getattr(r, "kpx_fields", {})) for r in self.records
                if r.getMessage() == name]


@pytest.fixture
def events() -> Iterator[Events]:
    handler = Events()
    logger = get_logger()
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def state(cfg: Config) -> TargetState:
    return TargetState(Target("node-a", cfg.healthz_url, cfg.metrics_url), horizon=cfg.horizon)


def sim_poll(model: NodeModel, t_ns: int) -> PollResult:
    """What a poll at ``t_ns`` reads from the simulated kube-proxy."""
    probe = model.probe("/healthz", t_ns)
    assert probe is not None
    page = render_metrics(model, t_ns).encode()
    return poll_result(probe.body, probe.status, page, started=t_ns / NS)


def simulated(scenario: str, minor: int) -> NodeModel:
    cfg = NodeConfig(version=Version(minor), uptime_s=900)
    return NodeModel(cfg, policy_for(scenario), T0)


@pytest.mark.parametrize("minor", [30, 33])
@pytest.mark.parametrize("scenario", ["stuck", "never-synced", "first-sync-fails",
                                      "restore-failures"])
def test_a_kube_proxy_in_trouble_polled_50_times_logs_a_handful_of_lines(
        events: Events, scenario: str, minor: int) -> None:
    """The wait grows every poll ("waited 60.6s", "61.6s", ...); the log must not."""
    cfg = config()
    st, model = state(cfg), simulated(scenario, minor)
    verdicts = [st.record(sim_poll(model, T0 + i * INTERVAL * NS), cfg).verdict
                for i in range(50)]
    assert verdicts[-1] == "unhealthy"
    problems = events.named("poll_problem")
    assert 1 <= len(problems) <= 2, problems  # it starts; maybe kube-proxy's 503 joins later
    # Back to healthy: at most one change on the way (a 503 clears before the first sync),
    # one line that it is over, and nothing after.
    model.set_scenario(policy_for("healthy"), T0 + 50 * INTERVAL * NS)
    verdicts = [st.record(sim_poll(model, T0 + i * INTERVAL * NS), cfg).verdict
                for i in range(50, 60)]
    assert verdicts[-1] == "healthy"
    assert len(events.named("poll_problem")) <= len(problems) + 1
    assert [r.getMessage() for r in events.records][-1] == "poll_recovered"
    assert len(events.named("poll_recovered")) == 1


def test_problem_lines_name_the_kinds_and_change_only_with_them(events: Events) -> None:
    cfg = config()
    st = state(cfg)
    later = HEALTHY_128_NOW + 15
    st.record(poll_result(None, 0, None), cfg)  # kube-proxy down: one line
    st.record(poll_result(None, 0, None, started=later), cfg)
    (down,) = events.named("poll_problem")
    assert down["problems"] == "healthz/connect,metrics/connect"
    assert down["verdict"] == "unreachable"
    page = b"# TYPE x gauge\nx 1\n"
    st.record(poll_result(HEALTHY_128, 200, page, started=later), cfg)
    assert events.named("poll_recovered") == [{"node": "node-a", "verdict": "healthy"}]
    st.record(poll_result(HEALTHY_128, 503, page, started=later), cfg)
    st.record(poll_result(HEALTHY_128, 503, page, started=later + 15), cfg)
    assert [e["problems"] for e in events.named("poll_problem")] == [
        "healthz/connect,metrics/connect", "healthz_503"]


def test_a_restart_is_logged_and_rereads_the_proxy_mode(events: Events) -> None:
    cfg = config()
    st = state(cfg)

    def page(start: float) -> bytes:
        return f"# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds {start}\n"\
            .encode()

    st.record(poll_result(HEALTHY_128, 200, page(100.0)), cfg)
    assert st.proxy_mode == "iptables" and not st.wants_proxy_mode()
    st.record(poll_result(HEALTHY_128, 200, page(100.0), mode=None), cfg)
    assert st.proxy_mode == "iptables" and events.named("kube_proxy_restarted") == []
    st.record(poll_result(HEALTHY_128, 200, page(200.0), mode=None), cfg)
    assert events.named("kube_proxy_restarted") == [{"node": "node-a", "process_start": 200.0}]
    assert st.wants_proxy_mode()  # a restart may come with another mode


def test_the_remembered_queued_time_does_not_outlive_a_restart() -> None:
    """A change queued before a restart is not waiting in the new process."""
    cfg = config()
    st = state(cfg)
    now = HEALTHY_128_NOW

    def page(start: float, synced: float, queued: float) -> bytes:
        return (f"# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds {start!r}\n"
                "# TYPE kubeproxy_sync_proxy_rules_last_timestamp_seconds gauge\n"
                f"kubeproxy_sync_proxy_rules_last_timestamp_seconds {synced!r}\n"
                "# TYPE kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds gauge\n"
                f"kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds {queued!r}\n").encode()

    st.record(poll_result(HEALTHY_128, 200, page(now - 900, now - 50, now - 40)), cfg)
    assert st.queued_since == {(): now - 40}
    # Restarted 5 s ago, synced 4 s ago, a new change 1 s ago: it has waited 1 s (the
    # body's clock stays at `now`), not 40.
    d = st.record(poll_result(HEALTHY_128, 200, page(now - 5, now - 4, now - 1)), cfg)
    assert st.queued_since == {(): now - 1}
    assert d.sync_pending == pytest.approx(1.0, abs=0.01)


def test_error_counters_start_at_zero_and_count_each_failure() -> None:
    cfg = config()
    st = state(cfg)
    assert st.errors[("healthz", "connect")] == 0 and st.errors[("metrics", "timeout")] == 0
    st.record(poll_result(None, 0, None), cfg)
    st.record(poll_result(None, 0, None), cfg)
    assert st.errors[("healthz", "connect")] == 2 and st.errors[("metrics", "connect")] == 2
    assert st.polls == 2 and st.last_success is None
    st.record(poll_result(HEALTHY_128, 200, b"# TYPE x gauge\nx 1\n"), cfg)
    assert st.last_success == HEALTHY_128_NOW


def test_a_histogram_that_leaves_the_page_leaves_the_windows() -> None:
    cfg = config()
    st = state(cfg)
    name = "kubeproxy_sync_proxy_rules_duration_seconds"
    page = (f"# TYPE {name} histogram\n{name}_bucket{{le=\"1\"}} 1\n"
            f"{name}_bucket{{le=\"+Inf\"}} 1\n{name}_sum 0.5\n{name}_count 1\n").encode()
    st.record(poll_result(HEALTHY_128, 200, page), cfg)
    assert list(st.histories) == [("sync_proxy_rules_duration_seconds", ())]
    st.record(poll_result(HEALTHY_128, 200, b"# TYPE x gauge\nx 1\n"), cfg)
    assert st.histories == {}


def test_implausible_buckets_are_kept_out_of_the_windows_and_counted() -> None:
    cfg = config()
    st = state(cfg)
    name = "kubeproxy_sync_proxy_rules_duration_seconds"
    # Cumulative counts that decrease (5 then 3) cannot come from a real histogram.
    page = (f"# TYPE {name} histogram\n{name}_bucket{{le=\"1\"}} 5\n"
            f"{name}_bucket{{le=\"+Inf\"}} 3\n{name}_sum 0.5\n{name}_count 3\n").encode()
    before = st.errors[("metrics", "parse")]
    st.record(poll_result(HEALTHY_128, 200, page), cfg)
    assert st.histories == {} and st.errors[("metrics", "parse")] == before + 1
