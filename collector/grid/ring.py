"""Fixed-capacity ring buffers of (timestamp, watts) per meter, for the fast path.

A POI or lineup meter reports at 20 Hz or faster; the grid analysis wants the last few minutes
of it in time order. Each meter gets two preallocated float64 arrays and a write position:
appending a batch is at most two slice copies whatever its size, and nothing is ever stored as a
per-sample Python object. Memory is fixed: capacity x 16 bytes per meter.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


class PowerRing:
    """The newest `capacity` samples of one meter; older ones are overwritten.

    Timestamps must not go backwards: a batch that is unsorted or starts before the newest
    stored sample is refused with ValueError and the ring is left unchanged, so the stored
    samples are always in time order and a time range is found by binary search.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self._timestamps = np.empty(capacity, dtype=np.float64)
        self._watts = np.empty(capacity, dtype=np.float64)
        self._next = 0  # where the next sample goes
        self._size = 0

    def __len__(self) -> int:
        return self._size

    @property
    def newest_timestamp(self) -> float | None:
        if self._size == 0:
            return None
        return float(self._timestamps[(self._next - 1) % self.capacity])

    def append(self, timestamps: npt.ArrayLike, watts: npt.ArrayLike) -> None:
        """Store a batch; O(batch) with at most two slice copies, O(1) Python work."""
        new_timestamps = np.asarray(timestamps, dtype=np.float64).ravel()
        new_watts = np.asarray(watts, dtype=np.float64).ravel()
        if new_timestamps.shape != new_watts.shape:
            raise ValueError(
                f"timestamps ({new_timestamps.size}) and watts ({new_watts.size}) differ in length"
            )
        if new_timestamps.size == 0:
            return
        if not bool(np.all(np.isfinite(new_timestamps))):
            raise ValueError("timestamps must be finite")
        if new_timestamps.size > 1 and bool(np.any(np.diff(new_timestamps) < 0)):
            raise ValueError("timestamps within the batch go backwards")
        newest = self.newest_timestamp
        if newest is not None and new_timestamps[0] < newest:
            raise ValueError(
                f"batch starts at {new_timestamps[0]!r}, before the newest stored sample {newest!r}"
            )
        if new_timestamps.size >= self.capacity:
            # Only the newest `capacity` samples can survive: write them from position 0.
            self._timestamps[:] = new_timestamps[-self.capacity :]
            self._watts[:] = new_watts[-self.capacity :]
            self._next = 0
            self._size = self.capacity
            return
        count = new_timestamps.size
        first = min(count, self.capacity - self._next)
        self._timestamps[self._next : self._next + first] = new_timestamps[:first]
        self._watts[self._next : self._next + first] = new_watts[:first]
        rest = count - first
        if rest:
            self._timestamps[:rest] = new_timestamps[first:]
            self._watts[:rest] = new_watts[first:]
        self._next = (self._next + count) % self.capacity
        self._size = min(self.capacity, self._size + count)

    def _ordered_slices(self) -> tuple[slice, slice]:
        """The stored samples, oldest first, as two slices of the arrays."""
        if self._size < self.capacity:
            return slice(0, self._size), slice(0, 0)
        return slice(self._next, self.capacity), slice(0, self._next)

    def samples(self) -> tuple[FloatArray, FloatArray]:
        """All stored (timestamps, watts), oldest first, as new arrays."""
        older, newer = self._ordered_slices()
        return (
            np.concatenate((self._timestamps[older], self._timestamps[newer])),
            np.concatenate((self._watts[older], self._watts[newer])),
        )

    def last_seconds(self, seconds: float) -> tuple[FloatArray, FloatArray]:
        """(timestamps, watts) of the samples no older than `seconds` before the newest, oldest
        first, as new arrays; empty arrays when the ring is empty."""
        newest = self.newest_timestamp
        if newest is None:
            return np.empty(0), np.empty(0)
        since = newest - seconds
        older, newer = self._ordered_slices()
        older_times = self._timestamps[older]
        if older_times.size and older_times[-1] >= since:
            start = int(np.searchsorted(older_times, since, side="left"))
            times = np.concatenate((older_times[start:], self._timestamps[newer]))
            watts = np.concatenate((self._watts[older][start:], self._watts[newer]))
            return times, watts
        newer_times = self._timestamps[newer]
        start = int(np.searchsorted(newer_times, since, side="left"))
        return newer_times[start:].copy(), self._watts[newer][start:].copy()


class MeterRings:
    """One PowerRing per meter, created on first append, all of the same capacity."""

    def __init__(self, capacity_per_meter: int) -> None:
        if capacity_per_meter < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity_per_meter}")
        self.capacity_per_meter = capacity_per_meter
        self._rings: dict[str, PowerRing] = {}

    def __contains__(self, meter: object) -> bool:
        return meter in self._rings

    def meters(self) -> list[str]:
        return sorted(self._rings)

    def append(self, meter: str, timestamps: npt.ArrayLike, watts: npt.ArrayLike) -> None:
        ring = self._rings.get(meter)
        if ring is None:
            ring = self._rings[meter] = PowerRing(self.capacity_per_meter)
        ring.append(timestamps, watts)

    def last_seconds(self, meter: str, seconds: float) -> tuple[FloatArray, FloatArray]:
        """The meter's last `seconds` of samples, oldest first; KeyError for an unknown meter."""
        return self._rings[meter].last_seconds(seconds)
