"""Playing a scenario through the pipeline: a source that goes down, cycles that overrun, PDU
meters that follow the power, and what is under way when."""

from __future__ import annotations

import polars as pl
import pytest

from collector.pipeline import Pipeline
from collector.scenarios import ScenarioRun, ScenarioSourceDown, parse_scenario, play
from collector.site.model import load_preset
from collector.site.topology import Topology, build_topology
from collector.sources.base import SampleBatch
from collector.sources.simulated import SimulatedSource, SimulationConfig

START = 1_776_000_000.0


@pytest.fixture(scope="module")
def demo() -> Topology:
    return build_topology(load_preset("demo"))


class Counted:
    """A source that counts its reads and hands over an empty batch."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.reads: list[float] = []

    def read(self, now: float) -> SampleBatch:
        self.reads.append(now)
        return SampleBatch()


def run_of(demo: Topology, events: list[str], sources: list[str]) -> ScenarioRun:
    text = "events:\n" + "".join(f"  - {event}\n" for event in events)
    return ScenarioRun(parse_scenario(text, demo, sources), START)


def test_a_source_down_is_still_read_and_its_read_fails_only_while_down(demo: Topology) -> None:
    run = run_of(demo, ["{kind: source_down, source: b, at: 20s, duration: 1m}"], ["a", "b"])
    a, b = Counted("a"), Counted("b")
    played_a, played_b = play([a, b], run, demo)
    assert (played_a.name, played_b.name) == ("a", "b")
    outcomes = []
    for elapsed in (0.0, 19.9, 20.0, 79.9, 80.0):
        played_a.read(START + elapsed)
        try:
            played_b.read(START + elapsed)
            outcomes.append("up")
        except ScenarioSourceDown as error:
            assert str(error) == "source b is down: scenario event 0"
            outcomes.append("down")
    assert outcomes == ["up", "up", "down", "down", "up"]
    # The campus runs on: every read reached the source, so nothing piles up for later.
    assert len(b.reads) == 5 and len(a.reads) == 5


def test_cycles_overrun_through_the_first_source_only_while_the_event_lasts(
    demo: Topology,
) -> None:
    run = run_of(demo, ["{kind: cycle_overrun, seconds: 12, at: 20s, duration: 30s}"], [])
    slept: list[float] = []
    first, second = play([Counted("a"), Counted("b")], run, demo, sleep=slept.append)
    for elapsed in (10.0, 20.0, 30.0, 50.0):
        first.read(START + elapsed)
        second.read(START + elapsed)
    assert slept == [12.0, 12.0]


def test_in_the_pipeline_a_downed_source_shows_down_and_its_data_missing(
    demo: Topology,
) -> None:
    run = run_of(
        demo, ["{kind: source_down, source: simulated, at: 20s, duration: 20s}"], ["simulated"]
    )
    sources = play([SimulatedSource(demo)], run, demo)
    times = iter(START + 10.0 * cycle for cycle in range(6))
    pipeline = Pipeline(demo, sources, clock=lambda: next(times))
    snapshots = [pipeline.run_cycle() for _ in range(6)]
    assert [s.sources["up"][0] for s in snapshots] == [1.0, 1.0, 0.0, 0.0, 1.0, 1.0]
    assert [s.site["power_watts"][0] is None for s in snapshots] == [
        False,
        False,
        True,
        True,
        False,
        False,
    ]
    # Every chip reported before: while the source is down, the anomaly list names them silent.
    silent = snapshots[3].anomalies.filter(pl.col("reason") == "silent")
    assert silent.height == 20 and silent["silent_seconds"].max() == 20.0


def test_a_tripped_feed_meter_stands_still_and_the_other_counts_for_both(
    demo: Topology,
) -> None:
    run = run_of(demo, ["{kind: feed_trip, rack: B01-H1-R03-K01, feed: A, at: 20s}"], [])
    rack = demo.racks.filter(pl.col("rack") == "B01-H1-R03-K01")["rack_index"][0]
    a, b = demo.feeds.filter(pl.col("rack_index") == rack)["feed_index"].to_list()
    (source,) = play([SimulatedSource(demo)], run, demo)
    readings = []
    for elapsed in (30.0, 40.0, 50.0):
        feeds = source.read(START + elapsed).feeds
        readings.append(feeds.filter(pl.col("feed_index").is_in([a, b])).rows(named=True))
    meter_a = [rows[0]["meter_energy_joules"] for rows in readings]
    assert meter_a[0] == pytest.approx(meter_a[1]) and meter_a[1] == pytest.approx(meter_a[2])
    gained_b = readings[2][1]["meter_energy_joules"] - readings[1][1]["meter_energy_joules"]
    assert gained_b == pytest.approx(readings[2][1]["power_watts"] * 10.0)


def test_the_status_says_what_is_under_way_with_its_times(demo: Topology) -> None:
    run = run_of(
        demo,
        [
            "{kind: site_surge, ratio: 1.6, at: 20s, duration: 1m}",
            "{kind: feed_trip, rack: B01-H1-R03-K01, feed: A, at: 2m}",
        ],
        [],
    )
    status = run.status(START + 30.0)
    assert status["elapsed_seconds"] == 30.0
    assert [(e["kind"], e["active"]) for e in status["events"]] == [
        ("site_surge", True),
        ("feed_trip", False),
    ]
    surge, trip = status["events"]
    assert (surge["start_seconds"], surge["end_seconds"]) == (START + 20.0, START + 80.0)
    assert (trip["start_seconds"], trip["end_seconds"]) == (START + 120.0, None)
    assert trip["event"] == {
        "kind": "feed_trip",
        "rack": "B01-H1-R03-K01",
        "feed": "A",
        "at": 120.0,
    }


def test_a_scenario_run_is_deterministic_for_a_seed(demo: Topology) -> None:
    events = [
        "{kind: straggler, accelerator: B01-H1-R01-K02-N1-A07, power_ratio: 0.5, at: 10s}",
        "{kind: load_step, meter: poi, delta_watts: -300000, at: 15s}",
        "{kind: accelerator_errors, accelerator: B01-H1-R01-K01-N2-A00, per_minute: 5}",
    ]

    def snapshots() -> list[pl.DataFrame]:
        config = SimulationConfig(seed=7, workload="jobs")
        sources = play([SimulatedSource(demo, config)], run_of(demo, events, []), demo)
        times = iter(START + 10.0 * cycle for cycle in range(4))
        pipeline = Pipeline(demo, sources, clock=lambda: next(times))
        taken = [pipeline.run_cycle() for _ in range(4)]
        return [s.racks for s in taken] + [s.anomalies for s in taken] + [taken[-1].meters]

    for first, second in zip(snapshots(), snapshots(), strict=True):
        assert first.equals(second)
