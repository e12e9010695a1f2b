"""Building, hall and row drill-down: how loaded is this building, its A and B lineups, its
halls and rows, and which racks run closest to their rating. For the facility electrical
engineer and the capacity planner; each rack links to its detail."""

from __future__ import annotations

from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models import units

from dashboards import recording
from dashboards.boards.config import BoardConfig
from dashboards.boards.uids import DRILLDOWN, RACK
from dashboards.panels import (
    Column,
    Grid,
    Series,
    above,
    bar_gauge_panel,
    below,
    from_labels,
    from_row,
    heatmap_panel,
    instant,
    label_variable,
    link_to,
    power_stat,
    power_timeseries,
    query,
    ratio_gauge,
    recorded,
    rising,
    skeleton,
    stat_panel,
    table_panel,
    table_query,
    timeseries_panel,
    with_panels,
)

LEVELS = ("building", "hall", "row")


def build(config: BoardConfig) -> model.Dashboard:
    t = config.thresholds
    series = Series(t.selector)
    capacity = t.capacity
    rack_scope = ("building", "hall", "row")

    grid = Grid()
    grid.section("Building $building")
    grid.add(
        power_stat(
            "IT power",
            "IT power of the building at its rack PDUs.",
            series("building", "power_watts", "building"),
        ),
        4,
        5,
    )
    grid.add(
        power_stat(
            "Facility power",
            "IT power plus the building's non-IT load (cooling, UPS and transformer losses).",
            series("building", "facility_power_watts", "building"),
        ),
        4,
        5,
    )
    grid.add(
        power_stat(
            "IT headroom",
            "IT capacity minus IT power of the building.",
            series("building", "headroom_watts", "building"),
        ),
        4,
        5,
    )
    grid.add(
        ratio_gauge(
            "IT utilization",
            "IT power over IT capacity. The colours are the building load alert's limits.",
            instant(series("building", "utilization_ratio", "building")),
            above(capacity.building),
        ),
        4,
        5,
    )
    grid.add(
        stat_panel(
            "PUE, last hour",
            "Facility energy over IT energy over a rolling hour. The colours are the PUE "
            "alert's limits.",
            query(recorded(recording.building_pue_name(t), "building")),
            units.Short,
            above(capacity.pue),
        ),
        4,
        5,
    )
    grid.add(
        stat_panel(
            "PDU feeds reporting",
            "Share of the building's PDU feeds that reported this cycle: below 100 % its "
            "totals leave out what did not report. The colours are the reporting alert's "
            "limits.",
            query(series("building", "reporting_ratio", "building")),
            units.PercentUnit,
            below(t.data_quality.building_reporting_ratio),
        ),
        4,
        5,
    )

    grid.section("Lineups A and B")
    grid.add(
        power_timeseries(
            "Lineup power and rating",
            "Power each lineup (the A and B paths of the power chain) carries, with its rating.",
            [
                query(series("lineup", "power_watts", "building"), "Lineup {{lineup}}"),
                query(series("lineup", "capacity_watts", "building"), "Lineup {{lineup}} rating"),
            ],
        ),
        16,
        8,
    )
    grid.add(
        ratio_gauge(
            "Lineup utilization",
            "Each lineup's power over its rating. The colours are the lineup load alert's limits.",
            instant(series("lineup", "utilization_ratio", "building"), "Lineup {{lineup}}"),
            above(capacity.lineup),
        ),
        8,
        8,
    )

    grid.section("Halls and rows")
    grid.add(
        power_timeseries(
            "Hall power",
            "IT power of each hall of the building.",
            [query(series("hall", "power_watts", "building", "hall"), "{{hall}}")],
        ),
        8,
        8,
    )
    row_colours = above(capacity.row)
    grid.add(
        bar_gauge_panel(
            "Row utilization",
            "Each row's power over its rating, most loaded first. The colours are the row "
            "load alert's limits; click a row to narrow the racks below to it.",
            instant(f"sort_desc({series('row', 'utilization_ratio', *rack_scope)})", "{{row}}"),
            units.PercentUnit,
            row_colours,
            maximum=row_colours.gauge_maximum(),
        ).data_links([link_to(DRILLDOWN, "Row ${__field.labels.row}", **from_labels(*LEVELS))]),
        8,
        8,
    )
    grid.add(
        timeseries_panel(
            "Hall temperature",
            "Each hall's temperature: the mean of its racks' hottest accelerators. A climb "
            "while the hall's power holds points at cooling. The dashed lines are the "
            "accelerator temperature alert's limits.",
            [query(recorded(recording.HALL_TEMPERATURE, "building", "hall"), "{{hall}}")],
            units.Celsius,
            above(t.thermal.accelerator_celsius),
        ),
        8,
        8,
    )

    grid.section("Racks")
    # Racks' utilization is not stored at the default tier (series budget): power / capacity.
    rack_loading = (
        f"{series('rack', 'power_watts', *rack_scope)} / "
        f"{series('rack', 'capacity_watts', *rack_scope)}"
    )
    grid.add(
        heatmap_panel(
            "Rack loading",
            "Each rack's power over its rating, one line per rack: green is light, red is "
            "at its rating.",
            query(rack_loading, "{{rack}}"),
            units.PercentUnit,
            low=0,
            high=1,
        ),
        24,
        12,
    )
    rack_power = series("rack", "power_watts", *rack_scope)
    weakest_feed = f"min without (feed) ({series('feed', 'capacity_watts', *rack_scope)})"
    grid.add(
        table_panel(
            "Racks by loading",
            "Every rack of the selection, most loaded first: its power over its rating, and "
            "N-1 loading, its power over its weakest feed's rating (above 100 % it could not "
            "ride through losing the other feed). The colours are the rack load and N-1 "
            "alerts' limits. Click a rack for its detail.",
            [
                table_query(rack_loading),
                table_query(f"{rack_power} / {weakest_feed}"),
            ],
            [
                Column("rack", "Rack"),
                Column("hall", "Hall"),
                Column("row", "Row"),
                Column("Value #A", "Utilization", above(capacity.rack)),
                Column("Value #B", "N-1 loading", rising(capacity.n_minus_one.value)),
            ],
            units.PercentUnit,
            link=link_to(RACK, "Rack ${__data.fields.rack}", **from_row(*LEVELS, "rack")),
            sort_by="Utilization",
        ),
        24,
        10,
    )

    board = skeleton(
        DRILLDOWN,
        "gigawatt / Building, hall and row",
        "A building's power, lineups, halls and rows, and its racks' loading against their rating.",
        "building",
        "hall",
        "row",
    )
    board = (
        board.with_variable(label_variable("building", series("building", "power_watts")))
        .with_variable(
            label_variable("hall", series("hall", "power_watts", "building"), multi=True)
        )
        .with_variable(
            label_variable("row", series("row", "power_watts", "building", "hall"), multi=True)
        )
    )
    return with_panels(board, grid)
