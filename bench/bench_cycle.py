"""Benchmark: full campus cycles, and the exposition alternated with prometheus_client's.

    .venv/bin/python bench/bench_cycle.py [--preset campus] [--buildings N] [--runs 5]
                                          [--tier rack] [--pairs 3] [--scaling 4,8,15,30,60]

A cycle = the simulator generating every sample (2.15 M accelerators at the campus preset),
validation, roll-ups, energy integration and rendering the chosen tier. The fast meters'
grid analysis is left out here and measured by bench/bench_fast_path.py. It prints each
stage's median, min and max over the runs and the peak resident memory of the process.

Then the last snapshot is rendered ``--pairs`` times by gigawatt and by prometheus_client's
standard path (bench/baseline.py), alternately, and it prints both with the ratio of their
medians and the range of the ratios within each pair: load on the machine falls on both.

``--buildings N`` runs the preset's first building type N times over (the campus has 30).
``--scaling`` prints one row per size instead: series, cycle and render medians, and the
ratio over ``--scaling-pairs`` alternated pairs (0 to skip it).
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import time

import polars as pl
from baseline import alternate, scaled_site

from collector.pipeline import Pipeline, Snapshot
from collector.site.topology import Topology, build_topology
from collector.sources.simulated import SimulatedSource, SimulationConfig
from exporters import contract
from exporters.contract import Tier
from exporters.exposition import Rendered, Renderer


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # Linux: KiB


def summary(values: list[float]) -> str:
    return (
        f"median {statistics.median(values):7.3f} s   min {min(values):7.3f}   "
        f"max {max(values):7.3f}"
    )


def run_cycles(
    topology: Topology, tier: Tier, workload: str, runs: int
) -> tuple[list[float], list[float], list[float], Renderer, Snapshot, Rendered]:
    """Cycle, render and total seconds of ``runs`` cycles after one warm-up."""
    timestamps = iter(1_780_000_000.0 + 10.0 * n for n in range(10_000))
    source = SimulatedSource(topology, SimulationConfig(workload=workload))  # type: ignore[arg-type]
    pipeline = Pipeline(topology, [source], clock=lambda: next(timestamps))
    renderer = Renderer(topology, tier)
    cycles: list[float] = []
    renders: list[float] = []
    totals: list[float] = []
    previous = None
    snapshot = None
    for run in range(runs + 1):  # the first run warms caches and is not counted
        begin = time.perf_counter()
        # The detailed path only: the fast meters' analysis has its own benchmark
        # (bench/bench_fast_path.py).
        snapshot = pipeline.run_cycle(analyze_grid=False)
        previous = renderer.render(snapshot, previous)
        total = time.perf_counter() - begin
        if run:
            cycles.append(snapshot.cycle_seconds)
            renders.append(previous.seconds)
            totals.append(total)
    assert snapshot is not None and previous is not None
    return cycles, renders, totals, renderer, snapshot, previous


def scaling(args: argparse.Namespace) -> None:
    print(
        "| buildings | series | MB | full cycle, median (min to max) "
        "| render, median (min to max) "
        f"| prometheus_client / gigawatt ({args.scaling_pairs} alternated pairs) |"
    )
    print("|---|---|---|---|---|---|")
    for buildings in (int(size) for size in args.scaling.split(",")):
        topology = build_topology(scaled_site(args.preset, buildings))
        _, renders, totals, renderer, snapshot, rendered = run_cycles(
            topology, args.tier, args.workload, args.runs
        )
        ratio = "-"
        if args.scaling_pairs:
            alternated = alternate(renderer, snapshot, args.scaling_pairs)
            pair_ratios = alternated.pair_ratios
            ratio = f"{alternated.ratio:.1f}x ({min(pair_ratios):.1f} to {max(pair_ratios):.1f})"
        print(
            f"| {buildings} | {rendered.series:,} | {len(rendered.body) / 1e6:.1f} | "
            f"{statistics.median(totals):.3f} s ({min(totals):.3f} to {max(totals):.3f}) | "
            f"{statistics.median(renders):.3f} s ({min(renders):.3f} to {max(renders):.3f}) | "
            f"{ratio} |",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="campus")
    parser.add_argument("--buildings", type=int, default=None, help="scale the preset")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--tier", default=contract.DEFAULT_TIER, choices=contract.TIERS)
    parser.add_argument(
        "--workload",
        default="jobs",
        choices=("jobs", "steady"),
        help="simulated workload (serve's default is jobs)",
    )
    parser.add_argument(
        "--pairs",
        type=int,
        default=3,
        help="alternated gigawatt / prometheus_client renders (slow at campus scale); 0 skips",
    )
    parser.add_argument("--scaling", default=None, help="building counts, e.g. 4,8,15,30,60")
    parser.add_argument("--scaling-pairs", type=int, default=1)
    args = parser.parse_args()

    print(
        f"machine: {platform.machine()} {platform.processor() or ''} cpus={os.cpu_count()} "
        f"python={platform.python_version()} polars={pl.__version__} "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    if args.scaling:
        scaling(args)
        return
    started = time.perf_counter()
    topology = build_topology(scaled_site(args.preset, args.buildings))
    print(
        f"preset {args.preset}: {topology.buildings.height} buildings, "
        f"{topology.accelerator_count:,} accelerators, {topology.racks.height:,} racks; "
        f"topology built in {time.perf_counter() - started:.2f} s"
    )
    cycles, renders, totals, renderer, snapshot, previous = run_cycles(
        topology, args.tier, args.workload, args.runs
    )
    print(
        f"workload {args.workload}, tier {args.tier}: {previous.series:,} series, "
        f"{len(previous.body) / 1e6:.1f} MB per exposition; {args.runs} runs after one warm-up"
    )
    print(f"  read+validate+roll up  {summary(cycles)}")
    print(f"  render (gigawatt)      {summary(renders)}")
    print(f"  full cycle             {summary(totals)}")
    print(f"  peak RSS so far        {peak_rss_gib():.2f} GiB")

    if args.pairs:
        alternated = alternate(renderer, snapshot, args.pairs)
        pair_ratios = alternated.pair_ratios
        print(f"alternated renders of the last snapshot, {args.pairs} pairs:")
        print(
            f"  gigawatt               {summary(alternated.gigawatt)}; "
            f"{alternated.gigawatt_bytes / 1e6:.1f} MB"
        )
        print(
            f"  prometheus_client      {summary(alternated.prometheus_client)}; "
            f"{alternated.prometheus_client_bytes / 1e6:.1f} MB"
        )
        print(
            f"  ratio of the medians   {alternated.ratio:.1f}x, of the fastest "
            f"{alternated.best_ratio:.1f}x "
            f"(within a pair: {min(pair_ratios):.1f}x to {max(pair_ratios):.1f}x)"
        )
        print(f"  peak RSS with baseline {peak_rss_gib():.2f} GiB")


if __name__ == "__main__":
    main()
