"""Oscillation episodes: the stretches where a band of the sliding spectra stays above its
threshold for at least the minimum duration."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from collector.grid.arrays import BoolArray, FloatArray, runs
from collector.grid.config import GridConfig
from collector.grid.spectra import (
    BandMetrics,
    BandVisibility,
    SlidingSpectra,
    Visibility,
    band_visibility,
    sliding_spectra,
    window_band_metrics,
)


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
    run_starts, run_stops = runs(smoothed >= level)
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
        run_starts, run_stops = runs(flagged)
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
