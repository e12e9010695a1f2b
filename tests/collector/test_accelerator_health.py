"""Accelerator health across cycles: silence after reporting, and error counters that grow."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from collector import schemas
from collector.accelerator_health import AcceleratorHealth, validate_errors

CHIPS = 8


def errors(rows: list[tuple[int | None, float | None, float | None]]) -> pl.DataFrame:
    return pl.DataFrame(
        [(index, 0.0, ecc, xid) for index, ecc, xid in rows],
        schema=dict(schemas.ACCELERATOR_ERRORS),
        orient="row",
    )


def zeros() -> pl.DataFrame:
    return errors([(chip, 0.0, 0.0) for chip in range(CHIPS)])


def recent(health: AcceleratorHealth) -> dict[int, float]:
    frame = health.recent_errors()
    return dict(zip(frame["accelerator_index"], frame["recent_errors"], strict=True))


def test_silence_counts_from_the_last_report_and_never_seen_is_not_silent() -> None:
    health = AcceleratorHealth(CHIPS)
    health.observe(np.arange(6), zeros(), 100.0)
    health.observe(np.array([0, 1, 2, 3]), zeros(), 110.0)
    silent = health.silent_seconds(110.0)
    assert silent[4] == 10.0 and silent[5] == 10.0
    # reporting now, or never reported: not silent
    assert np.isnan(silent[[0, 1, 2, 3, 6, 7]]).all()
    health.observe(np.array([0, 1, 2, 3, 4]), zeros(), 130.0)
    later = health.silent_seconds(130.0)
    assert np.isnan(later[4]) and later[5] == 30.0
    assert health.any_silent(130.0)


def test_nobody_is_silent_when_every_chip_reports_again() -> None:
    health = AcceleratorHealth(CHIPS)
    health.observe(np.arange(CHIPS), zeros(), 100.0)
    assert not health.any_silent(100.0)
    health.observe(np.arange(CHIPS - 1), zeros(), 110.0)  # the last chip falls silent
    assert health.any_silent(110.0)
    health.observe(np.arange(CHIPS), zeros(), 120.0)  # and comes back
    assert not health.any_silent(120.0)
    assert np.isnan(health.silent_seconds(120.0)).all()
    # A cycle that nobody reported in: everyone seen before is silent.
    health.observe(np.zeros(0, dtype=np.int64), zeros().head(0), 130.0)
    assert health.any_silent(130.0)


def test_the_first_count_is_a_baseline_and_growth_is_recent_errors() -> None:
    health = AcceleratorHealth(CHIPS, error_window_seconds=600.0)
    health.observe(np.arange(CHIPS), errors([(0, 40.0, 3.0), (1, 0.0, 0.0)]), 0.0)
    assert recent(health) == {}  # old errors are not news
    health.observe(np.arange(CHIPS), errors([(0, 42.0, 3.0), (1, 0.0, 1.0)]), 10.0)
    health.observe(np.arange(CHIPS), errors([(0, 45.0, 4.0), (1, 0.0, 1.0)]), 20.0)
    assert recent(health) == {0: 6.0, 1: 1.0}
    row = health.recent_errors().row(0, named=True)
    assert (row["ecc_errors"], row["xid_errors"]) == (45.0, 4.0)
    # After the window the increases age out, the counts stay.
    health.observe(np.arange(CHIPS), errors([(0, 45.0, 4.0), (1, 0.0, 1.0)]), 615.0)
    assert recent(health) == {0: 4.0}  # the +4 at 20 s is still inside (615 - 600 = 15 < 20)
    health.observe(np.arange(CHIPS), errors([(0, 45.0, 4.0)]), 621.0)
    assert recent(health) == {}
    assert health.counts("ecc_errors")[0] == 45.0
    assert np.isnan(health.counts("ecc_errors")[2])  # never reported: missing, not 0


def test_a_counter_that_goes_down_was_reset_and_its_value_is_new_errors() -> None:
    health = AcceleratorHealth(CHIPS)
    health.observe(np.arange(CHIPS), errors([(3, 100.0, None)]), 0.0)
    health.observe(np.arange(CHIPS), errors([(3, 2.0, None)]), 10.0)
    assert recent(health) == {3: 2.0}


def test_a_missing_count_keeps_the_last_known_one() -> None:
    health = AcceleratorHealth(CHIPS)
    health.observe(np.arange(CHIPS), errors([(2, 5.0, 1.0)]), 0.0)
    health.observe(np.arange(CHIPS), errors([(2, None, 2.0)]), 10.0)
    assert health.counts("ecc_errors")[2] == 5.0
    assert recent(health) == {2: 1.0}


def test_a_complete_frame_in_order_gives_what_the_same_rows_shuffled_give() -> None:
    """Every chip in index order takes the path without gathers and scatters; the same rows
    in another order take the other. Counts, increases (resets and missing values among
    them) and silence must not tell them apart."""
    chips = 64
    rng = np.random.default_rng(7)
    in_order, shuffled = AcceleratorHealth(chips), AcceleratorHealth(chips)
    counts = np.zeros((chips, 2))
    for cycle in range(12):
        counts += rng.integers(0, 3, size=counts.shape) * (rng.random(counts.shape) < 0.2)
        counts[rng.random(chips) < 0.05] = 0.0  # a reset
        rows: list[tuple[int | None, float | None, float | None]] = [
            (chip, None if rng.random() < 0.1 else ecc, xid)
            for chip, (ecc, xid) in enumerate(counts.tolist())
        ]
        frame = errors(rows)
        order = rng.permutation(chips)
        now = 10.0 * cycle
        in_order.observe(np.arange(chips), frame, now)
        shuffled.observe(order, frame[order.tolist()], now)
        assert_frame_equal(in_order.recent_errors(), shuffled.recent_errors())
        for column in ("ecc_errors", "xid_errors"):
            np.testing.assert_array_equal(in_order.counts(column), shuffled.counts(column))
    assert in_order.recent_errors().height > 0  # the sequence had increases to compare
    # A cycle where some chips stay silent takes the other path for the last-seen times too.
    in_order.observe(np.arange(chips - 3), errors([]), 200.0)
    shuffled.observe(rng.permutation(chips - 3), errors([]), 200.0)
    np.testing.assert_array_equal(in_order.silent_seconds(200.0), shuffled.silent_seconds(200.0))
    assert np.count_nonzero(np.isfinite(in_order.silent_seconds(200.0))) == 3


def test_validation_counts_every_bad_value_by_reason() -> None:
    frame = errors(
        [
            (0, 1.0, 2.0),
            (0, 5.0, 5.0),  # duplicate: the first row wins
            (None, 1.0, 1.0),  # unknown
            (99, 1.0, None),  # unknown (one value)
            (1, float("nan"), -3.0),
            (2, None, 4.0),
        ]
    )
    result = validate_errors(frame, CHIPS)
    assert result.rejections == {
        "unknown_entity": 3,
        "duplicate": 2,
        "not_finite": 1,
        "negative": 1,
    }
    assert result.accepted_samples == 3
    assert result.frame["accelerator_index"].to_list() == [0, 1, 2]
    assert result.frame.row(1) == (1, 0.0, None, None)  # bad values become null, never 0


def test_a_frame_without_the_columns_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="accelerator error samples: missing column"):
        validate_errors(pl.DataFrame({"accelerator_index": [1]}), CHIPS)
