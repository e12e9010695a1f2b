"""PromQL building blocks for the rules: series named from the metric table, recording-rule
names, and the alert-template snippets the annotations share.

Every series a rule reads is found by the snapshot frame and column it is exposed from
(``exporters.contract.name_of``), never spelled, so a renamed metric is one edit in the table
and a metric that does not exist fails at generation time.
"""

from __future__ import annotations

from exporters import contract
from exporters.contract.thresholds import Thresholds


class Series:
    """Selectors of table metrics, each with the thresholds' selector (e.g. job="gigawatt")."""

    def __init__(self, thresholds: Thresholds) -> None:
        self.thresholds = thresholds

    def __call__(self, frame: str, column: str, *matchers: str) -> str:
        """``name{selector,matchers}`` of the metric read from ``frame``/``column``.
        Matchers are PromQL label matchers (``reason="hot"``, ``band=~`a|b```)."""
        parts = [part for part in (self.thresholds.selector, *matchers) if part]
        name = contract.name_of(frame, column)
        return f"{name}{{{','.join(parts)}}}" if parts else name


def labels_of(frame: str, column: str) -> tuple[str, ...]:
    """The entity labels of the metric read from ``frame``/``column``."""
    return contract.metric_for(frame, column).labels


def record_name(level: str, frame: str, column: str, operation: str) -> str:
    """A recording rule name, ``level:metric:operation``. A rate or increase of a counter
    drops the ``_total`` suffix, as Prometheus' naming practice asks."""
    metric = contract.metric_for(frame, column)
    name = metric.name
    if metric.type == "counter" and any(op in operation for op in ("rate", "increase")):
        name = name.removesuffix("_total")
    return f"{level}:{name}:{operation}"


def regex_of(values: tuple[str, ...]) -> str:
    """A PromQL raw-string regex that matches exactly these label values."""
    special = set(r".^$*+?()[]{}|\/")
    escaped = ("".join(f"\\{c}" if c in special else c for c in value) for value in values)
    return "`" + "|".join(escaped) + "`"


def by(labels: tuple[str, ...]) -> str:
    return f"by ({', '.join(labels)})" if labels else ""


def label(name: str) -> str:
    """An alert template's reference to a label of the firing series."""
    return "{{ $labels." + name + " }}"


# The firing value, formatted for people.
PERCENT = "{{ $value | humanizePercentage }}"
NUMBER = "{{ $value | humanize }}"
DURATION = "{{ $value | humanizeDuration }}"
CELSIUS = '{{ $value | printf "%.1f" }} °C'
