"""Sources read under the cycle's budget: a hanging source is missing for the cycle and
counted, the others arrive, and a stuck read is never stacked."""

from __future__ import annotations

import threading
import time

import polars as pl

from collector.pipeline import Pipeline
from collector.site.model import load_preset
from collector.site.topology import build_topology
from collector.sources.base import SampleBatch
from collector.sources.deadline import DEADLINE_REASON, cancel_reads, with_deadlines
from collector.sources.simulated import SimulatedSource, SimulationConfig


class Hanging:
    """A source whose read blocks until released (a target that never answers)."""

    name = "hanging"

    def __init__(self) -> None:
        self.release = threading.Event()
        self.reads = 0

    def read(self, now: float) -> SampleBatch:
        self.reads += 1
        self.release.wait(30)
        return SampleBatch()


def test_a_hanging_source_costs_its_own_data_for_the_cycle_and_is_counted() -> None:
    topology = build_topology(load_preset("demo"))
    hanging = Hanging()
    sources = with_deadlines([hanging, SimulatedSource(topology, SimulationConfig())], 0.3)
    clock = [1_760_000_000.0]
    flow = Pipeline(topology, sources, clock=lambda: clock[0])
    try:
        started = time.monotonic()
        snapshot = flow.run_cycle(analyze_grid=False)
        assert time.monotonic() - started < 3.0  # the budget, then the roll-ups
        health = dict(snapshot.sources.select("source", "up").rows())
        assert health == {"hanging": 0.0, "simulated": 1.0}
        problems = snapshot.problems.filter(pl.col("reason") == DEADLINE_REASON)
        assert problems.rows() == [("hanging", DEADLINE_REASON, 1.0)]
        assert snapshot.feeds["power_watts"].is_not_null().all()  # the simulator's data came

        clock[0] += 10.0
        snapshot = flow.run_cycle(analyze_grid=False)
        assert hanging.reads == 1  # still out: not read again, no pile-up of stuck reads
        problems = snapshot.problems.filter(pl.col("reason") == DEADLINE_REASON)
        assert problems.rows() == [("hanging", DEADLINE_REASON, 2.0)]

        hanging.release.set()  # it answers at last: the next cycle reads it again
        deadline = time.monotonic() + 5
        while not sources[0]._read.done.is_set():  # type: ignore[attr-defined]
            assert time.monotonic() < deadline
            time.sleep(0.01)
        clock[0] += 10.0
        snapshot = flow.run_cycle(analyze_grid=False)
        assert hanging.reads == 2
        assert dict(snapshot.sources.select("source", "up").rows())["hanging"] == 1.0
    finally:
        hanging.release.set()


def test_cancel_wakes_a_waiting_cycle_at_once() -> None:
    hanging = Hanging()
    sources = with_deadlines([hanging], 60.0)
    threading.Timer(0.2, cancel_reads, args=(sources,)).start()
    started = time.monotonic()
    batch = sources[0].read(1.0)
    assert time.monotonic() - started < 5.0
    assert batch.problems["reason"].to_list() == [DEADLINE_REASON]
    hanging.release.set()


def test_a_failing_read_still_raises_to_the_pipeline() -> None:
    class Broken:
        name = "broken"

        def read(self, now: float) -> SampleBatch:
            raise RuntimeError("no route to host")

    (source,) = with_deadlines([Broken()], 1.0)
    try:
        source.read(1.0)
    except RuntimeError as error:
        assert "no route to host" in str(error)
    else:
        raise AssertionError("the read's error was swallowed")
