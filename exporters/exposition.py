"""Prometheus text exposition (format 0.0.4) of a Snapshot, driven by the metric table.

Rendering is columnar, with no Python object per sample. For the physical levels, whose
entities never change, each family's series names with their labels (``name{labels}``, the
line up to its value) are built once per topology; a cycle computes every value column of a
level in one Polars pass (cast, rounded, non-finite made missing) and Polars' CSV writer
formats the values in bulk beside those prefixes, every family in one call. A campus-scale
exposition (1.4 M series at the rack tier) takes about 0.1 s. Accelerators (2 M rows, a tier
off by default) and the small frames that change from cycle to cycle (jobs, sources,
anomalies) build their prefixes each cycle.

A missing value (null, or a non-finite derived value such as a PUE over zero IT power) has
no line at all: Prometheus sees the series as absent, never as 0.

Example (rack tier)::

    # HELP gigawatt_rack_power_watts IT power of the rack, measured at its rack PDUs: ...
    # TYPE gigawatt_rack_power_watts gauge
    gigawatt_rack_power_watts{building="B01",hall="B01-H1",row="B01-H1-R01",\
rack="B01-H1-R01-K01"} 26421.87

(one line; folded here).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO, cast

import polars as pl

from collector.pipeline import Snapshot
from collector.schemas import LEVEL_LABELS
from collector.site.topology import Topology
from exporters import contract
from exporters.contract import Metric, Tier, is_rounded

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LABELS = "__labels"
SERIES = "series"  # the line up to its value: name{labels}
VALUE = "value"
PREFIX_OF = "__series "  # a metric's series names beside its values in one frame


def _escape_label(value: pl.Expr) -> pl.Expr:
    return (
        value.cast(pl.String)
        .str.replace_all("\\", "\\\\", literal=True)
        .str.replace_all('"', '\\"', literal=True)
        .str.replace_all("\n", "\\n", literal=True)
    )


def label_column(frame: pl.DataFrame, labels: tuple[str, ...]) -> pl.Series:
    """``{a="x",b="y"}`` for each row of a frame holding the label columns."""
    if not labels:
        return pl.Series(LABELS, [""] * frame.height, dtype=pl.String)
    parts: list[pl.Expr] = []
    for position, label in enumerate(labels):
        parts += [
            pl.lit(("{" if position == 0 else ",") + f'{label}="'),
            _escape_label(pl.col(label)),
            pl.lit('"'),
        ]
    parts.append(pl.lit("}"))
    return frame.select(pl.concat_str(parts).alias(LABELS)).to_series()


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _value(metric: Metric) -> pl.Expr:
    """The metric's value as exposed: Float64, rounded if its unit is, and missing (null)
    when it is not finite, so a missing value has no line."""
    value = pl.col(metric.column).cast(pl.Float64)
    if is_rounded(metric):
        value = value.round_sig_figs(contract.SIGNIFICANT_DIGITS)
    return pl.when(value.is_finite()).then(value).alias(metric.name)


def _prefixes(metric: Metric, labels: pl.Series) -> pl.Series:
    """``name{labels}`` for each row of a label column: the line up to its value."""
    return pl.select(pl.concat_str([pl.lit(metric.name), labels]).alias("series")).to_series()


EXPOSED_SERIES = contract.metric_for("process", "series")


@dataclass(frozen=True)
class Rendered:
    body: memoryview  # read-only bytes; ``bytes(body)`` copies it when a copy is wanted
    series: int
    seconds: float

    def text(self) -> str:
        return str(self.body, "utf-8")


class _BodyWriter:
    """A file-like sink that Polars' CSV writer fills, writing into a reused buffer."""

    def __init__(self, buffer: bytearray) -> None:
        self.buffer = buffer
        self.size = 0

    def write(self, data: bytes) -> int:
        end = self.size + len(data)
        # Inside the buffer: a copy into memory already touched. Past its end: the slice
        # assignment grows it (amortized, as bytearray does).
        if end <= len(self.buffer):
            self.buffer[self.size : end] = data
        else:
            self.buffer[self.size :] = data
        self.size = end
        return len(data)

    def flush(self) -> None:
        pass

    def body(self) -> memoryview:
        return memoryview(self.buffer)[: self.size].toreadonly()


class BodyBuffers:
    """Buffers reused from one exposition to the next.

    A fresh campus body is 160 MB (2.3 GB at the accelerator tier) of memory the kernel has to
    fault in page by page, and that cost more than formatting the text: half of a render on
    this VM. A buffer is reused only when nothing holds a view of it any more (the body
    published before, and any scrape still sending it, do), which Python itself tracks: a
    bytearray with live views refuses to be resized. So a body never changes under a reader.
    """

    KEPT = 3  # the body served, the one being made, and one a slow scrape may still hold

    def __init__(self) -> None:
        self._buffers: list[bytearray] = []

    @staticmethod
    def _free(buffer: bytearray) -> bool:
        try:
            buffer.append(0)  # a resize: refused while any view of the buffer is alive
        except BufferError:
            return False
        del buffer[-1]
        return True

    def writer(self) -> _BodyWriter:
        # A buffer counts as taken only once its body is viewed, so one render at a time per
        # pool: each Renderer has its own, and only the cycle thread renders.
        for buffer in self._buffers:
            if self._free(buffer):
                return _BodyWriter(buffer)
        buffer = bytearray()
        if len(self._buffers) < self.KEPT:
            self._buffers.append(buffer)
        return _BodyWriter(buffer)


class Renderer:
    """Renders snapshots for one topology and tier; caches the static label columns."""

    def __init__(
        self,
        topology: Topology,
        tier: Tier = contract.DEFAULT_TIER,
        version: str = "0",
        metrics: tuple[Metric, ...] | None = None,
    ) -> None:
        """``metrics``, in table order, replaces the tier's set (the series budget benchmark
        measures a tier with and without some families)."""
        self.topology = topology
        self.tier = tier
        self.version = version
        self.metrics = contract.enabled(tier) if metrics is None else metrics
        self._labels: dict[str, pl.Series] = {}
        for frame in {metric.frame for metric in self.metrics}:
            if LEVEL_LABELS.get(frame) and frame != "accelerator":
                self._labels[frame] = label_column(topology.names(frame), LEVEL_LABELS[frame])
        # The physical levels' entities are fixed by the topology, so are their series names.
        # Accelerators' are not kept: 10 M strings for a tier that is off by default.
        self._buffers = BodyBuffers()
        # Each metric's value expression, built once: building ~120 of them took 4 ms a render.
        self._values = {metric.name: _value(metric) for metric in self.metrics}
        self._prefixes: dict[str, pl.Series] = {
            metric.name: _prefixes(metric, self._labels[metric.frame])
            for metric in self.metrics
            if metric.frame in self._labels
        }

    def _accelerator_labels(self) -> pl.Series:
        if "accelerator" not in self._labels:
            self._labels["accelerator"] = label_column(
                self.topology.names("accelerator"), LEVEL_LABELS["accelerator"]
            )
        return self._labels["accelerator"]

    def _frames(
        self,
        snapshot: Snapshot,
        previous: Rendered | None,
        cycle_failures: int = 0,
        cycles_skipped: int = 0,
        process_start_seconds: float | None = None,
    ) -> Mapping[str, pl.DataFrame]:
        frames: dict[str, pl.DataFrame] = {
            "site": snapshot.site,
            "building": snapshot.buildings,
            "lineup": snapshot.lineups,
            "hall": snapshot.halls,
            "row": snapshot.rows,
            "rack": snapshot.racks,
            "feed": snapshot.feeds,
            "node": snapshot.nodes,
            "source": snapshot.sources,
            "problem": snapshot.problems,
            "accepted": snapshot.accepted,
            "rejected": snapshot.rejected,
            "process": pl.DataFrame(
                {
                    "cycle_seconds": [snapshot.cycle_seconds],
                    "render_seconds": [previous.seconds if previous else None],
                    "timestamp_seconds": [snapshot.timestamp],
                    "cycles": [float(snapshot.cycles)],
                    "series": [float(previous.series) if previous else None],
                    "failures": [float(cycle_failures)],
                    "skipped": [float(cycles_skipped)],
                    "start_time_seconds": [process_start_seconds],
                    "grid_analysis_seconds": [snapshot.grid.analysis_seconds],
                },
                schema={
                    name: pl.Float64
                    for name in (
                        "cycle_seconds",
                        "render_seconds",
                        "timestamp_seconds",
                        "cycles",
                        "series",
                        "failures",
                        "skipped",
                        "start_time_seconds",
                        "grid_analysis_seconds",
                    )
                },
            ),
            "build": pl.DataFrame({"version": [self.version], "value": [1.0]}),
            "job": snapshot.jobs.with_columns(training_job=pl.col("job")),
            "grid_meter": snapshot.grid.meters,
            "grid_step": snapshot.grid.steps,
            "grid_ramp": snapshot.grid.ramps,
            "grid_band": snapshot.grid.bands,
            "job_state": snapshot.jobs.select(
                pl.col("job").alias("training_job"), "state", pl.lit(1.0).alias("one")
            ),
        }
        return frames

    def _labelled(self, name: str, frame: pl.DataFrame, snapshot: Snapshot) -> pl.DataFrame:
        if name == "accelerator":
            index = snapshot.accelerators["accelerator_index"]
            return snapshot.accelerators.with_columns(
                self._accelerator_labels().gather(index),
                energy_joules=pl.Series(snapshot.accelerator_energy_joules).gather(index),
            )
        if name in ("anomaly", "anomaly_job"):
            anomalies = snapshot.anomalies
            if name == "anomaly_job":  # the chips a training job holds, labelled with it
                anomalies = anomalies.filter(pl.col("training_job").is_not_null())
            names = (
                self.topology.names("node")
                .select(
                    pl.all().gather(
                        self.topology.accelerators["node_index"].gather(
                            anomalies["accelerator_index"]
                        )
                    )
                )
                .with_columns(
                    accelerator=self.topology.accelerator_names(anomalies["accelerator_index"]),
                    reason=anomalies["reason"],
                    training_job=anomalies["training_job"],
                )
            )
            return anomalies.with_columns(label_column(names, contract.EXTRA_LABELS[name]))
        if name in self._labels:
            return frame.with_columns(self._labels[name])
        labels = LEVEL_LABELS.get(name) or contract.EXTRA_LABELS.get(name, ())
        return frame.with_columns(label_column(frame, labels))

    def render(
        self,
        snapshot: Snapshot,
        previous: Rendered | None = None,
        cycle_failures: int = 0,
        *,
        cycles_skipped: int = 0,
        process_start_seconds: float | None = None,
    ) -> Rendered:
        """The whole exposition. ``previous`` feeds the render-time and series-count gauges;
        the runner's counts of failed and skipped cycles and the process's start time feed
        the process series."""
        started = time.perf_counter()
        frames = self._frames(
            snapshot, previous, cycle_failures, cycles_skipped, process_start_seconds
        )
        by_frame: dict[str, list[Metric]] = {}
        for metric in self.metrics:
            by_frame.setdefault(metric.frame, []).append(metric)
        # Every value column of a frame in one pass, and the series names with them where
        # they are not kept (built each cycle, and only then); every frame's pass in one
        # call, which Polars runs side by side.
        prefixes: dict[str, pl.Series] = dict(self._prefixes)
        queries: list[pl.LazyFrame] = []
        for name, metrics in by_frame.items():
            if all(metric.name in prefixes for metric in metrics):
                queries.append(
                    frames[name].lazy().select(self._values[metric.name] for metric in metrics)
                )
                continue
            source = self._labelled(name, frames.get(name, pl.DataFrame()), snapshot)
            queries.append(
                source.lazy().select(
                    *(self._values[metric.name] for metric in metrics),
                    *(
                        pl.concat_str([pl.lit(metric.name), pl.col(LABELS)]).alias(
                            PREFIX_OF + metric.name
                        )
                        for metric in metrics
                    ),
                )
            )
        values: dict[str, pl.Series] = {}
        for metrics, built in zip(by_frame.values(), pl.collect_all(queries), strict=True):
            for metric in metrics:
                values[metric.name] = built.get_column(metric.name)
                if PREFIX_OF + metric.name in built.columns:
                    prefixes.setdefault(metric.name, built.get_column(PREFIX_OF + metric.name))
        # Every family's lines in one CSV write: a family's HELP and TYPE lines ride in front
        # of its first series name (a family with no line passes them on to the next one),
        # so the writer's set-up is paid once per render, not once per family (about 100).
        heads: list[str] = []  # per family with lines: its header lines and first series
        firsts: list[float] = []  # its first value
        rests: list[pl.DataFrame] = []  # its other lines
        carried = ""
        series = 0
        for metric in self.metrics:
            carried += (
                f"# HELP {metric.name} {_escape_help(metric.help)}\n"
                f"# TYPE {metric.name} {metric.type}\n"
            )
            value = values[metric.name]
            family = pl.DataFrame({SERIES: prefixes[metric.name], VALUE: value})
            if value.null_count():
                family = family.filter(value.is_not_null())
            if not family.height:
                continue
            heads.append(carried + family[SERIES][0])
            firsts.append(family[VALUE][0])
            rests.append(family.slice(1))
            carried = ""
            if metric is not EXPOSED_SERIES:  # it counts the others, not itself
                series += family.height
        out = self._buffers.writer()
        if heads:
            first_lines = pl.DataFrame(
                {SERIES: heads, VALUE: firsts}, schema={SERIES: pl.String, VALUE: pl.Float64}
            )
            lines = pl.concat(
                [
                    piece
                    for index, rest in enumerate(rests)
                    for piece in (first_lines.slice(index, 1), rest)
                ],
                rechunk=False,
            )
            # The CSV writer is Polars' fastest way to text: one "series value" per line,
            # nothing quoted (label values are escaped already).
            lines.write_csv(
                cast(IO[bytes], out),  # it only calls write(): _BodyWriter has it
                include_header=False,
                separator=" ",
                quote_style="never",
                line_terminator="\n",
            )
        out.write(carried.encode())
        return Rendered(body=out.body(), series=series, seconds=time.perf_counter() - started)
