"""Jobs, energy, cost and carbon: what each training job and each building drew, in MW and
MWh, what that cost at the tariff and what it emitted at the grid's carbon intensity (both
text boxes, defaults from the dashboards' prices). For the ML program manager, finance and
sustainability reporting."""

from __future__ import annotations

from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models import units

from dashboards import recording
from dashboards.boards.config import BoardConfig
from dashboards.boards.uids import DRILLDOWN, JOBS
from dashboards.panels import (
    JOULES_PER_WATT_HOUR,
    Column,
    Grid,
    Series,
    bar_gauge_panel,
    from_labels,
    instant,
    label_variable,
    link_to,
    number_variable,
    power_timeseries,
    query,
    skeleton,
    stat_panel,
    table_panel,
    table_query,
    with_panels,
)
from dashboards.promql import record_name
from exporters.contract.thresholds import format_duration

WATT_HOURS_PER_MEGAWATT_HOUR = 1e6
TARIFF = "$tariff"  # dollars per MWh
INTENSITY = "$grid_intensity"  # tonnes of CO2 per MWh


def _megawatt_hours(joules: str) -> str:
    return f"({joules}) / {JOULES_PER_WATT_HOUR * WATT_HOURS_PER_MEGAWATT_HOUR:g}"


def build(config: BoardConfig) -> model.Dashboard:
    t = config.thresholds
    prices = config.prices
    series = Series(t.selector)
    job_energy = (
        "sum by (training_job) "
        f"(increase({series('job', 'energy_joules', 'training_job')}[$__range]))"
    )
    building_energy = (
        "sum by (building) "
        f"(increase({series('building', 'facility_energy_joules', 'building')}[$__range]))"
    )
    month = format_duration(recording.MONTH_SECONDS)
    site_month = record_name("site", "building", "facility_energy_joules", f"sum_increase{month}")
    to_building = link_to(
        DRILLDOWN, "Building ${__field.labels.building}", **from_labels("building")
    )

    grid = Grid()
    grid.section("Training jobs")
    grid.add(
        power_timeseries(
            "Power by training job",
            "IT power of the racks each job holds, measured at their PDUs (hosts and "
            "conversion losses included).",
            [query(series("job", "power_watts", "training_job"), "{{training_job}}")],
        ),
        16,
        9,
    )
    grid.add(
        table_panel(
            "Training jobs",
            "Each job's state and the accelerators it holds now.",
            [
                table_query(series("job_state", "one", "training_job")),
                table_query(series("job", "accelerators", "training_job")),
            ],
            [
                Column("training_job", "Training job"),
                Column("state", "State"),
                Column("Value #B", "Accelerators"),
            ],
            sort_by="Accelerators",
        ),
        8,
        9,
    )
    per_job = "{{training_job}}"
    grid.add(
        bar_gauge_panel(
            "IT energy by training job",
            "IT energy of each job's racks over the dashboard's time range (the buildings' "
            "non-IT load is not shared out to jobs).",
            instant(f"sort_desc({job_energy}) / {JOULES_PER_WATT_HOUR}", per_job),
            units.WattHour,
        ),
        8,
        9,
    )
    grid.add(
        bar_gauge_panel(
            "Energy cost by training job",
            "Each job's IT energy over the time range, at the tariff.",
            instant(f"sort_desc({_megawatt_hours(job_energy)} * {TARIFF})", per_job),
            units.Dollars,
        ),
        8,
        9,
    )
    grid.add(
        bar_gauge_panel(
            "CO2 by training job",
            "Each job's IT energy over the time range, at the grid's carbon intensity.",
            instant(f"sort_desc({_megawatt_hours(job_energy)} * {INTENSITY})", per_job),
            units.MetricTon,
        ),
        8,
        9,
    )

    grid.section("Buildings and the site")
    site_energy = f"sum({building_energy})"
    grid.add(
        stat_panel(
            "Facility energy",
            "Facility energy of the selected buildings over the time range.",
            instant(f"{site_energy} / {JOULES_PER_WATT_HOUR}"),
            units.WattHour,
        ),
        4,
        5,
    )
    grid.add(
        stat_panel(
            "Energy cost",
            "Facility energy of the selected buildings over the time range, at the tariff.",
            instant(f"{_megawatt_hours(site_energy)} * {TARIFF}"),
            units.Dollars,
        ),
        4,
        5,
    )
    grid.add(
        stat_panel(
            "CO2 emitted",
            "Facility energy of the selected buildings over the time range, at the grid's "
            "carbon intensity.",
            instant(f"{_megawatt_hours(site_energy)} * {INTENSITY}"),
            units.MetricTon,
        ),
        4,
        5,
    )
    grid.add(
        stat_panel(
            f"Site facility energy, last {month}",
            f"Facility energy of the whole site over the last {month}, as Prometheus "
            "records it every few minutes.",
            query(f"{site_month} / {JOULES_PER_WATT_HOUR}"),
            units.WattHour,
        ),
        4,
        5,
    )
    grid.add(
        stat_panel(
            f"Site energy cost, last {month}",
            f"The site's facility energy over the last {month}, at the tariff.",
            query(f"{_megawatt_hours(site_month)} * {TARIFF}"),
            units.Dollars,
        ),
        4,
        5,
    )
    grid.add(
        stat_panel(
            f"Site CO2, last {month}",
            f"The site's facility energy over the last {month}, at the grid's carbon intensity.",
            query(f"{_megawatt_hours(site_month)} * {INTENSITY}"),
            units.MetricTon,
        ),
        4,
        5,
    )
    grid.add(
        power_timeseries(
            "Facility power by building",
            "Facility power of each building: IT plus non-IT load.",
            [query(series("building", "facility_power_watts", "building"), "{{building}}")],
        ).data_links([to_building]),
        12,
        8,
    )
    per_building = "{{building}}"
    grid.add(
        bar_gauge_panel(
            "Facility energy by building",
            "Each building's facility energy over the time range.",
            instant(f"sort_desc({building_energy}) / {JOULES_PER_WATT_HOUR}", per_building),
            units.WattHour,
        ).data_links([to_building]),
        12,
        8,
    )
    grid.add(
        bar_gauge_panel(
            "Energy cost by building",
            "Each building's facility energy over the time range, at the tariff.",
            instant(f"sort_desc({_megawatt_hours(building_energy)} * {TARIFF})", per_building),
            units.Dollars,
        ).data_links([to_building]),
        12,
        8,
    )
    grid.add(
        bar_gauge_panel(
            "CO2 by building",
            "Each building's facility energy over the time range, at the grid's carbon intensity.",
            instant(f"sort_desc({_megawatt_hours(building_energy)} * {INTENSITY})", per_building),
            units.MetricTon,
        ).data_links([to_building]),
        12,
        8,
    )
    job_share = series("site", "job_energy_joules")
    unallocated = series("site", "unallocated_energy_joules")
    grid.add(
        bar_gauge_panel(
            "IT energy held by jobs",
            "IT energy of racks while a job held them, and while none did, over the time "
            "range: what idle capacity costs.",
            instant(
                f"sum(increase({job_share}[$__range])) / {JOULES_PER_WATT_HOUR}", "held by jobs"
            ),
            units.WattHour,
        ).with_target(
            instant(
                f"sum(increase({unallocated}[$__range])) / {JOULES_PER_WATT_HOUR}",
                "not held by any job",
            )
        ),
        24,
        5,
    )

    board = skeleton(
        JOBS,
        "gigawatt / Jobs, energy, cost and carbon",
        "Power and energy by training job and by building, their cost at a tariff and "
        "their CO2 at a grid intensity.",
        "building",
        "training_job",
    )
    board = (
        board.with_variable(
            label_variable(
                "training_job", series("job", "power_watts"), multi=True, title="Training job"
            )
        )
        .with_variable(label_variable("building", series("building", "power_watts"), multi=True))
        .with_variable(
            number_variable(
                "tariff",
                "Tariff ($/MWh)",
                prices.dollars_per_megawatt_hour,
                "Energy price in dollars per MWh (default: Indiana industrial rate, EIA).",
            )
        )
        .with_variable(
            number_variable(
                "grid_intensity",
                "Grid intensity (tCO2/MWh)",
                prices.tonnes_co2_per_megawatt_hour,
                "Tonnes of CO2 per MWh drawn from the grid (default: the state's generation mix).",
            )
        )
    )
    return with_panels(board, grid)
