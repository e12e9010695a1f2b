"""Sharding: one process rolls up a deterministic share of the site's buildings.

A campus outgrows one collector process and one Prometheus; it scales out the way operators
already scale: N collector processes, each a scrape target, whose series Prometheus' recording
rules sum (dashboards/recording.py sums site totals from the building and rack series).

``ShardSpec.parse("2/3")`` is the second of three shards. ``ShardPlan`` gives each building to
one shard, the same way for the same site and N: buildings are dealt, largest first (by
accelerators, site order among equals), to the shard holding the fewest accelerators so far
(the lowest-numbered among equals). Buildings of equal size are dealt round robin.

A shard's process works on the whole site's topology for what it reads (sources and scenarios
name entities of the whole site), and rolls up only its buildings:

* ``ShardSource`` wraps each source and hands the pipeline the shard's part of every batch,
  re-indexed to the shard's topology (``build_topology(site, buildings)``): entities of other
  shards are dropped, indexes that name nothing stay unknown so validation still counts them;
* site-wide readings belong to shard 1: the point-of-interconnection meter (its grid analysis
  cannot be summed across shards) and jobs that hold no rack. A job that holds racks is
  reported by every shard holding some, with its accelerators apportioned by racks held, so
  ``sum by (training_job)`` gives the job's whole count, power and energy;
* ``site_partials`` blanks the site columns a shard cannot know (ratios and headroom against a
  whole it does not see), which the rules compute from the buildings' series instead. What a
  shard's site frame keeps sums (or, for the hottest chip and the contract, maxes) over shards.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np
import numpy.typing as npt
import polars as pl

from collector.pipeline import Pipeline, Snapshot
from collector.site.topology import Topology, build_topology
from collector.sources.base import SampleBatch, Source

IndexArray = npt.NDArray[np.int64]

# The point of interconnection's meter (collector.schemas.METER_SAMPLES).
SITE_METER = "poi"
# Site columns that are not a sum of the shards' values: ratios of partial sums, and
# differences against the whole contract. Missing in a shard, never a misleading partial.
SITE_COLUMNS_NOT_SUMMED = (
    "utilization_ratio",
    "reporting_ratio",
    "accelerators_reporting_ratio",
    "nodes_reporting_ratio",
    "pue_ratio",
    "contract_headroom_watts",
)
_SPEC = re.compile(r"(\d+)/(\d+)")


class ShardError(ValueError):
    """A shard option that names no shard; the message names the value given."""


@dataclass(frozen=True)
class ShardSpec:
    """Shard ``index`` (1-based) of ``count``."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> ShardSpec:
        match = _SPEC.fullmatch(text.strip())
        if match is None:
            raise ShardError(f"{text!r} is not I/N (e.g. 2/3: the second of three shards)")
        index, count = int(match[1]), int(match[2])
        if count < 1 or not 1 <= index <= count:
            raise ShardError(f"{text!r}: I must be between 1 and N, and N at least 1")
        return cls(index, count)

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def deal_buildings(site_topology: Topology, count: int) -> list[list[str]]:
    """The buildings of each of ``count`` shards (index 0 is shard 1), in site order."""
    weights = (
        site_topology.racks.group_by("building_index")
        .agg(pl.col("accelerator_count").sum())
        .join(site_topology.buildings, on="building_index", how="right")
        .sort("building_index")
        .select(pl.col("accelerator_count").fill_null(0))
        .to_series()
        .to_list()
    )
    names = site_topology.buildings["building"].to_list()
    load = [0] * count
    owner = [0] * len(names)
    # Stable sort: among buildings of one size, site order decides.
    for building in sorted(range(len(names)), key=lambda b: -weights[b]):
        shard = min(range(count), key=lambda s: (load[s], s))
        owner[building] = shard
        load[shard] += weights[building]
    return [[name for name, o in zip(names, owner, strict=True) if o == s] for s in range(count)]


@dataclass(frozen=True)
class ShardPlan:
    """One shard's buildings, its topology, and the maps from the whole site's indexes."""

    spec: ShardSpec
    site_topology: Topology
    topology: Topology
    shard_of_rack: IndexArray  # per site rack: its shard, 0-based

    @classmethod
    def build(cls, site_topology: Topology, spec: ShardSpec) -> ShardPlan:
        buildings = site_topology.buildings.height
        if spec.count > buildings:
            raise ShardError(
                f"{spec}: the site has {buildings} building(s), so at most {buildings} shards"
            )
        shares = deal_buildings(site_topology, spec.count)
        shard_of_building = np.zeros(site_topology.buildings.height, dtype=np.int64)
        position = {name: i for i, name in enumerate(site_topology.buildings["building"])}
        for shard, names in enumerate(shares):
            shard_of_building[[position[name] for name in names]] = shard
        topology = build_topology(site_topology.site, frozenset(shares[spec.index - 1]))
        shard_of_rack = shard_of_building[site_topology.racks["building_index"].to_numpy()]
        return cls(spec, site_topology, topology, shard_of_rack)

    @property
    def buildings(self) -> list[str]:
        return list(self.topology.buildings["building"])

    @property
    def is_first(self) -> bool:
        return self.spec.index == 1

    @cached_property
    def _maps(self) -> dict[str, IndexArray]:
        """Per level, the shard index of each site entity (-1: another shard's)."""
        site = self.site_topology
        mine = self.shard_of_rack == self.spec.index - 1
        owned = {
            "rack_index": mine,
            "feed_index": mine[site.feeds["rack_index"].to_numpy()],
            "node_index": mine[site.nodes["rack_index"].to_numpy()],
            "accelerator_index": mine[site.accelerators["rack_index"].to_numpy()],
            "building_index": np.isin(site.buildings["building"].to_numpy(), self.buildings),
        }
        return {
            key: np.where(keep, np.cumsum(keep) - 1, -1).astype(np.int64)
            for key, keep in owned.items()
        }

    def _part(self, frame: pl.DataFrame, key: str) -> pl.DataFrame:
        """The rows of this shard's entities, re-indexed. Rows whose index names nothing in
        the site stay, with a null index, for validation to count as unknown; a frame
        without its key column is handed on for the pipeline to reject as malformed."""
        if key not in frame.columns or frame.height == 0:
            return frame
        shard_index = self._maps[key]
        given = frame.get_column(key).cast(pl.Int64, strict=False)
        known = given.is_between(0, shard_index.size - 1).fill_null(False)
        looked_up = pl.Series(shard_index).gather(given.clip(0, shard_index.size - 1).fill_null(0))
        elsewhere = known & (looked_up < 0)
        reindexed = pl.select(pl.when(known).then(looked_up).otherwise(None)).to_series()
        return (
            frame.with_columns(reindexed.alias(key))
            .filter(~elsewhere)
            .with_columns(pl.col(key).cast(pl.UInt32))
        )

    def _meter_names(self) -> set[str]:
        lineups = self.topology.names("lineup")
        return {
            *self.buildings,
            *(lineups["building"] + "-" + lineups["lineup"]).to_list(),
        }

    def _meters(self, meters: pl.DataFrame) -> pl.DataFrame:
        """This shard's buildings' and lineups' meters; shard 1 also keeps the site's own
        (the point of interconnection) and any other meter no building claims."""
        if "meter" not in meters.columns or meters.height == 0:
            return meters
        site_lineups = self.site_topology.names("lineup")
        claimed = {
            *self.site_topology.buildings["building"].to_list(),
            *(site_lineups["building"] + "-" + site_lineups["lineup"]).to_list(),
        }
        name = pl.col("meter").cast(pl.String)
        mine = name.is_in(sorted(self._meter_names()))
        if self.is_first:
            mine = mine | ~name.is_in(sorted(claimed))
        return meters.filter(mine)

    def _jobs(self, jobs: pl.DataFrame, allocations: pl.DataFrame) -> pl.DataFrame:
        """Jobs holding racks here, their accelerators apportioned by racks held; shard 1
        also keeps the jobs that hold no rack (queued)."""
        needed = {"job", "accelerators"}
        if jobs.height == 0 or not needed <= set(jobs.columns):
            return jobs if self.is_first else jobs.clear()
        if "rack_index" in allocations.columns and "job" in allocations.columns:
            held = allocations.select(
                pl.col("job").cast(pl.String),
                pl.col("rack_index").cast(pl.Int64, strict=False).alias("rack"),
            ).filter(
                pl.col("job").is_not_null()
                & (pl.col("rack") >= 0)
                & (pl.col("rack") < self.shard_of_rack.size)
            )
        else:
            held = pl.DataFrame(schema={"job": pl.String, "rack": pl.Int64})
        shard = pl.Series(self.shard_of_rack).gather(held["rack"])
        here = self.spec.index - 1
        racks = (
            held.with_columns(shard=shard)
            .group_by("job")
            .agg(
                pl.len().alias("total"),
                (pl.col("shard") < here).sum().alias("before"),
                (pl.col("shard") <= here).sum().alias("through"),
            )
        )
        joined = jobs.join(racks, on="job", how="left", maintain_order="left")
        accelerators = pl.col("accelerators").cast(pl.Float64)
        # Rounding the running share telescopes: the shards' parts add up to the whole.
        apportioned = (accelerators * pl.col("through") / pl.col("total")).round() - (
            accelerators * pl.col("before") / pl.col("total")
        ).round()
        unheld = pl.col("total").is_null()
        keep = (pl.col("through") > pl.col("before")) | (unheld & pl.lit(self.is_first))
        return (
            joined.filter(keep)
            .with_columns(
                pl.when(unheld)
                .then(pl.col("accelerators"))
                .otherwise(apportioned)
                .cast(jobs.schema["accelerators"])
                .alias("accelerators")
            )
            .select(jobs.columns)
        )

    def part(self, batch: SampleBatch) -> SampleBatch:
        """This shard's part of a batch read from the whole site."""
        return replace(
            batch,
            accelerators=self._part(batch.accelerators, "accelerator_index"),
            nodes=self._part(batch.nodes, "node_index"),
            feeds=self._part(batch.feeds, "feed_index"),
            buildings=self._part(batch.buildings, "building_index"),
            accelerator_errors=self._part(batch.accelerator_errors, "accelerator_index"),
            jobs=self._jobs(batch.jobs, batch.allocations),
            allocations=self._part(batch.allocations, "rack_index"),
            meters=self._meters(batch.meters),
        )


class ShardSource:
    """Source ``inner.name``: what the inner source reads of the whole site, this shard's
    part of it."""

    def __init__(self, inner: Source, plan: ShardPlan) -> None:
        self.inner = inner
        self.plan = plan

    @property
    def name(self) -> str:
        return self.inner.name

    def read(self, now: float) -> SampleBatch:
        return self.plan.part(self.inner.read(now))

    def close(self) -> None:
        close = getattr(self.inner, "close", None)
        if callable(close):
            close()


def site_partials(site: pl.DataFrame) -> pl.DataFrame:
    """A shard's site frame: the columns that do not sum over shards are null (missing)."""
    blank = [column for column in SITE_COLUMNS_NOT_SUMMED if column in site.columns]
    return site.with_columns(pl.lit(None, dtype=site.schema[c]).alias(c) for c in blank)


class ShardPipeline(Pipeline):
    """The pipeline of one shard: its snapshot's site frame holds partials only."""

    def run_cycle(self, analyze_grid: bool = True) -> Snapshot:
        snapshot = super().run_cycle(analyze_grid)
        return replace(snapshot, site=site_partials(snapshot.site))
