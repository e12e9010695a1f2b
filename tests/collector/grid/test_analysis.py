"""Grid analytics on synthetic signals of known content: sines, a training square wave,
constant and ramping loads, steps, gaps and bands the sample rate cannot see."""

from __future__ import annotations

import numpy as np
import pytest

from collector.grid.analysis import (
    BandSpectrum,
    OscillationResult,
    analyze,
    band_visibility,
    detect_steps,
    oscillation,
    oscillation_episodes,
    ramp_rates,
    resample_uniform,
    sliding_spectra,
    window_band_metrics,
)
from collector.grid.config import (
    DEFAULT_BANDS,
    Band,
    GridConfig,
    GridConfigError,
    parse_grid_config,
)

RATE = 20.0
BASE = 1.5e9
MW = 1e6
EPOCH = 1.76e9  # real meters stamp epoch seconds: keep the precision problems in the tests


def seconds(duration: float, rate: float = RATE) -> np.ndarray:
    return np.arange(round(duration * rate)) / rate


def noise(size: int, sigma: float = 1 * MW, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, sigma, size)


def training_square_wave(t: np.ndarray, period: float = 3.0, duty: float = 0.8) -> np.ndarray:
    """190 MW peak-to-peak on a 1.5 GW base: one synchronous job of ~500k chips."""
    return BASE + 190 * MW * (((t / period) % 1.0) < duty)


def band_named(result: OscillationResult, name: str) -> BandSpectrum:
    return next(band for band in result.bands if band.visibility.band == name)


# --- oscillation: frequency, amplitude, bands -----------------------------------------------


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


# --- episodes --------------------------------------------------------------------------------


def test_training_gives_a_sustained_critical_episode_at_its_fundamental() -> None:
    t = seconds(300)
    power = training_square_wave(t) + noise(t.size)
    episodes = oscillation_episodes(EPOCH + t, power, RATE, GridConfig())
    low = [episode for episode in episodes if episode.band == "0.1-1 Hz"]
    assert len(low) == 1
    assert low[0].dominant_frequency_hz == pytest.approx(1 / 3, abs=0.02)
    assert low[0].severity == "critical"  # 142 MW p-p fundamental > 3 % of 2,250 MW
    assert low[0].duration_seconds == pytest.approx(300, abs=1)
    assert "amplitude" in low[0].criteria


@pytest.mark.parametrize("sigma", [0.0, 1 * MW])
def test_constant_load_yields_no_episode_and_no_step(sigma: float) -> None:
    t = seconds(600)
    power = BASE + noise(t.size, sigma)
    assert oscillation_episodes(t, power, RATE, GridConfig()) == ()
    assert detect_steps(t, power, 50 * MW) == ()


def test_slow_ramp_yields_no_episode_and_no_step() -> None:
    t = seconds(600)
    power = BASE + 50 * MW * t / 600 + noise(t.size)  # 50 MW over 10 min
    assert oscillation_episodes(EPOCH + t, power, RATE, GridConfig()) == ()
    assert detect_steps(EPOCH + t, power, 50 * MW) == ()


def test_an_oscillation_must_be_sustained_to_be_an_episode() -> None:
    t = seconds(400)
    burst = (t >= 100) & (t < 115)
    power = BASE + 20 * MW * np.sin(2 * np.pi * 1.5 * t) * burst + noise(t.size)
    assert oscillation_episodes(t, power, RATE, GridConfig()) == ()


def test_an_oscillation_episode_starts_and_ends_near_the_truth() -> None:
    t = seconds(400)
    on = (t >= 100) & (t < 250)
    power = BASE + 20 * MW * np.sin(2 * np.pi * 1.5 * t) * on + noise(t.size)
    episodes = oscillation_episodes(t, power, RATE, GridConfig())
    assert [episode.band for episode in episodes] == ["1-3 Hz"]
    (episode,) = episodes
    half_window = GridConfig().window_seconds / 2
    assert abs(episode.start_seconds - 100) <= half_window
    assert abs(episode.end_seconds - 250) <= half_window
    assert episode.dominant_frequency_hz == pytest.approx(1.5, rel=0.02)
    assert episode.peak_to_peak_watts == pytest.approx(40 * MW, rel=0.05)
    assert episode.severity == "warn"  # 40 MW p-p: above 1 %, below 3 % of 2,250 MW


def test_energy_share_alone_makes_an_episode_when_the_peak_is_significant() -> None:
    t = seconds(300)
    # 10 MW p-p at 1.5 Hz: under the 22.5 MW amplitude warn level, but all the energy.
    power = BASE + 5 * MW * np.sin(2 * np.pi * 1.5 * t) + noise(t.size, 0.3 * MW)
    episodes = oscillation_episodes(t, power, RATE, GridConfig())
    assert [(episode.band, episode.criteria) for episode in episodes] == [
        ("1-3 Hz", ("energy_share",))
    ]
    assert episodes[0].max_energy_share > 0.9


def test_thresholds_come_from_the_config() -> None:
    t = seconds(300)
    power = BASE + 5 * MW * np.sin(2 * np.pi * 1.5 * t) + noise(t.size, 0.3 * MW)
    higher_floor = GridConfig(energy_share_min_peak_to_peak_ratio=0.01)  # 22.5 MW p-p
    assert oscillation_episodes(t, power, RATE, higher_floor) == ()
    longer = GridConfig(episode_min_seconds=400)
    assert oscillation_episodes(t, power, RATE, longer) == ()


# --- ramps and steps -------------------------------------------------------------------------


def test_ramp_rate_of_a_linear_ramp_is_exact() -> None:
    t = EPOCH + seconds(300)
    slope = 2.5 * MW  # W/s: 150 MW/min
    power = BASE + slope * (t - t[0])
    one_second, one_minute = ramp_rates(t, power, (1.0, 60.0))
    np.testing.assert_allclose(one_second.watts_per_second, slope, rtol=1e-6)
    np.testing.assert_allclose(one_minute.watts_per_second, slope, rtol=1e-6)
    assert one_minute.timestamps[0] == pytest.approx(t[0] + 120)
    down = ramp_rates(t, BASE - slope * (t - t[0]), (60.0,))[0]
    assert down.signed_watts_per_second == pytest.approx(-slope, rel=1e-6)
    assert down.max_abs_watts_per_second == pytest.approx(slope, rel=1e-6)


def test_a_60_mw_step_is_found_within_one_second_of_when_it_happened() -> None:
    t = EPOCH + seconds(600)
    when = EPOCH + 300.37
    power = BASE + 60 * MW * (t >= when) + noise(t.size)
    (step,) = detect_steps(t, power, 50 * MW, within_seconds=1.0)
    assert abs(step.at_seconds - when) <= 1.0
    assert step.delta_watts == pytest.approx(60 * MW, rel=0.05)
    assert step.duration_seconds is not None and step.duration_seconds <= 1.0
    assert step.level_before_watts == pytest.approx(BASE, abs=2 * MW)


def test_a_step_under_a_training_square_wave_is_found_and_the_wave_is_not() -> None:
    t = seconds(600)
    power = training_square_wave(t) - 60 * MW * (t >= 310.0) + noise(t.size)
    (step,) = detect_steps(t, power, 50 * MW)
    assert abs(step.at_seconds - 310.0) <= 1.0
    assert step.delta_watts == pytest.approx(-60 * MW, rel=0.05)


@pytest.mark.parametrize("period", [2.0, 3.0, 4.7, 10.0])
def test_training_iterations_are_not_steps(period: float) -> None:
    t = seconds(300)
    assert detect_steps(t, training_square_wave(t, period=period), 50 * MW) == ()


def test_small_or_slow_shifts_are_not_steps() -> None:
    t = seconds(600)
    small = BASE + 40 * MW * (t >= 300) + noise(t.size)
    slow = BASE + 60 * MW * np.clip((t - 300) / 5.0, 0, 1) + noise(t.size)  # over 5 s
    fast_ramp = BASE + 2.5 * MW * np.clip(t - 200, 0, 120) + noise(t.size)  # 150 MW/min
    for power in (small, slow, fast_ramp):
        assert detect_steps(t, power, 50 * MW) == ()


# --- sampling --------------------------------------------------------------------------------


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


# --- the whole analysis ----------------------------------------------------------------------


def test_analyze_a_training_hour_with_a_gap_a_start_and_a_drop() -> None:
    t = EPOCH + seconds(1200)
    power = training_square_wave(t - EPOCH) + noise(t.size)
    power += 60 * MW * (t >= EPOCH + 300)  # a second job starts
    power -= 200 * MW * (t >= EPOCH + 900)  # a failure: drop
    keep = (t < EPOCH + 600) | (t >= EPOCH + 630)  # 30 s of telemetry lost
    analysis = analyze(t[keep], power[keep], GridConfig())
    assert analysis.segments == 2
    assert len(analysis.sampling.gaps) == 1
    assert [round(step.at_seconds - EPOCH) for step in analysis.steps] == [300, 900]
    assert [round(drop.delta_watts / MW, -1) for drop in analysis.drops] == [-200]
    assert analysis.spectrum is not None
    assert analysis.spectrum.dominant_frequency_hz == pytest.approx(1 / 3, abs=0.01)
    one_minute = analysis.ramps[1]
    assert one_minute.window_seconds == 60
    assert one_minute.status == "critical"  # 200 MW within a minute
    low = [episode for episode in analysis.episodes if episode.band == "0.1-1 Hz"]
    assert len(low) == 2  # one per side of the gap
    # The episode on the second side is cut by the drop at 900 s and resumes after it.
    assert all(episode.severity == "critical" for episode in low)


# --- configuration ---------------------------------------------------------------------------


def test_an_empty_config_file_gives_the_documented_defaults() -> None:
    config = parse_grid_config("")
    assert config == GridConfig()
    assert config.window_seconds == 40.0
    assert config.ramps[1].warn_watts_per_second == pytest.approx(100 * MW / 60)
    assert config.step.threshold_watts == 50 * MW
    assert config.peak_to_peak_watts(config.bands[0].warn_peak_to_peak_ratio) == 22.5 * MW


def test_every_config_problem_is_listed_with_its_line() -> None:
    text = """\
rating_watts: -1
hop_seconds: 3
bands:
  - name: a
    low_hz: 2
    high_hz: 1
    warn_peak_to_peak_ratio: 0.02
    critical_peak_to_peak_ratio: 0.01
  - name: a
    low_hz: 0
    warn_peak_to_peak_ratio: 0.01
"""
    with pytest.raises(GridConfigError) as caught:
        parse_grid_config(text, "grid.yaml")
    assert [str(problem) for problem in caught.value.problems] == [
        "line 1: rating_watts: Input should be greater than 0"
    ]
    with pytest.raises(GridConfigError) as caught:
        parse_grid_config(text.replace("rating_watts: -1", "rating_watts: 1e9"), "grid.yaml")
    problems = [str(problem) for problem in caught.value.problems]
    assert problems == [
        "line 6: bands.0.high_hz: must be above low_hz",
        "line 8: bands.0.critical_peak_to_peak_ratio: is below the warn ratio",
        "line 9: bands.1.name: band 'a' appears twice",
        "line 2: hop_seconds: must divide half a segment (10 s) or be a multiple of it",
    ]
    assert str(caught.value).startswith("grid.yaml: 4 problem(s)")


def test_a_step_too_near_the_end_to_judge_is_left_out_not_misplaced() -> None:
    # 5 MW step against a 1.67 MW threshold, 30 s before the end: inside the last two level
    # windows, so it cannot be judged yet; half of it must not be reported 10 s early.
    rate = 20.0
    t = 1_780_000_000.0 + np.arange(int(130 * rate)) / rate
    p = 60e6 + 5e6 * (t >= t[0] + 100.0)
    assert detect_steps(t, p, threshold_watts=1.67e6) == ()
    # with 40 s more data it is judged, in the right place and at full size
    t_more = 1_780_000_000.0 + np.arange(int(170 * rate)) / rate
    p_more = 60e6 + 5e6 * (t_more >= t_more[0] + 100.0)
    (step,) = detect_steps(t_more, p_more, threshold_watts=1.67e6)
    assert step.at_seconds - t_more[0] == pytest.approx(100.0, abs=0.1)
    assert step.delta_watts == pytest.approx(5e6, rel=0.01)
