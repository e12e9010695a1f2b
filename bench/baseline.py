"""The yardstick for gigawatt's renderer: the same snapshot through prometheus_client's
standard path, and the two timed alternately on one snapshot so that load on the machine
falls on both alike.

prometheus_client's standard path is what a user of it would write: a custom collector
yielding ``GaugeMetricFamily``/``CounterMetricFamily`` with one ``add_metric`` per series,
then ``generate_latest``. It gets the same metrics, label values and finite values as
gigawatt's exposition of the snapshot.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import polars as pl
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from collector.pipeline import Snapshot
from collector.site.model import Site, load_preset
from exporters.exposition import Renderer


def scaled_site(preset: str, buildings: int | None) -> Site:
    """The preset, or its first building type ``buildings`` times over."""
    site = load_preset(preset)
    if buildings is None:
        return site
    group = site.buildings[0].model_copy(update={"count": buildings})
    return site.model_copy(update={"buildings": (group,)})


class SnapshotCollector(Collector):
    """One snapshot as prometheus_client metric families: one add_metric call per series."""

    def __init__(self, renderer: Renderer, snapshot: Snapshot) -> None:
        self.renderer = renderer
        self.snapshot = snapshot

    def _values(self, frame_name: str) -> pl.DataFrame | None:
        snapshot = self.snapshot
        if frame_name == "accelerator":
            index = snapshot.accelerators["accelerator_index"]
            return snapshot.accelerators.with_columns(
                energy_joules=pl.Series(snapshot.accelerator_energy_joules).gather(index)
            )
        if frame_name == "anomaly":
            return snapshot.anomalies
        if frame_name == "anomaly_job":
            return snapshot.anomalies.filter(pl.col("training_job").is_not_null())
        return self.renderer._frames(snapshot, None).get(frame_name)

    def _label_values(
        self, frame_name: str, frame: pl.DataFrame, labels: tuple[str, ...]
    ) -> list[tuple[str, ...]]:
        topology = self.renderer.topology
        if not labels:
            return [()] * frame.height
        if frame_name in ("building", "lineup", "hall", "row", "rack", "feed", "node"):
            names = topology.names(frame_name)
        elif frame_name == "accelerator":
            names = topology.names("accelerator").select(
                pl.all().gather(frame["accelerator_index"])
            )
        elif frame_name in ("anomaly", "anomaly_job"):
            index = frame["accelerator_index"]
            names = (
                topology.names("node")
                .select(pl.all().gather(topology.accelerators["node_index"].gather(index)))
                .with_columns(
                    accelerator=topology.accelerator_names(index),
                    reason=frame["reason"],
                    training_job=frame["training_job"],
                )
            )
        else:
            names = frame
        return list(names.select(pl.col(label).cast(pl.String) for label in labels).iter_rows())

    def collect(self) -> Iterator[Metric]:
        for metric in self.renderer.metrics:
            frame = self._values(metric.frame)
            if frame is None or metric.column not in frame.columns:
                continue
            label_values = self._label_values(metric.frame, frame, metric.labels)
            name = metric.name.removesuffix("_total") if metric.type == "counter" else metric.name
            family: GaugeMetricFamily | CounterMetricFamily
            if metric.type == "counter":
                family = CounterMetricFamily(name, metric.help, labels=list(metric.labels))
            else:
                family = GaugeMetricFamily(name, metric.help, labels=list(metric.labels))
            values = frame[metric.column].cast(pl.Float64).to_list()
            for labels, value in zip(label_values, values, strict=True):
                if value is not None and math.isfinite(value):
                    family.add_metric(list(labels), value)
            yield family


def prometheus_client_render(renderer: Renderer, snapshot: Snapshot) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(renderer, snapshot))
    return generate_latest(registry)


@dataclass(frozen=True)
class Alternated:
    """Seconds of each render, gigawatt's and prometheus_client's, taken in turn."""

    gigawatt: list[float]
    prometheus_client: list[float]
    gigawatt_bytes: int
    prometheus_client_bytes: int

    @property
    def ratio(self) -> float:
        """Median prometheus_client time over median gigawatt time."""
        return statistics.median(self.prometheus_client) / statistics.median(self.gigawatt)

    @property
    def best_ratio(self) -> float:
        """Fastest prometheus_client time over fastest gigawatt time: load only ever adds
        time, so on a busy machine the fastest of a few runs is nearest to each one's cost."""
        return min(self.prometheus_client) / min(self.gigawatt)

    @property
    def pair_ratios(self) -> list[float]:
        """The same ratio within each pair of neighbouring renders."""
        return [
            baseline / ours
            for ours, baseline in zip(self.gigawatt, self.prometheus_client, strict=True)
        ]


def _timed(render: Callable[[], bytes]) -> tuple[float, int]:
    started = time.perf_counter()
    body = render()
    return time.perf_counter() - started, len(body)


def alternate(renderer: Renderer, snapshot: Snapshot, pairs: int) -> Alternated:
    """``pairs`` renders of ``snapshot`` by each, interleaved (gigawatt first in even pairs,
    prometheus_client first in odd ones, so neither always runs on a warmer cache)."""
    ours: list[float] = []
    theirs: list[float] = []
    ours_bytes = theirs_bytes = 0
    for pair in range(pairs):
        order = (True, False) if pair % 2 == 0 else (False, True)
        for gigawatt in order:
            if gigawatt:
                seconds, ours_bytes = _timed(lambda: renderer.render(snapshot).body)
                ours.append(seconds)
            else:
                seconds, theirs_bytes = _timed(lambda: prometheus_client_render(renderer, snapshot))
                theirs.append(seconds)
    return Alternated(ours, theirs, ours_bytes, theirs_bytes)
