"""Array types the grid analyses share, and the runs of True in a flag array."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IndexArray = npt.NDArray[np.intp]
BoolArray = npt.NDArray[np.bool_]


def runs(flags: BoolArray) -> tuple[IndexArray, IndexArray]:
    """[start, stop) indices of every run of True."""
    edges = np.diff(flags.astype(np.int8), prepend=np.int8(0), append=np.int8(0))
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
