"""Named scenarios: each is a small ``Policy`` the node model follows from the moment it is chosen.

Every scenario starts from the same healthy history (the node has been up 10–30 minutes), so a
switch at run time and a start-up choice look alike. Durations below are in unscaled seconds;
``--time-scale`` compresses them (see ``model.py``).
"""

from __future__ import annotations

from kpexporter.simulator.model import Policy

SLOW_SYNC_RANGE_S = (2.0, 8.0)
"""Every slow-sync sync lasts this long (unscaled seconds); its description says so."""

DESCRIPTIONS: dict[str, str] = {
    "healthy": "steady moderate churn (3 changes/min), syncs of ~30 ms: 200 everywhere",
    "idle": "no churn: iptables/nftables re-sync only hourly (last sync ages to ~3600 s while "
    "healthy); ipvs every syncPeriod",
    "churn": "heavy churn (5 changes/s), syncs batched by minSyncPeriod, ~150 ms each",
    "slow-sync": f"syncs take {SLOW_SYNC_RANGE_S[0]:g}-{SLOW_SYNC_RANGE_S[1]:g} s, so sync "
    "p99 > 1 s and network programming is slow",
    "stuck": "the sync loop hangs: changes queue, nothing completes; 503 once a change waited "
    "2 x syncPeriod (1.25+ rule), last_queued runs ahead of last_timestamp",
    "never-synced": "restarts into a kube-proxy whose syncs all fail from birth: lastUpdated is "
    "the zero time and, once a change waited 2 x syncPeriod, /healthz answers 503 on every "
    "version (real kube-proxy does so in 1.25-1.28 only; see first-sync-fails)",
    "first-sync-fails": "like never-synced but faithful: 1.17-1.24 and 1.29+ keep answering "
    "200 by the startup rule while nothing was ever programmed (only the metrics show it)",
    "restart": "the process restarts every 5 min: counters and histograms reset, m= restarts, "
    "process_start_time_seconds moves",
    "draining": "the node is being deleted: nodeEligible false, /healthz 503 from 1.28 "
    "(/livez stays 200)",
    "flapping": "alternates 2 min healthy / 2 min stuck (about 1 min of 503 per 4 min)",
    "clock-skew": "healthy, but the node clock runs --clock-skew seconds ahead (bodies, "
    "timestamps, Date header; network programming inflated by the skew)",
    "restore-failures": "every sync attempt fails (iptables-restore / nft): failure counters "
    "grow, attempts are timed, last_timestamp stands still, 503 after 2 x syncPeriod",
}
SCENARIOS: tuple[str, ...] = tuple(DESCRIPTIONS)


def policy_for(name: str, clock_skew_s: float = 30.0) -> Policy:
    """The policy of a named scenario; ValueError for an unknown name."""
    match name:
        case "healthy":
            return Policy(name)
        case "idle":
            return Policy(name, change_rate=0.0)
        case "churn":
            return Policy(name, change_rate=5.0, sync_median_s=0.15, sync_sigma=0.6)
        case "slow-sync":
            return Policy(name, change_rate=0.1, sync_median_s=4.0, sync_sigma=0.35,
                          sync_range_s=SLOW_SYNC_RANGE_S)
        case "stuck":
            return Policy(name, stuck=True)
        case "never-synced":
            return Policy(name, fail_prob=1.0, restart_on_enter=True, strict_startup=True)
        case "first-sync-fails":
            return Policy(name, fail_prob=1.0, restart_on_enter=True)
        case "restart":
            return Policy(name, restart_every_s=300.0)
        case "draining":
            return Policy(name, node_eligible=False)
        case "flapping":
            return Policy(name, flap_period_s=120.0, change_rate=0.1)
        case "clock-skew":
            return Policy(name, clock_skew_s=clock_skew_s)
        case "restore-failures":
            return Policy(name, fail_prob=1.0)
    raise ValueError(f"unknown scenario {name!r} (one of: {', '.join(SCENARIOS)})")
