"""Energy integration: monotonic joule counters per leaf (feed, accelerator, building meter).

Counters live at the leaves and every level's energy is a sum over all of its leaves, so a
parent always equals the sum of its children and never goes backwards when a child falls
silent. An interval is integrated (trapezoid) only when the leaf reported at both ends and
the interval is no longer than ``max_gap_seconds``: energy over a gap is unknown, not guessed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class EnergyState:
    joules: FloatArray
    last_power_watts: FloatArray  # NaN where the leaf did not report last time
    last_time: float | None = None

    @classmethod
    def zero(cls, leaves: int) -> EnergyState:
        return cls(np.zeros(leaves), np.full(leaves, np.nan), None)


def advance(
    state: EnergyState, power_watts: FloatArray, now: float, max_gap_seconds: float
) -> EnergyState:
    """The counters after one more reading of every leaf's power (NaN: no reading)."""
    if state.last_time is None:
        return EnergyState(state.joules, power_watts, now)
    if now <= state.last_time:  # the clock stepped back: ignore, never integrate twice
        return state
    interval = now - state.last_time
    if interval > max_gap_seconds:
        return EnergyState(state.joules, power_watts, now)
    step = 0.5 * (state.last_power_watts + power_watts) * interval
    joules = state.joules + np.where(np.isfinite(step), step, 0.0)
    return EnergyState(joules, power_watts, now)


def restored(joules: FloatArray) -> EnergyState:
    """Counters continued from stored values after a restart: the time the service was down
    is a gap (no last reading), so nothing is integrated across it."""
    return EnergyState(np.array(joules, dtype=np.float64), np.full(joules.size, np.nan), None)
