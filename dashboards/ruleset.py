"""The two kinds of rule and how they become a Prometheus rule file.

An ``Alert`` is one rule of one severity; warning and critical of the same condition share
the alert name, so Alertmanager's critical-inhibits-warning rule can match them by name and
entity. Every alert carries ``severity`` and, from its name, ``runbook_url`` pointing at
``docs/runbooks/<AlertName>.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import yaml

from exporters.contract.thresholds import Thresholds, format_duration

Severity = Literal["warning", "critical", "none"]


@dataclass(frozen=True)
class Recording:
    record: str
    expr: str
    words: str  # what it computes, for docs/alerts.md


@dataclass(frozen=True)
class Alert:
    name: str
    severity: Severity
    expr: str
    for_seconds: float  # before scaling by the thresholds' for_scale
    summary: str  # short, fixed text
    description: str  # templated: the entity and the value, humanized
    words: str  # the condition in words, for docs/alerts.md
    entity: tuple[str, ...] = ()  # the labels that name what the alert is about

    def rule(self, thresholds: Thresholds) -> dict[str, Any]:
        rule: dict[str, Any] = {"alert": self.name, "expr": self.expr}
        if self.for_seconds > 0:
            rule["for"] = thresholds.for_duration(self.for_seconds)
        rule["labels"] = {"severity": self.severity}
        rule["annotations"] = {
            "summary": self.summary,
            "description": self.description,
            "runbook_url": runbook_url(thresholds, self.name),
        }
        return rule


def runbook_url(thresholds: Thresholds, alert: str) -> str:
    return f"{thresholds.runbook_base_url.rstrip('/')}/{alert}.md"


@dataclass(frozen=True)
class Group:
    name: str
    rules: tuple[Recording | Alert, ...]
    interval_seconds: float | None = None  # None: Prometheus' global evaluation interval
    topic: str = ""  # a heading for docs/alerts.md

    def document(self, thresholds: Thresholds) -> dict[str, Any]:
        group: dict[str, Any] = {"name": self.name}
        if self.interval_seconds is not None:
            group["interval"] = format_duration(self.interval_seconds)
        group["rules"] = [
            {"record": rule.record, "expr": rule.expr}
            if isinstance(rule, Recording)
            else rule.rule(thresholds)
            for rule in self.rules
        ]
        return group


class _Dumper(yaml.SafeDumper):
    """Block style, long lines kept whole, multi-line expressions as literal blocks."""


def _string(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _string)


def rule_file(groups: tuple[Group, ...], thresholds: Thresholds, header: str) -> str:
    """A Prometheus rule file holding ``groups``, with a comment header."""
    body = yaml.dump(
        {"groups": [group.document(thresholds) for group in groups]},
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        width=1_000_000,
    )
    comment = "".join(f"# {line}".rstrip() + "\n" for line in header.splitlines())
    return comment + body
