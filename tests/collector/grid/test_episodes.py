"""Oscillation episodes on synthetic signals: a training square wave, bursts, constant and
ramping loads (which must yield neither an episode nor a step)."""

from __future__ import annotations

import numpy as np
import pytest

from collector.grid.config import GridConfig
from collector.grid.episodes import oscillation_episodes
from collector.grid.steps import detect_steps
from tests.collector.grid.signals import BASE, EPOCH, MW, RATE, noise, seconds, training_square_wave


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
