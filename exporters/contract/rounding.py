"""How many digits a value carries in the exposition."""

from __future__ import annotations

from exporters.contract.metrics import Metric

# Gauges in physical units carry 7 significant digits (0.1 W on a 30 kW rack, 1 kW on a
# 2 GW site: finer than any meter): it halves the text and the time to write it. Counters and
# timestamps keep every digit, since rate() over a 1e12 J counter needs them.
ROUNDED_UNITS = frozenset(
    {"watts", "celsius", "ratio", "amperes", "volts", "bytes", "hertz", "watts_per_second"}
)
SIGNIFICANT_DIGITS = 7


def is_rounded(metric: Metric) -> bool:
    """Whether the exposition rounds this metric to SIGNIFICANT_DIGITS."""
    return metric.type == "gauge" and metric.unit in ROUNDED_UNITS
