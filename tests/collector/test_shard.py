"""Sharding: each building in exactly one shard, the same way every time; a shard's part of a
batch re-indexed to its topology; what the shards expose adds up to the unsharded process."""

from __future__ import annotations

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from collector.pipeline import Snapshot
from collector.shard import (
    SITE_COLUMNS_NOT_SUMMED,
    ShardError,
    ShardPlan,
    ShardSpec,
    deal_buildings,
    site_partials,
)
from collector.site.model import load_preset, parse_site, preset_text
from collector.site.topology import Topology, build_topology
from collector.sources.base import SampleBatch
from exporters.composition import ServiceSettings, build_runner

START = 1_767_225_600.0  # a fixed clock: shards and the whole site read the same instants


@pytest.fixture(scope="module")
def demo6() -> Topology:
    return build_topology(load_preset("demo6"))


def test_shard_spec_reads_i_of_n() -> None:
    assert ShardSpec.parse(" 2/3 ") == ShardSpec(2, 3)
    assert str(ShardSpec.parse("1/1")) == "1/1"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("3", "'3' is not I/N"),
        ("a/b", "'a/b' is not I/N"),
        ("-1/3", "is not I/N"),
        ("0/3", "'0/3': I must be between 1 and N"),
        ("4/3", "'4/3': I must be between 1 and N"),
        ("1/0", "'1/0': I must be between 1 and N"),
    ],
)
def test_shard_spec_refuses_what_names_no_shard(text: str, message: str) -> None:
    with pytest.raises(ShardError, match=message):
        ShardSpec.parse(text)


def test_more_shards_than_buildings_is_refused(demo6: Topology) -> None:
    with pytest.raises(ShardError, match="the site has 6 building"):
        ShardPlan.build(demo6, ShardSpec(1, 7))


def test_equal_buildings_are_dealt_round_robin_and_each_once(demo6: Topology) -> None:
    shares = deal_buildings(demo6, 4)
    assert shares == [["B01", "B05"], ["B02", "B06"], ["B03"], ["B04"]]
    assert deal_buildings(demo6, 4) == shares  # the same site and N: the same shares


def test_buildings_of_different_sizes_balance_the_accelerators() -> None:
    # One building twice the demo's (4 halls), four of the demo's size: the big one alone
    # balances two small ones.
    text = preset_text("demo").replace(
        "building_types:\n",
        "building_types:\n"
        "  big-building:\n"
        "    halls:\n"
        "      - {count: 4, rows: 4, racks_per_row: 8, rack_type: trn2-rack}\n"
        "    lineups:\n"
        "      - {name: A, capacity_watts: 4.0e6}\n"
        "      - {name: B, capacity_watts: 4.0e6}\n",
    )
    text = text.replace(
        "  - {type: demo-building, count: 1, prefix: B, first: 1}",
        "  - {type: demo-building, count: 2, prefix: B, first: 1}\n"
        "  - {type: big-building, count: 1, prefix: B, first: 3}\n"
        "  - {type: demo-building, count: 2, prefix: B, first: 4}",
    )
    topology = build_topology(parse_site(text))
    assert deal_buildings(topology, 3) == [["B03"], ["B01", "B04"], ["B02", "B05"]]


def test_a_shard_topology_keeps_the_site_order_names_and_contract(demo6: Topology) -> None:
    plan = ShardPlan.build(demo6, ShardSpec(2, 3))
    assert plan.buildings == ["B02", "B05"]
    assert plan.topology.site == demo6.site
    for level in ("hall", "row", "rack", "feed", "node"):
        expected = demo6.names(level).filter(pl.col("building").is_in(plan.buildings))
        assert_frame_equal(plan.topology.names(level), expected)


def _accelerator_batch(topology: Topology, indexes: list[int | None]) -> SampleBatch:
    return SampleBatch(
        accelerators=pl.DataFrame(
            {
                "accelerator_index": pl.Series(indexes, dtype=pl.UInt32),
                "timestamp_seconds": [START] * len(indexes),
                "power_watts": [float(i or 0) for i in indexes],
            }
        )
    )


def test_a_batch_is_cut_to_the_shard_and_reindexed(demo6: Topology) -> None:
    plan = ShardPlan.build(demo6, ShardSpec(2, 3))
    per_building = demo6.accelerator_count // 6
    # The first accelerator of B01 (shard 1), B02 and B05 (shard 2), then one past the site.
    b02, b05 = per_building, 4 * per_building
    part = plan.part(_accelerator_batch(demo6, [0, b02, b05 + 3, demo6.accelerator_count]))
    assert part.accelerators["accelerator_index"].to_list() == [0, per_building + 3, None]
    # The unknown index stays, for validation to count as an unknown entity.
    assert part.accelerators["power_watts"].to_list() == [b02, b05 + 3, demo6.accelerator_count]


def test_a_frame_without_its_key_is_handed_on_for_the_pipeline_to_reject(
    demo6: Topology,
) -> None:
    plan = ShardPlan.build(demo6, ShardSpec(1, 2))
    malformed = pl.DataFrame({"power_watts": [1.0]})
    assert plan.part(SampleBatch(feeds=malformed)).feeds is malformed


def test_site_partials_blank_what_does_not_sum() -> None:
    site = pl.DataFrame(
        {"power_watts": [10.0], "pue_ratio": [1.2], "contract_headroom_watts": [5.0]}
    )
    partial = site_partials(site)
    assert partial["power_watts"].to_list() == [10.0]
    assert partial["pue_ratio"].to_list() == [None]
    assert partial["contract_headroom_watts"].to_list() == [None]
    assert set(SITE_COLUMNS_NOT_SUMMED) >= {"pue_ratio", "utilization_ratio"}


def _snapshots(shard: str | None, cycles: int = 3) -> Snapshot:
    """The last of ``cycles`` snapshots of demo6 at a fixed clock, one cycle a second."""
    now = [START]
    settings = ServiceSettings(preset="demo6", shard=shard, interval_seconds=1.0)
    runner = build_runner(settings, clock=lambda: now[0])
    snapshot = None
    for cycle in range(cycles):
        now[0] = START + cycle
        snapshot = runner.pipeline.run_cycle()
    assert snapshot is not None
    return snapshot


@pytest.fixture(scope="module")
def whole_and_shards() -> tuple[Snapshot, list[Snapshot]]:
    return _snapshots(None), [_snapshots(f"{index}/3") for index in (1, 2, 3)]


def test_shards_add_up_to_the_whole_site(
    whole_and_shards: tuple[Snapshot, list[Snapshot]],
) -> None:
    whole, shards = whole_and_shards
    summed = (
        "power_watts",
        "capacity_watts",
        "headroom_watts",
        "facility_power_watts",
        "energy_joules",
        "facility_energy_joules",
        "job_energy_joules",
        "unallocated_energy_joules",
        "contract_utilization_ratio",
    )
    for column in summed:
        total = sum(shard.site[column].item() for shard in shards)
        assert total == pytest.approx(whole.site[column].item(), rel=1e-12), column
    assert {shard.site["contract_watts"].item() for shard in shards} == {
        whole.site["contract_watts"].item()
    }
    for shard in shards:
        assert shard.site.select(SITE_COLUMNS_NOT_SUMMED).null_count().sum_horizontal().item() == (
            len(SITE_COLUMNS_NOT_SUMMED)
        )


def test_each_rack_is_in_one_shard_with_the_unsharded_value(
    whole_and_shards: tuple[Snapshot, list[Snapshot]], demo6: Topology
) -> None:
    whole, shards = whole_and_shards
    parts = []
    for index, shard in enumerate(shards, start=1):
        plan = ShardPlan.build(demo6, ShardSpec(index, 3))
        names = plan.topology.names("rack")["rack"]
        parts.append(shard.racks.select(names.alias("rack"), "power_watts"))
    sharded = pl.concat(parts).sort("rack")
    expected = whole.racks.select(demo6.names("rack")["rack"], "power_watts").sort("rack")
    assert_frame_equal(sharded, expected)


def test_jobs_add_up_across_shards(whole_and_shards: tuple[Snapshot, list[Snapshot]]) -> None:
    whole, shards = whole_and_shards
    summed = (
        pl.concat([shard.jobs.select("job", "accelerators", "power_watts") for shard in shards])
        .group_by("job")
        .agg(pl.col("accelerators").sum(), pl.col("power_watts").sum())
        .sort("job")
    )
    expected = whole.jobs.select("job", "accelerators", "power_watts").sort("job")
    assert summed["job"].to_list() == expected["job"].to_list()
    assert summed["accelerators"].to_list() == expected["accelerators"].cast(pl.Int64).to_list()
    assert summed["power_watts"].to_list() == pytest.approx(expected["power_watts"].to_list())
    # A job spanning buildings of several shards is reported by each, with its share.
    assert any(
        shards[0].jobs["job"].is_in(shard.jobs["job"].implode()).any() for shard in shards[1:]
    )


def test_meters_are_partitioned_and_the_site_meter_is_shard_ones(
    whole_and_shards: tuple[Snapshot, list[Snapshot]],
) -> None:
    whole, shards = whole_and_shards
    meters = [set(shard.meters["meter"].unique()) for shard in shards]
    assert "poi" in meters[0]
    assert set.union(*meters) == set(whole.meters["meter"].unique())
    assert sum(len(names) for names in meters) == len(set.union(*meters))
    assert meters[1] == {"B02", "B02-A", "B02-B", "B05", "B05-A", "B05-B"}
