"""Spectra on synthetic signals of known content: sines, a training square wave, constant
loads and bands the sample rate cannot see."""

from __future__ import annotations

import numpy as np
import pytest

from collector.grid.config import DEFAULT_BANDS, Band, GridConfig
from collector.grid.resample import resample_uniform
from collector.grid.spectra import (
    BandSpectrum,
    OscillationResult,
    band_visibility,
    oscillation,
    sliding_spectra,
    window_band_metrics,
)
from tests.collector.grid.signals import BASE, MW, RATE, noise, seconds, training_square_wave


def band_named(result: OscillationResult, name: str) -> BandSpectrum:
    return next(band for band in result.bands if band.visibility.band == name)


@pytest.mark.parametrize(
    ("frequency", "peak_to_peak", "band"),
    [(0.33, 40 * MW, "0.1-1 Hz"), (1.5, 30 * MW, "1-3 Hz"), (4.0, 12 * MW, "3-10 Hz")],
)
def test_a_sine_gives_its_frequency_and_peak_to_peak_amplitude(
    frequency: float, peak_to_peak: float, band: str
) -> None:
    t = seconds(120)
    power = BASE + peak_to_peak / 2 * np.sin(2 * np.pi * frequency * t + 0.7) + noise(t.size)
    result = oscillation(power, RATE)
    assert result.dominant_frequency_hz is not None and result.peak_to_peak_watts is not None
    assert abs(result.dominant_frequency_hz - frequency) <= max(
        result.resolution_hz, 0.02 * frequency
    )
    assert result.peak_to_peak_watts == pytest.approx(peak_to_peak, rel=0.05)
    shares = {spectrum.visibility.band: spectrum.energy_share or 0.0 for spectrum in result.bands}
    assert max(shares, key=lambda name: shares[name]) == band
    assert shares[band] > 0.9


@pytest.mark.parametrize("frequency", [0.3, 0.317, 0.3333, 1.234, 2.71])
def test_amplitude_holds_between_bins(frequency: float) -> None:
    """Scalloping: a frequency between bins must not lose amplitude."""
    t = seconds(60)
    power = BASE + 10 * MW * np.sin(2 * np.pi * frequency * t)
    result = oscillation(power, RATE)
    assert result.dominant_frequency_hz == pytest.approx(frequency, rel=0.02)
    assert result.peak_to_peak_watts == pytest.approx(20 * MW, rel=0.05)


def test_training_square_wave_has_its_fundamental_and_harmonics_in_1_to_3_hz() -> None:
    t = seconds(600)
    power = training_square_wave(t) + noise(t.size)
    result = oscillation(power, RATE)
    assert result.dominant_frequency_hz == pytest.approx(1 / 3, abs=0.01)
    # The fundamental's true peak-to-peak (~2 x 2 x 190 / pi x sin(0.8 pi) = 142 MW, less as
    # sampled): 4 |X_k| / N from a DFT over exactly 200 periods.
    whole_periods = power[: 200 * 60]
    fundamental = np.fft.rfft(whole_periods - whole_periods.mean())[200]
    expected = 4 * abs(fundamental) / whole_periods.size
    assert expected == pytest.approx(142 * MW, rel=0.1)
    assert result.peak_to_peak_watts == pytest.approx(expected, rel=0.05)
    low = band_named(result, "0.1-1 Hz")
    harmonics = band_named(result, "1-3 Hz")
    assert low.energy_share is not None and low.energy_share > 0.6
    assert harmonics.energy_share is not None and harmonics.energy_share > 0.1
    assert harmonics.dominant_frequency_hz == pytest.approx(1.0, abs=0.05)


def test_shares_exclude_the_mean_and_sum_to_one_over_disjoint_bands() -> None:
    t = seconds(120)
    power = training_square_wave(t) + noise(t.size)
    bands = (
        Band(name="low", low_hz=0.0, high_hz=1.0, warn_peak_to_peak_ratio=0.01),
        Band(name="high", low_hz=1.0, high_hz=None, warn_peak_to_peak_ratio=0.01),
    )
    result = oscillation(power, RATE, bands=bands, trusted_fraction_of_nyquist=1.0)
    total = sum(band.energy_share or 0.0 for band in result.bands)
    assert total == pytest.approx(1.0, abs=1e-9)


def test_a_constant_signal_has_no_dominant_component() -> None:
    result = oscillation(np.full(2400, BASE), RATE)
    assert result.dominant_frequency_hz is None
    assert all(band.energy_share in (0.0, None) for band in result.bands)


def test_band_above_nyquist_at_5_hz_sampling_is_not_visible() -> None:
    t = seconds(120, rate=5.0)
    result = oscillation(BASE + 10 * MW * np.sin(2 * np.pi * 0.5 * t), 5.0)
    status = {band.visibility.band: band.visibility.status for band in result.bands}
    assert status == {
        "0.1-1 Hz": "visible",
        "1-3 Hz": "partial",  # 3 Hz is above Nyquist (2.5 Hz)
        "3-10 Hz": "not_visible",
        "10 Hz-Nyquist": "not_visible",
    }
    hidden = band_named(result, "3-10 Hz")
    assert hidden.energy_share is None
    assert "Nyquist" in hidden.visibility.reason


def test_at_20_hz_the_top_bands_are_partial_and_not_visible() -> None:
    seen = band_visibility(DEFAULT_BANDS, source_rate_hz=20.0, resolution_hz=0.05)
    assert [band.status for band in seen] == ["visible", "visible", "partial", "not_visible"]
    assert "attenuate" in seen[2].reason


def test_a_band_below_the_window_resolution_is_not_visible() -> None:
    bands = (
        Band(name="very low", low_hz=0.01, high_hz=0.1, warn_peak_to_peak_ratio=0.01),
        *DEFAULT_BANDS[:1],
    )
    seen = band_visibility(bands, source_rate_hz=20.0, resolution_hz=0.2)  # 5 s segments
    assert [band.status for band in seen] == ["not_visible", "partial"]
    assert "resolv" in seen[0].reason and "resolve" in seen[1].reason


def test_resampling_up_does_not_make_high_bands_visible() -> None:
    t = seconds(120, rate=5.0)
    series = resample_uniform(t, BASE + 10 * MW * np.sin(2 * np.pi * 0.5 * t), rate_hz=20.0)
    segment = series.segments[0]
    result = oscillation(segment.watts, 20.0, source_rate_hz=series.sampling.source_rate_hz)
    assert result.nyquist_hz == pytest.approx(2.5)
    assert band_named(result, "3-10 Hz").visibility.status == "not_visible"


def test_sliding_windows_match_a_single_window_welch() -> None:
    """The batched path (segment spectra shared between windows) is Welch's method."""
    t = seconds(200)
    power = training_square_wave(t) + noise(t.size)
    config = GridConfig()
    spectra = sliding_spectra(t, power, RATE, 20.0, 3, 5.0)
    assert spectra is not None
    window_samples = round(config.window_seconds * RATE)
    for window in (0, 7, spectra.psd.shape[0] - 1):
        start = window * 100
        single = oscillation(power[start : start + window_samples], RATE)
        np.testing.assert_allclose(spectra.psd[window], single.psd_watts2_per_hz, rtol=1e-9)
    metrics = window_band_metrics(spectra.frequencies_hz, spectra.psd, config.bands, RATE)
    assert np.all(metrics[0].energy_share > 0.6)
