"""Energy counters: trapezoids between readings, nothing over gaps, never backwards."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import polars as pl
import pytest

from collector import schemas
from collector.arrays import dense
from collector.energy import EnergyState, advance

NAN = np.nan
GAP = 60.0


def powers(*values: float) -> npt.NDArray[np.float64]:
    return np.array(values, dtype=np.float64)


def test_zero_state_has_no_energy_no_readings_and_no_time() -> None:
    state = EnergyState.zero(3)
    assert state.joules.tolist() == [0.0, 0.0, 0.0]
    assert np.isnan(state.last_power_watts).all()
    assert state.last_time is None


def test_first_reading_only_starts_the_clock() -> None:
    state = advance(EnergyState.zero(2), powers(100.0, 200.0), 10.0, GAP)
    assert state.joules.tolist() == [0.0, 0.0]
    assert state.last_time == 10.0
    assert state.last_power_watts.tolist() == [100.0, 200.0]


def test_each_interval_adds_the_trapezoid_of_its_two_readings() -> None:
    state = advance(EnergyState.zero(2), powers(100.0, 200.0), 10.0, GAP)
    state = advance(state, powers(300.0, 200.0), 20.0, GAP)
    # (100 + 300) / 2 * 10 s and (200 + 200) / 2 * 10 s
    assert state.joules.tolist() == pytest.approx([2_000.0, 2_000.0])
    state = advance(state, powers(0.0, 400.0), 25.0, GAP)
    # plus (300 + 0) / 2 * 5 s and (200 + 400) / 2 * 5 s
    assert state.joules.tolist() == pytest.approx([2_750.0, 3_500.0])


def test_leaf_missing_at_either_end_of_an_interval_adds_nothing() -> None:
    state = advance(EnergyState.zero(3), powers(100.0, NAN, 100.0), 0.0, GAP)
    state = advance(state, powers(100.0, 100.0, NAN), 10.0, GAP)
    # Leaf 1 was missing at the start, leaf 2 at the end.
    assert state.joules.tolist() == pytest.approx([1_000.0, 0.0, 0.0])
    state = advance(state, powers(100.0, 100.0, 100.0), 20.0, GAP)
    # Leaf 1 now has both ends; leaf 2 is still missing at the start of this interval.
    assert state.joules.tolist() == pytest.approx([2_000.0, 1_000.0, 0.0])


def test_interval_longer_than_max_gap_adds_nothing_but_restarts_the_clock() -> None:
    state = advance(EnergyState.zero(1), powers(100.0), 0.0, GAP)
    state = advance(state, powers(100.0), GAP + 1.0, GAP)
    assert state.joules.tolist() == [0.0]
    assert state.last_time == GAP + 1.0
    state = advance(state, powers(300.0), GAP + 11.0, GAP)
    assert state.joules.tolist() == pytest.approx([2_000.0])


def test_interval_of_exactly_max_gap_is_integrated() -> None:
    state = advance(EnergyState.zero(1), powers(100.0), 0.0, GAP)
    state = advance(state, powers(100.0), GAP, GAP)
    assert state.joules.tolist() == pytest.approx([100.0 * GAP])


@pytest.mark.parametrize("later", [10.0, 5.0])
def test_clock_that_stands_still_or_goes_back_adds_nothing(later: float) -> None:
    state = advance(EnergyState.zero(1), powers(100.0), 0.0, GAP)
    state = advance(state, powers(100.0), 10.0, GAP)
    assert state.joules.tolist() == pytest.approx([1_000.0])
    state = advance(state, powers(500.0), later, GAP)
    assert state.joules.tolist() == pytest.approx([1_000.0])


def test_advance_leaves_the_previous_state_untouched() -> None:
    first = advance(EnergyState.zero(2), powers(100.0, 100.0), 0.0, GAP)
    second = advance(first, powers(100.0, 100.0), 10.0, GAP)
    assert first.joules.tolist() == [0.0, 0.0]
    assert second.joules.tolist() == pytest.approx([1_000.0, 1_000.0])


def test_counters_never_decrease_through_gaps_dropouts_and_clock_jumps() -> None:
    rng = np.random.default_rng(7)
    leaves = 50
    state = EnergyState.zero(leaves)
    now = 0.0
    for _ in range(200):
        now += float(rng.choice([-3.0, 0.0, 1.0, 5.0, 30.0, 90.0]))
        power = rng.uniform(0.0, 1_000.0, leaves)
        power[rng.random(leaves) < 0.2] = NAN
        before = state.joules.copy()
        state = advance(state, power, now, GAP)
        assert (state.joules >= before).all()
        assert np.isfinite(state.joules).all()
    assert (state.joules > 0).any()


def test_dense_scatters_values_by_index_with_nan_where_missing() -> None:
    frame = pl.DataFrame(
        {"feed_index": [3, 0, 4], "power_watts": [30.0, 10.0, None]},
        schema={"feed_index": pl.UInt32, "power_watts": pl.Float64},
    )
    values = dense(frame, "feed_index", "power_watts", 6)
    assert values[0] == 10.0
    assert values[3] == 30.0
    assert np.isnan(values[[1, 2, 4, 5]]).all()


def test_dense_of_an_empty_frame_is_all_missing() -> None:
    values = dense(schemas.empty(schemas.FEED_SAMPLES), "feed_index", "power_watts", 4)
    assert values.shape == (4,)
    assert np.isnan(values).all()


def test_missing_leaf_from_dense_adds_no_energy() -> None:
    first = pl.DataFrame(
        {"feed_index": [0, 1], "power_watts": [100.0, 100.0]},
        schema={"feed_index": pl.UInt32, "power_watts": pl.Float64},
    )
    second = first.filter(pl.col("feed_index") == 0)
    state = advance(EnergyState.zero(2), dense(first, "feed_index", "power_watts", 2), 0.0, GAP)
    state = advance(state, dense(second, "feed_index", "power_watts", 2), 10.0, GAP)
    assert state.joules.tolist() == pytest.approx([1_000.0, 0.0])


def test_clock_stepping_back_never_counts_an_interval_twice() -> None:
    state = advance(EnergyState.zero(1), powers(100.0), 0.0, GAP)
    state = advance(state, powers(100.0), 10.0, GAP)
    state = advance(state, powers(100.0), 5.0, GAP)  # the clock steps back 5 s
    state = advance(state, powers(100.0), 15.0, GAP)
    # 100 W can have delivered at most 100 W x 15 s between the first and last reading.
    assert state.joules[0] <= 100.0 * 15.0 + 1e-9
