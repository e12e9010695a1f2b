"""Ring buffers: batches in, the last N seconds out in time order, memory fixed."""

from __future__ import annotations

import numpy as np
import pytest

from collector.grid.ring import MeterRings, PowerRing


def test_an_empty_ring_returns_empty_arrays() -> None:
    ring = PowerRing(8)
    times, watts = ring.last_seconds(10.0)
    assert len(ring) == 0
    assert ring.newest_timestamp is None
    assert times.size == 0 and watts.size == 0


def test_last_seconds_before_the_ring_wraps() -> None:
    ring = PowerRing(10)
    ring.append([0.0, 1.0, 2.0], [10.0, 11.0, 12.0])
    ring.append([3.0, 4.0], [13.0, 14.0])
    times, watts = ring.last_seconds(2.0)
    np.testing.assert_array_equal(times, [2.0, 3.0, 4.0])
    np.testing.assert_array_equal(watts, [12.0, 13.0, 14.0])
    assert len(ring) == 5


def test_wrapping_keeps_the_newest_samples_in_time_order() -> None:
    ring = PowerRing(5)
    for start in range(0, 12, 3):  # batches of 3 wrap the 5-slot ring several times
        seconds = np.arange(start, start + 3, dtype=float)
        ring.append(seconds, seconds * 100)
    times, watts = ring.samples()
    np.testing.assert_array_equal(times, [7.0, 8.0, 9.0, 10.0, 11.0])
    np.testing.assert_array_equal(watts, times * 100)
    assert len(ring) == 5 and ring.newest_timestamp == 11.0


@pytest.mark.parametrize("seconds", [0.0, 1.5, 2.0, 3.0, 100.0])
def test_last_seconds_across_the_wrap_point(seconds: float) -> None:
    ring = PowerRing(5)
    ring.append(np.arange(4.0), np.arange(4.0))
    ring.append([4.0, 5.0, 6.0], [4.0, 5.0, 6.0])  # slots now hold 5, 6, 2, 3, 4
    times, watts = ring.last_seconds(seconds)
    expected = np.arange(2.0, 7.0)
    expected = expected[expected >= 6.0 - seconds]
    np.testing.assert_array_equal(times, expected)
    np.testing.assert_array_equal(watts, expected)


def test_a_batch_larger_than_the_capacity_keeps_its_tail() -> None:
    ring = PowerRing(4)
    ring.append([0.0], [0.0])
    ring.append(np.arange(1.0, 11.0), np.arange(1.0, 11.0) * 2)
    times, watts = ring.samples()
    np.testing.assert_array_equal(times, [7.0, 8.0, 9.0, 10.0])
    np.testing.assert_array_equal(watts, [14.0, 16.0, 18.0, 20.0])
    ring.append([11.0], [22.0])
    np.testing.assert_array_equal(ring.samples()[0], [8.0, 9.0, 10.0, 11.0])


def test_returned_arrays_are_copies_in_float64() -> None:
    ring = PowerRing(4)
    ring.append([1.0, 2.0], [5.0, 6.0])
    times, watts = ring.last_seconds(10.0)
    watts[:] = 0.0
    assert times.dtype == np.float64 and watts.dtype == np.float64
    np.testing.assert_array_equal(ring.samples()[1], [5.0, 6.0])


@pytest.mark.parametrize(
    ("times", "reason"),
    [
        ([5.0, 4.0], "backwards"),
        ([0.5], "before the newest"),
        ([np.nan], "finite"),
    ],
)
def test_out_of_order_batches_are_refused_and_change_nothing(
    times: list[float], reason: str
) -> None:
    ring = PowerRing(4)
    ring.append([1.0], [10.0])
    with pytest.raises(ValueError, match=reason):
        ring.append(times, [0.0] * len(times))
    np.testing.assert_array_equal(ring.samples()[0], [1.0])


def test_mismatched_lengths_and_bad_capacity_are_refused() -> None:
    with pytest.raises(ValueError, match="capacity"):
        PowerRing(0)
    with pytest.raises(ValueError, match="differ"):
        PowerRing(4).append([1.0, 2.0], [1.0])


def test_meter_rings_keep_one_ring_per_meter() -> None:
    rings = MeterRings(capacity_per_meter=3)
    rings.append("poi", [0.0, 0.05, 0.10, 0.15], [1e9, 1.1e9, 1.2e9, 1.3e9])
    rings.append("lineup-A", [0.0], [2e6])
    assert rings.meters() == ["lineup-A", "poi"]
    assert "poi" in rings and "feeder" not in rings
    times, watts = rings.last_seconds("poi", 1.0)
    np.testing.assert_allclose(times, [0.05, 0.10, 0.15])
    np.testing.assert_array_equal(watts, [1.1e9, 1.2e9, 1.3e9])
    with pytest.raises(KeyError):
        rings.last_seconds("feeder", 1.0)
