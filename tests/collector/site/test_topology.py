"""Topology: the site expanded into indexed frames, names built from the physical path."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal, assert_series_equal

from collector.schemas import LEVEL_LABELS
from collector.site.model import load_preset, parse_site
from collector.site.topology import Topology, build_topology

# Two rack types listed out of alphabetical order, two hall groups (the second with explicit
# row and hall capacities) and two building groups with their own prefixes and numbering.
MIXED_SITE = """\
name: mixed
contract_watts: 1.0e7
accelerator_types:
  big: {tdp_watts: 700, idle_watts: 100, memory_bytes: 2000}
  small: {tdp_watts: 300, idle_watts: 50, memory_bytes: 1000, max_temperature_celsius: 85}
node_types:
  eight-big: {accelerator_type: big, accelerators: 8, host_idle_watts: 1000, host_max_watts: 2000}
  four-small: {accelerator_type: small, accelerators: 4, host_idle_watts: 500, host_max_watts: 800}
rack_types:
  zeta-rack:
    node_type: eight-big
    nodes: 1
    pdus:
      - {feed: A, voltage_volts: 230, phases: 1, breaker_amps: 32}
  alpha-rack:
    node_type: four-small
    nodes: 2
    pdus:
      - {feed: A, voltage_volts: 415, phases: 3, breaker_amps: 30}
      - {feed: B, voltage_volts: 415, phases: 3, breaker_amps: 30}
building_types:
  mixed-building:
    halls:
      - {count: 2, rows: 2, racks_per_row: 3, rack_type: zeta-rack}
      - {rows: 1, racks_per_row: 2, rack_type: alpha-rack,
         row_capacity_watts: 40000, hall_capacity_watts: 35000}
    lineups:
      - {name: A, capacity_watts: 1.0e6}
      - {name: B, capacity_watts: 1.0e6}
buildings:
  - {type: mixed-building, count: 1, prefix: X, first: 7}
  - {type: mixed-building, count: 2, prefix: Y, first: 0}
"""

ZETA_RACK_WATTS = 230 * 32 * 0.8  # one single-phase feed: nothing to lose
ALPHA_RACK_WATTS = math.sqrt(3) * 415 * 30 * 0.8  # two equal feeds, N-1

# (level frame attribute, index column, parent index columns)
HIERARCHY = [
    ("buildings", "building_index", []),
    ("lineups", "lineup_index", ["building_index"]),
    ("halls", "hall_index", ["building_index"]),
    ("rows", "row_index", ["hall_index", "building_index"]),
    ("racks", "rack_index", ["row_index", "hall_index", "building_index"]),
    ("feeds", "feed_index", ["rack_index"]),
    ("nodes", "node_index", ["rack_index"]),
    ("accelerators", "accelerator_index", ["node_index", "rack_index"]),
]


@pytest.fixture(scope="module")
def demo() -> Topology:
    return build_topology(load_preset("demo"))


@pytest.fixture(scope="module")
def mixed() -> Topology:
    return build_topology(parse_site(MIXED_SITE))


@pytest.fixture(scope="module")
def campus() -> Iterator[Topology]:
    # Campus scale: about 0.5 s and 1 GB, built once for this module.
    yield build_topology(load_preset("campus"))


def test_campus_expands_to_the_full_build(campus: Topology) -> None:
    heights = {name: getattr(campus, name).height for name, _, _ in HIERARCHY}
    assert heights == {
        "buildings": 30,
        "lineups": 60,
        "halls": 120,
        "rows": 3_360,
        "racks": 67_200,
        "feeds": 134_400,
        "nodes": 134_400,
        "accelerators": 2_150_400,
    }
    assert campus.accelerator_count == 2_150_400


def test_campus_capacities_come_from_breakers_and_lineups(campus: Topology) -> None:
    rack_watts = math.sqrt(3) * 415 * 60 * 0.8
    assert campus.uniform_value("rack", "capacity_watts") == pytest.approx(rack_watts)
    assert campus.uniform_value("feed", "capacity_watts") == pytest.approx(rack_watts)
    assert campus.uniform_value("row", "capacity_watts") == pytest.approx(20 * rack_watts)
    assert campus.uniform_value("hall", "capacity_watts") == pytest.approx(28 * 20 * rack_watts)
    assert campus.uniform_value("building", "capacity_watts") == pytest.approx(64e6)
    assert campus.uniform_value("lineup", "capacity_watts") == pytest.approx(64e6)


def test_campus_index_columns_equal_row_numbers_and_children_are_contiguous(
    campus: Topology,
) -> None:
    for name, index, parents in HIERARCHY:
        frame: pl.DataFrame = getattr(campus, name)
        assert frame[index].dtype == pl.UInt32
        assert np.array_equal(frame[index].to_numpy(), np.arange(frame.height)), name
        for parent in parents:
            # In index order a parent column never goes back: each parent's children are
            # one contiguous range.
            steps = np.diff(frame[parent].to_numpy().astype(np.int64))
            assert bool((steps >= 0).all()), f"{name}.{parent}"


def test_campus_first_and_last_names(campus: Topology) -> None:
    assert campus.racks["rack"][0] == "B01-H1-R01-K01"
    assert campus.racks["rack"][-1] == "B30-H4-R28-K20"
    last = pl.Series([campus.accelerator_count - 1])
    assert campus.accelerator_names(last).to_list() == ["B30-H4-R28-K20-N2-A15"]


def test_demo_is_small(demo: Topology) -> None:
    assert demo.buildings.height == 1
    assert demo.halls.height == 2
    assert demo.rows.height == 8
    assert demo.racks.height == 64
    assert demo.feeds.height == 128
    assert demo.nodes.height == 128
    assert demo.accelerator_count == 2_048


@pytest.mark.parametrize(("name", "index", "parents"), HIERARCHY)
def test_index_columns_equal_row_numbers(
    demo: Topology, mixed: Topology, name: str, index: str, parents: list[str]
) -> None:
    for topology in (demo, mixed):
        frame: pl.DataFrame = getattr(topology, name)
        assert frame[index].dtype == pl.UInt32
        assert frame[index].to_list() == list(range(frame.height))


@pytest.mark.parametrize(("name", "index", "parents"), HIERARCHY)
def test_children_of_every_parent_are_one_contiguous_index_range(
    demo: Topology, mixed: Topology, name: str, index: str, parents: list[str]
) -> None:
    for topology in (demo, mixed):
        frame: pl.DataFrame = getattr(topology, name)
        for parent in parents:
            spans = frame.group_by(parent).agg(
                low=pl.col(index).min(), high=pl.col(index).max(), count=pl.len()
            )
            widths = spans["high"].cast(pl.Int64) - spans["low"].cast(pl.Int64) + 1
            assert (widths == spans["count"].cast(pl.Int64)).all(), f"{name}.{parent}"


def test_node_accelerator_ranges_match_the_accelerator_frame(mixed: Topology) -> None:
    per_node = mixed.accelerators.group_by("node_index", maintain_order=True).agg(
        first=pl.col("accelerator_index").min(), count=pl.len()
    )
    assert per_node["node_index"].to_list() == mixed.nodes["node_index"].to_list()
    assert per_node["first"].to_list() == mixed.nodes["first_accelerator_index"].to_list()
    assert per_node["count"].to_list() == mixed.nodes["accelerator_count"].to_list()


def test_mixed_site_counts_per_template(mixed: Topology) -> None:
    # Per building: halls 2 + 1; rows 2*2 + 1; racks 2*2*3 zeta + 2 alpha; feeds 12*1 + 2*2;
    # nodes 12*1 + 2*2; accelerators 12*8 + 4*4. Three buildings.
    assert mixed.buildings["building"].to_list() == ["X07", "Y00", "Y01"]
    assert mixed.lineups.height == 6
    assert mixed.halls.height == 3 * 3
    assert mixed.rows.height == 3 * 5
    assert mixed.racks.height == 3 * 14
    assert mixed.feeds.height == 3 * 16
    assert mixed.nodes.height == 3 * 16
    assert mixed.accelerator_count == 3 * 112


def test_each_rack_gets_the_figures_of_its_own_type(mixed: Topology) -> None:
    first_building = mixed.racks.filter(pl.col("building_index") == 0)
    zeta = first_building.filter(pl.col("rack_type") == "zeta-rack")
    alpha = first_building.filter(pl.col("rack_type") == "alpha-rack")
    assert zeta.height == 12
    assert alpha.height == 2
    assert zeta["capacity_watts"].to_list() == pytest.approx([ZETA_RACK_WATTS] * 12)
    assert alpha["capacity_watts"].to_list() == pytest.approx([ALPHA_RACK_WATTS] * 2)
    assert zeta["node_count"].to_list() == [1] * 12
    assert zeta["accelerator_count"].to_list() == [8] * 12
    assert alpha["node_count"].to_list() == [2] * 2
    assert alpha["accelerator_count"].to_list() == [8] * 2
    assert alpha["rack"].to_list() == ["X07-H3-R01-K01", "X07-H3-R01-K02"]


def test_accelerators_carry_their_own_type_ratings(mixed: Topology) -> None:
    building = mixed.accelerators.filter(pl.col("accelerator_index") < 112)
    big = building.filter(pl.col("accelerator_index") < 96)
    small = building.filter(pl.col("accelerator_index") >= 96)
    assert set(big["tdp_watts"].to_list()) == {700.0}
    assert set(small["tdp_watts"].to_list()) == {300.0}
    assert set(small["max_temperature_celsius"].to_list()) == {85.0}
    assert set(big["max_temperature_celsius"].to_list()) == {95.0}
    assert mixed.uniform_value("accelerator", "tdp_watts") is None


def test_node_capacity_is_its_accelerators_tdp(mixed: Topology) -> None:
    first_building = mixed.nodes.head(16)
    assert first_building["capacity_watts"].to_list() == [8 * 700.0] * 12 + [4 * 300.0] * 4


def test_row_and_hall_capacity_sum_their_racks_unless_the_site_gives_them(
    mixed: Topology,
) -> None:
    rows = mixed.rows.filter(pl.col("building_index") == 0)
    assert rows["capacity_watts"].to_list() == pytest.approx([3 * ZETA_RACK_WATTS] * 4 + [40_000.0])
    halls = mixed.halls.filter(pl.col("building_index") == 0)
    assert halls["hall"].to_list() == ["X07-H1", "X07-H2", "X07-H3"]
    assert halls["capacity_watts"].to_list() == pytest.approx(
        [6 * ZETA_RACK_WATTS, 6 * ZETA_RACK_WATTS, 35_000.0]
    )
    assert mixed.buildings["capacity_watts"].to_list() == pytest.approx([1e6] * 3)


def test_feeds_attach_to_the_lineup_of_the_same_name_in_their_building(
    mixed: Topology,
) -> None:
    joined = (
        mixed.feeds.join(mixed.racks.select("rack_index", "building_index"), on="rack_index")
        .join(mixed.lineups, on="lineup_index", suffix="_lineup")
        .sort("feed_index")
    )
    assert joined.height == mixed.feeds.height
    assert (joined["feed"] == joined["lineup"]).all()
    assert (joined["building_index"] == joined["building_index_lineup"]).all()
    single_phase = mixed.feeds.filter(pl.col("phases") == 1)
    assert single_phase.height == 3 * 12
    assert single_phase["capacity_watts"].to_list() == pytest.approx([ZETA_RACK_WATTS] * 36)


def test_feeds_of_a_rack_are_sorted_by_letter(demo: Topology) -> None:
    assert demo.feeds["feed"].head(4).to_list() == ["A", "B", "A", "B"]
    assert demo.feeds["rack_index"].head(4).to_list() == [0, 0, 1, 1]
    assert demo.feeds["lineup_index"].head(4).to_list() == [0, 1, 0, 1]


@pytest.mark.parametrize("level", ["building", "lineup", "hall", "row", "rack", "feed", "node"])
def test_names_are_the_label_columns_of_the_level_in_index_order(
    demo: Topology, level: str
) -> None:
    names = demo.names(level)
    table: pl.DataFrame = getattr(demo, f"{level}s")
    assert names.columns == list(LEVEL_LABELS[level])
    assert names.height == table.height
    assert_series_equal(names[level], table[level])


def test_names_spell_the_physical_path(demo: Topology) -> None:
    assert demo.names("rack").row(9, named=True) == {
        "building": "B01",
        "hall": "B01-H1",
        "row": "B01-H1-R02",
        "rack": "B01-H1-R02-K02",
    }
    assert demo.names("feed").row(3, named=True) == {
        "building": "B01",
        "hall": "B01-H1",
        "row": "B01-H1-R01",
        "rack": "B01-H1-R01-K02",
        "feed": "B",
    }
    assert demo.names("node")["node"][127] == "B01-H2-R04-K08-N2"
    assert demo.names("lineup").rows() == [("B01", "A"), ("B01", "B")]
    assert demo.names("site").width == 0


def test_accelerator_names_level_has_every_label(demo: Topology) -> None:
    names = demo.names("accelerator")
    assert names.columns == list(LEVEL_LABELS["accelerator"])
    assert names.height == 2_048
    assert names.row(0) == (
        "B01",
        "B01-H1",
        "B01-H1-R01",
        "B01-H1-R01-K01",
        "B01-H1-R01-K01-N1",
        "B01-H1-R01-K01-N1-A00",
    )
    assert names["accelerator"][2_047] == "B01-H2-R04-K08-N2-A15"


def test_accelerator_names_are_built_from_node_and_local_index(
    demo: Topology, mixed: Topology
) -> None:
    # Demo: 16 per node, 2 nodes per rack, 8 racks per row, 4 rows per hall.
    # 17 = node 1 (rack K01, N2), local 1; 16*2*8 = 256 opens row R02.
    assert demo.accelerator_names(pl.Series([0, 17, 256, 2_047])).to_list() == [
        "B01-H1-R01-K01-N1-A00",
        "B01-H1-R01-K01-N2-A01",
        "B01-H1-R02-K01-N1-A00",
        "B01-H2-R04-K08-N2-A15",
    ]
    # Mixed: 96 big then 16 small in X07; 112 opens building Y00.
    assert mixed.accelerator_names(pl.Series([7, 96, 111, 112])).to_list() == [
        "X07-H1-R01-K01-N1-A07",
        "X07-H3-R01-K01-N1-A00",
        "X07-H3-R01-K02-N2-A03",
        "Y00-H1-R01-K01-N1-A00",
    ]


def test_resolve_returns_the_index_of_each_name_and_null_for_unknown(demo: Topology) -> None:
    racks = demo.resolve("rack", pl.Series(["B01-H1-R01-K02", "B09-H1-R01-K01", "B01-H2-R04-K08"]))
    assert racks.to_list() == [1, None, 63]
    assert demo.resolve("building", pl.Series(["B01", "B02"])).to_list() == [0, None]
    assert demo.resolve("node", pl.Series(["B01-H1-R01-K01-N2"])).to_list() == [1]


def test_resolve_feed_pairs_rack_and_letter_and_gives_null_for_unknown(demo: Topology) -> None:
    feeds = demo.resolve_feed(
        pl.Series(["B01-H1-R01-K01", "B01-H1-R01-K02", "B01-H1-R01-K01", "nowhere"]),
        pl.Series(["B", "A", "C", "A"]),
    )
    assert feeds.to_list() == [1, 2, None, None]


def test_same_site_gives_the_same_frames(demo: Topology) -> None:
    again = build_topology(load_preset("demo"))
    for name, _, _ in HIERARCHY:
        assert_frame_equal(getattr(demo, name), getattr(again, name))


def test_uniform_value_is_the_shared_value_or_none(demo: Topology, mixed: Topology) -> None:
    assert demo.uniform_value("accelerator", "tdp_watts") == 500.0
    assert demo.uniform_value("feed", "breaker_amps") == 60.0
    assert mixed.uniform_value("feed", "phases") is None
