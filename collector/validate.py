"""Sample validation: reject what cannot be true, count it by reason, keep everything else.

A *sample* here is one value of one field for one entity (as in Prometheus). Two kinds of
problem are told apart:

* row problems reject every value of the row: ``unknown_entity`` (the index names nothing in
  the topology), ``duplicate`` (a second row for one entity in one batch: the first wins),
  ``stale`` and ``future`` (timestamp outside the allowed window);
* value problems reject that value only, which becomes null (missing), never 0:
  ``not_finite``, ``negative``, ``out_of_range`` (outside what the entity can physically do).

A null value is "not measured by this source" and is neither accepted nor rejected.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import polars as pl

from collector import arrays, schemas
from collector.site.model import feed_power_watts
from collector.site.topology import Topology


@dataclass(frozen=True)
class ValidationLimits:
    max_sample_age_seconds: float = 120.0
    max_future_skew_seconds: float = 5.0
    # How far above its rating a reading may go before it is called implausible.
    overload_factor: float = 1.5


@dataclass(frozen=True)
class Validated:
    """Accepted rows (invalid values nulled), rejected sample counts by reason, examples."""

    frame: pl.DataFrame
    accepted_samples: int
    rejections: dict[str, int]  # reason -> samples rejected
    examples: dict[str, str]  # reason -> one example, to name the problem in a log line


@dataclass(frozen=True)
class _Bounds:
    lower: pl.Expr | None  # None: negative is impossible (watts, amps, bytes...)
    upper: pl.Expr | None
    signed: bool = False  # temperatures may be below zero


def _entity(topology: Topology, kind: str, column: str) -> pl.Expr:
    """An attribute of each row's entity, looked up by its index (a literal when every entity
    of the kind shares one value, as in a campus of one accelerator type: no 2 M-row gather)."""
    uniform = topology.uniform_value(kind, column)
    if uniform is not None:
        return pl.lit(uniform)
    table = {
        "accelerator": topology.accelerators,
        "node": topology.nodes,
        "feed": topology.feeds,
        "building": topology.buildings,
    }[kind]
    return pl.lit(table[column]).gather(pl.col(schemas.SAMPLE_KEYS[kind]))


def _bounds(topology: Topology, kind: str, limits: ValidationLimits) -> Mapping[str, _Bounds]:
    overload = limits.overload_factor
    if kind == "accelerator":
        return {
            "power_watts": _Bounds(None, _entity(topology, kind, "tdp_watts") * overload),
            "temperature_celsius": _Bounds(pl.lit(-40.0), pl.lit(150.0), signed=True),
            "utilization_ratio": _Bounds(None, pl.lit(1.0)),
            "memory_used_bytes": _Bounds(None, _entity(topology, kind, "memory_bytes")),
        }
    if kind == "node":
        host = _entity(topology, kind, "host_max_watts")
        chips = _entity(topology, kind, "capacity_watts")  # the node's accelerators' TDP
        return {
            "power_watts": _Bounds(None, (chips + host) * overload),
            "cpu_power_watts": _Bounds(None, host * overload),
        }
    if kind == "feed":
        nominal = _entity(topology, kind, "voltage_volts")
        breaker = _entity(topology, kind, "breaker_amps")
        phases = _entity(topology, kind, "phases")
        return {
            "power_watts": _Bounds(None, feed_power_watts(nominal, breaker, phases, overload)),
            "current_amps": _Bounds(None, breaker * overload),
            "voltage_volts": _Bounds(nominal * 0.5, nominal * 1.5),
            "meter_energy_joules": _Bounds(None, None),
        }
    if kind == "building":
        return {
            "non_it_power_watts": _Bounds(None, _entity(topology, kind, "capacity_watts") * 2.0),
            "outdoor_temperature_celsius": _Bounds(pl.lit(-60.0), pl.lit(60.0), signed=True),
        }
    raise ValueError(f"unknown sample kind {kind!r}")


def _entity_count(topology: Topology, kind: str) -> int:
    return {
        "accelerator": topology.accelerators.height,
        "node": topology.nodes.height,
        "feed": topology.feeds.height,
        "building": topology.buildings.height,
    }[kind]


def _rows_plainly_fine(
    frame: pl.DataFrame,
    strictly_increasing: bool,
    kind: str,
    topology: Topology,
    now: float,
    limits: ValidationLimits,
) -> bool:
    """Whether no row can be rejected, judged from a few whole-column figures: keys strictly
    increasing (so none null or repeated) below the entity count, and every timestamp finite
    and inside the window. The usual cycle; it spares the per-row checks over millions of rows.
    """
    if not strictly_increasing:
        return False
    keys = frame.get_column(schemas.SAMPLE_KEYS[kind])
    if int(keys[-1]) >= _entity_count(topology, kind):
        return False
    timestamp = pl.col("timestamp_seconds")
    finite, oldest, newest = frame.select(
        timestamp.is_finite().all().alias("finite"),
        timestamp.min().alias("oldest"),
        timestamp.max().alias("newest"),
    ).row(0)
    return bool(finite) and (
        oldest >= now - limits.max_sample_age_seconds
        and newest <= now + limits.max_future_skew_seconds
    )


def _values_plainly_valid(
    rows: pl.DataFrame, measures: list[str], bounds: Mapping[str, _Bounds]
) -> int | None:
    """The number of values accepted when every present value is valid (the usual cycle: one
    count per column instead of one per reason), None when some value is rejected and the
    reasons must be told apart."""
    if not rows.height:
        return 0
    conditions = []
    for column in measures:
        value = pl.col(column)
        bound = bounds[column]
        valid = value.is_finite()  # null stays null and is not counted
        if not bound.signed:
            valid = valid & (value >= 0)
        if bound.lower is not None:
            valid = valid & (value >= bound.lower)
        if bound.upper is not None:
            valid = valid & (value <= bound.upper)
        conditions.append(valid.sum().alias(column))
    counts = rows.select(conditions).row(0, named=True)
    present = {column: rows.height - rows.get_column(column).null_count() for column in measures}
    if any(int(counts[column]) != present[column] for column in measures):
        return None
    return sum(present.values())


def validate(
    kind: str,
    frame: pl.DataFrame,
    topology: Topology,
    now: float,
    limits: ValidationLimits | None = None,
) -> Validated:
    """Validate one source's samples of one kind. Pure: no state, no clock of its own."""
    limits = limits or ValidationLimits()
    key = schemas.SAMPLE_KEYS[kind]
    measures = schemas.measurement_columns(kind)
    frame = schemas.conform(frame, schemas.SAMPLE_SCHEMAS[kind], f"{kind} samples", lenient=(key,))
    # A source that does not stamp its samples read them during this cycle.
    if frame.get_column("timestamp_seconds").null_count():
        frame = frame.with_columns(pl.col("timestamp_seconds").fill_null(now))
    present_in_row = pl.sum_horizontal(pl.col(c).is_not_null().cast(pl.UInt32) for c in measures)

    key_col = pl.col(key)
    unknown = key_col.is_null() | (key_col >= _entity_count(topology, kind))
    timestamp = pl.col("timestamp_seconds")
    bad_time = ~unknown & ~timestamp.is_finite()
    stale = ~unknown & ~bad_time & (timestamp < now - limits.max_sample_age_seconds)
    future = ~unknown & ~bad_time & ~stale & (timestamp > now + limits.max_future_skew_seconds)
    # A strictly increasing key column (what sources normally send) has no duplicates;
    # only otherwise pay for a hash of every key.
    keys = frame.get_column(key)
    strictly_increasing = arrays.strictly_increasing(keys)

    # Only rows that passed the other checks compete: a stale row must not shadow a fresh one.
    candidate = ~unknown & ~bad_time & ~stale & ~future
    duplicate = candidate & (
        pl.lit(False)
        if strictly_increasing
        else ~pl.when(candidate).then(key_col).is_first_distinct()
    )
    row_checks = {
        "unknown_entity": unknown,
        "not_finite": bad_time,
        "stale": stale,
        "future": future,
        "duplicate": duplicate,
    }

    rejections: dict[str, int] = {}
    examples: dict[str, str] = {}
    if frame.height and not _rows_plainly_fine(
        frame, strictly_increasing, kind, topology, now, limits
    ):
        flagged = frame.select(check.sum().alias(reason) for reason, check in row_checks.items())
        for reason, rows_flagged in flagged.row(0, named=True).items():
            if not rows_flagged:
                continue
            bad = frame.filter(row_checks[reason])
            rejections[reason] = int(bad.select(present_in_row.sum()).item())
            what = " (timestamp)" if reason == "not_finite" else ""
            examples[reason] = f"{key} {bad.get_column(key)[0]}{what}"

    # Nothing rejected whole (the usual cycle): keep the frame as it is, no 2 M-row copy.
    rows = frame.filter(candidate & ~duplicate) if rejections else frame

    bounds = _bounds(topology, kind, limits)
    checks: list[pl.Expr] = []
    invalid: dict[tuple[str, str], pl.Expr] = {}
    cleaned: dict[str, pl.Expr] = {}
    for column in measures:
        value = pl.col(column)
        bound = bounds[column]
        present = value.is_not_null()
        finite = value.is_finite()
        not_finite = present & ~finite
        negative = present & finite & (pl.lit(False) if bound.signed else value < 0)
        below = value < bound.lower if bound.lower is not None else pl.lit(False)
        above = value > bound.upper if bound.upper is not None else pl.lit(False)
        out_of_range = present & finite & ~negative & (below | above)
        valid = present & finite & ~negative & ~out_of_range
        checks += [
            not_finite.sum().alias(f"{column}:not_finite"),
            negative.sum().alias(f"{column}:negative"),
            out_of_range.sum().alias(f"{column}:out_of_range"),
            valid.sum().alias(f"{column}:accepted"),
        ]
        invalid[(column, "not_finite")] = not_finite
        invalid[(column, "negative")] = negative
        invalid[(column, "out_of_range")] = out_of_range
        cleaned[column] = pl.when(valid).then(value).otherwise(None).alias(column)

    accepted = 0
    dirty: list[str] = []  # columns with a rejected value: only these are rewritten
    plain = _values_plainly_valid(rows, measures, bounds)
    if plain is not None:
        accepted = plain
    elif rows.height:
        counts = rows.select(checks).row(0, named=True)
        for column in measures:
            accepted += int(counts[f"{column}:accepted"])
            for reason in ("not_finite", "negative", "out_of_range"):
                count = int(counts[f"{column}:{reason}"])
                if count:
                    dirty.append(column)
                    rejections[reason] = rejections.get(reason, 0) + count
                    if reason not in examples:
                        first = rows.filter(invalid[(column, reason)]).row(0, named=True)
                        examples[reason] = f"{key} {first[key]}: {column}={first[column]}"
    result = rows.with_columns(cleaned[c] for c in dict.fromkeys(dirty)) if dirty else rows
    return Validated(
        frame=result, accepted_samples=accepted, rejections=rejections, examples=examples
    )
