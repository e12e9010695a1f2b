"""Ramp rates of synthetic ramps."""

from __future__ import annotations

import numpy as np
import pytest

from collector.grid.ramps import ramp_rates
from tests.collector.grid.signals import BASE, EPOCH, MW, seconds


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
