"""Real sources as pipeline sources: a reader's normalized readings, attached to the topology.

A reader is any callable ``now -> ReaderResult`` (readings, problems and one health row per
target). ``ReadingsSource`` runs it, attaches the readings through the inventory and hands
the pipeline a SampleBatch with its per-target health and problems, so one dead or hanging
target costs only its own devices, which then show as not reporting, never as 0 W. A reader
that holds something (connections, NVML, a subprocess and its thread) also has a ``close``,
which ``ReadingsSource.close`` calls when the service stops.

Each kind's reader is in its own module (collector/sources/kinds/); this module is what they
share.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

from collector import schemas
from collector.attach import attach, attach_errors, attach_nodes
from collector.counter_rates import CounterRates
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

    def __init__(
        self, name: str, reader: Reader, inventory: Inventory, *, derive_rates: bool = True
    ) -> None:
        self._name = name
        self.reader = reader
        self.inventory = inventory
        # RAPL counters scraped from node_exporter come without power: watts from the deltas.
        # A reader that unwraps its own counters (sysfs knows each zone's wrap range, and
        # refuses an ambiguous interval) must not get a naive rate in its place.
        self.rates = CounterRates() if derive_rates else None

    @property
    def name(self) -> str:
        return self._name

    def read(self, now: float) -> SampleBatch:
        result = self.reader(now)
        readings = result.readings
        problems = schemas.conform(result.problems, schemas.PROBLEMS, f"{self.name} problems")
        if self.rates is not None:
            derived, counter_problems = self.rates.derive(readings, now)
            readings = pl.concat([readings, derived])
            problems = pl.concat([problems, counter_problems])
        accelerators, feeds = attach(readings, self.inventory)
        return SampleBatch(
            accelerators=accelerators,
            nodes=attach_nodes(readings, self.inventory),
            feeds=feeds,
            targets=schemas.conform(result.targets, schemas.TARGET_HEALTH, f"{self.name} targets"),
            problems=problems,
            accelerator_errors=attach_errors(readings, self.inventory),
        )

    def close(self) -> None:
        """Close the reader when it has a ``close`` (it holds connections, NVML, a process)."""
        close = getattr(self.reader, "close", None)
        if callable(close):
            close()


class ClosingReader:
    """A reader function and what closes what it holds: a Reader with a ``close``."""

    def __init__(self, read: Reader, close: Callable[[], None]) -> None:
        self._read = read
        self._close = close

    def __call__(self, now: float) -> ReaderResult:
        return self._read(now)

    def close(self) -> None:
        self._close()


def health_row(target: str, up: bool, started: float) -> pl.DataFrame:
    """One TARGET_HEALTH row; its duration runs from ``started`` (time.perf_counter) to now."""
    return pl.DataFrame(
        {
            "target": [target],
            "up": [1.0 if up else 0.0],
            "duration_seconds": [time.perf_counter() - started],
        },
        schema=dict(schemas.TARGET_HEALTH),
    )
