"""Grid-facing analytics of one meter's power series: `analyze` takes a GridConfig and returns
a GridAnalysis composed from the analyses of its own modules:

- collector.grid.resample: the series on a uniform grid, split at gaps, with a report of the
  sampling (resample_uniform);
- collector.grid.ramps: the change of the mean level per second over each window, sign kept
  (ramp_rates);
- collector.grid.steps: sustained level shifts that complete within a short transition
  (detect_steps);
- collector.grid.spectra: Welch's PSD of one window, its dominant component and the share of
  energy per band, with what the sample rate lets the analysis see (oscillation), and the same
  per sliding window (sliding_spectra, window_band_metrics);
- collector.grid.episodes: the episodes where a band stays above threshold
  (episodes_from_windows, or oscillation_episodes in one call).

Pure functions of numpy arrays: timestamps in seconds (sorted), power in watts. Nothing here
reads files, clocks or configuration files.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from collector.grid.arrays import FloatArray
from collector.grid.config import GridConfig
from collector.grid.episodes import Episode, episodes_from_windows
from collector.grid.ramps import RampSeries, ramp_rates
from collector.grid.resample import SamplingReport, resample_uniform
from collector.grid.spectra import (
    OscillationResult,
    band_visibility,
    bin_frequencies,
    oscillation,
    segment_length,
    segment_spectra,
    sliding_spectra,
    summarise_spectrum,
    window_band_metrics,
)
from collector.grid.steps import Step, detect_steps


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
    nperseg = segment_length(config.segment_seconds, rate)
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
                frequencies = bin_frequencies(nperseg, rate)
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
        spectrum = summarise_spectrum(
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
