"""Grid-facing analytics of a power series: sampling, ramps, steps and oscillations.

Pure functions of numpy arrays: timestamps in seconds (sorted), power in watts. Nothing here
reads files, clocks or configuration files; `analyze` takes a GridConfig and returns a
GridAnalysis, and everything it reports comes from one of the functions below:

- resample_uniform: the series on a uniform grid, split at gaps, with a report of the sampling;
- ramp_rates: the change of the mean level per second over each window, sign kept;
- detect_steps: sustained level shifts that complete within a short transition;
- oscillation: Welch's PSD of one window, its dominant component and the share of energy per
  band, with what the sample rate lets the analysis see;
- sliding_spectra + window_band_metrics + episodes_from_windows (or oscillation_episodes in
  one call): the same per sliding window, and the episodes where a band stays above threshold.

Spectra are one-sided power spectral densities in W^2/Hz of the signal with its mean (and
linear trend) removed per segment, so a constant or slowly ramping load has no oscillation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from collector.grid.config import DEFAULT_BANDS, Band, GridConfig

FloatArray = npt.NDArray[np.float64]
IndexArray = npt.NDArray[np.intp]
BoolArray = npt.NDArray[np.bool_]

Visibility = Literal["visible", "partial", "not_visible"]

# Hann's main lobe is 4 bins wide (+-2 around the true frequency). A component closer than two
# bins to DC merges with the removed mean; a peak's energy lies within +-3 bins of its highest
# bin wherever the true frequency falls between bins.
_HANN_MAIN_LOBE_HALF_WIDTH_BINS = 2
_PEAK_ENERGY_HALF_WIDTH_BINS = 3
# Rows of segment spectra computed at once: bounds the temporary memory to ~32 MiB.
_SPECTRA_CHUNK_VALUES = 1 << 22


# --- sampling --------------------------------------------------------------------------------


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
    counts = np.floor((times[last] - times[first]) * rate + 1e-6).astype(np.intp) + 1
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


# --- ramps -----------------------------------------------------------------------------------


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


# --- steps -----------------------------------------------------------------------------------


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
    region_starts, region_stops = _runs(above)
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


# --- spectra ---------------------------------------------------------------------------------


def _segment_length(segment_seconds: float, rate_hz: float) -> int:
    return max(4, round(segment_seconds * rate_hz))


def _frequencies(nperseg: int, rate_hz: float) -> FloatArray:
    """Frequencies of the one-sided spectrum's bins, in Hz."""
    return np.arange(nperseg // 2 + 1, dtype=np.float64) * (rate_hz / nperseg)


def segment_spectra(samples: FloatArray, nperseg: int, stride: int, rate_hz: float) -> FloatArray:
    """One-sided PSD (W^2/Hz) of every segment of `nperseg` samples starting every `stride`
    samples, each with its mean and linear trend removed and a periodic Hann window applied.
    Shape (segments, nperseg // 2 + 1). Averaging rows is Welch's method.

    The density is normalised by the window's energy (sum of w^2), so summing it over a
    peak's bins times the bin width gives the component's mean square, A^2 / 2.
    """
    view = np.lib.stride_tricks.sliding_window_view(samples, nperseg)[::stride]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(nperseg) / nperseg)
    centred = np.arange(nperseg) - (nperseg - 1) / 2
    scale = 1.0 / (rate_hz * float(window @ window))
    bins = nperseg // 2 + 1
    spectra = np.empty((view.shape[0], bins))
    rows = max(1, _SPECTRA_CHUNK_VALUES // nperseg)
    for first in range(0, view.shape[0], rows):
        chunk = view[first : first + rows]
        mean = chunk.mean(axis=1, keepdims=True)
        slope = (chunk @ centred)[:, None] / float(centred @ centred)
        detrended = (chunk - mean - slope * centred) * window
        spectrum = np.fft.rfft(detrended, axis=1)
        spectra[first : first + rows] = spectrum.real**2 + spectrum.imag**2
    spectra *= scale
    # One-sided: every bin but DC (and Nyquist for an even length) holds both signs' energy.
    last = bins - 1 if nperseg % 2 == 0 else bins
    spectra[:, 1:last] *= 2
    return spectra


@dataclass(frozen=True)
class BandVisibility:
    """What the sample rate and the analysis window let us see of a band."""

    band: str
    low_hz: float
    high_hz: float  # the band's upper edge; Nyquist for an open band
    status: Visibility
    reason: str  # empty when visible


def band_visibility(
    bands: Sequence[Band],
    source_rate_hz: float,
    resolution_hz: float,
    trusted_fraction_of_nyquist: float = 0.8,
) -> tuple[BandVisibility, ...]:
    """Per band: not visible when it lies wholly above the Nyquist frequency of the data as
    measured (resampling adds nothing) or wholly below the lowest resolvable frequency (two
    bins, the Hann main lobe around DC); partially visible when it reaches above the trusted
    share of Nyquist, where meter filters attenuate, or starts below the lowest resolvable
    frequency; visible otherwise."""
    nyquist = source_rate_hz / 2
    trusted = trusted_fraction_of_nyquist * nyquist
    lowest = _HANN_MAIN_LOBE_HALF_WIDTH_BINS * resolution_hz
    result = []
    for band in bands:
        high = band.high_hz if band.high_hz is not None else nyquist
        status: Visibility = "visible"
        reason = ""
        # Tolerances: edges are decimal, bin frequencies binary fractions of a measured rate.
        if band.low_hz >= nyquist * (1 - 1e-6):
            status = "not_visible"
            reason = f"above the Nyquist frequency {nyquist:g} Hz of {source_rate_hz:g} Hz data"
        elif high <= lowest * (1 + 1e-6):
            status = "not_visible"
            reason = f"below the lowest resolvable frequency {lowest:g} Hz"
        else:
            reasons = []
            if high > trusted * (1 + 1e-6):
                reasons.append(
                    f"above {trusted:g} Hz ({trusted_fraction_of_nyquist:g} of Nyquist "
                    f"{nyquist:g} Hz) meter filters attenuate"
                )
            if band.low_hz < lowest * (1 - 1e-6):
                reasons.append(f"below {lowest:g} Hz the window cannot resolve")
            if reasons:
                status = "partial"
                reason = "; ".join(reasons)
        result.append(BandVisibility(band.name, band.low_hz, high, status, reason))
    return tuple(result)


@dataclass(frozen=True)
class BandMetrics:
    """Per-window figures for one band (arrays over windows)."""

    energy_share: FloatArray  # band energy / all energy above DC
    dominant_frequency_hz: FloatArray  # NaN where the band holds no spectral peak
    peak_to_peak_watts: FloatArray  # of the band's strongest peak; 0 where none
    has_peak: BoolArray  # a local maximum of the spectrum lies in the band


def _peak_metrics(
    frequencies: FloatArray,
    psd: FloatArray,
    first: int,
    stop: int,
    noise_floor: FloatArray,
) -> tuple[FloatArray, FloatArray, BoolArray]:
    """Strongest peak in bins [first, stop) of every row: (frequency, peak-to-peak, has_peak).

    The frequency is refined by a parabola through the log PSD of the peak bin and its
    neighbours (exact for a Gaussian lobe, close for Hann). The amplitude comes from the
    peak's energy: the PSD summed over +-3 bins, less the noise floor, times the bin width is
    A^2/2 whatever the window and wherever the frequency falls between bins.
    """
    rows = np.arange(psd.shape[0])
    bins = psd.shape[1]
    resolution = float(frequencies[1] - frequencies[0])
    peak = first + np.argmax(psd[:, first:stop], axis=1)
    centre = psd[rows, peak]
    left = psd[rows, peak - 1]
    right = np.where(peak + 1 < bins, psd[rows, np.minimum(peak + 1, bins - 1)], 0.0)
    has_peak = (centre > left) & (centre > right) & (centre > noise_floor)
    tiny = np.finfo(np.float64).tiny
    log_left = np.log(np.maximum(left, tiny))
    log_centre = np.log(np.maximum(centre, tiny))
    log_right = np.log(np.maximum(right, tiny))
    curvature = log_left - 2 * log_centre + log_right
    offset = np.divide(
        0.5 * (log_left - log_right),
        curvature,
        out=np.zeros_like(curvature),
        where=has_peak & (curvature < 0),
    )
    frequency = np.where(has_peak, (peak + np.clip(offset, -0.5, 0.5)) * resolution, np.nan)

    cumulative = np.concatenate((np.zeros((psd.shape[0], 1)), np.cumsum(psd, axis=1)), axis=1)
    lobe_first = np.maximum(peak - _PEAK_ENERGY_HALF_WIDTH_BINS, 1)
    lobe_stop = np.minimum(peak + _PEAK_ENERGY_HALF_WIDTH_BINS + 1, bins)
    lobe = cumulative[rows, lobe_stop] - cumulative[rows, lobe_first]
    energy = np.maximum(lobe - noise_floor * (lobe_stop - lobe_first), 0.0) * resolution
    has_peak &= energy > 0  # nothing left above the noise floor: no component
    frequency = np.where(has_peak, frequency, np.nan)
    peak_to_peak = np.where(has_peak, 2 * np.sqrt(2 * energy), 0.0)
    return frequency, peak_to_peak, has_peak


def _analysed_stop(frequencies: FloatArray, source_rate_hz: float) -> int:
    """Bins above the data's own Nyquist frequency hold only interpolation: leave them out."""
    return int(np.searchsorted(frequencies, source_rate_hz / 2, side="right"))


def window_band_metrics(
    frequencies: FloatArray,
    psd: FloatArray,
    bands: Sequence[Band],
    source_rate_hz: float,
) -> tuple[BandMetrics, ...]:
    """Energy share, strongest peak and its peak-to-peak amplitude of every band, for every row
    of `psd` (windows x bins). Energy excludes DC and bins above the data's own Nyquist."""
    stop_all = _analysed_stop(frequencies, source_rate_hz)
    cumulative = np.concatenate((np.zeros((psd.shape[0], 1)), np.cumsum(psd, axis=1)), axis=1)
    total = cumulative[:, stop_all] - cumulative[:, 1]
    # The median bin estimates the noise floor: a few peaks occupy a minority of the bins.
    noise_floor = np.median(psd[:, 1:stop_all], axis=1) if stop_all > 1 else np.zeros(len(psd))
    result = []
    for band in bands:
        high = band.high_hz if band.high_hz is not None else math.inf
        # A bin within a millionth of an edge belongs to the band above it, whatever the
        # rounding of a measured rate: bins are [low, high).
        first = max(1, int(np.searchsorted(frequencies, band.low_hz * (1 - 1e-6))))
        stop = min(stop_all, int(np.searchsorted(frequencies, high * (1 - 1e-6))))
        if band.high_hz is None or high >= frequencies[stop_all - 1] * (1 - 1e-6):
            stop = stop_all  # an open band, or one reaching Nyquist, keeps the Nyquist bin
        if stop <= first:
            empty = np.full(psd.shape[0], np.nan)
            result.append(
                BandMetrics(empty, empty, np.zeros(psd.shape[0]), np.zeros(len(psd), bool))
            )
            continue
        energy = cumulative[:, stop] - cumulative[:, first]
        share = np.divide(energy, total, out=np.zeros_like(total), where=total > 0)
        frequency, peak_to_peak, has_peak = _peak_metrics(
            frequencies, psd, first, stop, noise_floor
        )
        result.append(BandMetrics(share, frequency, peak_to_peak, has_peak))
    return tuple(result)


@dataclass(frozen=True)
class BandSpectrum:
    """One band of one spectrum. None where the band is not visible."""

    visibility: BandVisibility
    energy_share: float | None
    dominant_frequency_hz: float | None  # None also when the band holds no spectral peak
    peak_to_peak_watts: float | None


@dataclass(frozen=True)
class OscillationResult:
    """Welch's PSD of a window and what it says about oscillations."""

    frequencies_hz: FloatArray
    psd_watts2_per_hz: FloatArray
    resolution_hz: float  # bin spacing: rate / segment length
    lowest_resolvable_hz: float  # two bins: below, a component merges with the mean
    nyquist_hz: float  # of the data as measured
    segments_averaged: int
    # The strongest spectral peak at or above the lowest resolvable frequency; None when the
    # spectrum has no peak (a constant or linear signal).
    dominant_frequency_hz: float | None
    peak_to_peak_watts: float | None  # 2 x the amplitude of the dominant component
    bands: tuple[BandSpectrum, ...]


def _summarise_spectrum(
    frequencies: FloatArray,
    psd: FloatArray,
    bands: Sequence[Band],
    source_rate_hz: float,
    trusted_fraction_of_nyquist: float,
    segments: int,
) -> OscillationResult:
    resolution = float(frequencies[1] - frequencies[0])
    row = psd[None, :]
    visibility = band_visibility(bands, source_rate_hz, resolution, trusted_fraction_of_nyquist)
    metrics = window_band_metrics(frequencies, row, bands, source_rate_hz)
    stop_all = _analysed_stop(frequencies, source_rate_hz)
    lowest_bin = _HANN_MAIN_LOBE_HALF_WIDTH_BINS
    dominant: float | None = None
    peak_to_peak: float | None = None
    if stop_all > lowest_bin:
        floor = np.array([np.median(psd[1:stop_all])])
        frequency, amplitude, has_peak = _peak_metrics(
            frequencies, row, lowest_bin, stop_all, floor
        )
        if has_peak[0]:
            dominant, peak_to_peak = float(frequency[0]), float(amplitude[0])
    band_spectra = []
    for seen, metric in zip(visibility, metrics, strict=True):
        if seen.status == "not_visible":
            band_spectra.append(BandSpectrum(seen, None, None, None))
            continue
        band_has_peak = bool(metric.has_peak[0])
        band_spectra.append(
            BandSpectrum(
                seen,
                float(metric.energy_share[0]),
                float(metric.dominant_frequency_hz[0]) if band_has_peak else None,
                float(metric.peak_to_peak_watts[0]) if band_has_peak else None,
            )
        )
    return OscillationResult(
        frequencies_hz=frequencies,
        psd_watts2_per_hz=psd,
        resolution_hz=resolution,
        lowest_resolvable_hz=lowest_bin * resolution,
        nyquist_hz=source_rate_hz / 2,
        segments_averaged=segments,
        dominant_frequency_hz=dominant,
        peak_to_peak_watts=peak_to_peak,
        bands=tuple(band_spectra),
    )


def oscillation(
    samples: npt.ArrayLike,
    rate_hz: float,
    bands: Sequence[Band] = DEFAULT_BANDS,
    segment_seconds: float = 20.0,
    source_rate_hz: float | None = None,
    trusted_fraction_of_nyquist: float = 0.8,
) -> OscillationResult:
    """Welch's PSD of one window of uniform samples (Hann, 50 % overlap, segments of
    `segment_seconds`, shortened to the window when it is shorter) with its dominant frequency
    and peak-to-peak amplitude, and per band the energy share, the strongest peak and whether
    the band is visible. `source_rate_hz` is the rate the data was measured at when it was
    resampled to `rate_hz` (default: the same)."""
    values = np.asarray(samples, dtype=np.float64).ravel()
    if values.size < 4:
        raise ValueError("need at least four samples for a spectrum")
    nperseg = min(_segment_length(segment_seconds, rate_hz), values.size)
    spectra = segment_spectra(values, nperseg, max(1, nperseg // 2), rate_hz)
    frequencies = _frequencies(nperseg, rate_hz)
    source = source_rate_hz if source_rate_hz is not None else rate_hz
    return _summarise_spectrum(
        frequencies,
        spectra.mean(axis=0),
        bands,
        min(source, rate_hz),
        trusted_fraction_of_nyquist,
        spectra.shape[0],
    )


@dataclass(frozen=True)
class SlidingSpectra:
    """Welch PSDs of sliding windows over one uniform segment."""

    frequencies_hz: FloatArray
    window_start_seconds: FloatArray
    window_end_seconds: FloatArray
    psd: FloatArray  # windows x bins
    # Sum and count of the half-overlapping segment spectra, for a whole-record average.
    welch_sum: FloatArray
    welch_segments: int
    # The segment itself, for locating episodes in time.
    timestamps: FloatArray
    samples: FloatArray
    rate_hz: float


def sliding_spectra(
    timestamps: FloatArray,
    samples: FloatArray,
    rate_hz: float,
    segment_seconds: float = 20.0,
    segments_per_window: int = 3,
    hop_seconds: float = 5.0,
) -> SlidingSpectra | None:
    """Welch PSD of every window of `segments_per_window` half-overlapping segments, windows
    starting every `hop_seconds`. None when the segment is shorter than one window.

    Each segment spectrum is computed once, at a stride dividing both the hop and the half
    segment, and every window averages the rows it holds: one batched FFT for the series.
    """
    nperseg = _segment_length(segment_seconds, rate_hz)
    half = nperseg // 2
    window_length = (segments_per_window - 1) * half + nperseg
    if samples.size < window_length:
        return None
    hop = max(1, round(hop_seconds * rate_hz))
    stride = math.gcd(half, hop)
    spectra = segment_spectra(samples, nperseg, stride, rate_hz)
    windows = (samples.size - window_length) // hop + 1
    first_rows = np.arange(windows) * (hop // stride)
    psd = np.zeros((windows, spectra.shape[1]))
    for index in range(segments_per_window):
        psd += spectra[first_rows + index * (half // stride)]
    psd /= segments_per_window
    welch_rows = spectra[:: half // stride]
    starts = timestamps[np.arange(windows) * hop]
    return SlidingSpectra(
        frequencies_hz=_frequencies(nperseg, rate_hz),
        window_start_seconds=starts,
        window_end_seconds=starts + (window_length - 1) / rate_hz,
        psd=psd,
        welch_sum=welch_rows.sum(axis=0),
        welch_segments=int(welch_rows.shape[0]),
        timestamps=timestamps,
        samples=samples,
        rate_hz=rate_hz,
    )


# --- episodes --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Episode:
    """A stretch where one band stayed above a threshold for at least the minimum duration."""

    band: str
    start_seconds: float
    end_seconds: float
    dominant_frequency_hz: float  # median over the episode's windows
    peak_to_peak_watts: float  # largest over the episode's windows
    max_energy_share: float
    criteria: tuple[str, ...]  # "energy_share", "amplitude": which thresholds were crossed
    severity: Literal["warn", "critical"]
    visibility: Visibility

    @property
    def duration_seconds(self) -> float:
        return self.end_seconds - self.start_seconds


def _runs(flags: BoolArray) -> tuple[IndexArray, IndexArray]:
    """[start, stop) indices of every run of True."""
    edges = np.diff(flags.astype(np.int8), prepend=np.int8(0), append=np.int8(0))
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)


def _bridge(flags: BoolArray, unjudged: BoolArray) -> BoolArray:
    """Unjudged windows take True when the judged windows on both sides are True, False
    otherwise: a transient neither starts an episode nor breaks one."""
    judged = flags & ~unjudged
    index = np.arange(flags.size)
    last_judged = np.maximum.accumulate(np.where(~unjudged, index, -1))
    next_judged = np.minimum.accumulate(np.where(~unjudged, index, flags.size)[::-1])[::-1]
    before = np.where(last_judged >= 0, judged[np.maximum(last_judged, 0)], False)
    after = np.where(
        next_judged < flags.size, judged[np.minimum(next_judged, flags.size - 1)], False
    )
    bridged: BoolArray = np.where(unjudged, before & after, judged)
    return bridged


def _moving_average(values: FloatArray, length: int) -> FloatArray:
    """Centred moving average over `length` samples, over fewer at the ends."""
    cumulative = np.concatenate(([0.0], np.cumsum(values)))
    index = np.arange(values.size)
    low = np.maximum(index - length // 2, 0)
    high = np.minimum(index + (length - length // 2), values.size)
    averaged: FloatArray = (cumulative[high] - cumulative[low]) / (high - low)
    return averaged


def _sustained_stretches(
    times: FloatArray,
    values: FloatArray,
    rate_hz: float,
    low_hz: float,
    high_hz: float,
    smoothing_seconds: float,
) -> list[tuple[float, float]]:
    """Stretches where the band's oscillation holds at least half its typical size.

    The band-limited analytic signal (FFT, the band's positive frequencies only) gives the
    component's peak-to-peak envelope sample by sample; it is smoothed over
    `smoothing_seconds`, which evens out beats between harmonics, and compared with half its
    90th percentile: for a burst that is the half-height of its edges, whatever its size.
    """
    count = values.size
    centred = np.arange(count) - (count - 1) / 2
    # Elementwise sums, not BLAS: waking BLAS threads costs milliseconds per call here.
    slope = float(np.sum(values * centred)) / float(np.sum(centred * centred))
    detrended = values - values.mean() - slope * centred
    spectrum = np.fft.rfft(detrended)
    frequencies = np.arange(spectrum.size) * (rate_hz / count)
    keep = (frequencies >= low_hz * (1 - 1e-6)) & (frequencies < high_hz * (1 + 1e-6))
    keep[0] = False
    analytic_spectrum = np.zeros(count, dtype=np.complex128)
    analytic_spectrum[: spectrum.size] = np.where(keep, 2 * spectrum, 0)
    envelope = 2 * np.abs(np.fft.ifft(analytic_spectrum))
    smoothed = _moving_average(envelope, max(1, round(smoothing_seconds * rate_hz)))
    level = 0.5 * float(np.percentile(smoothed, 90))
    if level <= 0:
        return []
    run_starts, run_stops = _runs(smoothed >= level)
    return [
        (float(times[start]), float(times[stop - 1]))
        for start, stop in zip(run_starts, run_stops, strict=True)
    ]


def episodes_from_windows(
    spectra: SlidingSpectra,
    metrics: Sequence[BandMetrics],
    visibility: Sequence[BandVisibility],
    config: GridConfig,
    transient_seconds: Sequence[float] = (),
) -> tuple[Episode, ...]:
    """Episodes of every visible band, in time order.

    A window counts for a band when the band holds a spectral peak (a coherent component, not
    a slope of noise or of a step) and either its energy share exceeds the share threshold
    while the peak is at least the significance floor, or the peak's peak-to-peak amplitude
    exceeds the band's warn level. Windows holding a transient (a detected step) are not
    judged, neither starting nor breaking a run: a step spreads energy over the low bins of
    every window that sees it.

    A run of windows only says an oscillation lies somewhere within them (a 15 s burst
    lights up 40 s windows for ~50 s). Within the run, the band's own envelope places it to
    the second: each stretch where the band-limited component holds at least half its size
    for `episode_min_seconds` or longer is an episode, described by the windows centred in it.
    """
    starts, ends = spectra.window_start_seconds, spectra.window_end_seconds
    if starts.size == 0:
        return ()
    centres = (starts + ends) / 2
    transients = np.sort(np.asarray(transient_seconds, dtype=np.float64))
    unjudged = np.searchsorted(transients, ends, side="right") > np.searchsorted(
        transients, starts, side="left"
    )
    share_floor = config.peak_to_peak_watts(config.energy_share_min_peak_to_peak_ratio)
    times, samples, rate = spectra.timestamps, spectra.samples, spectra.rate_hz
    episodes: list[Episode] = []
    for band, metric, seen in zip(config.bands, metrics, visibility, strict=True):
        if seen.status == "not_visible":
            continue
        warn = config.peak_to_peak_watts(band.warn_peak_to_peak_ratio)
        by_share = (
            metric.has_peak
            & (metric.energy_share > config.energy_share_threshold_ratio)
            & (metric.peak_to_peak_watts >= share_floor)
        )
        by_amplitude = metric.has_peak & (metric.peak_to_peak_watts > warn)
        flagged = _bridge(by_share | by_amplitude, unjudged)
        run_starts, run_stops = _runs(flagged)
        for first, stop in zip(run_starts, run_stops, strict=True):
            if ends[stop - 1] - starts[first] < config.episode_min_seconds:
                continue
            low = int(np.searchsorted(times, starts[first], side="left"))
            high = int(np.searchsorted(times, ends[stop - 1], side="right"))
            stretches = _sustained_stretches(
                times[low:high],
                samples[low:high],
                rate,
                band.low_hz,
                min(seen.high_hz, rate / 2),
                config.segment_seconds / 2,  # a period of the lowest resolvable frequency
            )
            run = np.arange(first, stop)
            run = run[flagged[run] & ~unjudged[run]]
            for start_seconds, end_seconds in stretches:
                if end_seconds - start_seconds < config.episode_min_seconds:
                    continue
                inside = run[(centres[run] >= start_seconds) & (centres[run] <= end_seconds)]
                described = inside if inside.size else run
                if described.size == 0:
                    continue
                peak_to_peak = float(metric.peak_to_peak_watts[described].max())
                criteria = tuple(
                    name
                    for name, hits in (("energy_share", by_share), ("amplitude", by_amplitude))
                    if np.any(hits[described])
                )
                critical = band.critical_peak_to_peak_ratio
                severe = critical is not None and peak_to_peak > config.peak_to_peak_watts(critical)
                episodes.append(
                    Episode(
                        band=band.name,
                        start_seconds=start_seconds,
                        end_seconds=end_seconds,
                        dominant_frequency_hz=float(
                            np.nanmedian(metric.dominant_frequency_hz[described])
                        ),
                        peak_to_peak_watts=peak_to_peak,
                        max_energy_share=float(metric.energy_share[described].max()),
                        criteria=criteria,
                        severity="critical" if severe else "warn",
                        visibility=seen.status,
                    )
                )
    episodes.sort(key=lambda episode: (episode.start_seconds, episode.band))
    return tuple(episodes)


def oscillation_episodes(
    timestamps: npt.ArrayLike,
    watts: npt.ArrayLike,
    rate_hz: float,
    config: GridConfig,
    source_rate_hz: float | None = None,
    transient_seconds: Sequence[float] = (),
) -> tuple[Episode, ...]:
    """Episodes over a sliding window of one uniform, gap-free series (see
    episodes_from_windows); none when the series is shorter than one window."""
    times = np.asarray(timestamps, dtype=np.float64).ravel()
    values = np.asarray(watts, dtype=np.float64).ravel()
    spectra = sliding_spectra(
        times,
        values,
        rate_hz,
        config.segment_seconds,
        config.segments_per_window,
        config.hop_seconds,
    )
    if spectra is None:
        return ()
    source = min(source_rate_hz if source_rate_hz is not None else rate_hz, rate_hz)
    resolution = float(spectra.frequencies_hz[1])
    visibility = band_visibility(
        config.bands, source, resolution, config.trusted_fraction_of_nyquist
    )
    metrics = window_band_metrics(spectra.frequencies_hz, spectra.psd, config.bands, source)
    return episodes_from_windows(spectra, metrics, visibility, config, transient_seconds)


# --- the whole analysis ----------------------------------------------------------------------


@dataclass(frozen=True)
class RampSummary:
    window_seconds: float
    max_abs_watts_per_second: float | None  # None when no segment spans two windows
    signed_watts_per_second: float | None
    at_seconds: float | None
    warn_watts_per_second: float | None
    critical_watts_per_second: float | None
    seconds_above_warn: float
    seconds_above_critical: float
    status: Literal["ok", "warn", "critical", "not_judged"]


@dataclass(frozen=True)
class GridAnalysis:
    """Everything `gigawatt grid analyze` reports."""

    sampling: SamplingReport
    analysis_rate_hz: float
    segments: int
    ramps: tuple[RampSummary, ...]
    steps: tuple[Step, ...]
    drops: tuple[Step, ...]  # steps down beyond the drop rule: uncommanded-drop candidates
    spectrum: OscillationResult | None  # the whole record, Welch-averaged over all segments
    episodes: tuple[Episode, ...]
    window_seconds: float
    hop_seconds: float
    windows_analysed: int
    seconds_too_short_for_windows: float  # in segments shorter than one window
    notes: tuple[str, ...]


def _summarise_ramps(
    per_segment: Sequence[tuple[RampSeries, ...]], config: GridConfig, rate_hz: float
) -> tuple[RampSummary, ...]:
    summaries = []
    for index, limit in enumerate(config.ramps):
        series = [ramps[index] for ramps in per_segment if ramps[index].watts_per_second.size]
        warn, critical = limit.warn_watts_per_second, limit.critical_watts_per_second
        if not series:
            summaries.append(
                RampSummary(
                    limit.window_seconds, None, None, None, warn, critical, 0.0, 0.0, "not_judged"
                )
            )
            continue
        extreme = max(series, key=lambda ramp: ramp.max_abs_watts_per_second)
        magnitudes = np.concatenate([np.abs(ramp.watts_per_second) for ramp in series])
        above_warn = float(np.count_nonzero(magnitudes > warn)) / rate_hz if warn else 0.0
        above_critical = (
            float(np.count_nonzero(magnitudes > critical)) / rate_hz if critical else 0.0
        )
        status: Literal["ok", "warn", "critical", "not_judged"] = "ok"
        if critical is not None and extreme.max_abs_watts_per_second > critical:
            status = "critical"
        elif warn is not None and extreme.max_abs_watts_per_second > warn:
            status = "warn"
        elif warn is None and critical is None:
            status = "not_judged"
        summaries.append(
            RampSummary(
                window_seconds=limit.window_seconds,
                max_abs_watts_per_second=extreme.max_abs_watts_per_second,
                signed_watts_per_second=extreme.signed_watts_per_second,
                at_seconds=extreme.at_seconds,
                warn_watts_per_second=warn,
                critical_watts_per_second=critical,
                seconds_above_warn=above_warn,
                seconds_above_critical=above_critical,
                status=status,
            )
        )
    return tuple(summaries)


def analyze(timestamps: npt.ArrayLike, watts: npt.ArrayLike, config: GridConfig) -> GridAnalysis:
    """Sampling, ramps, steps, drops, the whole-record spectrum and oscillation episodes of one
    meter's series (sorted, finite; see resample_uniform for what is refused)."""
    series = resample_uniform(
        timestamps,
        watts,
        config.sample_rate_hz,
        config.gap_multiple,
        config.irregular_tolerance_ratio,
    )
    rate = series.rate_hz
    source_rate = min(series.sampling.source_rate_hz, rate)
    windows = [limit.window_seconds for limit in config.ramps]
    nperseg = _segment_length(config.segment_seconds, rate)
    notes: list[str] = []
    if source_rate < rate * 0.99:
        notes.append(
            f"data measured at {source_rate:g} Hz was resampled to {rate:g} Hz: nothing above "
            f"{source_rate / 2:g} Hz is analysed"
        )

    ramps_per_segment = []
    steps: list[Step] = []
    drops: list[Step] = []
    episodes: list[Episode] = []
    welch_sum: FloatArray | None = None
    welch_segments = 0
    windows_analysed = 0
    too_short = 0.0
    frequencies: FloatArray | None = None
    for segment in series.segments:
        t, p = segment.timestamps, segment.watts
        ramps_per_segment.append(ramp_rates(t, p, windows))
        segment_steps = detect_steps(
            t,
            p,
            config.step.threshold_watts,
            config.step.within_seconds,
            config.step.level_seconds,
        )
        steps.extend(segment_steps)
        segment_drops = [
            step
            for step in detect_steps(
                t,
                p,
                config.drop.threshold_watts,
                config.drop.within_seconds,
                config.drop.level_seconds,
            )
            if step.delta_watts < 0
        ]
        drops.extend(segment_drops)
        transients = [step.at_seconds for step in (*segment_steps, *segment_drops)]
        spectra = sliding_spectra(
            t, p, rate, config.segment_seconds, config.segments_per_window, config.hop_seconds
        )
        if spectra is None:
            too_short += segment.end_seconds - segment.start_seconds
            if p.size >= nperseg:  # still long enough for whole-record Welch segments
                rows = segment_spectra(p, nperseg, max(1, nperseg // 2), rate)
                welch_sum = rows.sum(axis=0) if welch_sum is None else welch_sum + rows.sum(0)
                welch_segments += rows.shape[0]
                frequencies = _frequencies(nperseg, rate)
            continue
        frequencies = spectra.frequencies_hz
        welch_sum = spectra.welch_sum if welch_sum is None else welch_sum + spectra.welch_sum
        welch_segments += spectra.welch_segments
        windows_analysed += spectra.window_start_seconds.size
        visibility = band_visibility(
            config.bands,
            source_rate,
            float(spectra.frequencies_hz[1]),
            config.trusted_fraction_of_nyquist,
        )
        metrics = window_band_metrics(
            spectra.frequencies_hz, spectra.psd, config.bands, source_rate
        )
        episodes.extend(episodes_from_windows(spectra, metrics, visibility, config, transients))

    spectrum: OscillationResult | None = None
    if welch_sum is not None and frequencies is not None:
        spectrum = _summarise_spectrum(
            frequencies,
            welch_sum / welch_segments,
            config.bands,
            source_rate,
            config.trusted_fraction_of_nyquist,
            welch_segments,
        )
    else:
        longest = max(series.segments, key=lambda segment: segment.watts.size)
        if longest.watts.size >= 8:
            spectrum = oscillation(
                longest.watts,
                rate,
                config.bands,
                config.segment_seconds,
                source_rate,
                config.trusted_fraction_of_nyquist,
            )
            notes.append(
                f"no gap-free stretch reaches one {config.segment_seconds:g} s segment: the "
                f"spectrum uses the longest ({longest.watts.size} samples) at a coarser "
                f"{spectrum.resolution_hz:g} Hz resolution"
            )
        else:
            notes.append("too few samples for a spectrum")
    if too_short > 0:
        notes.append(
            f"{too_short:g} s of data lie in stretches shorter than one "
            f"{config.window_seconds:g} s window: not searched for oscillation episodes"
        )
    episodes.sort(key=lambda episode: (episode.start_seconds, episode.band))
    return GridAnalysis(
        sampling=series.sampling,
        analysis_rate_hz=rate,
        segments=len(series.segments),
        ramps=_summarise_ramps(ramps_per_segment, config, rate),
        steps=tuple(steps),
        drops=tuple(drops),
        spectrum=spectrum,
        episodes=tuple(episodes),
        window_seconds=config.window_seconds,
        hop_seconds=config.hop_seconds,
        windows_analysed=windows_analysed,
        seconds_too_short_for_windows=too_short,
        notes=tuple(notes),
    )
