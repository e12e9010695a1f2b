"""The dense-array helpers' shortcuts must answer what the long way answers."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from collector import arrays


@pytest.mark.parametrize(
    ("keys", "identity"),
    [
        ([], True),
        ([0], True),
        ([0, 1, 2, 3], True),
        ([1, 2, 3, 4], False),  # shifted
        ([0, 1, 1, 3], False),  # a repeat between the right ends
        ([0, 2, 1, 3], False),  # right ends, wrong order
        ([0, 1, 2], True),
        ([0, 0, 2], False),
        ([3, 2, 1, 0], False),
    ],
)
def test_is_identity(keys: list[int], identity: bool) -> None:
    values = np.asarray(keys, dtype=np.uint32)
    assert arrays.is_identity(values) is identity
    assert identity == bool(np.array_equal(values, np.arange(values.size)))


@pytest.mark.parametrize(
    ("keys", "increasing"),
    [([], True), ([5], True), ([1, 4, 9], True), ([1, 4, 4], False), ([2, 1], False)],
)
def test_strictly_increasing(keys: list[int], increasing: bool) -> None:
    assert arrays.strictly_increasing(pl.Series(keys, dtype=pl.UInt32)) is increasing


def test_strictly_increasing_is_false_with_a_null() -> None:
    assert arrays.strictly_increasing(pl.Series([0, None, 2], dtype=pl.UInt32)) is False


def reference_sum_by(values: np.ndarray, first: np.ndarray) -> np.ndarray:
    ends = np.append(first[1:], values.size)
    out = []
    for start, end in zip(first, ends, strict=True):
        part = values[start:end]
        part = part[np.isfinite(part)]
        out.append(part.sum() if part.size else np.nan)
    return np.asarray(out)


@pytest.mark.parametrize("holes", [0.0, 0.2, 1.0])
def test_sum_and_count_by_with_and_without_missing_children(holes: float) -> None:
    rng = np.random.default_rng(7)
    first = np.array([0, 3, 4, 9, 15], dtype=np.int64)
    values = rng.uniform(0.0, 10.0, 20)
    values[rng.random(values.size) < holes] = np.nan
    expected = reference_sum_by(values, first)
    np.testing.assert_allclose(arrays.sum_by(values, first), expected)
    counts = [np.isfinite(values[a:b]).sum() for a, b in zip(first, [3, 4, 9, 15, 20], strict=True)]
    assert arrays.count_by(values, first).tolist() == counts
