"""`gigawatt grid analyze` end to end: a subprocess on CSV and Parquet files, both output
formats, and bad input that must exit 2 naming the file, never with a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

ROOT = Path(__file__).resolve().parents[3]
EPOCH = 1.76e9
MW = 1e6
RATE = 20.0


def run_analyze(*arguments: str | Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "exporters.cli", "grid", "analyze", *map(str, arguments)]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60)


def analysed(*arguments: str | Path) -> dict[str, Any]:
    result = run_analyze(*arguments, "--format", "json")
    assert result.returncode == 0, result.stderr
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def training_frame(duration: float = 360.0, step_at: float = 200.0) -> pl.DataFrame:
    """A training square wave (3 s, duty 0.8, 190 MW p-p on 1.5 GW), a 60 MW step, noise."""
    seconds = np.arange(round(duration * RATE)) / RATE
    power = 1.5e9 + 190 * MW * (((seconds / 3.0) % 1.0) < 0.8)
    power += 60 * MW * (seconds >= step_at)
    power += np.random.default_rng(0).normal(0.0, 1 * MW, seconds.size)
    return pl.DataFrame({"timestamp_seconds": EPOCH + seconds, "power_watts": power})


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("grid")
    frame = training_frame()
    paths = {"parquet": folder / "poi.parquet", "csv": folder / "poi.csv"}
    frame.write_parquet(paths["parquet"])
    frame.write_csv(paths["csv"])
    return paths


def test_json_on_parquet_has_the_documented_shape_and_findings(files: dict[str, Path]) -> None:
    document = analysed(files["parquet"])
    assert list(document) == [
        "schema_version",
        "file",
        "input",
        "sampling",
        "ramps",
        "steps",
        "drops",
        "spectrum",
        "episodes",
        "notes",
    ]
    assert document["schema_version"] == 1
    assert document["file"] == str(files["parquet"])
    assert document["input"]["rows_used"] == 7200
    assert document["sampling"]["source_rate_hz"] == pytest.approx(RATE)
    assert document["sampling"]["gaps"] == []
    assert [ramp["window_seconds"] for ramp in document["ramps"]] == [1.0, 60.0]
    (step,) = document["steps"]["events"]
    assert abs(step["at_seconds"] - (EPOCH + 200)) <= 1.0
    assert step["delta_watts"] == pytest.approx(60 * MW, rel=0.05)
    spectrum = document["spectrum"]
    assert spectrum["dominant_frequency_hz"] == pytest.approx(1 / 3, abs=0.01)
    visibility = {band["name"]: band["visibility"] for band in spectrum["bands"]}
    assert visibility == {
        "0.1-1 Hz": "visible",
        "1-3 Hz": "visible",
        "3-10 Hz": "partial",
        "10 Hz-Nyquist": "not_visible",
    }
    assert spectrum["bands"][3]["energy_share"] is None
    low = [event for event in document["episodes"]["events"] if event["band"] == "0.1-1 Hz"]
    assert len(low) == 1 and low[0]["severity"] == "critical"


def test_csv_and_parquet_give_the_same_analysis(files: dict[str, Path]) -> None:
    from_csv = analysed(files["csv"])
    from_parquet = analysed(files["parquet"])
    for document in (from_csv, from_parquet):
        document.pop("file")
    assert from_csv == from_parquet


def test_table_output_names_every_section(files: dict[str, Path]) -> None:
    result = run_analyze(files["csv"], "--format", "table")
    assert result.returncode == 0, result.stderr
    for heading in ("ramps", "steps: 1", "drops", "spectrum", "oscillation episodes"):
        assert heading in result.stdout
    assert "not_visible" in result.stdout and "MW/min" in result.stdout


def test_iso_timestamps_units_unsorted_rows_gaps_and_missing_values(tmp_path: Path) -> None:
    frame = training_frame(duration=240.0, step_at=1e9)
    start = datetime(2025, 10, 1, tzinfo=UTC)
    times = [
        (start + timedelta(seconds=float(value - EPOCH))).isoformat().replace("+00:00", "Z")
        for value in frame.get_column("timestamp_seconds")
    ]
    power = (frame.get_column("power_watts") / 1e6).to_list()
    power[10] = None  # missing
    power[20] = float("nan")
    keep = [index for index in range(len(times)) if not 2000 <= index < 2300]  # a 15 s gap
    rows = [(times[index], power[index]) for index in keep]
    rows[100], rows[101] = rows[101], rows[100]  # out of order
    path = tmp_path / "poi_mw.csv"
    pl.DataFrame(rows, schema={"time": pl.String, "p_mw": pl.Float64}, orient="row").write_csv(path)
    document = analysed(path, "--time-column", "time", "--power-column", "p_mw", "--unit", "MW")
    assert document["input"]["rows_dropped_missing"] == 2
    assert document["input"]["sorted_on_load"] is True
    (gap,) = document["sampling"]["gaps"]
    assert gap["duration_seconds"] == pytest.approx(15.05)
    assert gap["start_seconds"] == pytest.approx(start.timestamp() + 99.95)
    assert document["sampling"]["segments"] == 2
    assert any("sorted" in note for note in document["notes"])
    assert any("2 row(s)" in note for note in document["notes"])
    assert document["spectrum"]["peak_to_peak_watts"] > 100 * MW


def test_a_grid_config_file_changes_thresholds(files: dict[str, Path], tmp_path: Path) -> None:
    config = tmp_path / "grid.yaml"
    config.write_text("step:\n  threshold_watts: 80.0e6\n", encoding="utf-8")
    document = analysed(files["parquet"], "--config", config)
    assert document["steps"]["threshold_watts"] == 80e6
    assert document["steps"]["events"] == []


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("name", "content", "options", "message"),
    [
        ("empty.csv", "", (), "the file is empty"),
        ("header.csv", "timestamp_seconds,power_watts\n", (), "no data rows"),
        ("columns.csv", "time,power\n1,2\n2,3\n", (), "missing column(s) 'timestamp_seconds'"),
        (
            "text.csv",
            "timestamp_seconds,power_watts\n1,5\n2,lots\n3,7\n",
            (),
            "power column 'power_watts' is not numeric: 1 row(s), first at data row 2: 'lots'",
        ),
        (
            "times.csv",
            "timestamp_seconds,power_watts\nyesterday,5\n2,6\n",
            (),
            "time column 'timestamp_seconds' is neither epoch seconds nor ISO-8601",
        ),
        ("one.csv", "timestamp_seconds,power_watts\n1,5\n2,\n", (), "1 usable row(s) of 2"),
        ("data.txt", "timestamp_seconds,power_watts\n1,5\n", (), "unsupported file type"),
        ("broken.parquet", "not parquet at all", (), "cannot read"),
    ],
)
def test_bad_input_exits_2_naming_the_file(
    tmp_path: Path, name: str, content: str, options: tuple[str, ...], message: str
) -> None:
    path = _write(tmp_path / name, content)
    result = run_analyze(path, *options)
    assert result.returncode == 2
    assert result.stderr.startswith(f"{path}: ")
    assert message in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_a_missing_file_and_a_bad_config_exit_2(files: dict[str, Path], tmp_path: Path) -> None:
    missing = run_analyze(tmp_path / "nowhere.csv")
    assert missing.returncode == 2 and f"{tmp_path / 'nowhere.csv'}: no such file" in missing.stderr
    config = _write(tmp_path / "grid.yaml", "hop_seconds: -5\nbands: []\n")
    bad = run_analyze(files["csv"], "--config", config)
    assert bad.returncode == 2
    assert f"{config}: 2 problem(s)" in bad.stderr
    assert "line 1: hop_seconds" in bad.stderr and "line 2: bands" in bad.stderr
    assert "Traceback" not in bad.stderr
