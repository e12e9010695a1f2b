"""Generated documentation: docs/metrics.md from the metric table."""

from __future__ import annotations

from collector.site.model import Site, load_preset
from exporters import contract

# The site the budget is counted on: the full campus, 2.15 M accelerators.
BUDGET_PRESET = "campus"


def entity_counts(site: Site) -> dict[str, int]:
    """Entities of each physical level of a site, from its file alone: a level metric has one
    series per entity when every entity reports."""
    counts = dict.fromkeys(
        ("building", "lineup", "hall", "row", "rack", "feed", "node", "accelerator"), 0
    )
    for group in site.buildings:
        building = site.building_types[group.type]
        counts["building"] += group.count
        counts["lineup"] += group.count * len(building.lineups)
        for halls in building.halls:
            rack = site.rack_types[halls.rack_type]
            racks = group.count * halls.count * halls.rows * halls.racks_per_row
            counts["hall"] += group.count * halls.count
            counts["row"] += group.count * halls.count * halls.rows
            counts["rack"] += racks
            counts["feed"] += racks * len(rack.pdus)
            counts["node"] += racks * rack.nodes
            counts["accelerator"] += (
                racks * rack.nodes * site.node_types[rack.node_type].accelerators
            )
    return counts


def budget_markdown(site: Site) -> list[str]:
    """The series budget: what each tier adds at the campus, and what is left out on purpose."""
    counts = entity_counts(site)
    lines = [
        "## Series budget",
        "",
        f"Series each tier adds at the `{BUDGET_PRESET}` preset when every entity reports (one "
        "per metric and entity), and the total that `--expose TIER` exposes. The `site` tier "
        "also carries bounded families that are not counted here: training jobs, the fast "
        "meters, the anomaly list (at most K per reason) and self-monitoring, a few thousand "
        "series in all. What each tier costs a Prometheus is measured in docs/performance.md.",
        "",
        "| Tier | Metrics | Series added | Total exposed |",
        "|---|---|---|---|",
    ]
    total = 0
    for tier in contract.TIERS:
        metrics = [metric for metric in contract.METRICS if metric.tier == tier]
        # Level metrics: one series per entity; the site's own: one each.
        added = sum(
            counts.get(metric.frame, 1)
            for metric in metrics
            if metric.frame in counts or metric.frame == "site"
        )
        total += added
        default = " (default)" if tier == contract.DEFAULT_TIER else ""
        lines.append(f"| `{tier}`{default} | {len(metrics)} | {added:,} | {total:,} |")
    stored = {(metric.frame, metric.column) for metric in contract.METRICS}
    derived = [
        metric
        for metric in contract.METRICS
        if metric.column in ("headroom_watts", "utilization_ratio")
        and (metric.frame, "power_watts") in stored
        and (metric.frame, "capacity_watts") in stored
        and contract.TIERS.index(metric.tier) > contract.TIERS.index(contract.DEFAULT_TIER)
    ]
    lines += [
        "",
        "Left out of the default tier on purpose: values PromQL derives exactly from series "
        "that are stored, which would each cost a series per rack or feed. Rules and "
        "dashboards compute them (headroom as capacity - power, utilization as power / "
        "capacity); `--expose node` stores them too.",
        "",
        "| Metric | Series at the campus | Computed as |",
        "|---|---|---|",
    ]
    for metric in derived:
        power = contract.name_of(metric.frame, "power_watts")
        capacity = contract.name_of(metric.frame, "capacity_watts")
        formula = (
            f"`{capacity} - {power}`"
            if metric.column == "headroom_watts"
            else f"`{power} / {capacity}`"
        )
        lines.append(f"| `{metric.name}` | {counts[metric.frame]:,} | {formula} |")
    sums = _rack_sums("building, hall, row, rack")
    detail = [
        metric
        for metric in contract.METRICS
        if metric.frame == "rack"
        and metric.column in sums
        and contract.TIERS.index(metric.tier) > contract.TIERS.index(contract.DEFAULT_TIER)
    ]
    lines += [
        "",
        "Left out too: sums that no alert or dashboard reads rack by rack. The server-level "
        "series they sum are stored from `--expose node` (the energy counter's feeds at the "
        "default tier), and `--expose node` stores the rack sums as well.",
        "",
        "| Metric | Series at the campus | Summed from |",
        "|---|---|---|",
    ]
    for metric in detail:
        lines.append(f"| `{metric.name}` | {counts[metric.frame]:,} | `{sums[metric.column]}` |")
    lines.append("")
    return lines


# The rack sums left out of the default tier, and how each is had from the series below it.
# A rack holds one server type, so its servers' ratios weigh alike and their mean is the
# rack's.
def _rack_sums(by: str) -> dict[str, str]:
    def node(column: str) -> str:
        return contract.name_of("node", column)

    return {
        "accelerator_power_watts": f"sum by ({by}) ({node('accelerator_power_watts')})",
        "accelerators_reporting_ratio": (f"avg by ({by}) ({node('accelerators_reporting_ratio')})"),
        "nodes_reporting_ratio": (
            f"count by ({by}) ({node('power_watts')}) / count by ({by}) ({node('capacity_watts')})"
        ),
        "energy_joules": f"sum by ({by}) ({contract.name_of('feed', 'energy_joules')})",
    }


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
    lines += budget_markdown(load_preset(BUDGET_PRESET))
    return "\n".join(lines)


def generated_files() -> dict[str, str]:
    """Relative path -> content of every generated file."""
    return {"docs/metrics.md": metrics_markdown()}
