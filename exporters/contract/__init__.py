"""The contract every consumer of gigawatt's series reads: the metric table, the exposure
tiers, the rounding policy and the alert thresholds.

The exposition, the HTTP API, the docs generator, the alert and recording rules and the
dashboards import it; importing it pulls in no web framework and no HTTP client, so the rule
and dashboard generators run without the service.
"""

from exporters.contract.metrics import (
    BY_NAME,
    EXTRA_LABELS,
    METRICS,
    NAMESPACE,
    UNIT_SUFFIXES,
    Metric,
    enabled,
    metric_for,
    name_of,
)
from exporters.contract.rounding import ROUNDED_UNITS, SIGNIFICANT_DIGITS, is_rounded
from exporters.contract.tiers import DEFAULT_TIER, TIERS, Tier, tier_exposure

__all__ = [
    "BY_NAME",
    "DEFAULT_TIER",
    "EXTRA_LABELS",
    "METRICS",
    "NAMESPACE",
    "ROUNDED_UNITS",
    "SIGNIFICANT_DIGITS",
    "TIERS",
    "UNIT_SUFFIXES",
    "Metric",
    "Tier",
    "enabled",
    "is_rounded",
    "metric_for",
    "name_of",
    "tier_exposure",
]
