"""The alert thresholds: durations, defaults, files validated with every problem on its
line, and scaling for short demonstrations."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from collector.grid.config import GridConfig
from exporters.contract.thresholds import (
    DEFAULT_THRESHOLDS,
    Thresholds,
    ThresholdsError,
    format_duration,
    load_thresholds,
    parse_duration,
    parse_thresholds,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90.0),
        ("10m", 600.0),
        ("1h30m", 5400.0),
        ("3h", 10800.0),
        ("2d", 172800.0),
        ("250ms", 0.25),
        (45, 45.0),
        (0.5, 0.5),
    ],
)
def test_durations_take_seconds_or_prometheus_durations(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["", "5x", "m5", "1.5m", "-3s", -1, float("inf"), True, None])
def test_a_duration_that_is_none_says_what_is_expected(bad: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(10800, "3h"), (5400, "90m"), (90, "90s"), (108, "108s"), (0.25, "250ms"), (0, "0s")],
)
def test_durations_are_written_in_the_largest_exact_unit(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(format_duration(seconds)) == seconds


def test_an_empty_file_gives_the_defaults() -> None:
    assert parse_thresholds("") == DEFAULT_THRESHOLDS
    assert parse_thresholds("# nothing set\n") == Thresholds()


def test_a_file_changes_only_what_it_sets() -> None:
    thresholds = parse_thresholds(
        "capacity:\n  rack: {warning: {value: 0.75, for: 1h}}\ngrid:\n  event_lookback: 5m\n"
    )
    assert thresholds.capacity.rack.warning is not None
    assert thresholds.capacity.rack.warning.value == 0.75
    assert thresholds.capacity.rack.warning.for_ == 3600
    assert thresholds.capacity.rack.critical is None
    assert thresholds.capacity.feed == DEFAULT_THRESHOLDS.capacity.feed
    assert thresholds.grid.event_lookback == 300
    assert thresholds.grid.ramp_watts_per_minute == DEFAULT_THRESHOLDS.grid.ramp_watts_per_minute


def test_the_defaults_follow_the_site_model() -> None:
    t = DEFAULT_THRESHOLDS
    # Ratios of the continuous rating, which already is NEC's 80 % of nameplate: above it for
    # 3 h; critical above 95 % of nameplate (0.95 / 0.8 = 1.1875).
    for level in ("feed", "rack", "row", "hall", "lineup", "building"):
        levels = getattr(t.capacity, level)
        assert (levels.warning.value, levels.warning.for_) == (1.0, 3 * 3600)
        assert levels.critical.value == 1.1875
    assert (t.capacity.contract.warning.value, t.capacity.contract.warning.for_) == (0.95, 300)
    assert t.capacity.contract.critical.value == 1.0
    assert (t.capacity.pue.warning.value, t.capacity.pue.critical.value) == (1.25, 1.35)
    assert t.capacity.pue_window == 3600
    assert t.data_quality.unattributed_above_ratio == 0.08
    assert t.data_quality.unattributed_below_ratio == -0.03
    assert t.data_quality.unattributed_for == 900
    # Grid: 100 / 150 MW per minute at 2,250 MW; 1 % / 3 % of rating in 0.1-3 Hz; 20 % of
    # the band energy for 30 s.
    assert t.grid.reference_rating_watts == 2.25e9
    ramp = t.grid.ramp_watts_per_minute
    assert (ramp.warning.value, ramp.critical.value) == pytest.approx((100e6, 150e6))
    low = {band.band: band for band in t.grid.oscillation}
    assert (low["0.1-1 Hz"].warning_ratio, low["0.1-1 Hz"].critical_ratio) == (0.01, 0.03)
    assert t.grid.band_energy_ratio.warning.value == 0.2
    assert t.grid.oscillation_for == 30


def test_the_grid_limits_are_the_collectors_own() -> None:
    """The oscillation bands the rules judge are the bands the collector analyses."""
    collector = GridConfig()
    assert [band.band for band in DEFAULT_THRESHOLDS.grid.oscillation] == [
        band.name for band in collector.bands
    ]
    assert DEFAULT_THRESHOLDS.grid.reference_rating_watts == collector.rating_watts


def test_every_problem_of_a_file_is_reported_with_its_line() -> None:
    text = (
        "selector: 'job=gigawatt'\n"  # 1: not a matcher
        "capacity:\n"
        "  smoothing: 5x\n"  # 3
        "  rack:\n"
        "    warning: {value: 0.9, for: 3h}\n"
        "    critical: {value: 0.85}\n"  # 6: below the warning
        "data_quality:\n"
        "  building_reporting_ratio: {warning: {value: 0.5}, critical: {value: 0.9}}\n"  # 8
        "grid:\n"
        "  oscillation: [{band: '1-3 Hz', warning_ratio: 0.05, critical_ratio: 0.01}]\n"  # 10
        "  nonsense: 1\n"  # 11
    )
    with pytest.raises(ThresholdsError) as caught:
        parse_thresholds(text, "t.yml")
    found = {(problem.line, problem.location) for problem in caught.value.problems}
    assert found == {
        (1, "selector"),
        (3, "capacity.smoothing"),
        (6, "capacity.rack.critical"),
        (8, "data_quality.building_reporting_ratio.critical"),
        (10, "grid.oscillation.0.critical_ratio"),
        (11, "grid.nonsense"),
    }
    message = str(caught.value)
    assert message.startswith("t.yml: 6 problem(s)")
    assert "line 6: capacity.rack.critical: is below the warning value (0.9)" in message
    assert "Value error" not in message


def test_a_band_of_unattributed_power_must_not_be_empty() -> None:
    with pytest.raises(ThresholdsError, match="unattributed_below_ratio: must be below"):
        parse_thresholds("data_quality: {unattributed_above_ratio: -0.05}\n")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("capacity: [1, 2\n", "not valid YAML"),
        ("- 1\n- 2\n", "the top level must be a mapping"),
    ],
)
def test_a_file_that_is_not_a_mapping_is_one_problem(text: str, expected: str) -> None:
    with pytest.raises(ThresholdsError, match=expected):
        parse_thresholds(text)


def test_an_unreadable_file_is_a_thresholds_error(tmp_path: Path) -> None:
    with pytest.raises(ThresholdsError, match="cannot read"):
        load_thresholds(tmp_path / "missing.yml")


def test_scaling_shortens_every_for_and_window_but_not_below_the_floor() -> None:
    short = Thresholds(for_scale=0.01, window_scale=0.1, min_window=20)
    assert short.for_duration(3 * 3600) == "108s"
    assert short.for_duration(0) == "0s"
    assert short.window(600) == "1m"
    assert short.window(60) == "20s"  # 6 s would hold no sample at a 15 s scrape
    assert DEFAULT_THRESHOLDS.window(300) == "5m"


def test_importing_the_thresholds_pulls_in_no_web_stack() -> None:
    code = (
        "import sys, exporters.contract.thresholds, dashboards.generate\n"
        "loaded = sorted(m for m in ('fastapi', 'uvicorn', 'httpx', 'starlette') "
        "if m in sys.modules)\n"
        "print(','.join(loaded))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert result.stdout.strip() == ""
