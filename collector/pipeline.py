"""One cycle: read every source, validate, roll up, integrate energy; hand back a Snapshot.

The pipeline is the only stateful piece of the core (energy counters, cumulative sample
counts, source health). Everything it calls is a pure function of frames. It knows nothing
of HTTP or Prometheus; exporters read its Snapshot.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from collector import arrays, energy, rollup, schemas
from collector.accelerator_health import AcceleratorHealth, validate_errors
from collector.grid.config import GridConfig
from collector.grid.live import GridFrames, GridMonitor, validate_meters
from collector.site.topology import Topology
from collector.sources.base import SampleBatch, Source
from collector.state import Counters
from collector.validate import ValidationLimits, validate

log = logging.getLogger(__name__)

KINDS = ("accelerator", "node", "feed", "building")


@dataclass(frozen=True)
class PipelineConfig:
    top_k_anomalies: int = 20
    # Longest interval integrated into the energy counters; longer ones count as gaps.
    max_energy_gap_seconds: float = 60.0
    # How far back an accelerator's error counters are looked at for the anomaly list's
    # "errors" reason: a chip stays listed this long after its last new error.
    error_window_seconds: float = 600.0
    limits: ValidationLimits = field(default_factory=ValidationLimits)
    grid: GridConfig = field(default_factory=GridConfig)


@dataclass(frozen=True)
class Snapshot:
    """Everything one cycle learned. Level frames have one row per entity, in index order."""

    timestamp: float
    cycle_seconds: float
    cycles: int
    site: pl.DataFrame
    buildings: pl.DataFrame
    lineups: pl.DataFrame
    halls: pl.DataFrame
    rows: pl.DataFrame
    racks: pl.DataFrame
    feeds: pl.DataFrame
    nodes: pl.DataFrame
    accelerators: pl.DataFrame  # accepted accelerator samples (reporting ones only)
    accelerator_energy_joules: np.ndarray
    anomalies: pl.DataFrame
    jobs: pl.DataFrame  # job, state, accelerators, power_watts, racks, energy_joules
    meters: pl.DataFrame  # fast meter samples of this cycle: meter, timestamp, power_watts
    grid: GridFrames  # the fast path's analysis of the meters
    sources: pl.DataFrame  # source, target, up, read_seconds, last_success_timestamp_seconds
    problems: pl.DataFrame  # cumulative: source, reason, problems
    accepted: pl.DataFrame  # cumulative: source, kind, samples
    rejected: pl.DataFrame  # cumulative: source, kind, reason, samples


def _counter_keeper(source: object) -> Any:
    """The source, or the source it wraps (``inner``: a scenario, a shard, a deadline), that
    keeps counters of its own (``counter_state``); None if none does."""
    while source is not None:
        if callable(getattr(source, "counter_state", None)):
            return source
        source = getattr(source, "inner", None)
    return None


def meter_ratings(topology: Topology) -> dict[str, float]:
    """What each fast meter is judged against: the contract at the point of interconnection,
    a building's share of it (by IT capacity), a lineup's own rating."""
    contract = topology.site.contract_watts
    buildings = topology.buildings
    # The whole site's capacity: a shard's buildings get the same share as unsharded.
    share = contract / topology.site.it_capacity_watts()
    ratings = {"poi": contract}
    ratings.update(
        zip(
            buildings["building"].to_list(),
            (buildings["capacity_watts"] * share).to_list(),
            strict=True,
        )
    )
    lineups = topology.names("lineup").with_columns(topology.lineups["capacity_watts"])
    ratings.update(
        zip(
            (lineups["building"] + "-" + lineups["lineup"]).to_list(),
            lineups["capacity_watts"].to_list(),
            strict=True,
        )
    )
    return ratings


class Pipeline:
    def __init__(
        self,
        topology: Topology,
        sources: Sequence[Source],
        clock: Callable[[], float] = time.time,
        config: PipelineConfig | None = None,
    ) -> None:
        self.topology = topology
        self.sources = list(sources)
        self.clock = clock
        self.config = config or PipelineConfig()
        self._energy = {
            "accelerator": energy.EnergyState.zero(topology.accelerators.height),
            "feed": energy.EnergyState.zero(topology.feeds.height),
            "building": energy.EnergyState.zero(topology.buildings.height),
        }
        self._accepted: dict[tuple[str, str], int] = {
            (source.name, kind): 0 for source in self.sources for kind in KINDS
        }
        # Every (source, kind, reason) starts at 0, so increase() sees the first rejection.
        self._rejected: dict[tuple[str, str, str], int] = {
            (source.name, kind, reason): 0
            for source in self.sources
            for kind in KINDS
            for reason in (*schemas.REJECTION_REASONS, "malformed")
        }
        for source in self.sources:
            for reason in ("not_finite", "negative", "out_of_order"):
                self._rejected[(source.name, "meter", reason)] = 0
        # (source, target) -> (up, seconds, last success); a source without targets of its
        # own is one target named after it.
        self._health: dict[tuple[str, str], tuple[bool, float, float | None]] = {
            (source.name, source.name): (False, 0.0, None) for source in self.sources
        }
        self._problems: dict[tuple[str, str], int] = {}
        self._errors_logged: set[tuple[str, str]] = set()
        self._cycles = 0
        self._accelerator_health = AcceleratorHealth(
            topology.accelerator_count, self.config.error_window_seconds
        )
        self._grid = GridMonitor(self.config.grid, ratings=meter_ratings(topology))
        self._rack_energy = np.zeros(topology.racks.height)
        self._job_energy = pl.DataFrame(schema={"job": pl.String, "energy_joules": pl.Float64})
        self._job_energy_total = 0.0
        self._unallocated_energy_total = 0.0

    def counters(self) -> Counters:
        """Every cumulative counter, copied: what a restart must continue from."""
        return Counters(
            energy_joules={kind: state.joules.copy() for kind, state in self._energy.items()},
            rack_energy_joules=self._rack_energy.copy(),
            accepted=dict(self._accepted),
            rejected=dict(self._rejected),
            problems=dict(self._problems),
            job_energy_joules=dict(self._job_energy.rows()),
            job_energy_total_joules=self._job_energy_total,
            unallocated_energy_total_joules=self._unallocated_energy_total,
            sources={
                source.name: state
                for source in self.sources
                if (keeper := _counter_keeper(source)) is not None
                and (state := keeper.counter_state())
            },
        )

    def restore(self, stored: Counters) -> None:
        """Continue from counters a previous run stored (collector.state): energy goes on from
        the stored joules with the downtime a gap; sample counts go on for the sources still
        configured (a source no longer in the file is not brought back)."""
        self._energy = {kind: energy.restored(stored.energy_joules[kind]) for kind in self._energy}
        self._rack_energy = stored.rack_energy_joules.copy()
        names = {source.name for source in self.sources}
        for key, count in stored.accepted.items():
            if key in self._accepted:
                self._accepted[key] = count
        for rejected_key, count in stored.rejected.items():
            if rejected_key[0] in names:
                self._rejected[rejected_key] = count
        for problem_key, count in stored.problems.items():
            if problem_key[0] in names:
                self._problems[problem_key] = count
        self._job_energy = pl.DataFrame(
            list(stored.job_energy_joules.items()),
            schema={"job": pl.String, "energy_joules": pl.Float64},
            orient="row",
        )
        self._job_energy_total = stored.job_energy_total_joules
        self._unallocated_energy_total = stored.unallocated_energy_total_joules
        for source in self.sources:
            keeper = _counter_keeper(source)
            if keeper is not None and source.name in stored.sources:
                keeper.restore_counter_state(stored.sources[source.name])

    def _read(self, source: Source, now: float) -> SampleBatch | None:
        started = time.perf_counter()
        try:
            batch = source.read(now)
        except Exception as error:  # a broken source costs its own data, never the cycle
            elapsed = time.perf_counter() - started
            for key, (_, _, last) in list(self._health.items()):
                if key[0] == source.name:
                    self._health[key] = (False, elapsed, last)
            self._log_once(source.name, "read", f"source {source.name}: read failed: {error!r}")
            return None
        elapsed = time.perf_counter() - started
        if batch.targets.height == 0:
            self._health[(source.name, source.name)] = (True, elapsed, now)
        else:
            self._health.pop((source.name, source.name), None)
            for target, up, seconds in batch.targets.select(
                "target", "up", "duration_seconds"
            ).rows():
                last = self._health.get((source.name, target), (False, 0.0, None))[2]
                self._health[(source.name, target)] = (
                    bool(up),
                    seconds or 0.0,
                    now if up else last,
                )
        for reason, count, example in (
            batch.problems.group_by("reason")
            .agg(pl.len(), pl.format("{}: {}", "location", "message").first())
            .rows()
        ):
            key = (source.name, reason)
            self._problems[key] = self._problems.get(key, 0) + count
            self._log_once(
                source.name,
                f"problem:{reason}",
                f"source {source.name}: {count} problem(s) ({reason}), e.g. {example}; counted "
                "among the source's problems by reason, logged once",
            )
        return batch

    def _log_once(self, source: str, what: str, message: str) -> None:
        if (source, what) not in self._errors_logged:
            self._errors_logged.add((source, what))
            log.warning(message)

    def run_cycle(self, analyze_grid: bool = True) -> Snapshot:
        """One detailed cycle. The fast meter samples it brings are always ingested; their
        analysis (the fast path's work, timed apart in snapshot.grid.analysis_seconds and not
        in cycle_seconds) runs unless ``analyze_grid`` is False."""
        started = time.perf_counter()
        now = self.clock()
        topology = self.topology
        accepted: dict[str, list[pl.DataFrame]] = {kind: [] for kind in KINDS}
        extras: dict[str, list[pl.DataFrame]] = {"jobs": [], "allocations": [], "meters": []}
        meter_source: dict[str, str] = {}
        error_counts: list[pl.DataFrame] = []
        for source in self.sources:
            batch = self._read(source, now)
            if batch is None:
                continue
            if batch.accelerator_errors.height:
                error_counts.append(self._accept_errors(source.name, batch.accelerator_errors))
            for name, frames in extras.items():
                frame = getattr(batch, name)
                if name == "meters" and frame.height:
                    frame, rejected = validate_meters(frame)
                    for reason, count in rejected.items():
                        self._count_rejection(source.name, "meter", reason, count)
                    meter_source.update(dict.fromkeys(frame["meter"].unique(), source.name))
                if frame.height:
                    frames.append(frame)
            for kind in KINDS:
                frame = batch.frame(kind)
                try:
                    result = validate(kind, frame, topology, now, self.config.limits)
                except ValueError as error:  # wrong columns: the whole frame is unusable
                    self._count_rejection(source.name, kind, "malformed", frame.height)
                    self._log_once(
                        source.name, f"{kind}:malformed", f"source {source.name}: {error}"
                    )
                    continue
                self._accepted[(source.name, kind)] += result.accepted_samples
                for reason, count in result.rejections.items():
                    self._count_rejection(source.name, kind, reason, count)
                    self._log_once(
                        source.name,
                        f"{kind}:{reason}",
                        f"source {source.name}: {count} {kind} sample(s) rejected ({reason}), "
                        f"e.g. {result.examples.get(reason, '?')}; counted among the "
                        "rejected samples by reason, logged once",
                    )
                accepted[kind].append(result.frame)

        merged = {kind: self._merge(kind, frames) for kind, frames in accepted.items()}
        counters = self._advance_energy(merged, now)
        health = self._accelerator_health
        health.observe(
            merged["accelerator"]["accelerator_index"].to_numpy(),
            self._first_per_key(error_counts, schemas.ACCELERATOR_ERRORS, "accelerator_index"),
            now,
        )

        nodes = rollup.node_frame(
            merged["accelerator"], merged["node"], topology, counters["accelerator"]
        )
        feeds = rollup.feed_frame(merged["feed"], topology, counters["feed"])
        racks = rollup.with_error_counts(
            rollup.rack_frame(nodes, feeds, topology),
            {column: health.counts(column) for column in ("ecc_errors", "xid_errors")},
            topology,
        )
        rows = rollup.parent_frame(racks, "row", topology)
        halls = rollup.parent_frame(rows, "hall", topology)
        buildings = rollup.with_facility(
            rollup.parent_frame(halls, "building", topology),
            merged["building"],
            counters["building"],
        )
        site = rollup.site_frame(racks, buildings, topology)
        jobs_seen = self._frame_or_empty(extras["jobs"], schemas.JOB_SAMPLES)
        allocations = self._frame_or_empty(extras["allocations"], schemas.ALLOCATION_SAMPLES)
        jobs = self._jobs(jobs_seen, allocations, racks)
        site = site.with_columns(
            job_energy_joules=pl.lit(self._job_energy_total),
            unallocated_energy_joules=pl.lit(self._unallocated_energy_total),
        )
        lineups = rollup.lineup_frame(feeds, topology)
        meters = self._frame_or_empty(extras["meters"], schemas.METER_SAMPLES)
        for meter, count in self._grid.ingest(meters).items():
            self._count_rejection(meter_source[meter], "meter", "out_of_order", count)
        anomalies = rollup.anomalous_accelerators(
            merged["accelerator"],
            nodes,
            topology,
            self.config.top_k_anomalies,
            allocations=allocations,
            silent_seconds=health.silent_seconds(now) if health.any_silent(now) else None,
            recent_errors=health.recent_errors(),
        )
        self._cycles += 1
        cycle_seconds = time.perf_counter() - started
        grid = self._grid.analyze() if analyze_grid else GridFrames.empty()
        return Snapshot(
            timestamp=now,
            cycle_seconds=cycle_seconds,
            cycles=self._cycles,
            site=site,
            buildings=buildings,
            lineups=lineups,
            halls=halls,
            rows=rows,
            racks=racks,
            feeds=feeds,
            nodes=nodes,
            accelerators=merged["accelerator"],
            accelerator_energy_joules=counters["accelerator"],
            anomalies=anomalies,
            jobs=jobs,
            meters=meters,
            grid=grid,
            sources=self._source_frame(),
            problems=self._problem_frame(),
            accepted=pl.DataFrame(
                [(s, k, n) for (s, k), n in self._accepted.items()],
                schema={"source": pl.String, "kind": pl.String, "samples": pl.UInt64},
                orient="row",
            ),
            rejected=pl.DataFrame(
                [(s, k, r, n) for (s, k, r), n in self._rejected.items()],
                schema=dict(schemas.REJECTIONS),
                orient="row",
            ),
        )

    @staticmethod
    def _frame_or_empty(frames: list[pl.DataFrame], schema: schemas.Schema) -> pl.DataFrame:
        if not frames:
            return schemas.empty(schema)
        return schemas.conform(pl.concat(frames), schema, "source frame")

    def _jobs(
        self, jobs: pl.DataFrame, allocations: pl.DataFrame, racks: pl.DataFrame
    ) -> pl.DataFrame:
        """Job power this cycle, and job energy from the racks' energy since the last cycle."""
        rack_energy = racks.get_column("energy_joules").to_numpy()
        delta = rack_energy - self._rack_energy
        self._rack_energy = rack_energy
        per_job, unallocated = rollup.attribute_energy(delta, allocations, delta.size)
        # fsum: exact whatever order the jobs come in (a group-by's order is not fixed), so
        # the counter is the same to the last digit on every run.
        self._job_energy_total += math.fsum(per_job["joules"].to_list())
        self._unallocated_energy_total += unallocated
        # Counters for the jobs still reported; a finished job's series simply ends.
        energy = (
            jobs.select("job")
            .join(self._job_energy, on="job", how="left", maintain_order="left")
            .join(per_job, on="job", how="left", maintain_order="left")
            .select(
                "job",
                (pl.col("energy_joules").fill_null(0.0) + pl.col("joules").fill_null(0.0)).alias(
                    "energy_joules"
                ),
            )
        )
        self._job_energy = energy
        return rollup.job_frame(jobs, allocations, racks).join(
            energy, on="job", how="left", maintain_order="left"
        )

    def _accept_errors(self, source: str, frame: pl.DataFrame) -> pl.DataFrame:
        """A source's error counters, validated; counted among its accelerator samples."""
        try:
            result = validate_errors(frame, self.topology.accelerator_count)
        except ValueError as error:  # wrong columns: the whole frame is unusable
            self._count_rejection(source, "accelerator", "malformed", frame.height)
            self._log_once(source, "accelerator_errors:malformed", f"source {source}: {error}")
            return schemas.empty(schemas.ACCELERATOR_ERRORS)
        self._accepted[(source, "accelerator")] += result.accepted_samples
        for reason, count in result.rejections.items():
            self._count_rejection(source, "accelerator", reason, count)
            self._log_once(
                source,
                f"accelerator_errors:{reason}",
                f"source {source}: {count} accelerator error count(s) rejected ({reason}); "
                "counted among the rejected samples by reason, logged once",
            )
        return result.frame

    def _count_rejection(self, source: str, kind: str, reason: str, count: int) -> None:
        key = (source, kind, reason)
        self._rejected[key] = self._rejected.get(key, 0) + count

    def _merge(self, kind: str, frames: list[pl.DataFrame]) -> pl.DataFrame:
        return self._first_per_key(frames, schemas.SAMPLE_SCHEMAS[kind], schemas.SAMPLE_KEYS[kind])

    @staticmethod
    def _first_per_key(
        frames: list[pl.DataFrame], schema: schemas.Schema, key: str
    ) -> pl.DataFrame:
        """One row per entity across sources, each validated already (no duplicates within
        one): two sources for one entity, the first source listed wins."""
        if not frames:
            return schemas.empty(schema)
        if len(frames) == 1:
            return frames[0]  # a 2 M-row hash only where two sources could overlap
        return pl.concat(frames).unique(key, keep="first", maintain_order=True)

    def _advance_energy(self, merged: dict[str, pl.DataFrame], now: float) -> dict[str, np.ndarray]:
        column = {
            "accelerator": "power_watts",
            "feed": "power_watts",
            "building": "non_it_power_watts",
        }
        for kind, state in self._energy.items():
            power = arrays.dense(
                merged[kind], schemas.SAMPLE_KEYS[kind], column[kind], state.joules.size
            )
            self._energy[kind] = energy.advance(
                state, power, now, self.config.max_energy_gap_seconds
            )
        return {kind: state.joules for kind, state in self._energy.items()}

    def _source_frame(self) -> pl.DataFrame:
        rows = [
            (source, target, 1.0 if up else 0.0, seconds, last)
            for (source, target), (up, seconds, last) in sorted(self._health.items())
        ]
        return pl.DataFrame(
            rows,
            schema={
                "source": pl.String,
                "target": pl.String,
                "up": pl.Float64,
                "read_seconds": pl.Float64,
                "last_success_timestamp_seconds": pl.Float64,
            },
            orient="row",
        )

    def _problem_frame(self) -> pl.DataFrame:
        return pl.DataFrame(
            [
                (source, reason, float(count))
                for (source, reason), count in sorted(self._problems.items())
            ],
            schema={"source": pl.String, "reason": pl.String, "problems": pl.Float64},
            orient="row",
        )
