"""Synthetic meter signals for the grid analysis tests: a training square wave, noise, time."""

from __future__ import annotations

import numpy as np

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
