"""Accelerator health across cycles: which devices stopped reporting, and whose error
counters grew lately.

The two things an operator is paged for at the level of one chip, and that a single cycle's
samples cannot tell: a device that *stopped* reporting (it reported before; silence from a
device never seen is the reporting ratio's business), and uncorrected ECC or XID errors that
*increase* (a count alone says nothing: many chips carry old errors for months).

State is small: one last-seen time and two last-known counters per accelerator, and a short
log of the increases seen within the error window (sparse: only chips whose counters moved).
What counts as too many errors, or silent for too long, is the alert rules' business.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import polars as pl

from collector import arrays, schemas

FloatArray = npt.NDArray[np.float64]
IndexArray = npt.NDArray[np.int64]

ERROR_COLUMNS = ("ecc_errors", "xid_errors")

# Recent errors per accelerator, only the chips whose counters grew within the window.
RECENT_ERRORS: schemas.Schema = {
    "accelerator_index": pl.UInt32,
    "recent_errors": pl.Float64,  # ECC + XID errors counted within the window
    "ecc_errors": pl.Float64,  # the last known cumulative counts
    "xid_errors": pl.Float64,
}


@dataclass(frozen=True)
class ValidatedErrors:
    frame: pl.DataFrame  # ACCELERATOR_ERRORS rows of known accelerators, bad values nulled
    accepted_samples: int
    rejections: dict[str, int]  # reason -> sample values rejected


def validate_errors(frame: pl.DataFrame, accelerators: int) -> ValidatedErrors:
    """Error counter rows that can be used, and the others counted by reason: a row whose
    index names no accelerator is ``unknown_entity``; a second row for one accelerator is a
    ``duplicate`` (the first wins); a count that is NaN or infinite is ``not_finite``, one
    below zero ``negative``, and becomes null (missing), never 0."""
    frame = schemas.conform(
        frame,
        schemas.ACCELERATOR_ERRORS,
        "accelerator error samples",
        lenient=("accelerator_index",),
    )
    present = pl.sum_horizontal(pl.col(c).is_not_null().cast(pl.UInt32) for c in ERROR_COLUMNS)
    index = pl.col("accelerator_index")
    unknown = index.is_null() | (index >= accelerators)
    # A strictly increasing index (what sources normally send) has no duplicates: only
    # otherwise pay for a hash of every index, as validate() does for the other samples.
    indexes = frame.get_column("accelerator_index")
    strictly_increasing = arrays.strictly_increasing(indexes)
    rejections: dict[str, int] = {}
    if strictly_increasing and (not frame.height or int(indexes[-1]) < accelerators):
        kept = frame  # no unknown or repeated index (the usual cycle): no per-row checks
    else:
        duplicate = (
            pl.lit(False)
            if strictly_increasing
            else ~unknown & ~pl.when(~unknown).then(index).is_first_distinct()
        )
        row_checks = {"unknown_entity": unknown, "duplicate": duplicate}
        flagged = frame.select(rows.any().alias(reason) for reason, rows in row_checks.items())
        for reason, rows in row_checks.items():
            if not flagged.get_column(reason).item():
                continue
            count = int(frame.filter(rows).select(present.sum()).item() or 0)
            if count:
                rejections[reason] = count
        # No row to drop: keep the frame as it is, no 2 M-row copy.
        dropped = any(flagged.get_column(reason).item() for reason in row_checks)
        kept = frame.filter(~unknown & ~duplicate) if dropped else frame
    valid = {c: pl.col(c).is_finite() & (pl.col(c) >= 0) for c in ERROR_COLUMNS}
    accepted_by_column = kept.select(valid[c].sum().alias(c) for c in ERROR_COLUMNS).row(0)
    accepted = sum(int(count) for count in accepted_by_column)
    present_values = sum(kept.height - kept.get_column(c).null_count() for c in ERROR_COLUMNS)
    if accepted == present_values:  # every count usable (the usual cycle): no rewrite
        return ValidatedErrors(kept, accepted, rejections)
    checks = kept.select(
        *(
            (pl.col(c).is_not_null() & ~pl.col(c).is_finite()).sum().alias(f"{c}:not_finite")
            for c in ERROR_COLUMNS
        ),
        *(
            (pl.col(c).is_finite() & (pl.col(c) < 0)).sum().alias(f"{c}:negative")
            for c in ERROR_COLUMNS
        ),
    ).row(0, named=True)
    for reason in ("not_finite", "negative"):
        count = sum(int(checks[f"{c}:{reason}"]) for c in ERROR_COLUMNS)
        if count:
            rejections[reason] = rejections.get(reason, 0) + count
    cleaned = kept.with_columns(pl.when(valid[c]).then(pl.col(c)).alias(c) for c in ERROR_COLUMNS)
    return ValidatedErrors(cleaned, accepted, rejections)


class AcceleratorHealth:
    """Last-seen times and error counters of every accelerator, advanced once per cycle."""

    def __init__(self, accelerators: int, error_window_seconds: float = 600.0) -> None:
        self.error_window_seconds = error_window_seconds
        self._last_seen = np.full(accelerators, np.nan)
        self._everyone_seen_at: float | None = None  # when every chip last reported at once
        self._counts = {column: np.full(accelerators, np.nan) for column in ERROR_COLUMNS}
        # (when, accelerator indexes, errors added): the increases within the window.
        self._increases: deque[tuple[float, IndexArray, FloatArray]] = deque()

    def observe(self, reporting: npt.NDArray[np.integer], errors: pl.DataFrame, now: float) -> None:
        """Record this cycle: the accelerators that reported, and their error counters
        (validated ACCELERATOR_ERRORS rows).

        A counter's first reading is its baseline (errors from before gigawatt watched are
        not news); a counter that went down was reset, and its new value is all new errors,
        as Prometheus counts a reset.
        """
        accelerators = self._last_seen.size
        reporting = np.asarray(reporting)
        if reporting.size == accelerators and arrays.is_identity(reporting):
            self._last_seen.fill(now)  # every chip, in order (the usual cycle): no scatter
            self._everyone_seen_at = now
        else:
            self._last_seen[reporting.astype(np.int64, copy=False)] = now
        if errors.height:
            index = errors["accelerator_index"].to_numpy().astype(np.int64)
            # Every chip in order (the usual cycle): the counters line up with the frame, so
            # no gather or scatter of millions of indexes.
            complete = index.size == accelerators and arrays.is_identity(index)
            rows: list[IndexArray] = []
            deltas: list[FloatArray] = []
            for column in ERROR_COLUMNS:
                value = errors[column].cast(pl.Float64).to_numpy()  # null: NaN
                known = self._counts[column]
                before = known if complete else known[index]
                # Only a counter that differs from the last known one (NaN differs from
                # everything) can add errors or update what is known: few chips a cycle.
                moved = np.flatnonzero(value != before)
                now_value, last_value = value[moved], before[moved]
                seen = np.isfinite(now_value)
                compared = seen & np.isfinite(last_value)
                delta = np.where(now_value >= last_value, now_value - last_value, now_value)
                rows.append(moved[compared])
                deltas.append(delta[compared])
                known[moved[seen] if complete else index[moved[seen]]] = now_value[seen]
            row = np.concatenate(rows)
            delta = np.concatenate(deltas)
            grew = delta > 0
            if grew.any():
                chips, position = np.unique(index[row[grew]], return_inverse=True)
                added: FloatArray = np.bincount(
                    position, weights=delta[grew], minlength=chips.size
                ).astype(np.float64, copy=False)
                self._increases.append((now, chips, added))
        horizon = now - self.error_window_seconds
        while self._increases and self._increases[0][0] <= horizon:
            self._increases.popleft()

    def any_silent(self, now: float) -> bool:
        """Whether some accelerator that reported before did not report at ``now``: without a
        pass over millions of chips when every one of them reported at ``now``."""
        if self._everyone_seen_at == now:
            return False
        return bool((self._last_seen < now).any())

    def silent_seconds(self, now: float) -> FloatArray:
        """Per accelerator: seconds since it last reported, for those that reported before
        but not in the cycle at ``now``; NaN for the others (reporting, or never seen)."""
        silent: FloatArray = np.where(self._last_seen < now, now - self._last_seen, np.nan)
        return silent

    def counts(self, column: str) -> FloatArray:
        """The last known cumulative count of each accelerator (NaN: never reported one)."""
        return self._counts[column]

    def recent_errors(self) -> pl.DataFrame:
        """RECENT_ERRORS: the accelerators whose counters grew within the window."""
        if not self._increases:
            return schemas.empty(RECENT_ERRORS)
        index = np.concatenate([entry[1] for entry in self._increases])
        added = np.concatenate([entry[2] for entry in self._increases])
        chips, position = np.unique(index, return_inverse=True)
        recent = np.bincount(position, weights=added, minlength=chips.size)
        return pl.DataFrame(
            {
                "accelerator_index": chips.astype(np.uint32),
                "recent_errors": recent,
                "ecc_errors": self._counts["ecc_errors"][chips],
                "xid_errors": self._counts["xid_errors"][chips],
            },
            schema=dict(RECENT_ERRORS),
        ).with_columns(pl.col("ecc_errors", "xid_errors").fill_nan(None))
