"""Dense per-entity arrays: the bridge between sample frames and numpy reductions.

Topology indexes are dense and children are contiguous, so a frame of samples can be
scattered onto one array per level (NaN where an entity is silent) and reduced per parent
with ``np.*.reduceat`` over the parent's first-child offsets.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import polars as pl

FloatArray = npt.NDArray[np.float64]


def is_identity(keys: npt.NDArray[np.integer]) -> bool:
    """Whether keys are 0, 1, 2, ... (a frame that holds every entity in index order)."""
    # n strictly increasing integers from 0 to n - 1 can only be 0, 1, ..., n - 1: one
    # comparison of neighbours, no n-long range built to compare against.
    if keys.size == 0:
        return True
    if keys[0] != 0 or keys[-1] != keys.size - 1:
        return False
    return bool((keys[1:] > keys[:-1]).all())


def strictly_increasing(keys: pl.Series) -> bool:
    """Whether a key column has no null and each key is above the one before (so none repeats):
    what sources normally send, and what spares a hash of every key. Compared in the column's
    own type, without a widened copy."""
    if keys.null_count():
        return False
    values = keys.to_numpy()
    return bool((values[1:] > values[:-1]).all())


def dense(frame: pl.DataFrame, key: str, column: str, entities: int) -> FloatArray:
    """A column scattered onto every entity by its index, NaN where the entity is missing."""
    source = frame.get_column(column).cast(pl.Float64).to_numpy()
    keys = frame.get_column(key).to_numpy()
    if frame.height == entities and is_identity(keys):
        return source  # complete and in order, the usual case: no scatter
    values = np.full(entities, np.nan)
    if frame.height:
        values[keys] = source
    return values


def sum_by(values: FloatArray, first_child: npt.NDArray[np.integer]) -> FloatArray:
    """Per parent: the sum of its children's finite values; NaN when none is finite."""
    total: FloatArray = np.add.reduceat(values, first_child)
    if np.isfinite(total).all():
        return total  # no NaN anywhere (a NaN makes its parent's sum NaN): one pass
    finite = np.isfinite(values)
    total = np.add.reduceat(np.where(finite, values, 0.0), first_child)
    return np.where(np.add.reduceat(finite, first_child) > 0, total, np.nan)


def count_by(values: FloatArray, first_child: npt.NDArray[np.integer]) -> npt.NDArray[np.int64]:
    """Per parent: how many of its children have a finite value."""
    finite = np.isfinite(values)
    if finite.all():  # every child counts: the sizes of the ranges, no reduction
        return np.diff(first_child, append=values.size).astype(np.int64)
    counts: npt.NDArray[np.int64] = np.add.reduceat(finite.astype(np.int64), first_child)
    return counts


def max_by(values: FloatArray, first_child: npt.NDArray[np.integer]) -> FloatArray:
    """Per parent: the largest finite child value (NaN is skipped); NaN when none."""
    maxima: FloatArray = np.fmax.reduceat(values, first_child)
    return maxima


def series(name: str, values: FloatArray) -> pl.Series:
    """A Float64 series with NaN as null: missing, never a number."""
    return pl.Series(name, values, dtype=pl.Float64, nan_to_null=True)
