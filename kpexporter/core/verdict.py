"""Healthy, unhealthy or unreachable: the verdict on one kube-proxy from what is known of it.

One pure function for both commands, so ``check`` (one poll) and ``serve`` (which also
remembers, across polls, the first queued time seen since the last sync) judge the same
kube-proxy at the same moment the same way. One poll carries more than the newest queued
time; every signal is used:

- the ``/healthz`` answer itself: a 503 is kube-proxy's own verdict (its rule is "a change
  has waited longer than healthTimeout"), with the reason it gives (node draining, never
  synced, and on 1.33+ which IP family is behind and since when);
- ``last_queued > last_sync``: a change is waiting, for at least ``now − last_queued`` and at
  most ``now − last_sync`` (the oldest waiting change came after the last sync);
- ``process_start_time_seconds`` when a family never synced: its first sync has been owed
  since the process started, so that wait is known exactly.

A value that is only a lower bound says so (``≥``): one poll cannot see the oldest queued
change, only the newest.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from kpexporter.kubeproxy.families import KubeProxyMetrics, LabelSet
from kpexporter.kubeproxy.healthz import HealthzReport, staleness_seconds

Verdict = Literal["healthy", "unhealthy", "unreachable"]

HEALTHZ_503 = "healthz_503"
NODE_NOT_ELIGIBLE = "node_not_eligible"
PENDING_OVER_THRESHOLD = "pending_over_threshold"
NEVER_SYNCED = "never_synced"
NO_ANSWER = "no_answer"


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a kube-proxy.

    ``kind`` names what is wrong and stays the same while it lasts (logs compare kinds, so
    a wait that grows every poll is still one problem); ``text`` says it to a person, with
    the numbers of this poll.
    """

    kind: str
    text: str


@dataclass(frozen=True, slots=True)
class Wait:
    """How long the oldest change kube-proxy has not programmed yet has waited, in seconds.

    At least ``low``; at most ``high`` (None: no upper limit is known). ``never_synced``:
    the wait is the first sync's, owed since the process started.
    """

    low: float
    high: float | None
    never_synced: bool = False

    @property
    def exact(self) -> bool:
        return self.high is not None and self.high <= self.low


def sync_wait(metrics: KubeProxyMetrics, kube_now: float,
              oldest: Mapping[LabelSet, float] | None = None) -> Wait | None:
    """The longest wait over the IP families, on kube-proxy's clock ``kube_now``.

    ``oldest`` (serve's memory, see ``derive.oldest_queued``) replaces ``last_queued`` where
    it is earlier. None when the page says nothing about queued changes (before 1.19, or no
    sync gauges at all) and every family has synced.
    """
    start = metrics.process_start_time
    worst: Wait | None = None
    high_known = True
    highs: list[float] = []
    for labels in sorted(metrics.last_queued.keys() | metrics.last_sync.keys()):
        synced = metrics.last_sync.get(labels, 0.0)
        queued = metrics.last_queued.get(labels)
        never = not synced > 0  # 0 is kube-proxy's unset gauge: no sync yet
        if never and start is not None and start > 0:
            waited = max(kube_now - start, 0.0)
            w = Wait(waited, waited, never_synced=True)
        elif queued is not None and queued > synced:
            since = queued
            kept = oldest.get(labels) if oldest is not None else None
            if kept is not None and kept < queued:
                since = kept
            w = Wait(max(kube_now - since, 0.0),
                     max(kube_now - synced, 0.0) if not never else None)
        elif queued is not None:
            w = Wait(0.0, 0.0)
        else:
            continue  # synced, and no queued time to compare with
        if w.high is None:
            high_known = False
        else:
            highs.append(w.high)
        if worst is None or w.low > worst.low:
            worst = w
    if worst is None:
        return None
    high = max(highs) if high_known and highs else None
    return Wait(worst.low, max(high, worst.low) if high is not None else None,
                worst.never_synced)


def seconds(v: float) -> str:
    return f"{v:.1f}s"


def _healthz_problem(h: HealthzReport) -> Problem:
    if h.node_eligible is False:
        return Problem(NODE_NOT_ELIGIBLE, "/healthz answered 503: node not eligible (being "
                       "deleted or drained — not a kube-proxy fault)")
    why = []
    if h.last_updated is None:
        why.append("never synced")
    else:  # 1.33+: which family is behind, and since when
        for f in h.families:
            if not f.healthy:
                age = staleness_seconds(f.last_updated, h.current_time)
                why.append(f"{f.ip_family} never synced" if math.isinf(age)
                           else f"{f.ip_family} last synced {seconds(age)} ago")
    return Problem(HEALTHZ_503, "/healthz answered 503" + (f" ({', '.join(why)})" if why else ""))


def judge(up: bool, unreachable: Sequence[Problem], healthz: HealthzReport | None,
          healthz_status: int, wait: Wait | None, threshold: float
          ) -> tuple[Verdict, tuple[Problem, ...]]:
    """The verdict and what is wrong.

    ``unreachable``: the failures that kept this poll from reading kube-proxy (used when
    not ``up``); ``wait`` from :func:`sync_wait`; ``threshold``: the longest acceptable wait
    (``--pending-threshold``). Unhealthy when kube-proxy says so (not 200) or when a change
    has surely waited longer than the threshold (``wait.low``: a bound that may still be
    below the truth never makes a healthy kube-proxy unhealthy).
    """
    if not up or healthz is None:
        return "unreachable", tuple(unreachable) or (Problem(NO_ANSWER, "no answer"),)
    problems: list[Problem] = []
    if healthz_status != 200:
        problems.append(_healthz_problem(healthz))
    if wait is not None and wait.low > threshold:
        limit = f"(threshold {threshold:g}s)"
        if wait.never_synced:
            problems.append(Problem(NEVER_SYNCED, "no sync since kube-proxy started "
                                    f"{seconds(wait.low)} ago {limit}"))
        else:
            at_least = "" if wait.exact else "≥ "
            problems.append(Problem(PENDING_OVER_THRESHOLD, "a queued rule change has waited "
                                    f"{at_least}{seconds(wait.low)} {limit}"))
    return ("unhealthy" if problems else "healthy"), tuple(problems)
