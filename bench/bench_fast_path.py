"""Benchmark: the live fast path's share of one core at the campus preset.

    .venv/bin/python bench/bench_fast_path.py [--cycles 30] [--interval 10]

The fast path is everything the 20 Hz meters cost beyond the detailed cycle: the job model
sampled on the 20 Hz grid for every slot, the meter matrix (91 meters: the point of
interconnection, 30 buildings, 60 lineups), ring appends and the grid analysis of every
meter's last 180 s. It prints the CPU seconds per cycle of each part (median, min, max over
the cycles after the ring has filled) and the share of one core at the given interval.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np

from collector.grid.live import GridMonitor
from collector.pipeline import meter_ratings
from collector.site.model import load_preset
from collector.site.topology import build_topology
from collector.sources.simulated import JobWorkload, SimulatedSource, SimulationConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=30)
    parser.add_argument("--interval", type=float, default=10.0)
    args = parser.parse_args()
    print(f"machine: {platform.machine()} cpus={os.cpu_count()} python={platform.python_version()}")

    topology = build_topology(load_preset("campus"))
    source = SimulatedSource(topology, SimulationConfig(workload="jobs"))
    workload = source.workload
    assert isinstance(workload, JobWorkload)
    monitor = GridMonitor(ratings=meter_ratings(topology))
    non_it = np.full(topology.buildings.height, 10e6)
    rng = np.random.default_rng(0)
    model = workload.model
    print(
        f"{model.slots.count.size:,} job slots, {topology.lineups.height + 31} meters, "
        f"{model.config.sample_rate_hz:g} Hz, a cycle every {args.interval:g} s"
    )

    generate: list[float] = []
    analyse: list[float] = []
    start = 1_780_000_000.0
    warm = int(monitor.history_seconds / args.interval) + 1  # until the rings are full
    for cycle in range(warm + args.cycles):
        after, until = start + cycle * args.interval, start + (cycle + 1) * args.interval
        begin = time.process_time()
        model.advance(until)
        workload.last_times = model.grid(after, until)
        workload.last_activity, _ = model.activity(workload.last_times)
        meters = source._meter_frame(non_it, rng)
        generated = time.process_time()
        monitor.update(meters)
        done = time.process_time()
        if cycle >= warm:
            generate.append(generated - begin)
            analyse.append(done - generated)

    def row(name: str, values: list[float]) -> None:
        median = statistics.median(values)
        print(
            f"  {name:<34} median {median:6.3f} s  min {min(values):6.3f}  "
            f"max {max(values):6.3f}  = {100 * median / args.interval:4.1f} % of one core"
        )

    print(f"CPU per {args.interval:g} s cycle, {args.cycles} cycles after the rings filled:")
    row("job model + meters at 20 Hz", generate)
    row("rings + grid analysis", analyse)
    row("fast path in all", [g + a for g, a in zip(generate, analyse, strict=True)])


if __name__ == "__main__":
    main()
