"""Rack detail: its A and B feeds against their breakers, whether it could ride through
losing one (N-1), its servers' own power against what the PDUs delivered, and its
accelerators. For the data-hall technician and the electrician on the floor; each
accelerator links to its own view in the fleet dashboard."""

from __future__ import annotations

from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models import units

from dashboards.boards.config import BoardConfig
from dashboards.boards.uids import ACCELERATORS, RACK
from dashboards.panels import (
    Column,
    Grid,
    Series,
    Steps,
    above,
    falling,
    from_row,
    instant,
    label_variable,
    link_to,
    power_stat,
    power_timeseries,
    query,
    ratio_gauge,
    skeleton,
    stat_panel,
    table_panel,
    table_query,
    timeseries_panel,
    with_panels,
)

LEVELS = ("building", "hall", "row", "rack")
# Red when negative: losing one feed would overload the other.
N_MINUS_ONE = Steps("red", ((0.0, "green"),))


def build(config: BoardConfig) -> model.Dashboard:
    t = config.thresholds
    series = Series(t.selector)
    capacity = t.capacity
    quality = t.data_quality
    # Headroom and utilization of racks and feeds are not stored at the default tier (series
    # budget): capacity - power and power / capacity, exactly.
    rack_power = series("rack", "power_watts", *LEVELS)
    n_minus_one_headroom = (
        f"min without (feed) ({series('feed', 'capacity_watts', *LEVELS)}) - {rack_power}"
    )

    grid = Grid()
    grid.section("Rack $rack")
    grid.add(power_stat("Power", "IT power of the rack: its feeds summed.", rack_power), 4, 5)
    grid.add(
        power_stat(
            "Headroom",
            "The rack's rating minus its power.",
            f"{series('rack', 'capacity_watts', *LEVELS)} - {rack_power}",
        ),
        4,
        5,
    )
    grid.add(
        ratio_gauge(
            "Utilization",
            "Rack power over its continuous rating. The colours are the rack load alert's limits.",
            instant(f"{rack_power} / {series('rack', 'capacity_watts', *LEVELS)}"),
            above(capacity.rack),
        ),
        4,
        5,
    )
    grid.add(
        power_stat(
            "N-1 headroom",
            "The weakest feed's rating minus the rack's power: what is left if the other "
            "feed trips and this one carries the rack alone. Red below zero.",
            n_minus_one_headroom,
            N_MINUS_ONE,
        ),
        4,
        5,
    )
    grid.add(
        stat_panel(
            "Feeds reporting",
            "Share of the rack's PDU feeds that reported this cycle.",
            query(series("rack", "reporting_ratio", *LEVELS)),
            units.PercentUnit,
            falling(1.0),
        ),
        4,
        5,
    )
    grid.add(
        stat_panel(
            "Hottest accelerator",
            "Temperature of the rack's hottest accelerator. The colours are the accelerator "
            "temperature alert's limits.",
            query(series("rack", "max_temperature_celsius", *LEVELS)),
            units.Celsius,
            above(t.thermal.accelerator_celsius),
        ),
        4,
        5,
    )

    grid.section("Feeds A and B")
    grid.add(
        power_timeseries(
            "Feed power and rating",
            "Active power of each PDU feed, with its continuous rating (80 % of the breaker's "
            "nameplate: NEC's continuous limit is already applied).",
            [
                query(series("feed", "power_watts", *LEVELS), "Feed {{feed}}"),
                query(series("feed", "capacity_watts", *LEVELS), "Feed {{feed}} rating"),
            ],
        ),
        12,
        8,
    )
    grid.add(
        ratio_gauge(
            "Breaker loading",
            "Each feed's power over its continuous rating. The colours are the feed load "
            "alert's limits.",
            instant(
                f"{series('feed', 'power_watts', *LEVELS)} / "
                f"{series('feed', 'capacity_watts', *LEVELS)}",
                "Feed {{feed}}",
            ),
            above(capacity.feed),
        ),
        6,
        8,
    )
    grid.add(
        power_timeseries(
            "N-1 headroom",
            "The weakest feed's rating minus the rack's power over time; below zero the "
            "rack has lost its redundancy.",
            [query(n_minus_one_headroom, "N-1 headroom")],
            N_MINUS_ONE,
        ),
        6,
        8,
    )
    grid.add(
        timeseries_panel(
            "Feed current",
            "Current of each feed, per phase.",
            [query(series("feed", "current_amps", *LEVELS), "Feed {{feed}}")],
            units.Ampere,
        ),
        12,
        7,
    )
    grid.add(
        timeseries_panel(
            "Feed voltage",
            "Voltage of each feed, line to line for three-phase.",
            [query(series("feed", "voltage_volts", *LEVELS), "Feed {{feed}}")],
            units.Volt,
        ),
        12,
        7,
    )

    grid.section("Servers: their BMCs against the PDUs")
    low = quality.unattributed_below_ratio
    high = quality.unattributed_above_ratio
    grid.add(
        power_timeseries(
            "PDU, servers and unattributed power",
            "What the PDUs delivered, what the servers' BMCs say they drew, and the "
            "difference nobody meters (switches, conversion losses, meter error).",
            [
                query(rack_power, "PDUs"),
                query(series("rack", "node_power_watts", *LEVELS), "Servers (BMC)"),
                query(series("rack", "unattributed_power_watts", *LEVELS), "Unattributed"),
            ],
        ),
        16,
        8,
    )
    grid.add(
        stat_panel(
            "Unattributed share",
            "Unattributed power over the rack's PDU power. Outside the green band the three "
            "layers disagree (the unattributed-power alert's limits).",
            query(f"{series('rack', 'unattributed_power_watts', *LEVELS)} / {rack_power}"),
            units.PercentUnit,
            Steps("red", ((low, "green"), (high, "red"))),
        ),
        8,
        8,
    )
    node_scope = series("node", "power_watts", *LEVELS)
    grid.add(
        table_panel(
            "Servers",
            "Each server's input power as its BMC reports it, its CPUs' power, its "
            "accelerators' power and the host (input minus accelerators).",
            [
                table_query(node_scope),
                table_query(series("node", "cpu_power_watts", *LEVELS)),
                table_query(series("node", "accelerator_power_watts", *LEVELS)),
                table_query(series("node", "host_power_watts", *LEVELS)),
            ],
            [
                Column("node", "Server"),
                Column("Value #A", "Input (BMC)"),
                Column("Value #B", "CPUs"),
                Column("Value #C", "Accelerators"),
                Column("Value #D", "Host"),
            ],
            units.Watt,
            sort_by="Input (BMC)",
        ),
        24,
        6,
    )

    grid.section("Accelerators")
    temperature_limits = above(t.thermal.accelerator_celsius)
    grid.add(
        table_panel(
            "Accelerators",
            "Every accelerator of the rack, hottest first. The colours are the accelerator "
            "temperature alert's limits. Click one for its power, utilization and memory.",
            [table_query(series("accelerator", "temperature_celsius", *LEVELS))],
            [
                Column("accelerator", "Accelerator"),
                Column("node", "Server"),
                Column("Value", "Temperature", temperature_limits),
            ],
            units.Celsius,
            link=link_to(
                ACCELERATORS,
                "Accelerator ${__data.fields.accelerator}",
                **from_row(*LEVELS, "accelerator"),
            ),
            sort_by="Temperature",
        ),
        12,
        12,
    )
    grid.add(
        timeseries_panel(
            "Accelerator temperatures",
            "Temperature of each accelerator of the rack. The dashed lines are the "
            "accelerator temperature alert's limits.",
            [query(series("accelerator", "temperature_celsius", *LEVELS), "{{accelerator}}")],
            units.Celsius,
            temperature_limits,
        ),
        12,
        12,
    )

    board = skeleton(
        RACK,
        "gigawatt / Rack",
        "One rack: its feeds and breakers, N-1 redundancy, its servers' BMC power against "
        "the PDUs, and its accelerators.",
        *LEVELS,
    )
    board = (
        board.with_variable(label_variable("building", series("building", "power_watts")))
        .with_variable(label_variable("hall", series("hall", "power_watts", "building")))
        .with_variable(label_variable("row", series("row", "power_watts", "building", "hall")))
        .with_variable(label_variable("rack", series("rack", "power_watts", *LEVELS[:3])))
    )
    return with_panels(board, grid)
