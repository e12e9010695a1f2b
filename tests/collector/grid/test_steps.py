"""Step detection on synthetic signals: clean steps, steps under a training square wave, and
shifts too small, too slow or too near the end to be steps."""

from __future__ import annotations

import numpy as np
import pytest

from collector.grid.steps import detect_steps
from tests.collector.grid.signals import BASE, EPOCH, MW, noise, seconds, training_square_wave


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
