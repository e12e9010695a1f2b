"""One cycle end to end on the demo preset, with an injected clock and hand-written sources."""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import polars as pl
import pytest

from collector import schemas
from collector.pipeline import Pipeline, PipelineConfig, Snapshot
from collector.site.model import load_preset
from collector.site.topology import Topology, build_topology
from collector.sources.base import SampleBatch, Source
from collector.sources.simulated import SimulatedSource

START = datetime(2026, 4, 15, 15, tzinfo=UTC).timestamp()


def local(year: int, month: int, day: int, hour: int) -> float:
    """Timestamp of a local (UTC-6) wall-clock hour at the simulated site."""
    return (datetime(year, month, day, hour, tzinfo=UTC) + timedelta(hours=6)).timestamp()


def clock(*readings: float) -> Callable[[], float]:
    """A clock that returns the given readings, one per call."""
    return iter(readings).__next__


def ticking(start: float, step: float, count: int) -> Callable[[], float]:
    return clock(*(start + step * index for index in range(count)))


class Broken:
    """A source whose every read fails."""

    name = "broken"

    def read(self, now: float) -> SampleBatch:
        raise RuntimeError("PDU gateway unreachable")


class Scripted:
    """A source that hands over whatever its script builds for the clock reading."""

    def __init__(self, name: str, script: Callable[[float], SampleBatch]) -> None:
        self.name = name
        self.script = script

    def read(self, now: float) -> SampleBatch:
        return self.script(now)


class WithoutFeeds:
    """The simulator with some feeds' samples removed."""

    name = "partial"

    def __init__(self, inner: SimulatedSource, silent: list[int]) -> None:
        self.inner = inner
        self.silent = silent

    def read(self, now: float) -> SampleBatch:
        batch = self.inner.read(now)
        feeds = batch.feeds.filter(~pl.col("feed_index").is_in(self.silent))
        return SampleBatch(batch.accelerators, feeds, batch.buildings)


@pytest.fixture(scope="module")
def demo() -> Topology:
    return build_topology(load_preset("demo"))


def simulated(topology: Topology) -> SimulatedSource:
    return SimulatedSource(topology)


def run(pipeline: Pipeline, cycles: int) -> list[Snapshot]:
    return [pipeline.run_cycle() for _ in range(cycles)]


def rejected(snapshot: Snapshot) -> dict[tuple[str, str, str], int]:
    """The non-zero rejection counters (every counter exists from the start, at 0)."""
    return {
        (source, kind, reason): samples
        for source, kind, reason, samples in snapshot.rejected.iter_rows()
        if samples
    }


def accepted(snapshot: Snapshot) -> dict[tuple[str, str], int]:
    return {(source, kind): samples for source, kind, samples in snapshot.accepted.iter_rows()}


def sources(snapshot: Snapshot) -> dict[str, dict[str, Any]]:
    return {row["source"]: row for row in snapshot.sources.iter_rows(named=True)}


def test_snapshot_has_one_row_per_entity_at_every_level(demo: Topology) -> None:
    pipeline = Pipeline(demo, [simulated(demo)], clock=ticking(START, 5.0, 2))
    first, second = run(pipeline, 2)
    assert (first.timestamp, second.timestamp) == (START, START + 5.0)
    assert (first.cycles, second.cycles) == (1, 2)
    assert second.site.height == 1
    for level, count in {
        "building": 1,
        "lineup": 2,
        "hall": 2,
        "row": 8,
        "rack": 64,
        "feed": 128,
        "node": 128,
    }.items():
        frame: pl.DataFrame = getattr(second, f"{level}s")
        assert frame[f"{level}_index"].to_list() == list(range(count)), level
    assert second.accelerators.height == 2_048
    assert second.accelerator_energy_joules.shape == (2_048,)
    assert second.site["reporting_ratio"][0] == 1.0
    assert second.site["accelerators_reporting_ratio"][0] == 1.0


def test_energy_counters_rise_monotonically_and_site_energy_sums_the_racks(
    demo: Topology,
) -> None:
    step = 5.0
    pipeline = Pipeline(demo, [simulated(demo)], clock=ticking(START, step, 4))
    snapshots = run(pipeline, 4)
    assert snapshots[0].site["energy_joules"][0] == 0.0
    previous_feeds = np.zeros(128)
    previous_site = -1.0
    for snapshot in snapshots:
        feeds = snapshot.feeds["energy_joules"].to_numpy()
        assert (feeds >= previous_feeds).all()
        site = snapshot.site["energy_joules"][0]
        assert site >= previous_site
        assert site == pytest.approx(snapshot.racks["energy_joules"].sum())
        assert site == pytest.approx(feeds.sum())
        assert snapshot.site["accelerator_energy_joules"][0] == pytest.approx(
            snapshot.accelerator_energy_joules.sum()
        )
        previous_feeds, previous_site = feeds, site
    # Each 5 s interval adds the trapezoid of the site's power at its two ends.
    powers = [snapshot.site["power_watts"][0] for snapshot in snapshots]
    expected = sum(0.5 * (a + b) * step for a, b in itertools.pairwise(powers))
    assert snapshots[-1].site["energy_joules"][0] == pytest.approx(expected)
    assert snapshots[-1].site["energy_joules"][0] > snapshots[1].site["energy_joules"][0] > 0


def test_interval_beyond_the_energy_gap_adds_no_energy(demo: Topology) -> None:
    config = PipelineConfig(max_energy_gap_seconds=60.0)
    pipeline = Pipeline(
        demo, [simulated(demo)], clock=clock(START, START + 61.0, START + 66.0), config=config
    )
    _, second, third = run(pipeline, 3)
    assert second.site["energy_joules"][0] == 0.0
    assert third.site["energy_joules"][0] > 0.0


def test_failing_source_keeps_the_cycle_alive_and_shows_down(
    demo: Topology, caplog: pytest.LogCaptureFixture
) -> None:
    pipeline = Pipeline(demo, [Broken(), simulated(demo)], clock=ticking(START, 5.0, 2))
    with caplog.at_level(logging.WARNING, logger="collector.pipeline"):
        _, snapshot = run(pipeline, 2)
    health = sources(snapshot)
    assert health["broken"]["up"] == 0.0
    assert health["broken"]["last_success_timestamp_seconds"] is None
    assert health["simulated"]["up"] == 1.0
    assert health["simulated"]["last_success_timestamp_seconds"] == START + 5.0
    # The other source's data still arrives, complete.
    assert snapshot.site["feeds_reporting"][0] == 128
    assert snapshot.site["power_watts"][0] is not None
    assert snapshot.site["facility_power_watts"][0] is not None
    assert accepted(snapshot)[("broken", "feed")] == 0
    assert accepted(snapshot)[("simulated", "feed")] == 2 * 128 * 4
    # Logged once, not once per cycle.
    broken_logs = [r for r in caplog.records if "broken" in r.getMessage()]
    assert len(broken_logs) == 1


def test_source_that_recovers_is_up_again_with_its_last_success(demo: Topology) -> None:
    inner = simulated(demo)
    calls: list[float] = []

    def flaky(now: float) -> SampleBatch:
        calls.append(now)
        if len(calls) == 1:
            raise TimeoutError("first read times out")
        return inner.read(now)

    pipeline = Pipeline(demo, [Scripted("flaky", flaky)], clock=ticking(START, 5.0, 2))
    first, second = run(pipeline, 2)
    assert sources(first)["flaky"]["up"] == 0.0
    assert first.site["power_watts"][0] is None
    assert sources(second)["flaky"]["up"] == 1.0
    assert sources(second)["flaky"]["last_success_timestamp_seconds"] == START + 5.0


def bad_batch(now: float) -> SampleBatch:
    """Accelerator 0 reports NaN power, feed 3 negative watts, feed 128 does not exist."""
    accelerators = pl.DataFrame(
        [(0, now, math.nan, 60.0, 0.5, 1e9), (1, now, 400.0, 60.0, 0.5, 1e9)],
        schema=dict(schemas.ACCELERATOR_SAMPLES),
        orient="row",
    )
    feeds = pl.DataFrame(
        [
            (2, now, 12_000.0, 17.0, 415.0, 1e9),
            (3, now, -5.0, 17.0, 415.0, 1e9),
            (128, now, 12_000.0, 17.0, 415.0, 1e9),
        ],
        schema=dict(schemas.FEED_SAMPLES),
        orient="row",
    )
    return SampleBatch(accelerators=accelerators, feeds=feeds)


def test_bad_samples_are_counted_by_reason_and_never_crash_the_cycle(demo: Topology) -> None:
    pipeline = Pipeline(demo, [Scripted("bad", bad_batch)], clock=ticking(START, 5.0, 2))
    first, second = run(pipeline, 2)
    assert rejected(first) == {
        ("bad", "accelerator", "not_finite"): 1,
        ("bad", "feed", "negative"): 1,
        ("bad", "feed", "unknown_entity"): 4,
    }
    # Counts are cumulative across cycles.
    assert rejected(second) == {
        ("bad", "accelerator", "not_finite"): 2,
        ("bad", "feed", "negative"): 2,
        ("bad", "feed", "unknown_entity"): 8,
    }
    assert second.rejected.schema == pl.Schema(schemas.REJECTIONS)
    # Accepted: 3 + 4 accelerator values, 4 + 3 feed values per cycle.
    assert accepted(second)[("bad", "accelerator")] == 2 * 7
    assert accepted(second)[("bad", "feed")] == 2 * 7
    # The invalid value is missing, never 0: rack 1 (feeds 2 and 3) shows feed 2 alone.
    assert second.feeds["power_watts"][3] is None
    assert second.feeds["voltage_volts"][3] == 415.0
    assert second.racks["power_watts"][1] == pytest.approx(12_000.0)
    assert second.racks["reporting_ratio"][1] == 0.5
    assert second.nodes["accelerator_power_watts"][0] == pytest.approx(400.0)


def test_removing_one_feed_lowers_site_reporting_and_leaves_the_other_feed(
    demo: Topology,
) -> None:
    pipeline = Pipeline(demo, [WithoutFeeds(simulated(demo), [0])], clock=ticking(START, 5.0, 1))
    snapshot = pipeline.run_cycle()
    assert snapshot.site["reporting_ratio"][0] == pytest.approx(127 / 128)
    assert snapshot.site["reporting_ratio"][0] < 1.0
    assert snapshot.feeds["power_watts"][0] is None
    other_feed = snapshot.feeds["power_watts"][1]
    assert other_feed is not None
    assert snapshot.racks["power_watts"][0] == pytest.approx(other_feed)
    assert snapshot.racks["reporting_ratio"][0] == 0.5


def test_first_listed_source_wins_for_one_entity(demo: Topology) -> None:
    def one_feed(now: float) -> SampleBatch:
        feeds = pl.DataFrame(
            [(0, now, 5_000.0, 7.0, 415.0, 1e9)], schema=dict(schemas.FEED_SAMPLES), orient="row"
        )
        return SampleBatch(feeds=feeds)

    pipeline = Pipeline(
        demo, [Scripted("meter", one_feed), simulated(demo)], clock=ticking(START, 5.0, 1)
    )
    snapshot = pipeline.run_cycle()
    assert snapshot.feeds["power_watts"][0] == 5_000.0
    assert snapshot.racks["power_watts"][0] == pytest.approx(
        5_000.0 + snapshot.feeds["power_watts"][1]
    )
    assert snapshot.site["feeds_reporting"][0] == 128


def test_frame_missing_a_column_is_counted_malformed(demo: Topology) -> None:
    inner = simulated(demo)

    def no_meter(now: float) -> SampleBatch:
        batch = inner.read(now)
        return SampleBatch(
            batch.accelerators, batch.feeds.drop("meter_energy_joules"), batch.buildings
        )

    pipeline = Pipeline(demo, [Scripted("nometer", no_meter)], clock=ticking(START, 5.0, 1))
    snapshot = pipeline.run_cycle()
    assert rejected(snapshot) == {("nometer", "feed", "malformed"): 128}
    assert snapshot.site["power_watts"][0] is None
    assert snapshot.site["accelerators_reporting"][0] == 2_048


def test_frame_with_a_wrongly_typed_column_is_malformed_not_a_crash(demo: Topology) -> None:
    inner = simulated(demo)

    def text_power(now: float) -> SampleBatch:
        batch = inner.read(now)
        feeds = batch.feeds.with_columns(pl.lit("n/a").alias("power_watts"))
        return SampleBatch(batch.accelerators, feeds, batch.buildings)

    pipeline = Pipeline(demo, [Scripted("text", text_power)], clock=ticking(START, 5.0, 1))
    snapshot = pipeline.run_cycle()
    assert rejected(snapshot) == {("text", "feed", "malformed"): 128}
    assert snapshot.site["accelerators_reporting"][0] == 2_048


def test_simulated_cycle_rejects_nothing_and_counts_every_value(demo: Topology) -> None:
    pipeline = Pipeline(demo, [simulated(demo)], clock=ticking(START, 5.0, 2))
    _, snapshot = run(pipeline, 2)
    assert rejected(snapshot) == {}
    # Every (source, kind, reason) counter exists from the first cycle, at 0, so that
    # increase() sees the first rejection: 4 sample kinds x 8 reasons, plus the fast meters'
    # 3 reasons (not_finite, negative, out_of_order) for the one source.
    assert snapshot.rejected.height == 4 * 8 + 3
    assert snapshot.rejected["samples"].sum() == 0
    # Each simulated server reports its input power (BMC) and its CPU power (RAPL); each
    # chip its four readings and its two error counters (ECC, XID).
    assert accepted(snapshot) == {
        ("simulated", "accelerator"): 2 * 2_048 * (4 + 2),
        ("simulated", "node"): 2 * 128 * 2,
        ("simulated", "feed"): 2 * 128 * 4,
        ("simulated", "building"): 2 * 1 * 2,
    }


def test_anomalies_are_bounded_by_top_k(demo: Topology) -> None:
    config = PipelineConfig(top_k_anomalies=5)
    pipeline = Pipeline(demo, [simulated(demo)], clock=ticking(START, 5.0, 1), config=config)
    anomalies = pipeline.run_cycle().anomalies
    counts = dict(anomalies.group_by("reason").len().iter_rows())
    assert counts == {"hot": 5, "power_outlier": 5}


def test_sources_satisfy_the_source_protocol(demo: Topology) -> None:
    typed: list[Source] = [Broken(), Scripted("bad", bad_batch), simulated(demo)]
    assert [source.name for source in typed] == ["broken", "bad", "simulated"]


# --- campus scale ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def campus() -> Iterator[Topology]:
    # Campus scale: about 0.5 s and 1 GB, built once for this module.
    yield build_topology(load_preset("campus"))


def test_campus_stays_within_it_capacity_and_under_the_contract_all_year(
    campus: Topology,
) -> None:
    # Takes a few seconds: 2.15 M accelerators per cycle.
    readings = (
        local(2026, 7, 15, 15),  # hottest: mid-July afternoon
        local(2026, 1, 15, 3),  # coldest: mid-January night
        local(2026, 4, 15, 9),
        local(2026, 10, 15, 21),
    )
    pipeline = Pipeline(campus, [SimulatedSource(campus)], clock=clock(*readings))
    it_capacity = float(campus.buildings["capacity_watts"].sum())
    assert it_capacity == pytest.approx(30 * 64e6)
    pues = []
    for _ in readings:
        site = pipeline.run_cycle().site.row(0, named=True)
        assert site["reporting_ratio"] == 1.0
        assert 0.35 * it_capacity <= site["power_watts"] <= it_capacity
        assert site["facility_power_watts"] <= 2.25e9
        assert site["contract_headroom_watts"] >= 0.0
        pues.append(site["pue_ratio"])
    assert pues[0] > pues[1]


class TwoTargets:
    """A source that reads two targets: one answers, one does not and reports a problem."""

    name = "bmcs"

    def read(self, now: float) -> SampleBatch:
        return SampleBatch(
            targets=pl.DataFrame(
                {
                    "target": ["https://bmc-1", "https://bmc-2"],
                    "up": [1.0, 0.0],
                    "duration_seconds": [0.2, 2.0],
                }
            ),
            problems=pl.DataFrame(
                {
                    "source": ["redfish"],
                    "target": ["https://bmc-2"],
                    "location": ["/redfish/v1"],
                    "reason": ["timeout"],
                    "message": ["no answer within 2 s"],
                }
            ),
        )


def test_health_is_kept_per_target_and_problems_are_counted_by_reason(demo: Topology) -> None:
    pipeline = Pipeline(demo, [TwoTargets()], clock=ticking(START, 10.0, 2))
    first = pipeline.run_cycle()
    second = pipeline.run_cycle()
    health = {row["target"]: row for row in second.sources.to_dicts()}
    assert set(health) == {"https://bmc-1", "https://bmc-2"}  # no row for the source itself
    assert health["https://bmc-1"]["up"] == 1.0
    assert health["https://bmc-1"]["last_success_timestamp_seconds"] == second.timestamp
    assert health["https://bmc-2"]["up"] == 0.0
    assert health["https://bmc-2"]["last_success_timestamp_seconds"] is None  # never, not 0
    assert first.problems.to_dicts() == [{"source": "bmcs", "reason": "timeout", "problems": 1.0}]
    assert second.problems["problems"].to_list() == [2.0]


# --- accelerator health: errors that grow, chips that fall silent ---------------------------


class Erring:
    """The simulator, with chip 33's ECC counter growing by 2 each cycle from the third, and
    chip 70 silent (power, temperature and counters) from the second."""

    name = "simulated"

    def __init__(self, inner: SimulatedSource) -> None:
        self.inner = inner
        self.cycles = 0

    def read(self, now: float) -> SampleBatch:
        batch = self.inner.read(now)
        self.cycles += 1
        grown = 2.0 * max(self.cycles - 2, 0)
        errors = batch.accelerator_errors.with_columns(
            ecc_errors=pl.when(pl.col("accelerator_index") == 33)
            .then(grown)
            .otherwise(pl.col("ecc_errors"))
        )
        accelerators = batch.accelerators
        if self.cycles >= 2:
            accelerators = accelerators.filter(pl.col("accelerator_index") != 70)
            errors = errors.filter(pl.col("accelerator_index") != 70)
        return SampleBatch(
            accelerators=accelerators,
            feeds=batch.feeds,
            buildings=batch.buildings,
            nodes=batch.nodes,
            accelerator_errors=errors,
        )


def test_growing_errors_and_a_silent_chip_reach_the_anomaly_list_and_the_rack(
    demo: Topology,
) -> None:
    pipeline = Pipeline(demo, [Erring(simulated(demo))], clock=ticking(START, 10.0, 4))
    snapshots = run(pipeline, 4)
    first, last = snapshots[0], snapshots[-1]
    assert first.anomalies.filter(pl.col("reason").is_in(["errors", "silent"])).height == 0
    assert first.racks["accelerator_ecc_errors"].to_list() == [0.0] * demo.racks.height

    erring = last.anomalies.filter(pl.col("reason") == "errors")
    assert erring.select("accelerator_index", "recent_errors", "ecc_errors").rows() == [
        (33, 4.0, 4.0)
    ]
    silent = last.anomalies.filter(pl.col("reason") == "silent")
    assert silent.select("accelerator_index", "silent_seconds").rows() == [(70, 30.0)]
    # Rack 1 holds chip 33 (its counter) and rack 2 chip 70 (its last count, 0, kept).
    racks = last.racks["accelerator_ecc_errors"].to_list()
    assert racks[1] == 4.0 and racks[2] == 0.0
    assert sum(racks) == 4.0
    assert last.racks["accelerators_reporting"][2] == 31
