"""The whole grid analysis of a synthetic training hour with a gap, a start and a drop."""

from __future__ import annotations

import pytest

from collector.grid.analysis import analyze
from collector.grid.config import GridConfig
from tests.collector.grid.signals import EPOCH, MW, noise, seconds, training_square_wave


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
