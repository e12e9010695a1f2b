"""Reading the generated dashboards the way the tests need: their panels, queries,
variables and links, and the metric names a PromQL expression reads."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "dashboards" / "grafana"
RULES = ROOT / "dashboards" / "rules"

# Prometheus' own series for the alerting rules it evaluates: not a gigawatt metric.
PROMETHEUS_SERIES = frozenset({"ALERTS"})

_KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or"}
    | {"unless", "offset", "inf", "nan"}
)
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|`[^`]*`')
_BRACES = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_VARIABLE = re.compile(r"\$\{?\w+\}?")
_IDENTIFIER = re.compile(r"(?<![\w.:])([a-zA-Z_:][a-zA-Z0-9_:]*)(?![\w:])(?!\s*\()")
_LABEL_VALUES = re.compile(r"^\s*label_values\((?P<selector>.*),\s*(?P<label>\w+)\s*\)\s*$", re.S)


def metric_names(expression: str) -> set[str]:
    """The series an expression reads: identifiers outside strings, label matchers, ranges
    and grouping clauses that are not functions, keywords, variables or numbers."""
    text = _STRING.sub('""', expression)
    text = _BRACES.sub("", text)
    text = _RANGE.sub("", text)
    text = _GROUPING.sub("", text)
    text = _VARIABLE.sub("", text)
    return {name for name in _IDENTIFIER.findall(text) if name not in _KEYWORDS}


def label_values(query: str) -> tuple[str, str]:
    """(selector, label) of a ``label_values(selector, label)`` variable query."""
    match = _LABEL_VALUES.match(query)
    if match is None:
        raise ValueError(f"not a label_values query: {query!r}")
    return match["selector"], match["label"]


def committed() -> dict[str, dict[str, Any]]:
    """Every committed dashboard by its file's stem."""
    return {
        path.stem: json.loads(path.read_text(encoding="utf-8"))
        for path in sorted(GRAFANA.glob("*.json"))
    }


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel that is not a row, rows' nested panels included."""
    for panel in board.get("panels", []):
        if panel["type"] == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def variables(board: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = board.get("templating", {}).get("list", [])
    return found


def expressions(board: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, PromQL) of every query: panel targets, variable queries, annotations."""
    for panel in panels(board):
        for target in panel.get("targets", []):
            yield f"panel {panel['title']!r} query {target.get('refId')}", target["expr"]
    for variable in variables(board):
        if variable["type"] == "query":
            yield f"variable {variable['name']}", label_values(variable["query"])[0]
    for annotation in board.get("annotations", {}).get("list", []):
        if "expr" in annotation:
            yield f"annotation {annotation['name']!r}", annotation["expr"]


def recording_rules() -> set[str]:
    """The names of the recording rules in dashboards/rules/."""
    names = set()
    for path in sorted(RULES.glob("*.yml")):
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        for group in document.get("groups", []):
            names |= {rule["record"] for rule in group["rules"] if "record" in rule}
    return names
