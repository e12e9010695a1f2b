"""Generated documentation: docs/metrics.md from the metric table."""

from __future__ import annotations

from exporters import metric_table
from exporters.exposition import ROUNDED_UNITS, SIGNIFICANT_DIGITS

TIER_TEXT = {
    "site": "always",
    "building": "`--expose building` and deeper",
    "hall": "`--expose hall` and deeper",
    "row": "`--expose row` and deeper",
    "rack": "`--expose rack` (default) and deeper",
    "node": "`--expose node` and deeper",
    "accelerator": "`--expose accelerator`",
}


def metrics_markdown() -> str:
    lines = [
        "# Metrics reference",
        "",
        "<!-- Generated from exporters/metric_table.py by `gigawatt generate`; do not edit. -->",
        "",
        "Every series gigawatt exposes at `/metrics` (Prometheus text format 0.0.4). Base units "
        "throughout; a missing reading has no series at all, never a 0.",
        "",
        f"Gauges in {', '.join(sorted(ROUNDED_UNITS))} carry {SIGNIFICANT_DIGITS} significant "
        "digits; counters and timestamps carry every digit.",
        "",
        "Tiers bound cardinality: `gigawatt serve --expose TIER` exposes every metric whose tier "
        f"is at or above TIER in {' > '.join(metric_table.TIERS)}. The default is "
        f"`{metric_table.DEFAULT_TIER}`.",
        "",
        "| Metric | Type | Unit | Labels | Exposed | Meaning |",
        "|---|---|---|---|---|---|",
    ]
    for metric in metric_table.METRICS:
        labels = ", ".join(f"`{label}`" for label in metric.labels) or "-"
        lines.append(
            f"| `{metric.name}` | {metric.type} | {metric.unit or '-'} | {labels} | "
            f"{TIER_TEXT[metric.tier]} | {metric.help.replace('|', '/')} |"
        )
    lines.append("")
    return "\n".join(lines)


def generated_files() -> dict[str, str]:
    """Relative path -> content of every generated file."""
    return {"docs/metrics.md": metrics_markdown()}
