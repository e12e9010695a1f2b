"""Benchmark: `gigawatt grid analyze` on 24 h of 20 Hz campus power (1.73 M samples).

The synthetic day: a 1.5 GW base; one synchronous training job as a square wave of 190 MW
peak-to-peak (site-model.md section 2: period 3 s with +-2 % drift, duty 0.8); a 2-minute
checkpoint every 30 min at idle; a job start (+60 MW), a failure (-150 MW for 5 min) and 2 MW
of measurement noise. It is written to Parquet in a temporary folder, then analysed
in process (read + analysis + JSON document) and through the CLI in a subprocess.

    .venv/bin/python bench/bench_grid_analyze.py [--runs 5] [--cli-runs 3]

Prints the median and the range of each, the command, and the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from collector.grid.analysis import analyze  # noqa: E402
from collector.grid.config import GridConfig  # noqa: E402
from exporters.cli.grid import PowerUnit, analysis_document, load_power_series  # noqa: E402


def campus_day(hours: float, rate_hz: float, seed: int) -> pl.DataFrame:
    """Synthetic POI power: timestamp_seconds (epoch) and power_watts."""
    rng = np.random.default_rng(seed)
    count = int(hours * 3600 * rate_hz)
    seconds = np.arange(count) / rate_hz
    period = 3.0 * (1 + 0.02 * np.sin(2 * np.pi * seconds / 3600))
    phase = np.cumsum(1.0 / (period * rate_hz))
    training = (phase % 1.0) < 0.8
    checkpoint = (seconds % 1800) >= 1680
    power = 1.5e9 + 190e6 * (training & ~checkpoint)
    power += 60e6 * (seconds >= 6 * 3600.0)  # a second job starts
    power -= 150e6 * ((seconds >= 14 * 3600.0 + 600) & (seconds < 14 * 3600.0 + 900))
    power += rng.normal(0.0, 2e6, count)
    return pl.DataFrame({"timestamp_seconds": 1.76e9 + seconds, "power_watts": power})


def timed(action: Callable[[], object], runs: int) -> list[float]:
    durations = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        durations.append(time.perf_counter() - started)
    return durations


def summary(label: str, durations: list[float]) -> str:
    return (
        f"{label:<34} median {statistics.median(durations):6.3f} s   "
        f"min {min(durations):6.3f} s   max {max(durations):6.3f} s   ({len(durations)} runs)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--rate", type=float, default=20.0, help="samples per second")
    parser.add_argument("--runs", type=int, default=5, help="in-process runs")
    parser.add_argument("--cli-runs", type=int, default=3, help="CLI subprocess runs")
    parser.add_argument("--seed", type=int, default=0)
    arguments = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "campus_day.parquet"
        frame = campus_day(arguments.hours, arguments.rate, arguments.seed)
        frame.write_parquet(path)
        config = GridConfig()

        def in_process() -> dict[str, object]:
            series = load_power_series(path, "timestamp_seconds", "power_watts", PowerUnit.W)
            analysis = analyze(series.timestamps, series.watts, config)
            return analysis_document(
                path, series, analysis, config, "timestamp_seconds", "power_watts",
                PowerUnit.W, [],
            )  # fmt: skip

        command = [sys.executable, "-m", "exporters.cli", "grid", "analyze", str(path)]
        command += ["--format", "json"]

        def cli() -> None:
            subprocess.run(command, cwd=ROOT, check=True, capture_output=True)

        document = in_process()  # warm-up, and the result to show
        process_times = timed(in_process, arguments.runs)
        cli_times = timed(cli, arguments.cli_runs)

    print(f"data: {frame.height:,} samples ({arguments.hours:g} h at {arguments.rate:g} Hz)")
    print(f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"numpy {np.__version__}, polars {pl.__version__}")  # fmt: skip
    print("command: python " + " ".join(command[1:]).replace(str(path), "campus_day.parquet"))
    print(summary("in process (read + analyze + JSON)", process_times))
    print(summary("CLI subprocess (python -m ...)", cli_times))
    steps = document["steps"]
    episodes = document["episodes"]
    spectrum = document["spectrum"]
    assert isinstance(steps, dict) and isinstance(episodes, dict) and isinstance(spectrum, dict)
    print(
        "found: "
        + json.dumps(
            {
                "steps": len(steps["events"]),
                "episodes": len(episodes["events"]),
                "dominant_frequency_hz": round(spectrum["dominant_frequency_hz"], 4),
            }
        )
    )


if __name__ == "__main__":
    main()
