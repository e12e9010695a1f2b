"""Accelerator fleet: how hot and how busy the fleet runs, where errors grow, which chips the
bounded anomaly list names (hottest, power outliers, errors, silent, stragglers against
their job), and one accelerator in full. For ML infrastructure and hardware reliability
engineers; every chip named links to its own view below."""

from __future__ import annotations

from grafana_foundation_sdk.builders import table
from grafana_foundation_sdk.builders.dashboard import DashboardLink
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models import units

from dashboards.boards.config import BoardConfig
from dashboards.boards.uids import ACCELERATORS
from dashboards.panels import (
    Column,
    Grid,
    Series,
    Steps,
    above,
    below,
    from_row,
    heatmap_panel,
    label_variable,
    link_to,
    power_timeseries,
    query,
    rising,
    skeleton,
    stat_panel,
    table_panel,
    table_query,
    timeseries_panel,
    with_panels,
)

SCOPE = ("building", "hall", "row")
CHIP = ("building", "hall", "row", "rack", "accelerator")


def build(config: BoardConfig) -> model.Dashboard:
    t = config.thresholds
    series = Series(t.selector)
    limits = t.accelerators
    temperature_limits = above(t.thermal.accelerator_celsius)
    to_chip = link_to(ACCELERATORS, "Accelerator ${__data.fields.accelerator}", **from_row(*CHIP))

    def anomaly(column: str, reasons: str) -> str:
        frame = "anomaly_job" if column.startswith("job_") else "anomaly"
        return series(frame, column, *SCOPE, matching={"reason": reasons})

    grid = Grid()
    grid.section("The fleet")
    grid.add(
        stat_panel(
            "Accelerators reporting",
            "Share of the accelerators that reported this cycle, in the building where the "
            "share is lowest. The colours are the reporting alert's limits.",
            query(f"min({series('building', 'accelerators_reporting_ratio', 'building')})"),
            units.PercentUnit,
            below(t.data_quality.building_accelerators_reporting_ratio),
        ),
        6,
        5,
    )
    grid.add(
        stat_panel(
            "Hottest accelerator",
            "Temperature of the hottest accelerator of the selection. The colours are the "
            "accelerator temperature alert's limits.",
            query(f"max({series('rack', 'max_temperature_celsius', *SCOPE)})"),
            units.Celsius,
            temperature_limits,
        ),
        6,
        5,
    )
    grid.add(
        stat_panel(
            "Errors in the time range",
            "Uncorrected ECC plus XID critical errors the selection's accelerators counted "
            "within the dashboard's time range.",
            query(
                f"sum(increase({series('rack', 'accelerator_ecc_errors', *SCOPE)}[$__range]))"
                f" + sum(increase({series('rack', 'accelerator_xid_errors', *SCOPE)}"
                "[$__range]))"
            ),
            units.Short,
            rising(1),
        ),
        6,
        5,
    )
    grid.add(
        stat_panel(
            "Slowest chip against its job",
            "The lowest power of a chip against its training job's median power (1 = like "
            "its peers). The colours are the straggler alert's limits.",
            query(f"min({anomaly('job_power_ratio', 'straggler_power')})"),
            units.PercentUnit,
            below(limits.straggler_power_ratio),
        ),
        6,
        5,
    )

    grid.section("Temperature and utilization")
    grid.add(
        timeseries_panel(
            "Hottest accelerator by building",
            "Temperature of each building's hottest accelerator. The dashed lines are the "
            "accelerator temperature alert's limits.",
            [query(series("building", "max_temperature_celsius", "building"), "{{building}}")],
            units.Celsius,
            temperature_limits,
        ),
        12,
        8,
    )
    grid.add(
        heatmap_panel(
            "Hottest accelerator by rack",
            "Temperature of each rack's hottest accelerator, one line per rack.",
            query(series("rack", "max_temperature_celsius", *SCOPE), "{{rack}}"),
            units.Celsius,
            low=None,
            high=None,
        ),
        12,
        8,
    )
    grid.add(
        timeseries_panel(
            "Accelerator utilization by building",
            "Mean busy share of the selection's accelerators, per building.",
            [
                query(
                    "avg by (building) "
                    f"({series('node', 'accelerator_utilization_ratio', *SCOPE)})",
                    "{{building}}",
                )
            ],
            units.PercentUnit,
        ),
        12,
        8,
    )
    grid.add(
        power_timeseries(
            "Accelerator power by building",
            "Power the accelerators of each building report themselves.",
            [query(series("building", "accelerator_power_watts", "building"), "{{building}}")],
        ),
        12,
        8,
    )

    grid.section("Errors")
    grid.add(
        timeseries_panel(
            "ECC and XID errors by building",
            "Uncorrected ECC and XID critical errors counted per building.",
            [
                query(
                    "sum by (building) (increase("
                    f"{series('rack', 'accelerator_ecc_errors', *SCOPE)}[$__rate_interval]))",
                    "{{building}} ECC",
                ),
                query(
                    "sum by (building) (increase("
                    f"{series('rack', 'accelerator_xid_errors', *SCOPE)}[$__rate_interval]))",
                    "{{building}} XID",
                ),
            ],
            units.Short,
        ),
        12,
        8,
    )
    grid.add(
        table_panel(
            "Accelerators with recent errors",
            "Chips whose error counters grew within the collector's error window, most "
            "errors first, with their counters; empty while no chip has one. The colours are "
            "the error alert's limits. Click a chip for its own view.",
            [
                table_query(anomaly("recent_errors", "errors")),
                table_query(anomaly("ecc_errors", "errors")),
                table_query(anomaly("xid_errors", "errors")),
            ],
            [
                Column("accelerator", "Accelerator"),
                Column("rack", "Rack"),
                Column("Value #A", "Recent errors", above(limits.recent_errors)),
                Column("Value #B", "ECC total"),
                Column("Value #C", "XID total"),
            ],
            link=to_chip,
            sort_by="Recent errors",
        ),
        12,
        8,
    )

    grid.section("The anomaly list: chips to look at")
    grid.add(
        _chips(
            "Hottest chips",
            "The chips closest to their temperature limit. The colours are the accelerator "
            "temperature alert's limits.",
            anomaly("temperature_celsius", "hot"),
            "Temperature",
            units.Celsius,
            temperature_limits,
            to_chip,
        ),
        12,
        9,
    )
    grid.add(
        _chips(
            "Power outliers",
            "The chips whose power is furthest from their server's mean.",
            anomaly("power_watts", "power_outlier"),
            "Power",
            units.Watt,
            None,
            to_chip,
        ),
        12,
        9,
    )
    grid.add(
        _chips(
            "Stragglers by power",
            "The chips furthest below their training job's median power (100 % = like their "
            "peers). The colours are the straggler alert's limits.",
            anomaly("job_power_ratio", "straggler_power"),
            "Power against the job",
            units.PercentUnit,
            below(limits.straggler_power_ratio),
            to_chip,
            job=True,
            lowest_first=True,
        ),
        12,
        9,
    )
    grid.add(
        _chips(
            "Stragglers by temperature",
            "The chips furthest above their training job's median temperature. The colours "
            "are the straggler alert's limits.",
            anomaly("job_temperature_excess_celsius", "straggler_temperature"),
            "Above the job's temperature",
            units.Celsius,
            above(limits.straggler_temperature_excess_celsius),
            to_chip,
            job=True,
        ),
        12,
        9,
    )
    grid.add(
        _chips(
            "Silent accelerators",
            "Chips that reported before and stopped, most recently silent first; empty while "
            "every chip reports. The colours are the silent-accelerator alert's limit.",
            anomaly("silent_seconds", "silent"),
            "Silent for",
            units.Seconds,
            rising(limits.silent_after),
            to_chip,
        ),
        24,
        6,
    )

    grid.section("Accelerator $accelerator")
    chip = (*SCOPE, "rack", "accelerator")
    grid.add(
        power_timeseries(
            "Power",
            "Power of the accelerator.",
            [query(series("accelerator", "power_watts", *chip), "{{accelerator}}")],
        ),
        6,
        8,
    )
    grid.add(
        timeseries_panel(
            "Temperature",
            "Temperature of the accelerator. The dashed lines are the accelerator "
            "temperature alert's limits.",
            [query(series("accelerator", "temperature_celsius", *chip), "{{accelerator}}")],
            units.Celsius,
            temperature_limits,
        ),
        6,
        8,
    )
    grid.add(
        timeseries_panel(
            "Utilization",
            "Busy share of the accelerator.",
            [query(series("accelerator", "utilization_ratio", *chip), "{{accelerator}}")],
            units.PercentUnit,
        ),
        6,
        8,
    )
    grid.add(
        timeseries_panel(
            "Memory used",
            "Accelerator memory in use.",
            [query(series("accelerator", "memory_used_bytes", *chip), "{{accelerator}}")],
            units.BytesIEC,
        ),
        6,
        8,
    )

    board = skeleton(
        ACCELERATORS,
        "gigawatt / Accelerator fleet",
        "Temperature, utilization and errors of the accelerators, the chips the anomaly "
        "list names, and one accelerator in full.",
        *SCOPE,
        "rack",
        "accelerator",
    )
    board = (
        board.with_variable(
            label_variable("building", series("building", "power_watts"), multi=True)
        )
        .with_variable(
            label_variable("hall", series("hall", "power_watts", "building"), multi=True)
        )
        .with_variable(
            label_variable("row", series("row", "power_watts", "building", "hall"), multi=True)
        )
        .with_variable(label_variable("rack", series("rack", "power_watts", *SCOPE)))
        .with_variable(
            label_variable("accelerator", series("accelerator", "power_watts", *SCOPE, "rack"))
        )
    )
    return with_panels(board, grid)


def _chips(
    title: str,
    description: str,
    expr: str,
    value_title: str,
    unit: str,
    thresholds: Steps | None,
    link: DashboardLink,
    *,
    job: bool = False,
    lowest_first: bool = False,
) -> table.Panel:
    """A table of the chips one reason of the anomaly list names, with one value each, the
    most anomalous first."""
    columns = [Column("accelerator", "Accelerator"), Column("rack", "Rack")]
    if job:
        columns.append(Column("training_job", "Training job"))
    columns.append(Column("Value", value_title, thresholds))
    return table_panel(
        title,
        description,
        [table_query(expr)],
        columns,
        unit,
        link=link,
        sort_by=value_title,
        descending=not lowest_first,
    )
