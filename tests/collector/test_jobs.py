"""The job model and its fast meter path, through the real pipeline on the demo site."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import polars as pl
import pytest

from collector.pipeline import Pipeline, Snapshot
from collector.site.model import load_preset
from collector.site.topology import Topology, build_topology
from collector.sources.jobs import STATES, JobConfig, JobMix, JobModel, partition
from collector.sources.simulated import SimulatedSource, SimulationConfig

START = 1_780_000_000.0  # 2026-05-28, a spring day
TDP, IDLE = 500.0, 125.0


@pytest.fixture(scope="module")
def demo() -> Topology:
    return build_topology(load_preset("demo"))


def ticks(step: float = 10.0) -> Iterator[float]:
    n = 0
    while True:
        yield START + step * n
        n += 1


def one_synchronous_job(**overrides: object) -> JobConfig:
    """The whole demo (32 UltraServers) in one job: 3 s iterations, duty 0.8, no jitter, no
    checkpoints, no failures, already training at the first reading."""
    settings: dict[str, object] = {
        "allocation_ratio": 1.0,
        "mix": (JobMix(share=1.0, ultraservers=32),),
        "period_seconds": (3.0, 3.0),
        "duty_cycle": (0.8, 0.8),
        "compute_activity": (0.95, 0.95),
        "period_jitter_ratio": 0.0,
        "checkpoint_pause_seconds": 0.0,
        "failure_rate_per_accelerator_hour": 0.0,
        "load_seconds": 0.0,
        "job_duration_hours": (1000.0, 1000.0),
    }
    settings.update(overrides)
    return JobConfig.model_validate(settings)


def run(demo: Topology, jobs: JobConfig, cycles: int, seed: int = 0) -> list[Snapshot]:
    clock = ticks()
    source = SimulatedSource(demo, SimulationConfig(seed=seed, workload="jobs", jobs=jobs))
    pipeline = Pipeline(demo, [source], clock=lambda: next(clock))
    return [pipeline.run_cycle() for _ in range(cycles)]


def poi_samples(snapshot: Snapshot) -> np.ndarray:
    return snapshot.meters.filter(pl.col("meter") == "poi")["power_watts"].to_numpy()


def test_synchronous_job_with_3_s_iterations_makes_an_episode_near_a_third_of_a_hertz(
    demo: Topology,
) -> None:
    snapshots = run(demo, one_synchronous_job(), cycles=15)
    grid = snapshots[-1].grid
    poi = grid.meters.filter(pl.col("meter") == "poi").row(0, named=True)
    assert poi["dominant_frequency_hertz"] == pytest.approx(1 / 3, rel=0.02)
    band = grid.bands.filter((pl.col("meter") == "poi") & (pl.col("band") == "0.1-1 Hz")).row(
        0, named=True
    )
    assert band["episodes"] >= 1
    assert band["episode_active"] == 1.0
    assert band["visibility"] == 1.0


def test_power_floor_shrinks_the_swing_by_the_factor_the_floor_implies(demo: Topology) -> None:
    free = run(demo, one_synchronous_job(), cycles=3)[-1]
    floored = run(demo, one_synchronous_job(power_floor_ratio=0.6), cycles=3)[-1]
    swing_free = np.ptp(poi_samples(free))
    swing_floored = np.ptp(poi_samples(floored))
    # The wait phase rises from 5 % of the idle->TDP span to the floor's 60 % of TDP; the
    # compute phase stays at 95 %. Hosts follow the same activity, so the whole swing scales.
    floor_activity = (0.6 * TDP - IDLE) / (TDP - IDLE)
    expected = (0.95 - floor_activity) / (0.95 - 0.05)
    assert swing_floored / swing_free == pytest.approx(expected, rel=0.03)


def test_ramp_limit_slews_every_edge() -> None:
    limit = 200.0  # W/s per accelerator
    config = one_synchronous_job(ramp_limit_watts_per_second=limit)
    model = JobModel(32, 64, config, seed=0, idle_watts=IDLE, tdp_watts=TDP)
    model.advance(START)
    activity, _ = model.activity(model.grid(START - 10.0, START))
    steps = np.abs(np.diff(activity, axis=1))
    per_sample = limit / (TDP - IDLE) / config.sample_rate_hz
    assert steps.max() <= per_sample + 1e-12
    # and the limit binds: unlimited, the same edges jump the whole compute-wait span
    free = JobModel(32, 64, one_synchronous_job(), seed=0, idle_watts=IDLE, tdp_watts=TDP)
    free.advance(START)
    free_activity, _ = free.activity(free.grid(START - 10.0, START))
    assert np.abs(np.diff(free_activity, axis=1)).max() == pytest.approx(0.9)


def test_job_energy_plus_unallocated_energy_is_it_energy(demo: Topology) -> None:
    snapshots = run(demo, JobConfig(), cycles=20)
    site = snapshots[-1].site.row(0, named=True)
    assert site["energy_joules"] > 0
    assert site["unallocated_energy_joules"] > 0  # the default mix leaves UltraServers idle
    assert site["job_energy_joules"] + site["unallocated_energy_joules"] == pytest.approx(
        site["energy_joules"], rel=0.01
    )


def test_mean_of_fast_site_signal_equals_detailed_facility_power(demo: Topology) -> None:
    for snapshot in run(demo, JobConfig(), cycles=6)[1:]:
        facility = snapshot.site["facility_power_watts"][0]
        assert poi_samples(snapshot).size == 200  # 10 s at 20 Hz
        assert poi_samples(snapshot).mean() == pytest.approx(facility, rel=0.01)


def test_building_and_lineup_meters_add_up_to_the_point_of_interconnection(
    demo: Topology,
) -> None:
    snapshot = run(demo, JobConfig(), cycles=2)[-1]
    meters = snapshot.meters.pivot(on="meter", index="timestamp_seconds", values="power_watts")
    assert set(meters.columns) == {"timestamp_seconds", "poi", "B01", "B01-A", "B01-B"}
    # Meter noise is 1e-4 per sample and independent per meter.
    assert meters["poi"].to_numpy() == pytest.approx(meters["B01"].to_numpy(), rel=1e-3)
    lineups = meters["B01-A"] + meters["B01-B"]
    assert (lineups < meters["B01"]).all()  # lineups carry IT only; the building adds cooling


def test_same_seed_and_clock_give_the_same_meters_and_jobs(demo: Topology) -> None:
    first = run(demo, JobConfig(), cycles=3, seed=7)[-1]
    again = run(demo, JobConfig(), cycles=3, seed=7)[-1]
    other = run(demo, JobConfig(), cycles=3, seed=8)[-1]
    assert first.meters.equals(again.meters)
    assert first.jobs.equals(again.jobs)
    assert not first.meters.equals(other.meters)


def test_failures_hang_at_wait_power_then_tear_down_and_recover() -> None:
    # A failure every ~10 s on average, so a minute holds several.
    config = one_synchronous_job(
        failure_rate_per_accelerator_hour=3600.0 / 10.0 / 2048,
        hang_detection_seconds=5.0,
        teardown_seconds=3.0,
        load_seconds=4.0,
        load_activity=0.15,
    )
    model = JobModel(32, 64, config, seed=3, idle_watts=IDLE, tdp_watts=TDP)
    end = START + 60.0
    model.advance(START)
    seen: set[str] = set()
    after = START
    while after < end:
        until = after + 1.0
        model.advance(until)
        activity, state = model.activity(model.grid(after, until))
        names = [STATES[code] for code in state[0]]
        seen.update(names)
        for level, name in zip(activity[0], names, strict=True):
            if name == "recovering":
                assert level == pytest.approx(0.15)
        after = until
    assert {"training", "failed", "recovering"} <= seen


def test_checkpoints_pause_the_job_for_their_share_of_the_interval() -> None:
    config = one_synchronous_job(checkpoint_interval_seconds=60.0, checkpoint_pause_seconds=10.0)
    model = JobModel(32, 64, config, seed=0, idle_watts=IDLE, tdp_watts=TDP)
    model.advance(START + 600.0)
    _, state = model.activity(model.grid(START, START + 600.0))
    share = (state[0] == STATES.index("checkpoint")).mean()
    assert share == pytest.approx(10.0 / 60.0, abs=0.01)


def test_partition_keeps_the_allocation_and_spreads_idle_ultraservers() -> None:
    slots = partition(33_600, JobConfig(), seed=0)
    allocated = int(slots.count.sum())
    assert allocated <= round(33_600 * 0.9)
    assert allocated >= 0.85 * 33_600
    held = slots.of_ultraserver >= 0
    # no building (1,120 UltraServers) is left all idle or all busy by the layout
    per_building = held.reshape(30, 1_120).mean(axis=1)
    assert per_building.min() > 0.5


def test_campus_wide_synchronous_job_makes_an_episode_at_the_point_of_interconnection() -> None:
    """The issue's own case, at full scale (takes ~10 s): all 33,600 UltraServers of the
    campus preset in one job with a 3 s iteration."""
    campus = build_topology(load_preset("campus"))
    jobs = one_synchronous_job(mix=(JobMix(share=1.0, ultraservers=33_600),))
    snapshots = run(campus, jobs, cycles=12)
    grid = snapshots[-1].grid
    poi = grid.meters.filter(pl.col("meter") == "poi").row(0, named=True)
    assert poi["dominant_frequency_hertz"] == pytest.approx(1 / 3, rel=0.02)
    # The whole campus swings together: 2,150,400 chips x 0.9 of 375 W, plus hosts, over the
    # conversion efficiency - hundreds of MW at the point of interconnection.
    assert np.ptp(poi_samples(snapshots[-1])) > 500e6
    band = grid.bands.filter((pl.col("meter") == "poi") & (pl.col("band") == "0.1-1 Hz")).row(
        0, named=True
    )
    assert band["episodes"] >= 1
    assert band["episode_active"] == 1.0
    assert band["peak_to_peak_watts"] > 0.03 * 2.25e9  # above the critical 3 % of the contract
