"""Real sources as pipeline sources: a reader's normalized readings, attached to the topology.

A reader is any callable ``now -> ReaderResult`` (readings, problems and one health row per
target). ``ReadingsSource`` runs it, attaches the readings through the inventory and hands
the pipeline a SampleBatch with its per-target health and problems, so one dead or hanging
target costs only its own devices, which then show as not reporting, never as 0 W.

Adding a kind of source is one reader factory here and one line in collector.collectors.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import polars as pl

from collector import schemas
from collector.attach import attach
from collector.inventory import Inventory
from collector.sources.base import SampleBatch


@dataclass(frozen=True)
class ReaderResult:
    readings: pl.DataFrame  # schemas.READINGS
    problems: pl.DataFrame  # schemas.PROBLEMS
    targets: pl.DataFrame  # schemas.TARGET_HEALTH


Reader = Callable[[float], ReaderResult]


class ReadingsSource:
    """Source ``name``: a reader plus an inventory."""

    def __init__(self, name: str, reader: Reader, inventory: Inventory) -> None:
        self._name = name
        self.reader = reader
        self.inventory = inventory

    @property
    def name(self) -> str:
        return self._name

    def read(self, now: float) -> SampleBatch:
        result = self.reader(now)
        accelerators, feeds = attach(result.readings, self.inventory)
        return SampleBatch(
            accelerators=accelerators,
            feeds=feeds,
            targets=schemas.conform(result.targets, schemas.TARGET_HEALTH, f"{self.name} targets"),
            problems=schemas.conform(result.problems, schemas.PROBLEMS, f"{self.name} problems"),
        )


def redfish_reader(config: object, environ: Mapping[str, str] | None = None) -> Reader:
    """Rack PDUs, BMCs and CDUs over Redfish. Each PDU's power is the reading
    ``choose_pdu_power`` picks, added as a ``power_watts`` reading of the PDU resource itself,
    so an inventory row names the PDU (host, resource path) and its rack feed."""
    from collector.sources.redfish import RedfishConfig, RedfishSource

    assert isinstance(config, RedfishConfig)
    source = RedfishSource(config, environ=environ)

    def read(now: float) -> ReaderResult:
        result = source.read_readings(now)
        hosts = result.targets.select("target", "host")
        chosen = (
            result.pdu_power()
            .drop_nulls("power_watts")
            .join(hosts, on="target", how="left", maintain_order="left")
            .select(
                pl.lit("redfish").alias("source"),
                "target",
                "host",
                "device",
                pl.lit("pdu").alias("device_kind"),
                pl.lit("power_watts").alias("metric"),
                pl.col("power_watts").alias("value"),
                pl.lit("watts").alias("unit"),
                pl.lit(False).alias("estimated"),
                pl.lit(None, dtype=pl.Float64).alias("timestamp_seconds"),
            )
        )
        readings = pl.concat(
            [
                schemas.conform(result.readings, schemas.READINGS, "redfish readings"),
                schemas.conform(chosen, schemas.READINGS, "chosen PDU power"),
            ]
        )
        targets = result.targets.select("target", pl.col("up").cast(pl.Float64), "duration_seconds")
        return ReaderResult(readings, result.problems, targets)

    return read


def prometheus_reader(
    targets: Sequence[object], max_concurrency: int, deadline_seconds: float
) -> Reader:
    """Exporters sites already run (dcgm-exporter, node_exporter, ipmi_exporter, neuron-monitor's
    companion, Kepler), scraped once per cycle with connections kept between cycles."""
    from collector.sources.scrape import Scraper, ScrapeTarget

    assert all(isinstance(target, ScrapeTarget) for target in targets)
    scraper = Scraper(
        [t for t in targets if isinstance(t, ScrapeTarget)],
        max_concurrency=max_concurrency,
        deadline_seconds=deadline_seconds,
    )

    def read(now: float) -> ReaderResult:
        result = scraper.scrape(now)
        health = result.targets.select("target", pl.col("up").cast(pl.Float64), "duration_seconds")
        return ReaderResult(result.readings, result.problems, health)

    return read


def nvml_reader(host: str | None = None) -> Reader:
    """The GPUs of this machine through NVML; unavailable (up 0, one problem) without it."""
    from collector.sources.nvml import NvmlSource

    source = NvmlSource(host=host)

    def read(now: float) -> ReaderResult:
        started = time.perf_counter()
        readings, problems = source.read_readings(now)
        health = source.health()
        target = f"nvml://{host}" if host else "nvml://local"
        targets = pl.DataFrame(
            {
                "target": [target],
                "up": [1.0 if health.available else 0.0],
                "duration_seconds": [time.perf_counter() - started],
            }
        )
        return ReaderResult(readings, problems, targets)

    return read
