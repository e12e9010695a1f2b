"""Generated documentation: docs/metrics.md from the metric table."""

from __future__ import annotations

from exporters import contract


def metrics_markdown() -> str:
    lines = [
        "# Metrics reference",
        "",
        "<!-- Generated from exporters/contract/metrics.py by `gigawatt generate`; "
        "do not edit. -->",
        "",
        "Every series gigawatt exposes at `/metrics` (Prometheus text format 0.0.4). Base units "
        "throughout; a missing reading has no series at all, never a 0.",
        "",
        f"Gauges in {', '.join(sorted(contract.ROUNDED_UNITS))} carry "
        f"{contract.SIGNIFICANT_DIGITS} significant digits; counters and timestamps carry every "
        "digit.",
        "",
        "Tiers bound cardinality: `gigawatt serve --expose TIER` exposes every metric whose tier "
        f"is at or above TIER in {' > '.join(contract.TIERS)}. The default is "
        f"`{contract.DEFAULT_TIER}`.",
        "",
        "| Metric | Type | Unit | Labels | Exposed | Meaning |",
        "|---|---|---|---|---|---|",
    ]
    for metric in contract.METRICS:
        labels = ", ".join(f"`{label}`" for label in metric.labels) or "-"
        lines.append(
            f"| `{metric.name}` | {metric.type} | {metric.unit or '-'} | {labels} | "
            f"{contract.tier_exposure(metric.tier)} | {metric.help.replace('|', '/')} |"
        )
    lines.append("")
    return "\n".join(lines)


def generated_files() -> dict[str, str]:
    """Relative path -> content of every generated file."""
    return {"docs/metrics.md": metrics_markdown()}
