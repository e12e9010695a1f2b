"""Parsing and mapping on worker threads: fetched payloads go in batches to a thread pool
while the event loop is still fetching; a batch comes back as READINGS and PROBLEMS frames and
each target's outcome."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import polars as pl

from collector import schemas
from collector.sources.exporter_maps import EXPORTERS, detect_exporter, readings_from_exposition
from collector.sources.promtext import Exposition, as_problems, parse_exposition
from collector.sources.scrape.batch_parse import parse_many
from collector.sources.scrape.targets import AUTO, ScrapeTarget

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Item:
    index: int
    target: ScrapeTarget
    body: bytes
    content_type: str | None


@dataclass(frozen=True)
class ParsedTarget:
    exporter: str | None
    samples: int
    ok: bool  # parsed and mapped; false: the payload cost a parse or map_error problem


@dataclass
class Batch:
    readings: list[pl.DataFrame] = field(default_factory=list)
    problems: list[pl.DataFrame] = field(default_factory=list)
    parsed: dict[int, ParsedTarget] = field(default_factory=dict)


def problem_frame(
    source: str, target: str, location: str, reason: str, message: str
) -> pl.DataFrame:
    return pl.DataFrame(
        [(source, target, location, reason, message)], schema=dict(schemas.PROBLEMS), orient="row"
    )


def _parse_items(items: Sequence[Item], batch: Batch, source: str) -> list[Exposition | None]:
    try:
        return list(parse_many([(item.body, item.content_type) for item in items]))
    except Exception:
        log.exception("batched parse failed; parsing %d payloads one by one", len(items))
    expositions: list[Exposition | None] = []
    for item in items:
        try:
            expositions.append(parse_exposition(item.body, item.content_type))
        except Exception as error:
            log.exception("parsing %s failed", item.target.url)
            batch.problems.append(
                problem_frame(source, item.target.url, "payload", "parse", repr(error))
            )
            expositions.append(None)
    return expositions


def read_batch(items: Sequence[Item], now: float, source: str) -> Batch:
    """Parse and map fetched payloads: READINGS, PROBLEMS and each target's outcome.

    Never raises: a failure nothing below caught costs this batch's targets (``parse``).
    """
    try:
        return _read_items(items, now, source)
    except Exception as error:
        log.exception("reading a batch of %d payloads failed", len(items))
        batch = Batch()
        for item in items:
            batch.problems.append(
                problem_frame(source, item.target.url, "payload", "parse", repr(error))
            )
            batch.parsed[item.index] = ParsedTarget(None, 0, ok=False)
        return batch


def _read_items(items: Sequence[Item], now: float, source: str) -> Batch:
    batch = Batch()
    expositions = _parse_items(items, batch, source)
    detected: dict[str, str | None] = {}
    by_exporter: dict[str, list[tuple[Item, pl.DataFrame]]] = {}
    for item, exposition in zip(items, expositions, strict=True):
        url = item.target.url
        if exposition is None:
            batch.parsed[item.index] = ParsedTarget(None, 0, ok=False)
            continue
        samples = exposition.samples
        if exposition.problems.height:
            batch.problems.append(as_problems(exposition, source, url))
        exporter: str | None = item.target.exporter
        if exporter == AUTO:
            exporter = None
            if samples.height:
                # detect_exporter depends on the names alone: one call per distinct list
                key = "\n".join(samples.get_column("name").to_list())
                if key not in detected:
                    detected[key] = detect_exporter(samples)
                exporter = detected[key]
                if exporter is None:
                    batch.problems.append(
                        problem_frame(
                            source,
                            url,
                            "payload",
                            "unknown_exporter",
                            f"no sample name belongs to a known exporter ({', '.join(EXPORTERS)})"
                            "; name the exporter in the target",
                        )
                    )
        batch.parsed[item.index] = ParsedTarget(exporter, samples.height, ok=True)
        if exporter is not None and samples.height:
            by_exporter.setdefault(exporter, []).append((item, samples))
    for exporter, members in by_exporter.items():
        _map(exporter, members, now, source, batch)
    return batch


def _map(
    exporter: str,
    members: list[tuple[Item, pl.DataFrame]],
    now: float,
    source: str,
    batch: Batch,
) -> None:
    """One readings_from_exposition call for all members; one each if that call fails."""
    frames = [
        samples.with_columns(pl.lit(item.target.url).alias("target")) for item, samples in members
    ]
    try:
        readings, problems = readings_from_exposition(
            pl.concat(frames), exporter, None, now, source=source
        )
        batch.readings.append(readings)
        batch.problems.append(problems)
        return
    except Exception:
        log.exception("mapping %d %s payloads failed; mapping one by one", len(frames), exporter)
    for (item, _), frame in zip(members, frames, strict=True):
        try:
            readings, problems = readings_from_exposition(frame, exporter, None, now, source=source)
            batch.readings.append(readings)
            batch.problems.append(problems)
        except Exception as error:
            log.exception("mapping %s failed", item.target.url)
            batch.problems.append(
                problem_frame(source, item.target.url, "payload", "map_error", repr(error))
            )
            previous = batch.parsed[item.index]
            batch.parsed[item.index] = ParsedTarget(previous.exporter, previous.samples, ok=False)


class ParseStage:
    """Hands fetched payloads to worker threads in batches, while fetching goes on."""

    def __init__(
        self,
        executor: ThreadPoolExecutor,
        now: float,
        source: str,
        batch_targets: int,
    ) -> None:
        self.executor = executor
        self.now = now
        self.source = source
        self.batch_targets = batch_targets
        self.pending: list[Item] = []
        self.futures: list[asyncio.Future[Batch]] = []

    def add(self, item: Item) -> None:
        self.pending.append(item)
        if len(self.pending) >= self.batch_targets:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        items, self.pending = self.pending, []
        loop = asyncio.get_running_loop()
        self.futures.append(
            loop.run_in_executor(self.executor, read_batch, items, self.now, self.source)
        )

    async def results(self) -> list[Batch]:
        self.flush()
        return list(await asyncio.gather(*self.futures))
