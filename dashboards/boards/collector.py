"""Collector health: can the numbers on the other dashboards be trusted right now? Which
sources and targets answer, how long they take, how stale their data is, what was rejected
and why, and whether the collector's own cycles keep up. For whoever runs gigawatt."""

from __future__ import annotations

from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models import units

from dashboards.boards.config import BoardConfig
from dashboards.boards.uids import COLLECTOR
from dashboards.panels import (
    Column,
    Grid,
    Series,
    Steps,
    below,
    instant,
    query,
    rising,
    skeleton,
    stat_panel,
    state_timeline_panel,
    table_panel,
    table_query,
    timeseries_panel,
    with_panels,
)

# Every target up is the only good state.
ALL_UP = Steps("red", ((1.0, "green"),))


def build(config: BoardConfig) -> model.Dashboard:
    t = config.thresholds
    quality = t.data_quality
    collector = t.collector
    series = Series(t.selector)
    up = series("source", "up")
    last_success = series("source", "last_success_timestamp_seconds")
    by_target = "{{source}} {{target}}"

    grid = Grid()
    grid.section("Is the collector keeping up?")
    grid.add(
        stat_panel(
            "Targets up",
            "Share of the sources' targets whose last read succeeded.",
            query(f"sum({up}) / count({up})"),
            units.PercentUnit,
            ALL_UP,
        ),
        6,
        5,
    )
    grid.add(
        stat_panel(
            "Oldest successful read",
            "Age of the stalest target's last successful read. The colour is the stale-data "
            "alert's limit.",
            query(f"max(time() - {last_success})"),
            units.Seconds,
            rising(quality.stale_after),
        ),
        6,
        5,
    )
    grid.add(
        stat_panel(
            "Since the last cycle",
            "Time since the collector last completed a cycle (the slowest one, when several "
            "shards collect). The colour is the stalled collector alert's limit.",
            query(f"max(time() - {series('process', 'timestamp_seconds')})"),
            units.Seconds,
            rising(collector.stalled_after),
        ),
        6,
        5,
    )
    grid.add(
        stat_panel(
            "Failed cycles in the time range",
            "Cycles that raised and were skipped; /metrics keeps serving the last good one.",
            instant(f"sum(increase({series('process', 'failures')}[$__range]))"),
            units.Short,
            rising(1),
        ),
        6,
        5,
    )

    grid.section("Sources and their targets")
    grid.add(
        table_panel(
            "Targets",
            "Every target of every source, stalest first: how long its last read took and "
            "how old its last success is. The colours are the stale-data alert's limit.",
            [
                table_query(series("source", "read_seconds")),
                table_query(f"time() - {last_success}"),
            ],
            [
                Column("source", "Source"),
                Column("target", "Target"),
                Column("Value #A", "Read took"),
                Column("Value #B", "Last success, ago", rising(quality.stale_after)),
            ],
            units.Seconds,
            sort_by="Last success, ago",
        ),
        12,
        8,
    )
    grid.add(
        state_timeline_panel(
            "Target up",
            "Whether each target's last read succeeded, over time.",
            query(up, by_target),
            {"0": ("down", "red"), "1": ("up", "green")},
        ),
        12,
        8,
    )
    grid.add(
        timeseries_panel(
            "Read duration",
            "Time each target's last read took.",
            [query(series("source", "read_seconds"), by_target)],
            units.Seconds,
        ),
        12,
        8,
    )
    grid.add(
        timeseries_panel(
            "Staleness",
            "Age of each target's last successful read. The dashed line is the stale-data "
            "alert's limit.",
            [query(f"time() - {last_success}", by_target)],
            units.Seconds,
            rising(quality.stale_after),
        ),
        12,
        8,
    )

    grid.section("Samples")
    grid.add(
        timeseries_panel(
            "Samples accepted",
            "Sample values accepted per second, by source and kind.",
            [
                query(
                    "sum by (source, kind) "
                    f"(rate({series('accepted', 'samples')}[$__rate_interval]))",
                    "{{source}} {{kind}}",
                )
            ],
            "si:samples/s",
        ),
        8,
        8,
    )
    grid.add(
        timeseries_panel(
            "Samples rejected, by reason",
            "Sample values rejected per second, by reason (not finite, negative, out of "
            "range, unknown entity, duplicate, stale, future, malformed).",
            [
                query(
                    f"sum by (reason) (rate({series('rejected', 'samples')}[$__rate_interval]))",
                    "{{reason}}",
                )
            ],
            "si:samples/s",
        ),
        8,
        8,
    )
    grid.add(
        timeseries_panel(
            "Source problems, by reason",
            "Problems the sources reported (a dangling link, a parse error, a timeout...); "
            "empty until a source reports one.",
            [
                query(
                    "sum by (source, reason) "
                    f"(increase({series('problem', 'problems')}[$__rate_interval]))",
                    "{{source}} {{reason}}",
                )
            ],
            units.Short,
        ),
        8,
        8,
    )

    grid.section("Cycles and exposition")
    cycle_seconds = series("process", "cycle_seconds")
    skipped_window = t.window(collector.skipped_window)
    grid.add(
        timeseries_panel(
            "Cycle and render duration",
            "Time the last cycle took to read, validate, roll up and integrate, and the time "
            "its exposition took to render. The dashed line is the slow-exposition alert's "
            "limit.",
            [
                query(cycle_seconds, "{{instance}} cycle"),
                query(series("process", "render_seconds"), "{{instance}} render"),
            ],
            units.Seconds,
            rising(collector.render_seconds.value),
        ),
        8,
        8,
    )
    grid.add(
        timeseries_panel(
            "Cycle slots skipped",
            f"Share of the collector's cycle slots skipped over {skipped_window}: a cycle that "
            "runs past the next slot makes the collector skip it. The dashed line is the "
            "overrunning-cycles alert's limit.",
            [
                query(
                    f"rate({series('process', 'skipped')}[{skipped_window}])\n"
                    f"/ (rate({series('process', 'cycles')}[{skipped_window}])\n"
                    f"+ rate({series('process', 'skipped')}[{skipped_window}]))",
                    "{{instance}}",
                )
            ],
            units.PercentUnit,
            rising(collector.skipped_ratio.value),
        ),
        8,
        8,
    )
    grid.add(
        timeseries_panel(
            "Exposed series",
            "Series in the last rendered exposition.",
            [query(series("process", "series"), "{{instance}}")],
            units.Short,
        ),
        8,
        8,
    )

    grid.section("Reporting")
    grid.add(
        timeseries_panel(
            "Shares reporting",
            "Shares of the PDU feeds, servers and accelerators that reported this cycle, per "
            "building. The dashed lines are the feed reporting alert's limits.",
            [
                query(series("building", "reporting_ratio"), "{{building}} feeds"),
                query(series("building", "nodes_reporting_ratio"), "{{building}} servers"),
                query(
                    series("building", "accelerators_reporting_ratio"),
                    "{{building}} accelerators",
                ),
            ],
            units.PercentUnit,
            below(quality.building_reporting_ratio),
        ),
        24,
        8,
    )

    board = skeleton(
        COLLECTOR,
        "gigawatt / Collector health",
        "Sources up, read durations, staleness, rejected samples by reason, cycle duration "
        "and failures.",
    )
    return with_panels(board, grid)
