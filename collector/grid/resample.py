"""A power series on a uniform grid, split at gaps, with a report of how it was sampled.

Pure functions of numpy arrays: timestamps in seconds (sorted), power in watts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from collector.grid.arrays import FloatArray


@dataclass(frozen=True)
class Gap:
    """An interval with no samples, longer than the configured multiple of the median."""

    start_seconds: float  # the last sample before it
    end_seconds: float  # the first sample after it

    @property
    def duration_seconds(self) -> float:
        return self.end_seconds - self.start_seconds


@dataclass(frozen=True)
class SamplingReport:
    """How the input was sampled, before resampling."""

    samples: int
    start_seconds: float
    end_seconds: float
    median_interval_seconds: float
    source_rate_hz: float  # 1 / the mean of the regular intervals
    min_interval_seconds: float
    max_interval_seconds: float
    # Intervals further than the tolerance from the median, gaps excluded.
    irregular_intervals: int
    irregular_ratio: float  # of all intervals
    duplicate_timestamps: int  # dropped, the first sample of each timestamp kept
    gaps: tuple[Gap, ...]


@dataclass(frozen=True)
class UniformSegment:
    """A gap-free stretch of the series on a uniform grid starting at its first sample."""

    timestamps: FloatArray
    watts: FloatArray

    @property
    def start_seconds(self) -> float:
        return float(self.timestamps[0])

    @property
    def end_seconds(self) -> float:
        return float(self.timestamps[-1])


# The most grid points one resampling makes (about 400 MB per float64 array): a week at 60 Hz
# fits; a mistyped rate is an error, not an allocation the machine cannot hold.
MAX_UNIFORM_SAMPLES = 50_000_000


@dataclass(frozen=True)
class UniformSeries:
    rate_hz: float
    segments: tuple[UniformSegment, ...]
    sampling: SamplingReport


def resample_uniform(
    timestamps: npt.ArrayLike,
    watts: npt.ArrayLike,
    rate_hz: float | None = None,
    gap_multiple: float = 5.0,
    irregular_tolerance_ratio: float = 0.25,
) -> UniformSeries:
    """The series linearly interpolated onto a uniform grid of `rate_hz` (default: the data's
    own rate, 1 / the mean regular interval), split into segments at every gap longer than
    `gap_multiple` median intervals: nothing is interpolated across a gap.

    Each segment's grid starts at its first sample and ends at or before its last. Repeated
    timestamps keep their first sample. Raises ValueError for fewer than two distinct
    timestamps, unsorted timestamps or non-finite values.
    """
    times = np.asarray(timestamps, dtype=np.float64).ravel()
    power = np.asarray(watts, dtype=np.float64).ravel()
    if times.shape != power.shape:
        raise ValueError(f"timestamps ({times.size}) and watts ({power.size}) differ in length")
    if not (np.all(np.isfinite(times)) and np.all(np.isfinite(power))):
        raise ValueError("timestamps and watts must be finite")
    intervals = np.diff(times)
    if np.any(intervals < 0):
        raise ValueError("timestamps must be sorted")
    repeated = intervals == 0
    duplicates = int(np.count_nonzero(repeated))
    if duplicates:
        keep = np.concatenate(([True], ~repeated))
        times, power = times[keep], power[keep]
        intervals = np.diff(times)
    if times.size < 2:
        raise ValueError("need at least two distinct timestamps")

    median_interval = float(np.median(intervals))
    is_gap = intervals > gap_multiple * median_interval
    is_irregular = ~is_gap & (
        np.abs(intervals - median_interval) > irregular_tolerance_ratio * median_interval
    )
    gap_after = np.flatnonzero(is_gap)
    gaps = tuple(Gap(float(times[i]), float(times[i + 1])) for i in gap_after)
    # The rate is 1 / the mean regular interval: on epoch timestamps (1e9 s, steps of 2e-7 s)
    # a single interval, and so the median, carries a rounding error of ~1e-5 at 20 Hz.
    regular = intervals[~is_gap & ~is_irregular]
    typical_interval = float(regular.mean()) if regular.size else median_interval
    sampling = SamplingReport(
        samples=int(times.size),
        start_seconds=float(times[0]),
        end_seconds=float(times[-1]),
        median_interval_seconds=median_interval,
        source_rate_hz=1.0 / typical_interval,
        min_interval_seconds=float(intervals.min()),
        max_interval_seconds=float(intervals.max()),
        irregular_intervals=int(np.count_nonzero(is_irregular)),
        irregular_ratio=float(np.count_nonzero(is_irregular)) / intervals.size,
        duplicate_timestamps=duplicates,
        gaps=gaps,
    )

    rate = float(rate_hz) if rate_hz is not None else sampling.source_rate_hz
    first = np.concatenate(([0], gap_after + 1))
    last = np.concatenate((gap_after, [times.size - 1]))
    # Grid points per segment: from its first sample, every 1/rate, up to its last sample.
    # The small tolerance keeps the last sample when the span is an exact multiple.
    spans = np.floor((times[last] - times[first]) * rate + 1e-6)
    points = float(spans.sum()) + spans.size
    if not points <= MAX_UNIFORM_SAMPLES:  # checked on floats: a huge rate overflows an int
        raise ValueError(
            f"resampling {sampling.end_seconds - sampling.start_seconds:g} s at {rate:g} Hz "
            f"makes {points:.3g} samples, over the limit of {MAX_UNIFORM_SAMPLES:,}"
        )
    counts = spans.astype(np.intp) + 1
    offsets = np.concatenate(([0], np.cumsum(counts)[:-1]))
    local = np.arange(int(counts.sum())) - np.repeat(offsets, counts)
    grid = np.repeat(times[first], counts) + local / rate
    # One interpolation for every segment: a grid point never lies beyond its segment's last
    # sample, so no value is drawn across a gap.
    values = np.interp(grid, times, power)
    bounds = np.cumsum(counts)[:-1]
    segments = tuple(
        UniformSegment(segment_times, segment_watts)
        for segment_times, segment_watts in zip(
            np.split(grid, bounds), np.split(values, bounds), strict=True
        )
    )
    return UniformSeries(rate_hz=rate, segments=segments, sampling=sampling)
