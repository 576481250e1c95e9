"""Prometheus rule files as plain data: groups of recording and alerting rules.

The generator builds these; :mod:`kpexporter.rules.render` turns them into YAML. Keeping the
two apart lets tests look at a rule (its name, labels, expression) without parsing YAML.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Recording:
    record: str
    expr: str
    labels: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Alert:
    alert: str
    expr: str
    for_: str  # a Prometheus duration such as "5m" ("0s": fire at the first evaluation)
    labels: tuple[tuple[str, str], ...]
    annotations: tuple[tuple[str, str], ...]


Rule = Recording | Alert


@dataclass(frozen=True, slots=True)
class Group:
    name: str
    rules: tuple[Rule, ...]
    interval: str | None = None  # None: the server's evaluation_interval


@dataclass(frozen=True, slots=True)
class RuleFile:
    """One file of ``alerts/``: its name and the groups it holds (in order)."""

    name: str
    comment: str
    groups: tuple[Group, ...]
