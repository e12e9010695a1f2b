"""The one interface every source implements, and the batch it hands to the core."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import TracebackType
from typing import Protocol, Self

import polars as pl

from collector import schemas


@dataclass(frozen=True)
class SampleBatch:
    """What one source read in one cycle: a frame per sample kind (see collector.schemas).

    A kind the source does not produce is an empty frame, not a frame of zeros.
    """

    accelerators: pl.DataFrame = field(
        default_factory=lambda: schemas.empty(schemas.ACCELERATOR_SAMPLES)
    )
    feeds: pl.DataFrame = field(default_factory=lambda: schemas.empty(schemas.FEED_SAMPLES))
    buildings: pl.DataFrame = field(default_factory=lambda: schemas.empty(schemas.BUILDING_SAMPLES))
    nodes: pl.DataFrame = field(default_factory=lambda: schemas.empty(schemas.NODE_SAMPLES))
    jobs: pl.DataFrame = field(default_factory=lambda: schemas.empty(schemas.JOB_SAMPLES))
    allocations: pl.DataFrame = field(
        default_factory=lambda: schemas.empty(schemas.ALLOCATION_SAMPLES)
    )
    meters: pl.DataFrame = field(default_factory=lambda: schemas.empty(schemas.METER_SAMPLES))
    # Per-target health and problems, for sources that read many targets (BMCs, exporters).
    # A source that leaves targets empty is one target named after the source.
    targets: pl.DataFrame = field(default_factory=lambda: schemas.empty(schemas.TARGET_HEALTH))
    problems: pl.DataFrame = field(default_factory=lambda: schemas.empty(schemas.PROBLEMS))
    accelerator_errors: pl.DataFrame = field(
        default_factory=lambda: schemas.empty(schemas.ACCELERATOR_ERRORS)
    )

    def frame(self, kind: str) -> pl.DataFrame:
        return {
            "accelerator": self.accelerators,
            "node": self.nodes,
            "feed": self.feeds,
            "building": self.buildings,
        }[kind]


class ClosedOnExit:
    """``with thing:`` closes the thing on the way out; subclasses define ``close``."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class Source(Protocol):
    """A plugin that reads samples. It raises on failure; the pipeline keeps its health.

    ``read`` is given the cycle's clock reading so that a source never reads a clock of its own.
    """

    @property
    def name(self) -> str: ...

    def read(self, now: float) -> SampleBatch: ...
