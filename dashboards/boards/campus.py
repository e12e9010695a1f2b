"""Campus overview: is the site inside its contract, which building is short of headroom,
what did today cost in energy, and what is firing. For the site operations lead and the
on-call engineer; each building links to its drill-down."""

from __future__ import annotations

from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models import units

from dashboards import recording
from dashboards.boards.config import BoardConfig
from dashboards.boards.uids import DRILLDOWN, OVERVIEW
from dashboards.panels import (
    Column,
    Grid,
    Series,
    above,
    bar_gauge_panel,
    firing_alerts,
    from_labels,
    from_row,
    instant,
    link_to,
    power_stat,
    power_timeseries,
    query,
    ratio_gauge,
    rising,
    skeleton,
    stat_panel,
    table_panel,
    table_query,
    timeseries_panel,
    watt_hours,
    with_panels,
)


def build(config: BoardConfig) -> model.Dashboard:
    t = config.thresholds
    series = Series(t.selector)
    contract = t.capacity.contract
    pue = t.capacity.pue
    building_limits = t.capacity.building
    to_building = link_to(
        DRILLDOWN, "Building ${__field.labels.building}", **from_labels("building")
    )
    pue_1h = recording.site_pue_name(t)
    building_pue_1h = recording.building_pue_name(t)

    grid = Grid()
    grid.section("The site against its contract")
    grid.add(
        power_stat(
            "Facility power",
            "Facility power of the site: the buildings' IT plus non-IT load, summed.",
            recording.SITE_FACILITY_POWER,
        ),
        4,
        5,
    )
    grid.add(
        power_stat(
            "IT power",
            "IT power of the site at its rack PDUs, summed from its buildings.",
            recording.SITE_IT_POWER,
        ),
        4,
        5,
    )
    grid.add(
        ratio_gauge(
            "Contract used",
            "Facility power over the contract at the point of interconnection. The colours "
            "are the contract alert's warning and critical limits.",
            instant(recording.SITE_CONTRACT_UTILIZATION),
            above(contract),
        ),
        4,
        5,
    )
    grid.add(
        stat_panel(
            "PUE, last hour",
            "Power usage effectiveness of the site over a rolling hour: facility energy over "
            "IT energy. The colours are the PUE alert's limits.",
            query(pue_1h),
            units.Short,
            above(pue),
        ),
        4,
        5,
    )
    grid.add(
        stat_panel(
            "Facility energy today",
            "Facility energy of the site since midnight (dashboard time zone).",
            instant(f"sum({watt_hours(series('building', 'facility_energy_joules'))})"),
            units.WattHour,
        ).time_from("now/d"),
        4,
        5,
    )
    grid.add(
        stat_panel(
            "Alerts firing",
            "Warning and critical alerts firing now, all entities together; the table below "
            "lists them.",
            # No ALERTS series means no alert fires: here that is a true zero.
            instant(f"count({firing_alerts(paging=True)}) or vector(0)"),
            units.Short,
            rising(1),
        ),
        4,
        5,
    )
    grid.add(
        power_timeseries(
            "Facility power against the contract",
            "Facility and IT power of the site, the contract, and the contract alert's "
            "warning and critical levels.",
            [
                query(recording.SITE_FACILITY_POWER, "Facility"),
                query(recording.SITE_IT_POWER, "IT"),
                query(recording.SITE_CONTRACT, "Contract"),
                *(
                    query(f"{recording.SITE_CONTRACT} * {limit.value:g}", f"Contract {severity}")
                    for severity, limit in contract.limits()
                ),
            ],
        ),
        24,
        9,
    )

    grid.section("Buildings")
    grid.add(
        bar_gauge_panel(
            "IT headroom by building",
            "IT capacity minus IT power of each building, smallest first; click a building "
            "for its drill-down.",
            instant(f"sort({series('building', 'headroom_watts')})", "{{building}}"),
            units.Watt,
        ).data_links([to_building]),
        8,
        9,
    )
    building_colours = above(building_limits)
    grid.add(
        bar_gauge_panel(
            "IT utilization by building",
            "IT power over IT capacity of each building. The colours are the building load "
            "alert's limits (NEC continuous loading).",
            instant(f"sort_desc({series('building', 'utilization_ratio')})", "{{building}}"),
            units.PercentUnit,
            building_colours,
            maximum=building_colours.gauge_maximum(),
        ).data_links([to_building]),
        8,
        9,
    )
    grid.add(
        timeseries_panel(
            "PUE by building, last hour",
            "Each building's PUE over a rolling hour. The dashed lines are the PUE alert's limits.",
            [query(building_pue_1h, "{{building}}")],
            units.Short,
            above(pue),
        ).data_links([to_building]),
        8,
        9,
    )
    grid.add(
        power_timeseries(
            "Facility power by building",
            "Facility power of each building: IT plus non-IT load.",
            [query(series("building", "facility_power_watts"), "{{building}}")],
        ).data_links([to_building]),
        12,
        9,
    )
    grid.add(
        power_timeseries(
            "IT headroom by building",
            "IT capacity minus IT power of each building over time.",
            [query(series("building", "headroom_watts"), "{{building}}")],
        ).data_links([to_building]),
        12,
        9,
    )

    grid.section("Firing alerts")
    grid.add(
        table_panel(
            "Firing alerts",
            "Every warning and critical alert firing now, with the labels that name its "
            "entity; empty while none fires. Click a row for its building's drill-down.",
            [table_query(firing_alerts(paging=True))],
            [
                Column("alertname", "Alert"),
                Column("severity", "Severity"),
                Column("building", "Building"),
                Column("hall", "Hall"),
                Column("row", "Row"),
                Column("rack", "Rack"),
                Column("feed", "Feed"),
                Column("accelerator", "Accelerator"),
                Column("meter", "Meter"),
                Column("source", "Source"),
                Column("training_job", "Training job"),
            ],
            link=link_to(DRILLDOWN, "Building ${__data.fields.building}", **from_row("building")),
        ),
        24,
        8,
    )

    board = skeleton(
        OVERVIEW,
        "gigawatt / Campus overview",
        "Facility and IT power against the contract, PUE, headroom by building, energy "
        "today and firing alerts.",
    )
    return with_panels(board, grid)
