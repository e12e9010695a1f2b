"""Ramp rates: the change of a series' mean level per second over each window, sign kept."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from collector.grid.arrays import FloatArray


@dataclass(frozen=True)
class RampSeries:
    """Ramp rate over one window: at each time t (from 2 windows after the start), the mean
    level over (t - W, t] minus the mean over (t - 2W, t - W], divided by W, in W/s."""

    window_seconds: float
    timestamps: FloatArray
    watts_per_second: FloatArray
    max_abs_watts_per_second: float  # NaN when the series is shorter than two windows
    signed_watts_per_second: float  # the rate where |rate| is largest, sign kept
    at_seconds: float


def ramp_rates(
    timestamps: npt.ArrayLike, watts: npt.ArrayLike, windows: Sequence[float] = (1.0, 60.0)
) -> tuple[RampSeries, ...]:
    """Ramp rate series and its extreme, one per window, in the order given.

    Differences of window means rather than of raw samples: exact for a linear ramp, while an
    oscillation faster than the window averages out instead of reading as a ramp every
    iteration. Works on irregular timestamps (the running integral is interpolated).
    """
    times = np.asarray(timestamps, dtype=np.float64).ravel()
    power = np.asarray(watts, dtype=np.float64).ravel()
    if times.size < 2:
        return tuple(
            RampSeries(float(window), np.empty(0), np.empty(0), math.nan, math.nan, math.nan)
            for window in windows
        )
    # Running integral of power by the trapezoid rule, relative to the first sample so that
    # the differences keep their precision on a 1e9 W base.
    relative = power - power[0]
    integral = np.concatenate(
        ([0.0], np.cumsum(np.diff(times) * (relative[1:] + relative[:-1]) / 2))
    )
    results = []
    for window in windows:
        # A small tolerance keeps the sample exactly two windows in on a uniform grid.
        defined = times >= times[0] + 2 * window - 1e-9 * max(1.0, window)
        at = times[defined]
        rates = (
            integral[defined]
            - 2 * np.interp(at - window, times, integral)
            + np.interp(at - 2 * window, times, integral)
        ) / (window * window)
        if rates.size:
            index = int(np.argmax(np.abs(rates)))
            extreme, extreme_at = float(rates[index]), float(at[index])
        else:
            extreme, extreme_at = math.nan, math.nan
        results.append(
            RampSeries(
                window_seconds=float(window),
                timestamps=at,
                watts_per_second=rates,
                max_abs_watts_per_second=abs(extreme),
                signed_watts_per_second=extreme,
                at_seconds=extreme_at,
            )
        )
    return tuple(results)
