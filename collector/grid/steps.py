"""Steps: sustained level shifts that complete within a short transition."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from collector.grid.arrays import FloatArray, runs


@dataclass(frozen=True)
class Step:
    """A sustained level shift."""

    at_seconds: float  # middle of the transition
    delta_watts: float  # level after minus level before, sign kept
    # 10-90 % transition time measured on the samples; None where an oscillation or another
    # shift nearby scatters the samples too much to read it (the step is still reported).
    duration_seconds: float | None
    level_before_watts: float
    level_after_watts: float


def _hann_weighted_means(values: FloatArray, length: int) -> FloatArray:
    """Mean of every run of `length` consecutive values, weighted by a Hann taper: entry i
    covers values[i : i + length]. One FFT convolution for the whole series."""
    taper = np.sin(np.pi * (np.arange(length) + 0.5) / length) ** 2
    taper /= taper.sum()
    size = values.size + length - 1
    fft_size = 1 << (size - 1).bit_length()
    convolved = np.fft.irfft(np.fft.rfft(values, fft_size) * np.fft.rfft(taper, fft_size), fft_size)
    means: FloatArray = convolved[length - 1 : values.size]
    return means


def detect_steps(
    timestamps: npt.ArrayLike,
    watts: npt.ArrayLike,
    threshold_watts: float,
    within_seconds: float = 1.0,
    level_seconds: float = 20.0,
) -> tuple[Step, ...]:
    """Level shifts larger than `threshold_watts` across a transition of `within_seconds`, in
    time order, for a gap-free series (irregular timestamps are first interpolated onto a
    uniform grid at the median interval).

    At every sample, four Hann-weighted mean levels are taken over `level_seconds` each: two
    just before the transition interval centred on the sample, two just after. The near pair
    gives the shift; the slope within each pair (the smaller one, when both agree in sign)
    predicts how much of it a ramp would explain, and that is taken off, so a steady ramp
    never reads as a step. The Hann taper suppresses any oscillation with a period shorter
    than half the level window by more than 30 dB, so a training square wave is not a step
    every iteration. Where the shift exceeds the threshold, the step is placed in the middle
    of the stretch where the shift stays within 10 % of its largest value: within a sample or
    two of the true time for a clean step.

    Limits, at the defaults (20 s level windows): a shift that reverses within ~20 s (a short
    checkpoint dip) is placed up to a quarter of its length off and its size misestimated; a
    ramp steeper than ~170 MW/min leaves a residual above 50 MW where it starts and stops
    and is reported there; shifts within two level windows of either end are not judged.
    """
    times = np.asarray(timestamps, dtype=np.float64).ravel()
    power = np.asarray(watts, dtype=np.float64).ravel()
    if times.size < 4:
        return ()
    interval = float(np.median(np.diff(times)))
    if interval <= 0:
        return ()
    # Work relative to the first sample and value: keeps precision on a 1e9 W base.
    t = times - times[0]
    p = power - power[0]
    if np.max(np.abs(np.diff(t) - interval)) > 1e-3 * interval:
        uniform = np.arange(int(t[-1] / interval) + 1) * interval
        p = np.interp(uniform, t, p)
        t = uniform
    length = max(2, round(level_seconds / interval))
    guard = round(within_seconds / 2 / interval)
    first = guard + 2 * length
    stop = p.size - guard - 2 * length
    if stop <= first:
        return ()
    means = _hann_weighted_means(p, length)
    centre = np.arange(first, stop)
    before_far = means[centre - guard - 2 * length]
    before_near = means[centre - guard - length]
    after_near = means[centre + guard + 1]
    after_far = means[centre + guard + 1 + length]
    window = length * interval
    slope_before = (before_near - before_far) / window
    slope_after = (after_far - after_near) / window
    # The smaller slope when both agree in sign, else none ("minmod"): a ramp shows in both
    # pairs, while a step caught in one far window shows in only one and must not be taken
    # for a ramp (that would report a phantom step one level window before and after it).
    slope = np.where(
        slope_before * slope_after > 0,
        np.sign(slope_before) * np.minimum(np.abs(slope_before), np.abs(slope_after)),
        0.0,
    )
    # Distance between the centres of the two near windows.
    span = (2 * guard + 1 + length) * interval
    shift = (after_near - before_near) - slope * span
    before_level = before_near + slope * (guard + (length + 1) / 2) * interval

    magnitude = np.abs(shift)
    above = magnitude > threshold_watts
    if not np.any(above):
        return ()
    region_starts, region_stops = runs(above)
    candidates: list[tuple[int, int, int]] = []  # (plateau left, plateau right, peak)
    for start, region_stop in zip(region_starts, region_stops, strict=True):
        if start == 0 or region_stop == magnitude.size:
            # The region runs into the edge of what can be judged: its true peak may lie
            # beyond, and a shift seen half-developed would be misplaced and undersized. It
            # is judged when more data arrives (live) or not at all (an export's edges).
            continue
        peak = int(start + np.argmax(magnitude[start:region_stop]))
        low = magnitude[start:region_stop] < 0.9 * magnitude[peak]
        below_left = np.flatnonzero(low[: peak - start])
        below_right = np.flatnonzero(low[peak - start :])
        left = int(start + below_left[-1] + 1) if below_left.size else int(start)
        right = int(peak + below_right[0] - 1) if below_right.size else int(region_stop - 1)
        # Noise can split one shift's region in two: merge with the previous one when they
        # have the same sign and lie within a transition of each other.
        if candidates:
            previous_left, previous_right, previous_peak = candidates[-1]
            same_sign = np.sign(shift[peak]) == np.sign(shift[previous_peak])
            if same_sign and (left - previous_right) * interval <= within_seconds:
                best = peak if magnitude[peak] > magnitude[previous_peak] else previous_peak
                candidates[-1] = (previous_left, right, best)
                continue
        candidates.append((left, right, peak))

    steps = []
    for left, right, _ in candidates:
        middle = (left + right) // 2
        at = float(t[centre[left]] + t[centre[right]]) / 2
        delta = float(shift[middle])
        before = float(before_level[middle])
        duration = _transition_seconds(
            t, p, int(centre[middle]), guard, length, before, delta, float(slope[middle])
        )
        if duration is not None and duration > within_seconds + interval:
            continue  # measurably slower than a step: a fast ramp, judged by the ramp rates
        steps.append(
            Step(
                at_seconds=at + float(times[0]),
                delta_watts=delta,
                duration_seconds=duration,
                level_before_watts=before + float(power[0]),
                level_after_watts=before + delta + float(power[0]),
            )
        )
    return tuple(steps)


def _transition_seconds(
    t: FloatArray,
    p: FloatArray,
    centre: int,
    guard: int,
    length: int,
    before: float,
    delta: float,
    slope: float,
) -> float | None:
    """10-90 % transition time of a shift centred on sample `centre`: from the last sample
    still within 10 % of the old level to the first within 10 % of the new one. None when the
    samples scatter about the two level lines by more than a quarter of the shift (an
    oscillation or another shift nearby), where no transition time can be read."""
    start, stop = max(0, centre - guard - length), min(p.size, centre + guard + length + 1)
    near_t = t[start:stop]
    old_line = before + slope * (near_t - t[centre])
    progress = (p[start:stop] - old_line) / delta
    earlier = np.arange(start, stop) <= centre
    level_windows = np.abs(np.arange(start, stop) - centre) > guard
    scatter = np.where(earlier, progress, progress - 1.0)[level_windows]
    if float(np.sqrt(np.mean(scatter * scatter))) > 0.25:
        return None
    old = np.flatnonzero(earlier & (progress <= 0.1))
    new = np.flatnonzero(~earlier & (progress >= 0.9))
    first = near_t[old[-1]] if old.size else near_t[0]
    second = near_t[new[0]] if new.size else near_t[-1]
    return float(max(second - first, 0.0))
