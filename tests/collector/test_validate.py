"""Sample validation on tiny hand-built frames against the demo topology (2,048 chips of
500 W TDP and 96 GiB, 128 feeds of 415 V 3-phase 60 A, one building of 2 MW)."""

from __future__ import annotations

import math

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from collector import schemas
from collector.site.model import load_preset
from collector.site.topology import Topology, build_topology
from collector.validate import Validated, ValidationLimits, validate

NOW = 1_000_000.0
TDP = 500.0
ACCELERATORS = 2_048
FEEDS = 128
MEMORY = 103_079_215_104.0

Row = tuple[int | None, float | None, float | None, float | None, float | None, float | None]


@pytest.fixture(scope="module")
def demo() -> Topology:
    return build_topology(load_preset("demo"))


def accelerator_rows(*rows: Row) -> pl.DataFrame:
    """(index, timestamp, power, temperature, utilization, memory) rows."""
    return pl.DataFrame(list(rows), schema=dict(schemas.ACCELERATOR_SAMPLES), orient="row")


def feed_rows(*rows: Row) -> pl.DataFrame:
    """(index, timestamp, power, current, voltage, meter) rows."""
    return pl.DataFrame(list(rows), schema=dict(schemas.FEED_SAMPLES), orient="row")


def good(index: int, power: float = 400.0, at: float = NOW) -> Row:
    return (index, at, power, 60.0, 0.9, 1e9)


def run(frame: pl.DataFrame, demo: Topology, kind: str = "accelerator") -> Validated:
    return validate(kind, frame, demo, NOW)


def test_clean_samples_are_all_accepted_unchanged(demo: Topology) -> None:
    frame = accelerator_rows(good(0), good(1, 450.0), good(2_047, 125.0))
    result = run(frame, demo)
    assert result.rejections == {}
    assert result.examples == {}
    assert result.accepted_samples == 3 * 4
    assert_frame_equal(result.frame, frame)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_power_is_rejected_and_becomes_null(demo: Topology, bad: float) -> None:
    result = run(accelerator_rows(good(0), (1, NOW, bad, 61.0, 0.5, 2e9)), demo)
    assert result.rejections == {"not_finite": 1}
    assert result.accepted_samples == 4 + 3
    row = result.frame.row(1, named=True)
    assert row["power_watts"] is None
    # The other fields of the row are kept.
    assert row == {
        "accelerator_index": 1,
        "timestamp_seconds": NOW,
        "power_watts": None,
        "temperature_celsius": 61.0,
        "utilization_ratio": 0.5,
        "memory_used_bytes": 2e9,
    }


def test_negative_power_is_rejected_as_negative(demo: Topology) -> None:
    result = run(accelerator_rows((5, NOW, -1.0, 60.0, 0.5, 1e9)), demo)
    assert result.rejections == {"negative": 1}
    assert result.frame["power_watts"].to_list() == [None]
    assert result.frame["temperature_celsius"].to_list() == [60.0]
    assert result.accepted_samples == 3


def test_power_above_one_and_a_half_tdp_is_out_of_range(demo: Topology) -> None:
    limit = 1.5 * TDP
    frame = accelerator_rows(good(0, limit), good(1, limit + 0.5), good(2, 2 * TDP))
    result = run(frame, demo)
    assert result.rejections == {"out_of_range": 2}
    assert result.frame["power_watts"].to_list() == [limit, None, None]
    assert result.accepted_samples == 3 * 4 - 2


def test_overload_factor_comes_from_the_limits(demo: Topology) -> None:
    frame = accelerator_rows(good(0, 1.1 * TDP))
    strict = validate("accelerator", frame, demo, NOW, ValidationLimits(overload_factor=1.05))
    assert strict.rejections == {"out_of_range": 1}
    assert run(frame, demo).rejections == {}


def test_other_accelerator_fields_have_their_own_ranges(demo: Topology) -> None:
    frame = accelerator_rows(
        (0, NOW, 400.0, -5.0, 1.0, MEMORY),  # below-zero temperature is fine; full is fine
        (1, NOW, 400.0, -41.0, 0.5, 1e9),  # colder than -40 °C: implausible
        (2, NOW, 400.0, 151.0, 0.5, 1e9),  # hotter than 150 °C: implausible
        (3, NOW, 400.0, 60.0, 1.01, 1e9),  # utilization above 1
        (4, NOW, 400.0, 60.0, -0.1, 1e9),  # negative utilization
        (5, NOW, 400.0, 60.0, 0.5, MEMORY + 1),  # more memory than the chip has
    )
    result = run(frame, demo)
    assert result.rejections == {"out_of_range": 4, "negative": 1}
    assert result.frame["temperature_celsius"].to_list() == [-5.0, None, None, 60.0, 60.0, 60.0]
    assert result.frame["utilization_ratio"].to_list() == [1.0, 0.5, 0.5, None, None, 0.5]
    assert result.frame["memory_used_bytes"].to_list() == [MEMORY, 1e9, 1e9, 1e9, 1e9, None]
    assert result.accepted_samples == 6 * 4 - 5


def test_unknown_accelerator_rejects_the_whole_row_counting_its_values(
    demo: Topology,
) -> None:
    frame = accelerator_rows(good(0), (ACCELERATORS, NOW, 400.0, None, 0.5, 1e9))
    result = run(frame, demo)
    # Three non-null values in the unknown row: three samples rejected.
    assert result.rejections == {"unknown_entity": 3}
    assert result.frame["accelerator_index"].to_list() == [0]
    assert result.accepted_samples == 4


def test_null_key_is_an_unknown_entity(demo: Topology) -> None:
    result = run(accelerator_rows((None, NOW, 400.0, 60.0, 0.5, 1e9), good(3)), demo)
    assert result.rejections == {"unknown_entity": 4}
    assert result.frame["accelerator_index"].to_list() == [3]


def test_unknown_feed_index_is_rejected(demo: Topology) -> None:
    frame = feed_rows(
        (FEEDS, NOW, 10_000.0, 15.0, 415.0, 1e9), (0, NOW, 10_000.0, 15.0, 415.0, 1e9)
    )
    result = run(frame, demo, "feed")
    assert result.rejections == {"unknown_entity": 4}
    assert result.frame["feed_index"].to_list() == [0]


def test_repeated_key_keeps_the_first_and_rejects_the_rest(demo: Topology) -> None:
    frame = accelerator_rows(good(7, 400.0), good(7, 401.0), good(8), good(7, 402.0))
    result = run(frame, demo)
    assert result.rejections == {"duplicate": 2 * 4}
    assert result.frame["accelerator_index"].to_list() == [7, 8]
    assert result.frame["power_watts"].to_list() == [400.0, 400.0]
    assert result.accepted_samples == 2 * 4


def test_duplicate_in_unsorted_keys_is_still_caught(demo: Topology) -> None:
    frame = accelerator_rows(good(5, 300.0), good(3), good(9), good(5, 350.0), good(1))
    result = run(frame, demo)
    assert result.rejections == {"duplicate": 4}
    assert result.frame["accelerator_index"].to_list() == [5, 3, 9, 1]
    assert result.frame["power_watts"][0] == 300.0


def test_adjacent_duplicate_in_sorted_keys_is_caught(demo: Topology) -> None:
    result = run(accelerator_rows(good(1), good(2, 300.0), good(2, 310.0), good(3)), demo)
    assert result.rejections == {"duplicate": 4}
    assert result.frame["accelerator_index"].to_list() == [1, 2, 3]


def test_fresh_sample_after_a_stale_one_for_the_same_entity_is_kept(demo: Topology) -> None:
    # The stale row is rejected as stale; the fresh one is the only valid sample of
    # accelerator 7, so it is no duplicate of anything that was kept.
    frame = accelerator_rows(good(7, 300.0, at=NOW - 1_000), good(7, 410.0))
    result = run(frame, demo)
    assert result.rejections == {"stale": 4}
    assert result.frame["power_watts"].to_list() == [410.0]
    assert result.accepted_samples == 4


def test_old_sample_is_stale_and_recent_one_is_kept(demo: Topology) -> None:
    limits = ValidationLimits()
    frame = accelerator_rows(
        good(0, at=NOW - limits.max_sample_age_seconds - 1),
        good(1, at=NOW - limits.max_sample_age_seconds + 1),
    )
    result = run(frame, demo)
    assert result.rejections == {"stale": 4}
    assert result.frame["accelerator_index"].to_list() == [1]


def test_sample_from_the_future_is_rejected_within_skew_is_kept(demo: Topology) -> None:
    limits = ValidationLimits()
    frame = accelerator_rows(
        good(0, at=NOW + limits.max_future_skew_seconds + 1),
        good(1, at=NOW + limits.max_future_skew_seconds - 1),
    )
    result = run(frame, demo)
    assert result.rejections == {"future": 4}
    assert result.frame["accelerator_index"].to_list() == [1]


def test_sample_age_comes_from_the_limits(demo: Topology) -> None:
    frame = accelerator_rows(good(0, at=NOW - 30))
    limits = ValidationLimits(max_sample_age_seconds=10)
    assert validate("accelerator", frame, demo, NOW, limits).rejections == {"stale": 4}
    assert run(frame, demo).rejections == {}


def test_null_values_are_neither_accepted_nor_rejected(demo: Topology) -> None:
    frame = accelerator_rows((0, NOW, 400.0, None, None, None), (1, NOW, None, None, None, None))
    result = run(frame, demo)
    assert result.rejections == {}
    assert result.accepted_samples == 1
    assert result.frame.height == 2


def test_accepted_samples_count_values_not_rows(demo: Topology) -> None:
    frame = accelerator_rows(
        (0, NOW, 400.0, 60.0, None, None),  # 2 values
        (1, NOW, math.nan, 60.0, 0.5, None),  # 2 good, 1 rejected
        (2, NOW, 400.0, 60.0, 0.5, 1e9),  # 4 values
    )
    result = run(frame, demo)
    assert result.accepted_samples == 2 + 2 + 4
    assert result.rejections == {"not_finite": 1}


def test_every_reason_is_counted_once_per_value_in_one_batch(demo: Topology) -> None:
    frame = accelerator_rows(
        good(0),
        (1, NOW, math.nan, 60.0, 0.5, 1e9),
        (2, NOW, -3.0, 60.0, 0.5, 1e9),
        (3, NOW, 900.0, 60.0, 0.5, 1e9),
        (ACCELERATORS + 5, NOW, 400.0, 60.0, None, None),
        good(0),
        good(4, at=NOW - 1_000),
        good(6, at=NOW + 1_000),
    )
    result = run(frame, demo)
    assert result.rejections == {
        "not_finite": 1,
        "negative": 1,
        "out_of_range": 1,
        "unknown_entity": 2,
        "duplicate": 4,
        "stale": 4,
        "future": 4,
    }
    assert result.accepted_samples == 4 + 3 * 3
    assert set(result.rejections) <= set(schemas.REJECTION_REASONS)


def test_each_example_names_the_offending_entity(demo: Topology) -> None:
    frame = accelerator_rows(
        (10, NOW, math.nan, 60.0, 0.5, 1e9),
        (11, NOW, -3.0, 60.0, 0.5, 1e9),
        (12, NOW, 900.0, 60.0, 0.5, 1e9),
        (ACCELERATORS, NOW, 400.0, 60.0, 0.5, 1e9),
        good(13),
        good(13),
        good(14, at=NOW - 1_000),
        good(15, at=NOW + 1_000),
    )
    examples = run(frame, demo).examples
    assert examples["unknown_entity"] == f"accelerator_index {ACCELERATORS}"
    assert examples["duplicate"] == "accelerator_index 13"
    assert examples["stale"] == "accelerator_index 14"
    assert examples["future"] == "accelerator_index 15"
    assert examples["not_finite"].startswith("accelerator_index 10: power_watts=")
    assert examples["negative"] == "accelerator_index 11: power_watts=-3.0"
    assert examples["out_of_range"] == "accelerator_index 12: power_watts=900.0"


def test_feed_fields_are_checked_against_their_breaker_and_voltage(demo: Topology) -> None:
    feed_limit = math.sqrt(3) * 415 * 60 * 1.5
    frame = feed_rows(
        (0, NOW, 13_000.0, 18.5, 415.0, 5e9),
        (1, NOW, feed_limit + 1, 18.5, 415.0, 5e9),  # power beyond 1.5x the breaker
        (2, NOW, 13_000.0, 91.0, 415.0, 5e9),  # current beyond 1.5 x 60 A
        (3, NOW, 13_000.0, 18.5, 200.0, 5e9),  # voltage below half the nominal
        (4, NOW, 13_000.0, 18.5, 630.0, 5e9),  # voltage above 1.5 x nominal
        (5, NOW, 13_000.0, 18.5, 415.0, -1.0),  # a meter cannot run negative
    )
    result = run(frame, demo, "feed")
    assert result.rejections == {"out_of_range": 4, "negative": 1}
    assert result.frame["power_watts"].to_list() == [13_000.0, None] + [13_000.0] * 4
    assert result.frame["current_amps"].to_list() == [18.5, 18.5, None, 18.5, 18.5, 18.5]
    assert result.frame["voltage_volts"].to_list() == [415.0, 415.0, 415.0, None, None, 415.0]
    assert result.frame["meter_energy_joules"].to_list() == [5e9] * 5 + [None]
    assert result.accepted_samples == 6 * 4 - 5


def test_building_fields_are_checked(demo: Topology) -> None:
    frame = pl.DataFrame(
        [
            (0, NOW, 200_000.0, -12.0),
            (0, NOW, 100.0, 20.0),
            (1, NOW, 100.0, 20.0),
        ],
        schema=dict(schemas.BUILDING_SAMPLES),
        orient="row",
    )
    result = run(frame, demo, "building")
    assert result.rejections == {"duplicate": 2, "unknown_entity": 2}
    assert result.frame.rows() == [(0, NOW, 200_000.0, -12.0)]
    # Non-IT power beyond twice the building's 2 MW IT capacity is implausible.
    too_much = pl.DataFrame(
        [(0, NOW, 4_000_001.0, 70.0)], schema=dict(schemas.BUILDING_SAMPLES), orient="row"
    )
    assert run(too_much, demo, "building").rejections == {"out_of_range": 2}


def test_node_fields_are_checked_against_chips_plus_host(demo: Topology) -> None:
    # A demo server: 16 chips of 500 W TDP and a host of at most 6 kW, so 14 kW; with the
    # default 1.5 overload factor 21 kW is the most a BMC can plausibly report, 9 kW for CPUs.
    frame = pl.DataFrame(
        [
            (0, NOW, 21_000.0, 9_000.0),
            (1, NOW, 21_000.1, 9_000.1),
            (2, NOW, -1.0, None),
            (3, NOW, None, float("nan")),
            (500, NOW, 4_000.0, 300.0),
        ],
        schema=dict(schemas.NODE_SAMPLES),
        orient="row",
    )
    result = run(frame, demo, "node")
    assert result.rejections == {
        "out_of_range": 2,
        "negative": 1,
        "not_finite": 1,
        "unknown_entity": 2,
    }
    assert result.frame.rows() == [
        (0, NOW, 21_000.0, 9_000.0),
        (1, NOW, None, None),
        (2, NOW, None, None),
        (3, NOW, None, None),
    ]
    assert result.accepted_samples == 2


def test_empty_frame_is_valid_and_empty(demo: Topology) -> None:
    result = run(schemas.empty(schemas.FEED_SAMPLES), demo, "feed")
    assert result.accepted_samples == 0
    assert result.rejections == {}
    assert result.frame.height == 0
    assert result.frame.schema == pl.Schema(schemas.FEED_SAMPLES)


def test_extra_columns_are_dropped_and_castable_types_are_cast(demo: Topology) -> None:
    frame = pl.DataFrame(
        {
            "note": ["x"],
            "memory_used_bytes": [1_000],
            "utilization_ratio": [1],
            "temperature_celsius": [60],
            "power_watts": [400],
            "timestamp_seconds": [int(NOW)],
            "accelerator_index": [3],
        }
    )
    result = run(frame, demo)
    assert result.frame.schema == pl.Schema(schemas.ACCELERATOR_SAMPLES)
    assert result.frame.row(0) == (3, NOW, 400.0, 60.0, 1.0, 1_000.0)
    assert result.accepted_samples == 4


def test_missing_column_raises_value_error_naming_it(demo: Topology) -> None:
    frame = accelerator_rows(good(0)).drop("temperature_celsius")
    with pytest.raises(ValueError, match="temperature_celsius"):
        run(frame, demo)


def test_negative_index_from_a_signed_column_never_raises(demo: Topology) -> None:
    frame = pl.DataFrame(
        {
            "accelerator_index": pl.Series([-1, 0], dtype=pl.Int64),
            "timestamp_seconds": [NOW, NOW],
            "power_watts": [400.0, 400.0],
            "temperature_celsius": [60.0, 60.0],
            "utilization_ratio": [0.5, 0.5],
            "memory_used_bytes": [1e9, 1e9],
        }
    )
    result = run(frame, demo)
    assert result.rejections == {"unknown_entity": 4}
    assert result.frame["accelerator_index"].to_list() == [0]


def test_row_with_null_timestamp_is_accepted_or_rejected_never_lost(demo: Topology) -> None:
    frame = accelerator_rows(good(0), (1, None, 400.0, 60.0, 0.5, 1e9))
    result = run(frame, demo)
    # Eight values came in; each must be either accepted or counted under a reason.
    assert result.accepted_samples + sum(result.rejections.values()) == 8


def test_validation_never_mutates_its_input(demo: Topology) -> None:
    frame = accelerator_rows(good(0), (1, NOW, math.nan, 60.0, 0.5, 1e9), good(1))
    before = frame.clone()
    run(frame, demo)
    assert_frame_equal(frame, before)


def test_unknown_kind_is_rejected_loudly(demo: Topology) -> None:
    with pytest.raises(KeyError):
        validate("transformer", accelerator_rows(good(0)), demo, NOW)
