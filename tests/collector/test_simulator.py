"""The simulated campus on the demo topology: determinism and the physics of the site model.

Demo: 2,048 Trainium2-class chips (125 W idle, 500 W TDP), 2 servers of 16 per rack with
3.0-5.5 kW of host each, 97 % rack conversion, two 415 V 3-phase feeds per rack.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from collector import schemas
from collector.site.model import load_preset
from collector.site.topology import Topology, build_topology
from collector.sources.simulated import (
    SimulatedSource,
    SimulationConfig,
    outdoor_temperature_celsius,
)
from collector.validate import validate

TDP = 500.0
IDLE = 125.0
LOCAL_OFFSET = timedelta(hours=-6)  # the simulator's local solar time is about UTC-6


def local(year: int, month: int, day: int, hour: int) -> float:
    """Timestamp of a local wall-clock hour at the simulated site."""
    return (datetime(year, month, day, hour, tzinfo=UTC) - LOCAL_OFFSET).timestamp()


JULY_AFTERNOON = local(2026, 7, 15, 15)
JANUARY_NIGHT = local(2026, 1, 15, 3)
APRIL_MORNING = local(2026, 4, 15, 9)


@pytest.fixture(scope="module")
def demo() -> Topology:
    return build_topology(load_preset("demo"))


@pytest.fixture()
def source(demo: Topology) -> SimulatedSource:
    return SimulatedSource(demo)


def rack_input(demo: Topology, feeds: pl.DataFrame) -> pl.DataFrame:
    """Per rack: total feed power and each feed's share of it."""
    return (
        feeds.join(demo.feeds.select("feed_index", "rack_index"), on="feed_index")
        .with_columns(rack_watts=pl.col("power_watts").sum().over("rack_index"))
        .with_columns(share=pl.col("power_watts") / pl.col("rack_watts"))
    )


def test_same_seed_and_clock_readings_give_identical_frames(demo: Topology) -> None:
    first = SimulatedSource(demo, SimulationConfig(seed=11))
    second = SimulatedSource(demo, SimulationConfig(seed=11))
    for now in (JANUARY_NIGHT, JANUARY_NIGHT + 5, JANUARY_NIGHT + 10.5):
        one, other = first.read(now), second.read(now)
        for kind in ("accelerator", "feed", "building"):
            assert_frame_equal(one.frame(kind), other.frame(kind))


def test_different_seed_gives_different_frames(demo: Topology) -> None:
    one = SimulatedSource(demo, SimulationConfig(seed=1)).read(JANUARY_NIGHT)
    other = SimulatedSource(demo, SimulationConfig(seed=2)).read(JANUARY_NIGHT)
    for kind in ("accelerator", "feed", "building"):
        assert not one.frame(kind).equals(other.frame(kind)), kind


def test_different_clock_readings_draw_different_noise(source: SimulatedSource) -> None:
    one = source.read(JANUARY_NIGHT)
    other = source.read(JANUARY_NIGHT + 5)
    assert not one.accelerators["power_watts"].equals(other.accelerators["power_watts"])


def test_frames_follow_the_sample_schemas(source: SimulatedSource) -> None:
    batch = source.read(APRIL_MORNING)
    for kind, schema in schemas.SAMPLE_SCHEMAS.items():
        assert batch.frame(kind).schema == pl.Schema(schema), kind
    assert batch.accelerators.height == 2_048
    assert batch.feeds.height == 128
    assert batch.buildings.height == 1


@pytest.mark.parametrize("now", [JULY_AFTERNOON, JANUARY_NIGHT])
def test_simulated_samples_pass_validation_untouched(
    demo: Topology, source: SimulatedSource, now: float
) -> None:
    batch = source.read(now)
    for kind in ("accelerator", "feed", "building"):
        frame = batch.frame(kind)
        result = validate(kind, frame, demo, now)
        assert result.rejections == {}, kind
        assert result.accepted_samples == frame.height * len(schemas.measurement_columns(kind))


def test_idle_chips_draw_20_to_30_percent_of_tdp_and_training_chips_near_tdp(
    source: SimulatedSource,
) -> None:
    allocated = source.workload.allocated()
    assert 0 < allocated.sum() < allocated.size
    for now in (JANUARY_NIGHT, APRIL_MORNING, JULY_AFTERNOON):
        share = source.read(now).accelerators["power_watts"].to_numpy() / TDP
        idle, training = share[~allocated], share[allocated]
        assert idle.min() >= 0.20
        assert idle.max() <= 0.30
        assert training.min() >= 0.85
        assert training.max() <= 1.0
        # 92 % of the way from idle to TDP on average.
        assert training.mean() == pytest.approx((IDLE + 0.92 * (TDP - IDLE)) / TDP, abs=0.01)


def test_allocated_chips_are_busy_and_hold_memory_idle_ones_do_not(
    source: SimulatedSource,
) -> None:
    allocated = source.workload.allocated()
    batch = source.read(APRIL_MORNING)
    utilization = batch.accelerators["utilization_ratio"].to_numpy()
    memory = batch.accelerators["memory_used_bytes"].to_numpy()
    capacity = 103_079_215_104
    assert (utilization[~allocated] == 0.0).all()
    assert utilization[allocated].min() > 0.8
    assert memory[allocated].mean() == pytest.approx(0.82 * capacity, rel=0.02)
    assert memory[~allocated].max() < 0.02 * capacity
    assert (memory <= capacity).all()


def test_training_chips_run_hotter_by_thermal_resistance_times_power(
    source: SimulatedSource,
) -> None:
    allocated = source.workload.allocated()
    batch = source.read(APRIL_MORNING)
    temperature = batch.accelerators["temperature_celsius"].to_numpy()
    power = batch.accelerators["power_watts"].to_numpy()
    expected = 0.09 * (power[allocated].mean() - power[~allocated].mean())
    difference = temperature[allocated].mean() - temperature[~allocated].mean()
    assert difference == pytest.approx(expected, abs=1.5)
    assert np.median(temperature[~allocated]) == pytest.approx(27.0 + 0.09 * IDLE, abs=1.5)


def test_fully_training_rack_draws_25_to_30_kw_split_between_its_feeds(
    demo: Topology, source: SimulatedSource
) -> None:
    allocated = source.workload.allocated()
    training_racks = (
        pl.DataFrame({"rack_index": demo.accelerators["rack_index"], "allocated": allocated})
        .group_by("rack_index")
        .agg(pl.col("allocated").all())
        .filter("allocated")["rack_index"]
    )
    assert training_racks.len() > 0
    per_feed = rack_input(demo, source.read(APRIL_MORNING).feeds).filter(
        pl.col("rack_index").is_in(training_racks.implode())
    )
    racks = per_feed["rack_watts"].to_numpy()
    assert racks.min() >= 25_000
    assert racks.max() <= 30_000
    # Two servers: 16 chips at 92 % of idle->TDP plus hosts at 92 % of their idle->max span,
    # over the 97 % conversion efficiency (host ratings read from the preset).
    host_idle = float(demo.nodes["host_idle_watts"][0])
    host_max = float(demo.nodes["host_max_watts"][0])
    server = 16 * (IDLE + 0.92 * (TDP - IDLE)) + host_idle + 0.92 * (host_max - host_idle)
    assert racks.mean() == pytest.approx(2 * server / 0.97, rel=0.01)
    shares = per_feed["share"].to_numpy()
    assert shares.min() >= 0.40
    assert shares.max() <= 0.60


def test_idle_rack_draws_its_idle_chips_and_hosts(demo: Topology, source: SimulatedSource) -> None:
    allocated = source.workload.allocated()
    idle_racks = (
        pl.DataFrame({"rack_index": demo.accelerators["rack_index"], "allocated": allocated})
        .group_by("rack_index")
        .agg(pl.col("allocated").any())
        .filter(~pl.col("allocated"))["rack_index"]
    )
    assert idle_racks.len() > 0
    per_feed = rack_input(demo, source.read(APRIL_MORNING).feeds).filter(
        pl.col("rack_index").is_in(idle_racks.implode())
    )
    host_idle = float(demo.nodes["host_idle_watts"][0])
    assert per_feed["rack_watts"].mean() == pytest.approx(
        2 * (16 * IDLE + host_idle) / 0.97, rel=0.03
    )


def test_feed_current_is_power_over_root3_volts_power_factor(source: SimulatedSource) -> None:
    feeds = source.read(APRIL_MORNING).feeds
    apparent = math.sqrt(3) * feeds["voltage_volts"] * feeds["current_amps"] * 0.98
    assert apparent.to_list() == pytest.approx(feeds["power_watts"].to_list(), rel=1e-9)
    assert feeds["voltage_volts"].to_list() == pytest.approx([415.0] * 128, rel=0.02)


def test_building_pue_stays_within_the_site_model_range_all_year(
    demo: Topology, source: SimulatedSource
) -> None:
    pues = []
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for day in range(0, 365, 5):
        for hour in (3, 15):
            moment = start + timedelta(days=day, hours=hour) - LOCAL_OFFSET
            batch = source.read(moment.timestamp())
            it = batch.feeds["power_watts"].sum()
            pues.append(1.0 + batch.buildings["non_it_power_watts"][0] / it)
    assert min(pues) >= 1.08
    assert max(pues) <= 1.26


def test_pue_is_higher_on_a_july_afternoon_than_a_january_night(
    source: SimulatedSource,
) -> None:
    def pue(now: float) -> float:
        batch = source.read(now)
        return float(
            1.0 + batch.buildings["non_it_power_watts"][0] / batch.feeds["power_watts"].sum()
        )

    assert pue(JULY_AFTERNOON) > pue(JANUARY_NIGHT) + 0.05
    july = source.read(JULY_AFTERNOON).buildings["outdoor_temperature_celsius"][0]
    january = source.read(JANUARY_NIGHT).buildings["outdoor_temperature_celsius"][0]
    assert july > 25.0
    assert january < 0.0


def test_outdoor_temperature_peaks_mid_july_afternoon_and_bottoms_mid_january_night() -> None:
    config = SimulationConfig()
    hottest = outdoor_temperature_celsius(JULY_AFTERNOON, config)
    coldest = outdoor_temperature_celsius(JANUARY_NIGHT, config)
    # Mean 12 °C, seasonal swing 13 °C, daily swing 6 °C.
    assert hottest == pytest.approx(12 + 13 + 6, abs=0.5)
    assert coldest == pytest.approx(12 - 13 - 6, abs=0.5)
    assert outdoor_temperature_celsius(local(2026, 7, 15, 3), config) < hottest


def test_meter_energy_grows_by_power_times_interval(source: SimulatedSource) -> None:
    first = source.read(APRIL_MORNING)
    second = source.read(APRIL_MORNING + 10.0)
    before = first.feeds["meter_energy_joules"].to_numpy()
    after = second.feeds["meter_energy_joules"].to_numpy()
    mean_power = (
        first.feeds["power_watts"].to_numpy() + second.feeds["power_watts"].to_numpy()
    ) / 2
    assert (after - before) == pytest.approx(mean_power * 10.0, rel=0.01)
    third = source.read(APRIL_MORNING + 10.0)
    # Reading the same instant again adds nothing.
    assert third.feeds["meter_energy_joules"].to_list() == after.tolist()


def test_dropout_ratios_remove_samples(demo: Topology) -> None:
    config = SimulationConfig(accelerator_dropout_ratio=0.25, feed_dropout_ratio=0.5)
    batch = SimulatedSource(demo, config).read(APRIL_MORNING)
    assert 0.65 * 2_048 <= batch.accelerators.height <= 0.85 * 2_048
    assert 0.30 * 128 <= batch.feeds.height <= 0.70 * 128
    assert batch.buildings.height == 1
    # What remains is a subset of real entities, each once.
    for frame, key, count in (
        (batch.feeds, "feed_index", 128),
        (batch.accelerators, "accelerator_index", 2_048),
    ):
        assert frame[key].n_unique() == frame.height
        assert frame[key].max() < count  # type: ignore[operator]
    full = SimulatedSource(demo).read(APRIL_MORNING)
    assert full.accelerators.height == 2_048
    assert full.feeds.height == 128


def test_bmcs_report_server_power_and_the_rack_pdus_see_the_conversion_loss(
    demo: Topology, source: SimulatedSource
) -> None:
    batch = source.read(APRIL_MORNING)
    nodes = batch.nodes
    assert nodes.schema == pl.Schema(schemas.NODE_SAMPLES)
    assert nodes.height == demo.nodes.height
    node_rack = demo.nodes["rack_index"]
    servers = (
        nodes.with_columns(rack_index=node_rack)
        .group_by("rack_index")
        .agg(pl.col("power_watts").sum().alias("servers"))
    )
    racks = rack_input(demo, batch.feeds).join(servers, on="rack_index")
    # A rack's PDUs deliver its servers' draw over the 97 % conversion; the BMCs read each
    # server within their calibration error (1.5 % spread, clipped at 5 %).
    loss = 1.0 - racks["servers"] / racks["rack_watts"]
    assert loss.min() > 0.03 - 0.055
    assert loss.max() < 0.03 + 0.055
    site_loss = 1.0 - racks["servers"].sum() / racks["rack_watts"].sum()
    assert site_loss == pytest.approx(0.03, abs=0.006)
    # CPUs are a share of the host, which is what the BMC reads beyond the chips.
    chips = (
        batch.accelerators.with_columns(node_index=demo.accelerators["node_index"])
        .group_by("node_index")
        .agg(pl.col("power_watts").sum())
        .sort("node_index")["power_watts"]
    )
    assert (nodes["cpu_power_watts"] > 0).all()
    assert (nodes["cpu_power_watts"] < (nodes["power_watts"] - chips) * 0.35).all()
