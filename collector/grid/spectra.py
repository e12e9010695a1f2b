"""Spectra of a power series: Welch's PSD of one window (its dominant component and the share
of energy per band) and of sliding windows, with what the sample rate lets the analysis see.

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

from collector.grid.arrays import BoolArray, FloatArray
from collector.grid.config import DEFAULT_BANDS, Band

Visibility = Literal["visible", "partial", "not_visible"]

# Hann's main lobe is 4 bins wide (+-2 around the true frequency). A component closer than two
# bins to DC merges with the removed mean; a peak's energy lies within +-3 bins of its highest
# bin wherever the true frequency falls between bins.
_HANN_MAIN_LOBE_HALF_WIDTH_BINS = 2
_PEAK_ENERGY_HALF_WIDTH_BINS = 3
# Rows of segment spectra computed at once: bounds the temporary memory to ~32 MiB.
_SPECTRA_CHUNK_VALUES = 1 << 22


def segment_length(segment_seconds: float, rate_hz: float) -> int:
    return max(4, round(segment_seconds * rate_hz))


def bin_frequencies(nperseg: int, rate_hz: float) -> FloatArray:
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


def summarise_spectrum(
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
    nperseg = min(segment_length(segment_seconds, rate_hz), values.size)
    spectra = segment_spectra(values, nperseg, max(1, nperseg // 2), rate_hz)
    frequencies = bin_frequencies(nperseg, rate_hz)
    source = source_rate_hz if source_rate_hz is not None else rate_hz
    return summarise_spectrum(
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
    nperseg = segment_length(segment_seconds, rate_hz)
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
        frequencies_hz=bin_frequencies(nperseg, rate_hz),
        window_start_seconds=starts,
        window_end_seconds=starts + (window_length - 1) / rate_hz,
        psd=psd,
        welch_sum=welch_rows.sum(axis=0),
        welch_segments=int(welch_rows.shape[0]),
        timestamps=timestamps,
        samples=samples,
        rate_hz=rate_hz,
    )
