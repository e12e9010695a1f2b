"""The grid analysis config: documented defaults and every problem listed with its line."""

from __future__ import annotations

import pytest

from collector.grid.config import GridConfig, GridConfigError, parse_grid_config
from tests.collector.grid.signals import MW


def test_an_empty_config_file_gives_the_documented_defaults() -> None:
    config = parse_grid_config("")
    assert config == GridConfig()
    assert config.window_seconds == 40.0
    assert config.ramps[1].warn_watts_per_second == pytest.approx(100 * MW / 60)
    assert config.step.threshold_watts == 50 * MW
    assert config.peak_to_peak_watts(config.bands[0].warn_peak_to_peak_ratio) == 22.5 * MW


def test_every_config_problem_is_listed_with_its_line() -> None:
    text = """\
rating_watts: -1
hop_seconds: 3
bands:
  - name: a
    low_hz: 2
    high_hz: 1
    warn_peak_to_peak_ratio: 0.02
    critical_peak_to_peak_ratio: 0.01
  - name: a
    low_hz: 0
    warn_peak_to_peak_ratio: 0.01
"""
    with pytest.raises(GridConfigError) as caught:
        parse_grid_config(text, "grid.yaml")
    assert [str(problem) for problem in caught.value.problems] == [
        "line 1: rating_watts: Input should be greater than 0"
    ]
    with pytest.raises(GridConfigError) as caught:
        parse_grid_config(text.replace("rating_watts: -1", "rating_watts: 1e9"), "grid.yaml")
    problems = [str(problem) for problem in caught.value.problems]
    assert problems == [
        "line 6: bands.0.high_hz: must be above low_hz",
        "line 8: bands.0.critical_peak_to_peak_ratio: is below the warn ratio",
        "line 9: bands.1.name: band 'a' appears twice",
        "line 2: hop_seconds: must divide half a segment (10 s) or be a multiple of it",
    ]
    assert str(caught.value).startswith("grid.yaml: 4 problem(s)")
