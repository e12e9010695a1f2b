"""Roll-ups on hand-built frames: conservation, missing-not-zero, ratios, facility, anomalies.

Demo topology: one building, 2 halls x 4 rows x 8 racks, two feeds (A, B) per rack, two
nodes of 16 accelerators per rack: 128 feeds, 128 nodes, 2,048 accelerators.

Inputs used throughout (unless a test changes them):
* feed i draws 10,000 + i W and has counted 1,000 * (i + 1) J;
* accelerator i draws 100 + 10 * (i % 16) W (2,800 W per node), runs at 40 + i % 16 °C and
  has counted i + 1 J.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import polars as pl
import pytest

from collector import rollup, schemas
from collector.site.model import load_preset, parse_site
from collector.site.topology import Topology, build_topology

FloatArray = npt.NDArray[np.float64]

NOW = 1_000.0
FEEDS = 128
ACCELERATORS = 2_048
RACK_CAPACITY = math.sqrt(3) * 415 * 60 * 0.8

# Sums derived by hand from the inputs above.
SITE_POWER = 128 * 10_000 + sum(range(128))  # 1,288,128 W
SITE_ENERGY = 1_000 * sum(range(1, 129))  # 8,256,000 J
NODE_ACCELERATOR_POWER = sum(100 + 10 * k for k in range(16))  # 2,800 W
SITE_ACCELERATOR_ENERGY = ACCELERATORS * (ACCELERATORS + 1) // 2

TWO_BUILDINGS = """\
name: two
contract_watts: 20000
accelerator_types:
  chip: {tdp_watts: 500, idle_watts: 125, memory_bytes: 1000}
node_types:
  server: {accelerator_type: chip, accelerators: 2, host_idle_watts: 100, host_max_watts: 200}
rack_types:
  rack:
    node_type: server
    nodes: 1
    pdus:
      - {feed: A, voltage_volts: 415, phases: 3, breaker_amps: 60}
      - {feed: B, voltage_volts: 415, phases: 3, breaker_amps: 60}
building_types:
  small:
    halls:
      - {rows: 1, racks_per_row: 2, rack_type: rack}
    lineups:
      - {name: A, capacity_watts: 10000}
      - {name: B, capacity_watts: 10000}
buildings:
  - {type: small, count: 2}
"""


@dataclass(frozen=True)
class Rolled:
    nodes: pl.DataFrame
    feeds: pl.DataFrame
    racks: pl.DataFrame
    rows: pl.DataFrame
    halls: pl.DataFrame
    buildings: pl.DataFrame
    site: pl.DataFrame
    lineups: pl.DataFrame


@pytest.fixture(scope="module")
def demo() -> Topology:
    return build_topology(load_preset("demo"))


@pytest.fixture(scope="module")
def two() -> Topology:
    return build_topology(parse_site(TWO_BUILDINGS))


def feed_samples(watts: npt.ArrayLike) -> pl.DataFrame:
    power = np.asarray(watts, dtype=np.float64)
    return pl.DataFrame(
        {
            "feed_index": np.arange(power.size, dtype=np.uint32),
            "timestamp_seconds": np.full(power.size, NOW),
            "power_watts": power,
            "current_amps": power / (math.sqrt(3) * 415 * 0.98),
            "voltage_volts": np.full(power.size, 415.0),
            "meter_energy_joules": np.full(power.size, 1e9),
        },
        schema=dict(schemas.FEED_SAMPLES),
    )


def demo_feeds() -> pl.DataFrame:
    return feed_samples(10_000.0 + np.arange(FEEDS))


def demo_accelerators() -> pl.DataFrame:
    index = np.arange(ACCELERATORS)
    return pl.DataFrame(
        {
            "accelerator_index": index.astype(np.uint32),
            "timestamp_seconds": np.full(ACCELERATORS, NOW),
            "power_watts": 100.0 + 10.0 * (index % 16),
            "temperature_celsius": 40.0 + (index % 16),
            "utilization_ratio": np.full(ACCELERATORS, 0.9),
            "memory_used_bytes": np.full(ACCELERATORS, 1e9),
        },
        schema=dict(schemas.ACCELERATOR_SAMPLES),
    )


def building_samples(non_it: list[float | None]) -> pl.DataFrame:
    rows = [(index, NOW, value, 20.0) for index, value in enumerate(non_it) if value is not None]
    return pl.DataFrame(rows, schema=dict(schemas.BUILDING_SAMPLES), orient="row")


def roll_up(
    topology: Topology,
    accelerators: pl.DataFrame,
    feeds: pl.DataFrame,
    buildings: pl.DataFrame | None = None,
    feed_energy: FloatArray | None = None,
    accelerator_energy: FloatArray | None = None,
    non_it_energy: FloatArray | None = None,
    node_samples: pl.DataFrame | None = None,
) -> Rolled:
    """The roll-up chain in the order the pipeline runs it."""
    if feed_energy is None:
        feed_energy = 1_000.0 * np.arange(1, topology.feeds.height + 1, dtype=np.float64)
    if accelerator_energy is None:
        accelerator_energy = np.arange(1, topology.accelerator_count + 1, dtype=np.float64)
    if non_it_energy is None:
        non_it_energy = np.zeros(topology.buildings.height)
    if buildings is None:
        buildings = schemas.empty(schemas.BUILDING_SAMPLES)
    if node_samples is None:
        node_samples = schemas.empty(schemas.NODE_SAMPLES)
    nodes = rollup.node_frame(accelerators, node_samples, topology, accelerator_energy)
    feed_level = rollup.feed_frame(feeds, topology, feed_energy)
    racks = rollup.rack_frame(nodes, feed_level, topology)
    rows = rollup.parent_frame(racks, "row", topology)
    halls = rollup.parent_frame(rows, "hall", topology)
    building_level = rollup.with_facility(
        rollup.parent_frame(halls, "building", topology), buildings, non_it_energy
    )
    return Rolled(
        nodes=nodes,
        feeds=feed_level,
        racks=racks,
        rows=rows,
        halls=halls,
        buildings=building_level,
        site=rollup.site_frame(racks, building_level, topology),
        lineups=rollup.lineup_frame(feed_level, topology),
    )


def assert_children_sum_to_parent(
    children: pl.DataFrame, parent: pl.DataFrame, key: str | None, columns: list[str]
) -> None:
    """Every parent's columns equal the sum of its children's (a missing value adds 0)."""
    if key is None:
        summed = children.select(pl.col(columns).fill_null(0.0).sum())
        expected = parent.select(pl.col(columns).fill_null(0.0))
    else:
        summed = (
            children.group_by(key)
            .agg(pl.col(columns).fill_null(0.0).sum())
            .sort(key)
            .select(columns)
        )
        expected = parent.sort(key).select(pl.col(columns).fill_null(0.0))
    assert summed.height == expected.height
    for column in columns:
        assert summed[column].to_list() == pytest.approx(expected[column].to_list()), column


@pytest.fixture(scope="module")
def everything(demo: Topology) -> Rolled:
    return roll_up(demo, demo_accelerators(), demo_feeds())


# --- shape -----------------------------------------------------------------------------------


def test_every_level_has_one_row_per_entity_in_index_order(
    demo: Topology, everything: Rolled
) -> None:
    for level in ("node", "feed", "rack", "row", "hall", "building", "lineup"):
        frame: pl.DataFrame = getattr(everything, f"{level}s")
        table: pl.DataFrame = getattr(demo, f"{level}s")
        assert frame[f"{level}_index"].to_list() == list(range(table.height)), level
    assert everything.site.height == 1


def test_levels_from_rack_to_site_carry_the_shared_columns(everything: Rolled) -> None:
    for frame in (everything.racks, everything.rows, everything.halls, everything.buildings):
        for column, dtype in schemas.LEVEL_COLUMNS.items():
            assert frame.schema[column] == dtype, column
    for column in schemas.LEVEL_COLUMNS:
        assert column in everything.site.columns


def test_levels_with_nothing_reporting_keep_one_row_per_entity(demo: Topology) -> None:
    rolled = roll_up(
        demo, schemas.empty(schemas.ACCELERATOR_SAMPLES), schemas.empty(schemas.FEED_SAMPLES)
    )
    assert rolled.racks.height == 64
    assert rolled.nodes.height == 128
    assert rolled.racks["power_watts"].null_count() == 64
    assert rolled.racks["feeds_expected"].to_list() == [2] * 64
    assert rolled.racks["accelerators_expected"].to_list() == [32] * 64


# --- conservation ----------------------------------------------------------------------------


def test_hand_derived_sums_at_every_level(everything: Rolled) -> None:
    assert everything.racks["power_watts"][0] == pytest.approx(10_000 + 10_001)
    assert everything.rows["power_watts"][0] == pytest.approx(16 * 10_000 + sum(range(16)))
    assert everything.halls["power_watts"].to_list() == pytest.approx(
        [64 * 10_000 + sum(range(64)), 64 * 10_000 + sum(range(64, 128))]
    )
    assert everything.buildings["power_watts"].to_list() == pytest.approx([SITE_POWER])
    assert everything.site["power_watts"].to_list() == pytest.approx([SITE_POWER])
    assert everything.site["energy_joules"].to_list() == pytest.approx([SITE_ENERGY])
    assert everything.nodes["accelerator_power_watts"][0] == pytest.approx(NODE_ACCELERATOR_POWER)
    assert everything.racks["accelerator_power_watts"][0] == pytest.approx(
        2 * NODE_ACCELERATOR_POWER
    )
    assert everything.site["accelerator_power_watts"].to_list() == pytest.approx(
        [128 * NODE_ACCELERATOR_POWER]
    )
    assert everything.site["accelerator_energy_joules"].to_list() == pytest.approx(
        [SITE_ACCELERATOR_ENERGY]
    )
    assert everything.site["max_temperature_celsius"].to_list() == [55.0]


FEED_CHAIN = [
    ("feeds", "racks", "rack_index"),
    ("racks", "rows", "row_index"),
    ("rows", "halls", "hall_index"),
    ("halls", "buildings", "building_index"),
    ("buildings", "site", None),
]


@pytest.mark.parametrize(("child", "parent", "key"), FEED_CHAIN)
def test_feed_power_and_energy_are_conserved_level_by_level(
    everything: Rolled, child: str, parent: str, key: str | None
) -> None:
    assert_children_sum_to_parent(
        getattr(everything, child),
        getattr(everything, parent),
        key,
        ["power_watts", "energy_joules"],
    )


@pytest.mark.parametrize(("child", "parent", "key"), FEED_CHAIN[1:])
def test_accelerator_power_and_energy_are_conserved_level_by_level(
    everything: Rolled, child: str, parent: str, key: str | None
) -> None:
    assert_children_sum_to_parent(
        getattr(everything, child),
        getattr(everything, parent),
        key,
        ["accelerator_power_watts", "accelerator_energy_joules"],
    )


def test_accelerators_sum_to_nodes_and_nodes_to_racks(demo: Topology, everything: Rolled) -> None:
    accelerators = demo_accelerators().with_columns(
        node_index=demo.accelerators["node_index"],
        accelerator_energy_joules=pl.Series(np.arange(1, ACCELERATORS + 1, dtype=np.float64)),
    )
    assert_children_sum_to_parent(
        accelerators.rename({"power_watts": "accelerator_power_watts"}),
        everything.nodes,
        "node_index",
        ["accelerator_power_watts", "accelerator_energy_joules"],
    )
    assert_children_sum_to_parent(
        everything.nodes,
        everything.racks,
        "rack_index",
        ["accelerator_power_watts", "accelerator_energy_joules"],
    )


def test_conservation_holds_when_some_children_are_silent(demo: Topology) -> None:
    feeds = demo_feeds().filter(~pl.col("feed_index").is_in([0, 1, 5, 40, 41, 99]))
    accelerators = demo_accelerators().filter(pl.col("accelerator_index") % 7 != 0)
    rolled = roll_up(demo, accelerators, feeds)
    for child, parent, key in FEED_CHAIN:
        assert_children_sum_to_parent(
            getattr(rolled, child),
            getattr(rolled, parent),
            key,
            ["power_watts", "energy_joules"],
        )
    for child, parent, key in FEED_CHAIN[1:]:
        assert_children_sum_to_parent(
            getattr(rolled, child),
            getattr(rolled, parent),
            key,
            ["accelerator_power_watts", "accelerator_energy_joules"],
        )
    silent = [10_000.0 + i for i in (0, 1, 5, 40, 41, 99)]
    assert rolled.site["power_watts"][0] == pytest.approx(SITE_POWER - sum(silent))
    # Energy counters sum all leaves, reporting or not.
    assert rolled.site["energy_joules"][0] == pytest.approx(SITE_ENERGY)


# --- missing, never zero ---------------------------------------------------------------------


def test_rack_with_no_reporting_feed_has_null_power_not_zero(demo: Topology) -> None:
    feeds = demo_feeds().filter(pl.col("feed_index") >= 2)
    rolled = roll_up(demo, demo_accelerators(), feeds)
    rack = rolled.racks.row(0, named=True)
    assert rack["power_watts"] is None
    assert rack["headroom_watts"] is None
    assert rack["utilization_ratio"] is None
    assert rack["feeds_reporting"] == 0
    assert rack["feeds_expected"] == 2
    assert rack["reporting_ratio"] == 0.0
    # Its counters are still there, and its accelerators still report.
    assert rack["energy_joules"] == pytest.approx(1_000.0 + 2_000.0)
    assert rack["accelerator_power_watts"] == pytest.approx(2 * NODE_ACCELERATOR_POWER)
    # The row above still has a (partial) sum.
    assert rolled.rows["power_watts"][0] == pytest.approx(16 * 10_000 + sum(range(16)) - 20_001)


def test_row_with_no_reporting_rack_has_null_power_and_headroom(demo: Topology) -> None:
    feeds = demo_feeds().filter(pl.col("feed_index") >= 16)
    rolled = roll_up(demo, demo_accelerators(), feeds)
    row = rolled.rows.row(0, named=True)
    assert row["power_watts"] is None
    assert row["headroom_watts"] is None
    assert row["utilization_ratio"] is None
    assert row["reporting_ratio"] == 0.0
    assert rolled.rows["power_watts"][1] is not None
    assert rolled.halls["power_watts"][0] == pytest.approx(
        64 * 10_000 + sum(range(64)) - (16 * 10_000 + sum(range(16)))
    )


def test_hall_with_no_reporting_feed_has_null_power(demo: Topology) -> None:
    feeds = demo_feeds().filter(pl.col("feed_index") >= 64)
    rolled = roll_up(demo, demo_accelerators(), feeds)
    assert rolled.halls["power_watts"].to_list()[0] is None
    assert rolled.halls["headroom_watts"].to_list()[0] is None
    assert rolled.buildings["power_watts"][0] == pytest.approx(64 * 10_000 + sum(range(64, 128)))


def test_site_with_nothing_reporting_has_null_power_and_headroom(demo: Topology) -> None:
    rolled = roll_up(
        demo, schemas.empty(schemas.ACCELERATOR_SAMPLES), schemas.empty(schemas.FEED_SAMPLES)
    )
    site = rolled.site.row(0, named=True)
    for column in (
        "power_watts",
        "headroom_watts",
        "utilization_ratio",
        "accelerator_power_watts",
        "max_temperature_celsius",
        "facility_power_watts",
        "contract_headroom_watts",
    ):
        assert site[column] is None, column
    assert site["feeds_expected"] == FEEDS
    assert site["reporting_ratio"] == 0.0
    assert rolled.buildings["power_watts"].to_list() == [None]
    assert rolled.buildings["headroom_watts"].to_list() == [None]
    assert rolled.lineups["power_watts"].to_list() == [None, None]


def test_node_with_no_reporting_accelerator_has_null_power_and_temperature(
    demo: Topology,
) -> None:
    accelerators = demo_accelerators().filter(pl.col("accelerator_index") >= 16)
    rolled = roll_up(demo, accelerators, demo_feeds())
    node = rolled.nodes.row(0, named=True)
    assert node["accelerator_power_watts"] is None
    assert node["headroom_watts"] is None
    assert node["max_temperature_celsius"] is None
    assert node["accelerators_reporting"] == 0
    assert node["accelerators_reporting_ratio"] == 0.0
    assert node["accelerator_energy_joules"] == pytest.approx(sum(range(1, 17)))
    assert rolled.racks["accelerator_power_watts"][0] == pytest.approx(NODE_ACCELERATOR_POWER)


# --- ratios, headroom, capacity --------------------------------------------------------------


def test_reporting_ratio_is_one_when_every_feed_reports(everything: Rolled) -> None:
    for frame in (
        everything.racks,
        everything.rows,
        everything.halls,
        everything.buildings,
        everything.site,
        everything.lineups,
    ):
        assert set(frame["reporting_ratio"].to_list()) == {1.0}
    for frame in (everything.nodes, everything.racks, everything.site):
        assert set(frame["accelerators_reporting_ratio"].to_list()) == {1.0}


def test_one_silent_feed_lowers_the_ratio_by_one_feed_at_each_level(demo: Topology) -> None:
    rolled = roll_up(demo, demo_accelerators(), demo_feeds().filter(pl.col("feed_index") != 0))
    assert rolled.racks["reporting_ratio"][0] == 0.5
    assert rolled.racks["reporting_ratio"][1] == 1.0
    assert rolled.rows["reporting_ratio"][0] == pytest.approx(15 / 16)
    assert rolled.halls["reporting_ratio"].to_list() == pytest.approx([63 / 64, 1.0])
    assert rolled.buildings["reporting_ratio"][0] == pytest.approx(127 / 128)
    assert rolled.site["reporting_ratio"][0] == pytest.approx(127 / 128)
    assert rolled.lineups["reporting_ratio"].to_list() == pytest.approx([63 / 64, 1.0])
    # The rack's power is now its B feed alone.
    assert rolled.racks["power_watts"][0] == pytest.approx(10_001.0)


def test_one_silent_accelerator_lowers_the_accelerator_ratio(demo: Topology) -> None:
    accelerators = demo_accelerators().filter(pl.col("accelerator_index") != 0)
    rolled = roll_up(demo, accelerators, demo_feeds())
    assert rolled.nodes["accelerators_reporting_ratio"][0] == pytest.approx(15 / 16)
    assert rolled.racks["accelerators_reporting_ratio"][0] == pytest.approx(31 / 32)
    assert rolled.rows["accelerators_reporting_ratio"][0] == pytest.approx(255 / 256)
    assert rolled.halls["accelerators_reporting_ratio"][0] == pytest.approx(1023 / 1024)
    assert rolled.site["accelerators_reporting_ratio"][0] == pytest.approx(2047 / 2048)
    assert rolled.nodes["accelerator_power_watts"][0] == pytest.approx(NODE_ACCELERATOR_POWER - 100)


def test_headroom_and_utilization_are_against_capacity(demo: Topology, everything: Rolled) -> None:
    rack = everything.racks.row(0, named=True)
    assert rack["capacity_watts"] == pytest.approx(RACK_CAPACITY)
    assert rack["headroom_watts"] == pytest.approx(RACK_CAPACITY - 20_001)
    assert rack["utilization_ratio"] == pytest.approx(20_001 / RACK_CAPACITY)
    feed = everything.feeds.row(3, named=True)
    assert feed["headroom_watts"] == pytest.approx(RACK_CAPACITY - 10_003)
    node = everything.nodes.row(0, named=True)
    assert node["capacity_watts"] == 16 * 500.0
    assert node["headroom_watts"] == pytest.approx(16 * 500.0 - NODE_ACCELERATOR_POWER)
    site = everything.site.row(0, named=True)
    assert site["capacity_watts"] == pytest.approx(2e6)
    assert site["headroom_watts"] == pytest.approx(2e6 - SITE_POWER)
    assert everything.rows["capacity_watts"][0] == pytest.approx(8 * RACK_CAPACITY)


def test_lineup_power_sums_its_feeds(everything: Rolled) -> None:
    a_feeds = [10_000 + i for i in range(0, 128, 2)]
    b_feeds = [10_000 + i for i in range(1, 128, 2)]
    lineups = everything.lineups
    assert lineups["power_watts"].to_list() == pytest.approx([sum(a_feeds), sum(b_feeds)])
    assert lineups["feeds_reporting"].to_list() == [64, 64]
    assert lineups["headroom_watts"].to_list() == pytest.approx(
        [2e6 - sum(a_feeds), 2e6 - sum(b_feeds)]
    )
    assert lineups["energy_joules"].to_list() == pytest.approx(
        [1_000 * sum(range(1, 129, 2)), 1_000 * sum(range(2, 129, 2))]
    )
    assert sum(lineups["power_watts"].to_list()) == pytest.approx(SITE_POWER)


# --- facility --------------------------------------------------------------------------------


def test_building_facility_is_it_plus_non_it_and_pue_is_their_ratio(demo: Topology) -> None:
    non_it = 0.15 * SITE_POWER
    rolled = roll_up(
        demo,
        demo_accelerators(),
        demo_feeds(),
        building_samples([non_it]),
        non_it_energy=np.array([500.0]),
    )
    building = rolled.buildings.row(0, named=True)
    assert building["non_it_power_watts"] == pytest.approx(non_it)
    assert building["facility_power_watts"] == pytest.approx(1.15 * SITE_POWER)
    assert building["pue_ratio"] == pytest.approx(1.15)
    assert building["facility_energy_joules"] == pytest.approx(SITE_ENERGY + 500.0)
    assert building["outdoor_temperature_celsius"] == 20.0


def test_building_without_a_non_it_reading_has_null_facility_power(demo: Topology) -> None:
    rolled = roll_up(demo, demo_accelerators(), demo_feeds())
    building = rolled.buildings.row(0, named=True)
    assert building["power_watts"] == pytest.approx(SITE_POWER)
    assert building["facility_power_watts"] is None
    assert building["pue_ratio"] is None


def test_site_facility_is_site_it_times_site_pue_when_every_building_reports(
    two: Topology,
) -> None:
    # Building 0: 4 feeds of 1 kW, PUE 1.1; building 1: 4 feeds of 2 kW, PUE 1.3.
    feeds = feed_samples([1_000.0] * 4 + [2_000.0] * 4)
    accelerators = schemas.empty(schemas.ACCELERATOR_SAMPLES)
    rolled = roll_up(two, accelerators, feeds, building_samples([400.0, 2_400.0]))
    assert rolled.buildings["pue_ratio"].to_list() == pytest.approx([1.1, 1.3])
    site = rolled.site.row(0, named=True)
    assert site["power_watts"] == pytest.approx(12_000.0)
    assert site["facility_power_watts"] == pytest.approx(14_800.0)
    # Weighted by IT power, not the mean of the buildings' PUEs (1.2).
    assert site["pue_ratio"] == pytest.approx(14_800.0 / 12_000.0)
    assert site["facility_power_watts"] == pytest.approx(site["power_watts"] * site["pue_ratio"])
    assert site["buildings_facility_reporting"] == 2
    assert site["buildings_expected"] == 2
    assert site["capacity_watts"] == pytest.approx(2 * 10_000.0)
    assert site["contract_watts"] == 20_000.0
    assert site["contract_headroom_watts"] == pytest.approx(20_000.0 - 14_800.0)
    assert site["contract_utilization_ratio"] == pytest.approx(14_800.0 / 20_000.0)


def test_site_pue_uses_only_buildings_with_both_readings(two: Topology) -> None:
    feeds = feed_samples([1_000.0] * 4 + [2_000.0] * 4)
    rolled = roll_up(
        two, schemas.empty(schemas.ACCELERATOR_SAMPLES), feeds, building_samples([400.0, None])
    )
    assert rolled.buildings["facility_power_watts"].to_list() == pytest.approx([4_400.0, None])
    site = rolled.site.row(0, named=True)
    assert site["power_watts"] == pytest.approx(12_000.0)
    assert site["facility_power_watts"] == pytest.approx(4_400.0)
    assert site["pue_ratio"] == pytest.approx(1.1)
    assert site["buildings_facility_reporting"] == 1


def test_site_facility_energy_sums_building_it_and_non_it_energy(two: Topology) -> None:
    feeds = feed_samples([1_000.0] * 8)
    rolled = roll_up(
        two,
        schemas.empty(schemas.ACCELERATOR_SAMPLES),
        feeds,
        building_samples([100.0, 100.0]),
        feed_energy=np.full(8, 10.0),
        non_it_energy=np.array([3.0, 4.0]),
    )
    assert rolled.buildings["facility_energy_joules"].to_list() == pytest.approx([43.0, 44.0])
    assert rolled.site["facility_energy_joules"][0] == pytest.approx(87.0)
    assert rolled.site["non_it_energy_joules"][0] == pytest.approx(7.0)


# --- anomalies -------------------------------------------------------------------------------


def planted(demo: Topology) -> tuple[pl.DataFrame, Rolled]:
    """A hot chip (37 at 93 °C, 2 °C under its 95 °C limit) and a power outlier (100 draws
    640 W where its node's others draw 100-250 W)."""
    accelerators = demo_accelerators().with_columns(
        temperature_celsius=pl.when(pl.col("accelerator_index") == 37)
        .then(93.0)
        .otherwise(pl.col("temperature_celsius")),
        power_watts=pl.when(pl.col("accelerator_index") == 100)
        .then(640.0)
        .otherwise(pl.col("power_watts")),
    )
    return accelerators, roll_up(demo, accelerators, demo_feeds())


def test_anomalies_find_the_planted_hot_chip_and_power_outlier(demo: Topology) -> None:
    accelerators, rolled = planted(demo)
    anomalies = rollup.anomalous_accelerators(accelerators, rolled.nodes, demo, top_k=3)
    hot = anomalies.filter(pl.col("reason") == "hot")
    outliers = anomalies.filter(pl.col("reason") == "power_outlier")
    assert hot["accelerator_index"][0] == 37
    assert hot["score"][0] == pytest.approx(93.0 - 95.0)
    assert hot["temperature_celsius"][0] == 93.0
    assert outliers["accelerator_index"][0] == 100
    # Node 6 (accelerators 96-111): 2,800 W less 140 W for chip 100, plus 640 W.
    node_mean = (NODE_ACCELERATOR_POWER - 140.0 + 640.0) / 16
    assert outliers["score"][0] == pytest.approx((640.0 - node_mean) / 500.0)
    assert outliers["power_watts"][0] == 640.0


def test_anomalies_return_at_most_k_per_reason_best_first(demo: Topology) -> None:
    accelerators, rolled = planted(demo)
    for top_k in (1, 3, 10):
        anomalies = rollup.anomalous_accelerators(accelerators, rolled.nodes, demo, top_k)
        counts = dict(anomalies.group_by("reason").len().iter_rows())
        assert counts == {"hot": top_k, "power_outlier": top_k}
        for reason in ("hot", "power_outlier"):
            scores = anomalies.filter(pl.col("reason") == reason)["score"].to_list()
            assert scores == sorted(scores, reverse=True)


def test_anomalies_of_nothing_are_an_empty_typed_frame(demo: Topology) -> None:
    accelerators, rolled = planted(demo)
    empty = schemas.empty(schemas.ACCELERATOR_SAMPLES)
    for anomalies in (
        rollup.anomalous_accelerators(empty, rolled.nodes, demo, top_k=5),
        rollup.anomalous_accelerators(accelerators, rolled.nodes, demo, top_k=0),
    ):
        assert anomalies.height == 0
        assert anomalies.schema == pl.Schema(rollup.ANOMALY_COLUMNS)


def test_anomalies_skip_chips_with_missing_readings(demo: Topology) -> None:
    accelerators = demo_accelerators().head(32)
    accelerators = accelerators.with_columns(
        temperature_celsius=pl.when(pl.col("accelerator_index") == 0)
        .then(None)
        .otherwise(pl.col("temperature_celsius"))
    )
    rolled = roll_up(demo, accelerators, demo_feeds())
    anomalies = rollup.anomalous_accelerators(accelerators, rolled.nodes, demo, top_k=40)
    hot = anomalies.filter(pl.col("reason") == "hot")
    assert hot.height == 31
    assert 0 not in hot["accelerator_index"].to_list()


def jobs_on_racks(assignments: dict[str, range], racks: int) -> pl.DataFrame:
    """ALLOCATION_SAMPLES: each job holds the racks of its range, the others none."""
    job_of = [None] * racks
    for job, held in assignments.items():
        for rack in held:
            job_of[rack] = job
    return pl.DataFrame(
        {"rack_index": np.arange(racks, dtype=np.uint32), "job": job_of},
        schema=dict(schemas.ALLOCATION_SAMPLES),
    )


def test_stragglers_are_judged_against_their_job_median(demo: Topology) -> None:
    """Chip 40 (rack 1, job-a) draws 50 W where it would draw 180 W; chip 70 (rack 2, job-a)
    runs at 90 °C. Every server's mean is 175 W and 47.5 °C, so each job's median is that."""
    accelerators = demo_accelerators().with_columns(
        power_watts=pl.when(pl.col("accelerator_index") == 40)
        .then(50.0)
        .otherwise(pl.col("power_watts")),
        temperature_celsius=pl.when(pl.col("accelerator_index") == 70)
        .then(90.0)
        .otherwise(pl.col("temperature_celsius")),
    )
    rolled = roll_up(demo, accelerators, demo_feeds())
    allocations = jobs_on_racks({"job-a": range(0, 4), "job-b": range(4, 6)}, demo.racks.height)
    anomalies = rollup.anomalous_accelerators(
        accelerators, rolled.nodes, demo, top_k=5, allocations=allocations
    )
    slow = anomalies.filter(pl.col("reason") == "straggler_power").row(0, named=True)
    assert slow["accelerator_index"] == 40
    assert slow["training_job"] == "job-a"
    assert slow["job_power_ratio"] == pytest.approx(50.0 / 175.0)
    assert slow["score"] == pytest.approx(1.0 - 50.0 / 175.0)
    assert slow["job_temperature_excess_celsius"] == pytest.approx(48.0 - 47.5)
    hot = anomalies.filter(pl.col("reason") == "straggler_temperature").row(0, named=True)
    assert hot["accelerator_index"] == 70
    assert hot["job_temperature_excess_celsius"] == pytest.approx(90.0 - 47.5)
    stragglers = anomalies.filter(pl.col("reason").str.starts_with("straggler"))
    # Only chips a job holds (racks 0-5: chips 0-191) are judged against a job.
    assert stragglers["accelerator_index"].max() < 6 * 32
    assert set(stragglers["training_job"]) <= {"job-a", "job-b"}
    # The straggler columns explain their own reasons only.
    others = anomalies.filter(pl.col("reason").is_in(["hot", "power_outlier"]))
    assert others["job_power_ratio"].null_count() == others.height
    assert others["training_job"].null_count() == 0  # chips of a job are named with it


def test_without_jobs_there_are_no_stragglers(demo: Topology) -> None:
    accelerators = demo_accelerators()
    rolled = roll_up(demo, accelerators, demo_feeds())
    anomalies = rollup.anomalous_accelerators(accelerators, rolled.nodes, demo, top_k=5)
    assert set(anomalies["reason"]) == {"hot", "power_outlier"}
    assert anomalies["training_job"].null_count() == anomalies.height


def test_silent_chips_are_listed_most_recently_silent_first(demo: Topology) -> None:
    accelerators = demo_accelerators().filter(~pl.col("accelerator_index").is_in([5, 6, 7]))
    rolled = roll_up(demo, accelerators, demo_feeds())
    silent = np.full(ACCELERATORS, np.nan)
    silent[[5, 6, 7]] = [300.0, 10.0, 60.0]
    anomalies = rollup.anomalous_accelerators(
        accelerators, rolled.nodes, demo, top_k=2, silent_seconds=silent
    )
    rows = anomalies.filter(pl.col("reason") == "silent")
    assert rows["accelerator_index"].to_list() == [6, 7]
    assert rows["silent_seconds"].to_list() == [10.0, 60.0]
    # A silent chip has no reading: its power is missing, never 0.
    assert rows["power_watts"].null_count() == 2
    assert anomalies.filter(pl.col("reason") != "silent")["silent_seconds"].null_count() == (
        anomalies.height - 2
    )


MIXED = """\
name: mixed
contract_watts: 200000
accelerator_types:
  big: {tdp_watts: 700, idle_watts: 100, memory_bytes: 1000, max_temperature_celsius: 90}
  small: {tdp_watts: 300, idle_watts: 50, memory_bytes: 1000, max_temperature_celsius: 100}
node_types:
  wide: {accelerator_type: big, accelerators: 3, host_idle_watts: 100, host_max_watts: 200}
  narrow: {accelerator_type: small, accelerators: 2, host_idle_watts: 100, host_max_watts: 200}
rack_types:
  a:
    node_type: wide
    nodes: 2
    pdus: [{feed: A, voltage_volts: 415, phases: 3, breaker_amps: 60}]
  b:
    node_type: narrow
    nodes: 3
    pdus: [{feed: A, voltage_volts: 415, phases: 3, breaker_amps: 60}]
building_types:
  hall:
    halls:
      - {rows: 2, racks_per_row: 3, rack_type: a}
      - {rows: 2, racks_per_row: 3, rack_type: b}
    lineups:
      - {name: A, capacity_watts: 100000}
buildings:
  - {type: hall, count: 2}
"""


def brute_force_anomalies(
    topology: Topology,
    accelerators: pl.DataFrame,
    nodes: pl.DataFrame,
    job_of_rack: list[str | None],
    silent: FloatArray,
    top_k: int,
) -> dict[str, list[tuple[int, float]]]:
    """Every chip scored by the documented formulas, sorted whole: what the node-first ranking
    must pick. Medians over each job's servers' mean power and mean temperature."""
    count = topology.accelerator_count
    table = topology.accelerators
    power = np.full(count, np.nan)
    temperature = np.full(count, np.nan)
    index = accelerators["accelerator_index"].to_numpy()
    power[index] = accelerators["power_watts"].fill_null(np.nan).to_numpy()
    temperature[index] = accelerators["temperature_celsius"].fill_null(np.nan).to_numpy()
    node = table["node_index"].to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        node_power = (nodes["accelerator_power_watts"] / nodes["accelerators_reporting"]).to_numpy()
        node_temperature = np.array(
            [
                np.nansum(temperature[node == n]) / np.isfinite(temperature[node == n]).sum()
                for n in range(nodes.height)
            ]
        )
    node_job = [job_of_rack[r] for r in topology.nodes["rack_index"].to_list()]
    median: dict[str, tuple[float, float]] = {}
    for job in {j for j in job_of_rack if j is not None}:
        held = [n for n in range(nodes.height) if node_job[n] == job]
        powers = [node_power[n] for n in held if np.isfinite(node_power[n])]
        temperatures = [node_temperature[n] for n in held if np.isfinite(node_temperature[n])]
        median[job] = (
            float(np.median(powers)) if powers else np.nan,
            float(np.median(temperatures)) if temperatures else np.nan,
        )
    chip_job = [node_job[n] for n in node]
    job_power = np.array([median[j][0] if j else np.nan for j in chip_job])
    job_temperature = np.array([median[j][1] if j else np.nan for j in chip_job])
    with np.errstate(invalid="ignore", divide="ignore"):
        scores = {
            "hot": temperature - table["max_temperature_celsius"].to_numpy(),
            "power_outlier": np.abs(power - node_power[node]) / table["tdp_watts"].to_numpy(),
            "straggler_power": 1.0 - power / job_power,
            "straggler_temperature": temperature - job_temperature,
            "silent": -silent,
        }
    picked = {}
    for reason, score in scores.items():
        chips = [c for c in range(count) if np.isfinite(score[c])]
        chips.sort(key=lambda c: -score[c])
        if chips:
            picked[reason] = [(c, float(score[c])) for c in chips[:top_k]]
    return picked


@pytest.mark.parametrize("site", ["demo", "mixed"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_node_first_ranking_picks_what_scoring_every_chip_picks(site: str, seed: int) -> None:
    """The anomaly list ranks nodes by their best chip and scores only the chips of the best
    nodes. On random readings with holes, jobs on some racks and silent chips, it must pick
    the same chips, in the same order, with the same scores as scoring every chip."""
    topology = build_topology(load_preset("demo") if site == "demo" else parse_site(MIXED))
    rng = np.random.default_rng(seed)
    count = topology.accelerator_count
    tdp = topology.accelerators["tdp_watts"].to_numpy()
    power = rng.uniform(0.2, 1.1, count) * tdp
    temperature = rng.uniform(30.0, 99.0, count)
    power[rng.random(count) < 0.05] = np.nan
    temperature[rng.random(count) < 0.05] = np.nan
    reporting = rng.random(count) > 0.03
    accelerators = pl.DataFrame(
        {
            "accelerator_index": np.flatnonzero(reporting).astype(np.uint32),
            "timestamp_seconds": np.full(int(reporting.sum()), NOW),
            "power_watts": power[reporting],
            "temperature_celsius": temperature[reporting],
            "utilization_ratio": np.full(int(reporting.sum()), 0.5),
            "memory_used_bytes": np.full(int(reporting.sum()), 10.0),
        },
        schema=dict(schemas.ACCELERATOR_SAMPLES),
    ).with_columns(pl.col("power_watts", "temperature_celsius").fill_nan(None))
    silent = np.where(reporting, np.nan, rng.uniform(10.0, 900.0, count))
    racks = topology.racks.height
    job_of_rack = [rng.choice(["job-a", "job-b", None]) for _ in range(racks)]
    allocations = pl.DataFrame(
        {"rack_index": np.arange(racks, dtype=np.uint32), "job": job_of_rack},
        schema=dict(schemas.ALLOCATION_SAMPLES),
    )
    nodes = rollup.node_frame(
        accelerators, schemas.empty(schemas.NODE_SAMPLES), topology, np.zeros(count)
    )
    top_k = 7
    anomalies = rollup.anomalous_accelerators(
        accelerators,
        nodes,
        topology,
        top_k,
        allocations=allocations,
        silent_seconds=silent,
    )
    expected = brute_force_anomalies(topology, accelerators, nodes, job_of_rack, silent, top_k)
    assert set(anomalies["reason"]) == set(expected)
    for reason, picks in expected.items():
        rows = anomalies.filter(pl.col("reason") == reason)
        assert rows["accelerator_index"].to_list() == [chip for chip, _ in picks], reason
        assert rows["score"].to_list() == pytest.approx([score for _, score in picks]), reason


def test_chips_with_the_most_recent_errors_are_listed(demo: Topology) -> None:
    accelerators = demo_accelerators()
    rolled = roll_up(demo, accelerators, demo_feeds())
    recent = pl.DataFrame(
        {
            "accelerator_index": [9, 10, 11],
            "recent_errors": [3.0, 7.0, 1.0],
            "ecc_errors": [3.0, 100.0, None],
            "xid_errors": [0.0, 2.0, 1.0],
        },
        schema={
            "accelerator_index": pl.UInt32,
            "recent_errors": pl.Float64,
            "ecc_errors": pl.Float64,
            "xid_errors": pl.Float64,
        },
    )
    anomalies = rollup.anomalous_accelerators(
        accelerators, rolled.nodes, demo, top_k=2, recent_errors=recent
    )
    rows = anomalies.filter(pl.col("reason") == "errors")
    assert rows.select("accelerator_index", "recent_errors", "ecc_errors", "xid_errors").rows() == [
        (10, 7.0, 100.0, 2.0),
        (9, 3.0, 3.0, 0.0),
    ]
    assert rows["power_watts"].to_list() == [200.0, 190.0]
    hot = anomalies.filter(pl.col("reason") == "hot")
    assert hot["recent_errors"].null_count() == hot.height


def test_rack_error_counts_sum_the_known_counters(demo: Topology) -> None:
    rolled = roll_up(demo, demo_accelerators(), demo_feeds())
    ecc = np.full(ACCELERATORS, np.nan)
    ecc[:32] = 1.0  # rack 0: every chip
    ecc[40] = 5.0  # rack 1: one chip; the others never reported a count
    xid = np.zeros(ACCELERATORS)
    racks = rollup.with_error_counts(rolled.racks, {"ecc_errors": ecc, "xid_errors": xid}, demo)
    assert racks["accelerator_ecc_errors"].head(3).to_list() == [32.0, 5.0, None]
    assert racks["accelerator_xid_errors"].sum() == 0.0
    assert racks["accelerator_xid_errors"].null_count() == 0


def test_site_pue_is_null_not_nan_when_no_building_reports_non_it(demo: Topology) -> None:
    rolled = roll_up(demo, demo_accelerators(), demo_feeds())
    site = rolled.site.row(0, named=True)
    assert site["power_watts"] == pytest.approx(SITE_POWER)
    assert site["buildings_facility_reporting"] == 0
    assert site["facility_power_watts"] is None
    # Unknown is null (missing), as everywhere else; NaN would be exported as a value.
    assert site["pue_ratio"] is None


# --- servers: BMC input power and the reconciliation against the PDUs -------------------------

NODES = 128
NODE_CPU_WATTS = 600.0


def node_samples(watts: npt.ArrayLike, cpu_watts: float | None = NODE_CPU_WATTS) -> pl.DataFrame:
    power = np.asarray(watts, dtype=np.float64)
    return pl.DataFrame(
        {
            "node_index": np.arange(power.size, dtype=np.uint32),
            "timestamp_seconds": np.full(power.size, NOW),
            "power_watts": power,
            "cpu_power_watts": [cpu_watts] * power.size,
        },
        schema=dict(schemas.NODE_SAMPLES),
    )


def demo_nodes() -> pl.DataFrame:
    """Node i's BMC reports 4,000 + i W: 2,800 W of accelerators and 1,200 + i W of host."""
    return node_samples(4_000.0 + np.arange(NODES))


def test_node_input_power_beside_its_accelerators_and_the_host_share(demo: Topology) -> None:
    rolled = roll_up(demo, demo_accelerators(), demo_feeds(), node_samples=demo_nodes())
    node = rolled.nodes.row(3, named=True)
    assert node["power_watts"] == 4_003.0
    assert node["cpu_power_watts"] == NODE_CPU_WATTS
    assert node["accelerator_power_watts"] == pytest.approx(NODE_ACCELERATOR_POWER)
    assert node["host_power_watts"] == pytest.approx(4_003.0 - NODE_ACCELERATOR_POWER)


def test_rack_unattributed_power_is_pdu_minus_servers(demo: Topology) -> None:
    rolled = roll_up(demo, demo_accelerators(), demo_feeds(), node_samples=demo_nodes())
    rack = rolled.racks.row(5, named=True)  # feeds 10, 11 and nodes 10, 11
    pdu = (10_000.0 + 10) + (10_000.0 + 11)
    servers = (4_000.0 + 10) + (4_000.0 + 11)
    assert rack["node_power_watts"] == pytest.approx(servers)
    assert rack["nodes_reporting"] == 2
    assert rack["nodes_reporting_ratio"] == 1.0
    assert rack["unattributed_power_watts"] == pytest.approx(pdu - servers)
    site = rolled.site.row(0, named=True)
    assert site["node_power_watts"] == pytest.approx(4_000.0 * NODES + sum(range(NODES)))
    assert site["unattributed_power_watts"] == pytest.approx(
        site["power_watts"] - site["node_power_watts"]
    )
    for child, parent, key in FEED_CHAIN[1:]:
        assert_children_sum_to_parent(
            getattr(rolled, child),
            getattr(rolled, parent),
            key,
            ["node_power_watts", "unattributed_power_watts"],
        )


def test_unattributed_power_counts_only_racks_where_every_feed_and_server_reported(
    demo: Topology,
) -> None:
    # Rack 0 loses a server, rack 1 a feed: neither can say what is unattributed; their row
    # (row 0, racks 0-7) sums the six complete racks only.
    nodes = demo_nodes().filter(pl.col("node_index") != 0)
    feeds = demo_feeds().filter(pl.col("feed_index") != 2)
    rolled = roll_up(demo, demo_accelerators(), feeds, node_samples=nodes)
    racks = rolled.racks
    assert racks["unattributed_power_watts"][0] is None
    assert racks["unattributed_power_watts"][1] is None
    assert racks["nodes_reporting_ratio"][0] == 0.5
    assert racks["node_power_watts"][0] == 4_001.0  # the server that did report
    complete = racks.filter(pl.col("row_index") == 0).slice(2)
    expected = float((complete["power_watts"] - complete["node_power_watts"]).sum())
    assert rolled.rows["unattributed_power_watts"][0] == pytest.approx(expected)
    assert rolled.rows["nodes_reporting_ratio"][0] == pytest.approx(15 / 16)


def test_servers_claiming_more_than_their_pdus_give_negative_unattributed_power(
    demo: Topology,
) -> None:
    nodes = demo_nodes().with_columns(power_watts=pl.lit(11_000.0))
    rolled = roll_up(demo, demo_accelerators(), demo_feeds(), node_samples=nodes)
    assert rolled.racks["unattributed_power_watts"][0] == pytest.approx(20_001.0 - 22_000.0)


def test_silent_bmcs_leave_node_power_missing_not_zero(demo: Topology) -> None:
    rolled = roll_up(demo, demo_accelerators(), demo_feeds())
    assert rolled.nodes["power_watts"].null_count() == NODES
    assert rolled.nodes["host_power_watts"].null_count() == NODES
    assert rolled.nodes["cpu_power_watts"].null_count() == NODES
    for frame in (rolled.racks, rolled.rows, rolled.halls, rolled.buildings, rolled.site):
        assert frame["node_power_watts"].null_count() == frame.height
        assert frame["unattributed_power_watts"].null_count() == frame.height
        assert (frame["nodes_reporting_ratio"] == 0.0).all()


def test_host_power_needs_every_accelerator_of_the_node(demo: Topology) -> None:
    accelerators = demo_accelerators().filter(pl.col("accelerator_index") != 17)  # node 1
    rolled = roll_up(demo, accelerators, demo_feeds(), node_samples=demo_nodes())
    assert rolled.nodes["host_power_watts"][1] is None
    assert rolled.nodes["power_watts"][1] == 4_001.0
    assert rolled.nodes["host_power_watts"][0] == pytest.approx(4_000.0 - NODE_ACCELERATOR_POWER)
