"""One call's result assembled from what was fetched and what the batches parsed: the
readings and problems in target order and a health row per target."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import polars as pl

from collector import schemas
from collector.sources.scrape.fetch import Fetched
from collector.sources.scrape.parse_stage import Batch, ParsedTarget, problem_frame
from collector.sources.scrape.targets import AUTO, ScrapeTarget

TARGET_HEALTH: schemas.Schema = {
    "source": pl.String,
    "target": pl.String,  # the URL
    "exporter": pl.String,  # as configured or as detected; null when unknown
    # 1: the payload was fetched and parsed (some lines may have problems) and gave at least
    # one reading
    "up": pl.UInt8,
    "duration_seconds": pl.Float64,  # the HTTP request, from a free slot to the last byte
    "samples": pl.UInt32,  # samples parsed
    "problems": pl.UInt32,  # rows of the problems frame for this target
    "last_success_seconds": pl.Float64,  # the `now` of the last call it was up; null: never
}


@dataclass(frozen=True)
class ScrapeResult:
    """What one call read from every target."""

    timestamp_seconds: float
    readings: pl.DataFrame  # schemas.READINGS
    problems: pl.DataFrame  # schemas.PROBLEMS
    targets: pl.DataFrame  # TARGET_HEALTH, one row per target in the order given


def assemble(
    targets: tuple[ScrapeTarget, ...],
    now: float,
    fetched: Mapping[int, Fetched],
    batches: list[Batch],
    deadline_seconds: float,
    waited: float,
    last_success: Mapping[str, float],
    source: str,
) -> ScrapeResult:
    """The call's frames: the batches' readings and problems in target order, a ``timeout``
    problem for each target with no answer by the deadline (its duration: the time ``waited``),
    and one TARGET_HEALTH row per target."""
    parsed: dict[int, ParsedTarget] = {}
    readings: list[pl.DataFrame] = []
    problems: list[pl.DataFrame] = []
    for batch in batches:
        parsed.update(batch.parsed)
        readings.extend(frame for frame in batch.readings if frame.height)
        problems.extend(frame for frame in batch.problems if frame.height)
    # A target is up only when it gave at least one reading it was read for: a payload of
    # garbage, or of nothing the exporter map knows, is an answer but not a reading.
    read_from = pl.concat([frame.select("target") for frame in readings]) if readings else None
    readings_of = (
        dict(read_from.get_column("target").value_counts().iter_rows())
        if read_from is not None
        else {}
    )
    rows = []
    for index, target in enumerate(targets):
        result = fetched.get(index)
        outcome = parsed.get(index)
        if result is None:
            problems.append(
                problem_frame(
                    source,
                    target.url,
                    "request",
                    "timeout",
                    f"no complete answer within the scrape's {deadline_seconds:g} s deadline "
                    "(connecting, reading, or waiting for a free slot)",
                )
            )
            duration = waited
        else:
            duration = result.duration_seconds
            if result.reason is not None:
                problems.append(
                    problem_frame(source, target.url, "request", result.reason, result.message)
                )
        up = outcome is not None and outcome.ok and readings_of.get(target.url, 0) > 0
        exporter = outcome.exporter if outcome is not None else None
        if exporter is None and target.exporter != AUTO:
            exporter = target.exporter
        rows.append(
            (
                source,
                target.url,
                exporter,
                int(up),
                duration,
                outcome.samples if outcome is not None else 0,
                0,
                now if up else last_success.get(target.url),
            )
        )
    order = {target.url: index for index, target in enumerate(targets)}
    all_problems = _in_target_order(problems, schemas.PROBLEMS, order)
    counts = dict(all_problems.get_column("target").value_counts().iter_rows())
    health = pl.DataFrame(
        [(*row[:6], counts.get(row[1], 0), row[7]) for row in rows],
        schema=dict(TARGET_HEALTH),
        orient="row",
    )
    return ScrapeResult(
        timestamp_seconds=now,
        readings=_in_target_order(readings, schemas.READINGS, order),
        problems=all_problems,
        targets=health,
    )


def _in_target_order(
    frames: list[pl.DataFrame], schema: schemas.Schema, order: Mapping[str, int]
) -> pl.DataFrame:
    """Frames concatenated, rows sorted by their target's position (stable within a target)."""
    if not frames:
        return schemas.empty(schema)
    frame = pl.concat(frames, how="vertical_relaxed").cast(dict(schema))  # type: ignore[arg-type]
    position = pl.col("target").replace_strict(order, return_dtype=pl.UInt32)
    return frame.sort(position, maintain_order=True)
