"""Benchmark: one full campus cycle, and its exposition side by side with prometheus_client.

    .venv/bin/python bench/bench_cycle.py [--preset campus] [--runs 5] [--tier rack]
                                          [--baseline-runs 1]

A cycle = the simulator generating every sample (2.15 M accelerators at the campus preset),
validation, roll-ups, energy integration and rendering the chosen tier. The fast meters'
grid analysis is left out here and measured by bench/bench_fast_path.py. It prints each
stage's median, min and max over the runs, the peak resident memory of the process, and the
same snapshot rendered through prometheus_client's standard path (a custom collector yielding
GaugeMetricFamily/CounterMetricFamily, then generate_latest) with the ratio of the two.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import time
from collections.abc import Iterator

import polars as pl
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from collector.pipeline import Pipeline
from collector.site.model import load_preset
from collector.site.topology import build_topology
from collector.sources.simulated import SimulatedSource, SimulationConfig
from exporters import contract
from exporters.exposition import Renderer


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # Linux: KiB


def summary(values: list[float]) -> str:
    return (
        f"median {statistics.median(values):7.3f} s   min {min(values):7.3f}   "
        f"max {max(values):7.3f}"
    )


class SnapshotCollector(Collector):
    """What a user of prometheus_client would write: one add_metric call per series."""

    def __init__(self, renderer: Renderer, snapshot: object) -> None:
        self.renderer = renderer
        self.snapshot = snapshot

    def _label_values(self, name: str, frame: pl.DataFrame, labels: list[str]) -> pl.DataFrame:
        topology = self.renderer.topology
        if not labels:
            return pl.DataFrame({"row": range(frame.height)})
        if name in ("building", "lineup", "hall", "row", "rack", "feed", "node"):
            return topology.names(name)
        if name == "anomaly":
            index = frame["accelerator_index"]
            nodes = topology.names("node").select(
                pl.all().gather(topology.accelerators["node_index"].gather(index))
            )
            return nodes.with_columns(
                accelerator=topology.accelerator_names(index), reason=frame["reason"]
            )
        return frame.select(labels)

    def collect(self) -> Iterator[Metric]:
        frames = self.renderer._frames(self.snapshot, None)  # type: ignore[arg-type]
        for metric in self.renderer.metrics:
            frame = frames.get(metric.frame)
            if frame is None or metric.column not in frame.columns:
                continue
            labels = list(metric.labels)
            names = self._label_values(metric.frame, frame, labels)
            name = metric.name.removesuffix("_total") if metric.type == "counter" else metric.name
            family: GaugeMetricFamily | CounterMetricFamily
            if metric.type == "counter":
                family = CounterMetricFamily(name, metric.help, labels=labels)
            else:
                family = GaugeMetricFamily(name, metric.help, labels=labels)
            for label_values, value in zip(
                names.iter_rows(), frame[metric.column].to_list(), strict=True
            ):
                if value is not None:
                    family.add_metric(
                        [str(v) for v in label_values[-len(labels) :]] if labels else [],
                        float(value),
                    )
            yield family


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="campus")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--tier", default=contract.DEFAULT_TIER)
    parser.add_argument(
        "--workload",
        default="jobs",
        choices=("jobs", "steady"),
        help="simulated workload (serve's default is jobs)",
    )
    parser.add_argument(
        "--baseline-runs",
        type=int,
        default=1,
        help="prometheus_client renders (slow at campus scale); 0 to skip",
    )
    args = parser.parse_args()

    print(
        f"machine: {platform.machine()} {platform.processor() or ''} cpus={os.cpu_count()} "
        f"python={platform.python_version()} polars={pl.__version__}"
    )
    started = time.perf_counter()
    topology = build_topology(load_preset(args.preset))
    print(
        f"preset {args.preset}: {topology.accelerator_count:,} accelerators, "
        f"{topology.racks.height:,} racks; topology built in "
        f"{time.perf_counter() - started:.2f} s"
    )

    timestamps = iter(1_780_000_000.0 + 10.0 * n for n in range(10_000))
    source = SimulatedSource(topology, SimulationConfig(workload=args.workload))
    pipeline = Pipeline(topology, [source], clock=lambda: next(timestamps))
    renderer = Renderer(topology, args.tier)
    cycles: list[float] = []
    renders: list[float] = []
    totals: list[float] = []
    previous = None
    snapshot = None
    for run in range(args.runs + 1):  # the first run warms caches and is not counted
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
    print(
        f"workload {args.workload}, tier {args.tier}: {previous.series:,} series, "
        f"{len(previous.body) / 1e6:.1f} MB per exposition; {args.runs} runs after one warm-up"
    )
    print(f"  read+validate+roll up  {summary(cycles)}")
    print(f"  render (gigawatt)      {summary(renders)}")
    print(f"  full cycle             {summary(totals)}")
    print(f"  peak RSS so far        {peak_rss_gib():.2f} GiB")

    if args.baseline_runs:
        baseline: list[float] = []
        for _ in range(args.baseline_runs):
            registry = CollectorRegistry(auto_describe=False)
            registry.register(SnapshotCollector(renderer, snapshot))
            begin = time.perf_counter()
            body = generate_latest(registry)
            baseline.append(time.perf_counter() - begin)
            registry = None  # type: ignore[assignment]
        print(
            f"  render (prometheus_client generate_latest) {summary(baseline)}; "
            f"{len(body) / 1e6:.1f} MB"
        )
        print(
            f"  ratio prometheus_client / gigawatt render: "
            f"{statistics.median(baseline) / statistics.median(renders):.1f}x"
        )
        print(f"  peak RSS with baseline {peak_rss_gib():.2f} GiB")


if __name__ == "__main__":
    main()
