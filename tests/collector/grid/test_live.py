"""The live fast path: rings fed cycle by cycle, events counted once, meters judged at their
own rating."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from collector.grid.config import GridConfig, scaled_to_rating
from collector.grid.live import SPECTRUM_MIN_SEGMENTS, GridMonitor, validate_meters

START = 1_780_000_000.0
RATE = 20.0


def chunk(meter: str, start: float, seconds: float, level: np.ndarray | float) -> pl.DataFrame:
    times = start + np.arange(1, int(seconds * RATE) + 1) / RATE
    watts = np.broadcast_to(level, times.shape).astype(float)
    return pl.DataFrame(
        {"meter": [meter] * times.size, "timestamp_seconds": times, "power_watts": watts}
    )


def feed(monitor: GridMonitor, meter: str, signal, seconds: float, every: float = 10.0):
    """Feed `signal(t)` in cycles of `every` seconds; return the frames of each cycle."""
    frames = []
    for n in range(int(seconds / every)):
        start = START + n * every
        times = start + np.arange(1, int(every * RATE) + 1) / RATE
        frames.append(monitor.update(chunk(meter, start, every, signal(times))))
    return frames


def steps(frames, meter: str, direction: str) -> float:
    table = frames.steps
    return table.filter((pl.col("meter") == meter) & (pl.col("direction") == direction))["steps"][0]


def test_a_step_is_counted_once_although_every_cycle_sees_it_again() -> None:
    rng = np.random.default_rng(0)
    monitor = GridMonitor(GridConfig())

    def signal(t: np.ndarray) -> np.ndarray:
        return 1.5e9 + 60e6 * (t >= START + 100.0) + rng.normal(0, 1e6, t.size)

    frames = feed(monitor, "poi", signal, seconds=300)
    last = frames[-1]
    assert steps(last, "poi", "up") == 1
    assert steps(last, "poi", "down") == 0
    # it was found in the cycles after it happened and stayed at one
    counts = [steps(f, "poi", "up") for f in frames if f.steps.height]
    assert counts == sorted(counts)
    assert max(counts) == 1


def test_constant_load_has_no_steps_no_episodes_and_no_ramp() -> None:
    rng = np.random.default_rng(1)
    monitor = GridMonitor(GridConfig())
    frames = feed(monitor, "poi", lambda t: 1.5e9 + rng.normal(0, 2e5, t.size), seconds=200)
    last = frames[-1]
    assert steps(last, "poi", "up") == steps(last, "poi", "down") == 0
    assert last.bands["episodes"].sum() == 0
    ramp_60 = last.ramps.filter(pl.col("window") == "60s")["watts_per_second"][0]
    assert abs(ramp_60) < 1e4  # noise only: well under 1 MW/min


def test_a_building_meter_is_judged_at_its_own_rating() -> None:
    # A 5 MW step: nothing at the 2,250 MW POI (threshold 50 MW), a step for a 75 MW building
    # (threshold scaled to 50 MW x 75 / 2,250 = 1.67 MW).
    config = GridConfig()
    monitor = GridMonitor(config, ratings={"B07": 75e6})

    def signal(t: np.ndarray) -> np.ndarray:
        return 60e6 + 5e6 * (t >= START + 100.0)

    for n in range(25):
        start = START + n * 10.0
        times = start + np.arange(1, 201) / RATE
        both = pl.concat(
            [chunk("B07", start, 10.0, signal(times)), chunk("poi", start, 10.0, signal(times))]
        )
        frames = monitor.update(both)
    assert steps(frames, "B07", "up") == 1
    assert steps(frames, "poi", "up") == 0
    scaled = scaled_to_rating(config, 75e6)
    assert scaled.step.threshold_watts == pytest.approx(50e6 * 75 / 2250)
    assert scaled.rating_watts == 75e6


def test_samples_older_than_the_ring_are_refused_and_counted() -> None:
    monitor = GridMonitor(GridConfig())
    monitor.update(chunk("poi", START, 10.0, 1e9))
    late = chunk("poi", START + 5.0, 10.0, 1e9)  # half of it overlaps what is stored
    frames = monitor.update(late)
    assert frames.out_of_order == {"poi": 100}
    samples = frames.meters.filter(pl.col("meter") == "poi")["samples"][0]
    assert samples == 200 + 100


def test_meter_validation_counts_nan_and_negative_and_keeps_the_rest() -> None:
    frame = pl.DataFrame(
        {
            "meter": ["poi"] * 4,
            "timestamp_seconds": [START, START + 0.05, float("nan"), START + 0.15],
            "power_watts": [1e9, float("nan"), 1e9, -5.0],
        }
    )
    clean, rejected = validate_meters(frame)
    assert clean.height == 1
    assert rejected == {"not_finite": 2, "negative": 1}


def test_a_band_above_nyquist_is_reported_not_visible() -> None:
    monitor = GridMonitor(GridConfig())
    frames = feed(monitor, "poi", lambda t: 1e9 + 1e6 * np.sin(2 * np.pi * 0.5 * t), 60)
    top = frames[-1].bands.filter(pl.col("band") == "10 Hz-Nyquist").row(0, named=True)
    assert top["visibility"] == 0.0
    assert top["energy_ratio"] is None


def test_the_spectrum_is_missing_until_the_history_averages_enough_segments() -> None:
    """A new meter's first minute gives steps and ramps at once, but no oscillation figures:
    one short segment reads a slow wander as an oscillation. From five half-overlapping
    20 s segments (60 s) on, the same 0.5 Hz, 2 MW peak-to-peak oscillation is reported."""
    config = GridConfig()
    settled = config.segment_seconds * (SPECTRUM_MIN_SEGMENTS + 1) / 2
    monitor = GridMonitor(config)
    frames = feed(monitor, "poi", lambda t: 1e9 + 1e6 * np.sin(2 * np.pi * 0.5 * t), 90, 5.0)
    early = [f for n, f in enumerate(frames) if (n + 1) * 5.0 < settled]
    late = [f for n, f in enumerate(frames) if (n + 1) * 5.0 > settled]
    assert early and late
    for frame in early:
        # Each band is listed with its visibility, without estimates.
        assert frame.bands["visibility"].is_not_null().all()
        assert frame.bands["energy_ratio"].is_null().all()
        assert frame.bands["peak_to_peak_watts"].is_null().all()
        (meter,) = frame.meters.iter_rows(named=True)
        assert meter["dominant_frequency_hertz"] is None and meter["peak_to_peak_watts"] is None
        assert meter["power_watts"] is not None  # the meter itself is there from the start
    for frame in late:
        (meter,) = frame.meters.iter_rows(named=True)
        assert meter["dominant_frequency_hertz"] == pytest.approx(0.5, abs=0.01)
        assert meter["peak_to_peak_watts"] == pytest.approx(2e6, rel=0.05)
        band = frame.bands.filter(pl.col("band") == "0.1-1 Hz").row(0, named=True)
        assert band["peak_to_peak_watts"] == pytest.approx(2e6, rel=0.05)
