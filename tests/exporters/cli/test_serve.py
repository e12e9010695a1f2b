"""`gigawatt` and `gigawatt serve`'s checks before it starts, run as a real subprocess (the
running service: tests/exporters/test_server.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def gigawatt(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "exporters.cli", *args],
        cwd=ROOT,
        # Wide and plain, so typer's error panels do not wrap the messages looked for.
        env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_no_arguments_prints_help() -> None:
    result = gigawatt()
    assert "serve" in result.stdout + result.stderr
    assert "Usage" in result.stdout + result.stderr


def test_serve_refuses_a_bad_grid_config_listing_every_problem(tmp_path: Path) -> None:
    config = tmp_path / "grid.yaml"
    config.write_text("rating_watts: -5\nbands: []\n", encoding="utf-8")
    result = gigawatt("serve", "--preset", "demo", "--grid-config", str(config))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "line 1: rating_watts" in result.stderr
    assert "line 2: bands" in result.stderr


def test_serve_refuses_a_bad_scenario_listing_every_problem(tmp_path: Path) -> None:
    scenario = tmp_path / "incident.yaml"
    scenario.write_text(
        "events:\n"
        "  - {kind: rack_overload, rack: B01-H9-R02-K05, watts: 33000, at: 20s}\n"
        "  - {kind: feed_trip, rack: B01-H1-R03-K01, feed: C, at: soon}\n",
        encoding="utf-8",
    )
    result = gigawatt("serve", "--preset", "demo", "--scenario", str(scenario))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"{scenario}: 3 problem(s)" in result.stderr
    assert "line 2: events.0.rack: no rack 'B01-H9-R02-K05' in the site" in result.stderr
    assert "line 3: events.1.at: 'soon' is not a duration" in result.stderr
    assert "line 3: events.1.feed: rack 'B01-H1-R03-K01' has no feed 'C'" in result.stderr


def test_serve_refuses_mitigations_out_of_range_naming_each_option() -> None:
    result = gigawatt(
        "serve", "--preset", "demo", "--power-floor", "1.5", "--ramp-limit", "0", "--no-state"
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "--power-floor" in result.stderr
    assert "--ramp-limit" in result.stderr
