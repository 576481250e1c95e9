"""The same rules as Nightingale (n9e) objects: its alert-rule and recording-rule JSON.

Built from :func:`kpexporter.rules.render.rule_files`, the very groups ``alerts/*.yaml`` are
written from, so every ``prom_ql`` is the YAML's ``expr`` byte for byte. The shape follows
n9e's own built-in integration files (``integrations/<Name>/alerts/*.json``,
``integrations/<Name>/record-rules/*.json`` in github.com/ccfos/nightingale) and the fields its
``models.AlertRule`` / ``models.RecordingRule`` read; the mapping of a Prometheus rule is the
one n9e's own YAML importer (``ConvertAlert``) applies:

- ``severity`` label → n9e severity 1/2/3 (critical 1, warning 2, info 3; what n9e does with
  other spellings, unknown ones 2), in ``severity``, ``severities`` and ``rule_config``;
- ``for`` → ``prom_for_duration`` (seconds); the group's ``interval`` → ``prom_eval_interval``
  (``DEFAULT_EVAL_INTERVAL`` without one, n9e's importer default);
- other labels → ``append_tags`` (``k=v``, spaces removed as n9e removes them); annotations as
  they are (n9e renders them as Go templates with ``$labels``/``$value`` and the same
  ``humanize*`` functions); ``runbook_url`` also in n9e's own ``runbook_url`` field.

Unlike the YAML import, rule names are made unique: n9e refuses a second rule of one name in a
business group, and the burn-rate alert exists once per SLO and window pair.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from kpexporter.config.durations import parse_duration
from kpexporter.config.schema import Config
from kpexporter.rules.model import Alert, Group, Recording
from kpexporter.rules.render import ALERTS_FILE, RECORDING_FILE, rule_files

ALERTS_JSON = "kube-proxy.alerts.json"
RECORDING_JSON = "kube-proxy.rules.json"
FILES = {ALERTS_FILE: ALERTS_JSON, RECORDING_FILE: RECORDING_JSON}
"""Each file of ``alerts/`` → its n9e counterpart in ``alerts/nightingale/``."""

DEFAULT_EVAL_INTERVAL = 60
"""Seconds between evaluations for a group without ``interval`` (n9e's YAML importer uses 60 s,
Prometheus's default ``evaluation_interval`` is 1m)."""
ALL_DATASOURCES = [0]
"""``datasource_ids: [0]``: every Prometheus data source of the business group, as in n9e's
built-in files; pick one in n9e after the import if there are several."""

_SEVERITY_WORDS = (
    (1, ("critical", "error", "fatal", "page", "sev1", "severity1")),
    (2, ("warning", "warn", "sev2", "severity2")),
    (3, ("info", "notice", "sev3", "severity3")),
)


def severity(word: str) -> int:
    """n9e's severity for a Prometheus ``severity`` label (as its ``ConvertAlert`` maps it)."""
    for level, words in _SEVERITY_WORDS:
        if word.lower() in words:
            return level
    return 2


def seconds(duration: str) -> int:
    """A Prometheus duration (``5m``, ``0s``) in whole seconds."""
    return 0 if duration == "0s" else round(parse_duration(duration))


def _tags(labels: tuple[tuple[str, str], ...]) -> list[str]:
    return [f"{k}={v}".replace(" ", "") for k, v in labels if k != "severity"]


def _names(alerts: list[Alert]) -> list[str]:
    """Each alert's n9e rule name: its own name, or, where several alerts share one, the name
    with the labels that tell them apart (``KubeProxyErrorBudgetBurn sync_latency 1h/5m``)."""
    count = Counter(a.alert for a in alerts)
    out = []
    for a in alerts:
        if count[a.alert] == 1:
            out.append(a.alert)
            continue
        twins = [b for b in alerts if b.alert == a.alert]
        differ = [k for k, v in a.labels if k != "severity"
                  and any(dict(b.labels).get(k) != v for b in twins)]
        labels = dict(a.labels)
        if {"long", "short"} <= set(differ):
            rest = [labels[k] for k in differ if k not in ("long", "short")]
            out.append(" ".join([a.alert, *rest, f"{labels['long']}/{labels['short']}"]))
        else:
            out.append(" ".join([a.alert, *(labels[k] for k in differ)]))
    if len(set(out)) != len(out):
        raise ValueError(f"alert names not unique for n9e: {sorted(out)}")
    return out


def alert_rule(rule: Alert, name: str, interval: int) -> dict[str, Any]:
    """One n9e alert rule (cate ``prometheus``), as ``POST .../alert-rules/import`` takes it."""
    labels = dict(rule.labels)
    level = severity(labels.get("severity", ""))
    annotations = dict(rule.annotations)
    days = ["0", "1", "2", "3", "4", "5", "6"]
    return {
        "cate": "prometheus",
        "datasource_ids": list(ALL_DATASOURCES),
        "cluster": "",
        "name": name,
        "note": annotations.get("summary", ""),
        "prod": "metric",
        "algorithm": "",
        "algo_params": None,
        "delay": 0,
        "severity": level,
        "severities": [level],
        "disabled": 0,
        "prom_for_duration": seconds(rule.for_),
        "prom_ql": rule.expr,
        "rule_config": {"queries": [{"prom_ql": rule.expr, "severity": level}]},
        "prom_eval_interval": interval,
        "enable_stime": "00:00",
        "enable_stimes": ["00:00"],
        "enable_etime": "23:59",
        "enable_etimes": ["23:59"],
        "enable_days_of_week": days,
        "enable_days_of_weeks": [days],
        "enable_in_bg": 0,
        "notify_recovered": 1,
        "notify_channels": [],
        "notify_groups": [],
        "notify_repeat_step": 60,
        "notify_max_number": 0,
        "recover_duration": 0,
        "callbacks": [],
        "runbook_url": annotations.get("runbook_url", ""),
        "append_tags": _tags(rule.labels),
        "annotations": annotations,
    }


def recording_rule(rule: Recording, interval: int) -> dict[str, Any]:
    """One n9e recording rule, as ``POST .../recording-rules`` takes it."""
    return {
        "cluster": "",
        "datasource_ids": list(ALL_DATASOURCES),
        "name": rule.record,
        "note": "",
        "disabled": 0,
        "prom_ql": rule.expr,
        "prom_eval_interval": interval,
        "append_tags": _tags(rule.labels),
    }


def _interval(group: Group) -> int:
    return seconds(group.interval) if group.interval else DEFAULT_EVAL_INTERVAL


def n9e_rules(cfg: Config) -> dict[str, list[dict[str, Any]]]:
    """n9e file name → its rules (dicts), for ``cfg``."""
    out: dict[str, list[dict[str, Any]]] = {}
    for f in rule_files(cfg):
        alerts = [(r, g) for g in f.groups for r in g.rules if isinstance(r, Alert)]
        names = _names([r for r, _ in alerts])
        objs = [alert_rule(r, n, _interval(g)) for (r, g), n in zip(alerts, names, strict=True)]
        objs += [recording_rule(r, _interval(g)) for g in f.groups for r in g.rules
                 if isinstance(r, Recording)]
        out[FILES[f.name]] = objs
    return out


def to_json(model: object) -> str:
    """n9e's files as this project writes them: indented, keys in model order."""
    return json.dumps(model, indent=2, ensure_ascii=False) + "\n"


def render(cfg: Config) -> dict[str, str]:
    """n9e file name → its JSON text (a list of rules, what n9e's import takes)."""
    return {name: to_json(objs) for name, objs in n9e_rules(cfg).items()}
