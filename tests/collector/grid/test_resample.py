"""Resampling onto a uniform grid: gaps, irregular intervals, duplicates and refused input."""

from __future__ import annotations

import numpy as np
import pytest

from collector.grid.resample import resample_uniform
from tests.collector.grid.signals import BASE, EPOCH, RATE, seconds


def test_gaps_are_reported_and_not_interpolated_across() -> None:
    t = EPOCH + seconds(100)
    t = np.concatenate((t[:1000], t[1400:]))  # 20 s missing after t[999]
    power = BASE + 1e6 * np.arange(t.size)
    series = resample_uniform(t, power, gap_multiple=5.0)
    (gap,) = series.sampling.gaps
    assert gap.start_seconds == t[999] and gap.end_seconds == t[1000]
    assert gap.duration_seconds == pytest.approx(20.05)
    assert len(series.segments) == 2
    first, second = series.segments
    assert first.end_seconds <= gap.start_seconds and second.start_seconds >= gap.end_seconds
    assert series.rate_hz == pytest.approx(RATE)


def test_irregular_sampling_and_duplicates_are_counted() -> None:
    t = seconds(60)
    jittered = t.copy()
    jittered[10:500:10] += 0.02  # 49 samples late by 40 % of the interval
    duplicated = np.insert(jittered, 5, jittered[5])
    series = resample_uniform(duplicated, np.full(duplicated.size, BASE))
    sampling = series.sampling
    assert sampling.duplicate_timestamps == 1
    assert sampling.irregular_intervals == 2 * 49  # the interval before and after each
    assert sampling.gaps == ()
    assert sampling.median_interval_seconds == pytest.approx(0.05)
    np.testing.assert_allclose(np.diff(series.segments[0].timestamps), 0.05)


def test_unsorted_or_non_finite_input_is_refused() -> None:
    with pytest.raises(ValueError, match="sorted"):
        resample_uniform([0.0, 2.0, 1.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="finite"):
        resample_uniform([0.0, 1.0, 2.0], [1.0, np.nan, 3.0])
    with pytest.raises(ValueError, match="two distinct"):
        resample_uniform([1.0, 1.0], [1.0, 2.0])
