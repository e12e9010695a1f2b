"""``gigawatt grid``: grid-facing analytics of a recorded power series.

``gigawatt grid analyze FILE`` reads one meter's series from CSV or Parquet, converts it to
watts, and prints what a grid operator watches: sampling and gaps, ramp rates, steps and
drops, the spectrum with its band energy shares and what the sample rate can see, and the
oscillation episodes (see collector.grid.analysis for how each is computed).

Bad input never gives a traceback: a missing column, non-numeric power, an empty file or an
unreadable one is one line on stderr naming the file, and exit code 2. Rows with a missing
time or power are dropped and counted; unsorted timestamps are sorted and the output says so.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import numpy.typing as npt
import polars as pl
import typer

from collector.config_errors import MAX_SHOWN_CHARACTERS, shown
from collector.grid.analysis import GridAnalysis, analyze
from collector.grid.config import GridConfig, GridConfigError, load_grid_config
from collector.grid.steps import Step

JSON_SCHEMA_VERSION = 1
# Timestamps are epoch seconds a calendar can show: up to the end of year 9999 either side
# of 1970 (relative times from 0 are fine too); beyond, a date cannot be printed.
MAX_ABS_EPOCH_SECONDS = 253_402_300_799.0

grid_app = typer.Typer(
    no_args_is_help=True, help="Grid-facing analytics: ramps, steps, oscillations."
)


class OutputFormat(StrEnum):
    json = "json"
    table = "table"


class PowerUnit(StrEnum):
    W = "W"
    kW = "kW"
    MW = "MW"


WATTS_PER_UNIT = {PowerUnit.W: 1.0, PowerUnit.kW: 1e3, PowerUnit.MW: 1e6}
PARQUET_SUFFIXES = (".parquet", ".pq")
CSV_SUFFIXES = (".csv",)


class GridInputError(Exception):
    """A file that cannot be analysed; the message names the file and the problem."""

    def __init__(self, path: Path, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem}")


@dataclass(frozen=True)
class PowerSeries:
    """One meter's series as read: sorted, finite, in watts."""

    timestamps: npt.NDArray[np.float64]
    watts: npt.NDArray[np.float64]
    rows_read: int
    rows_dropped_missing: int
    sorted_on_load: bool  # the file's timestamps were out of order and were sorted


def _columns(path: Path) -> dict[str, pl.DataType]:
    if path.suffix.lower() in PARQUET_SUFFIXES:
        return dict(pl.read_parquet_schema(path))
    return dict(pl.read_csv(path, n_rows=0).schema)


def _read_frame(path: Path, time_column: str, power_column: str) -> pl.DataFrame:
    suffix = path.suffix.lower()
    if suffix not in PARQUET_SUFFIXES + CSV_SUFFIXES:
        raise GridInputError(
            path, f"unsupported file type {suffix or '(none)'!r}: give .csv or .parquet"
        )
    if not path.is_file():
        raise GridInputError(path, "no such file")
    try:
        if path.stat().st_size == 0:
            raise GridInputError(path, "the file is empty")
        schema = _columns(path)
        missing = [name for name in (time_column, power_column) if name not in schema]
        if missing:
            raise GridInputError(
                path,
                f"missing column(s) {', '.join(shown(name) for name in missing)}; "
                f"the file has {_listed(list(schema)) or 'no columns'} "
                "(choose with --time-column and --power-column)",
            )
        columns = [time_column, power_column]
        if suffix in PARQUET_SUFFIXES:
            return pl.read_parquet(path, columns=columns)
        # Read both as text and convert here, so that one bad value anywhere in the file is
        # reported with its row instead of failing type inference.
        return pl.read_csv(
            path, columns=columns, schema_overrides={name: pl.String for name in columns}
        )
    except pl.exceptions.NoDataError:
        raise GridInputError(path, "the file is empty") from None
    except (pl.exceptions.PolarsError, OSError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        if len(first_line) > MAX_SHOWN_CHARACTERS:
            first_line = first_line[:MAX_SHOWN_CHARACTERS] + "..."
        raise GridInputError(path, f"cannot read: {first_line or type(error).__name__}") from None


def _listed(names: list[str], most: int = 8) -> str:
    """Column names for a message, each cut short and at most ``most`` of them (a binary
    file's header is not echoed back)."""
    listed = ", ".join(shown(name) for name in names[:most])
    return listed + (f" and {len(names) - most} more" if len(names) > most else "")


def _first_bad(frame: pl.DataFrame, column: str, bad: pl.Expr) -> str:
    rows = frame.with_row_index("row").filter(bad)
    value = rows.get_column(column)[0]
    return (
        f"{rows.height:,} row(s), first at data row {rows.get_column('row')[0] + 1}: {shown(value)}"
    )


def _epoch_seconds(frame: pl.DataFrame, path: Path, column: str) -> pl.Series:
    """The time column as float epoch seconds: numbers as they are, datetimes and ISO-8601
    strings converted (a string without an offset is taken as UTC); null where missing."""
    series = frame.get_column(column)
    dtype = series.dtype
    if dtype.is_numeric():
        return series.cast(pl.Float64)
    if isinstance(dtype, pl.Datetime):
        return series.dt.epoch("us").cast(pl.Float64) / 1e6
    if dtype == pl.Date:
        return series.cast(pl.Datetime("us")).dt.epoch("us").cast(pl.Float64) / 1e6
    if dtype != pl.String:
        raise GridInputError(path, f"time column {column!r} has type {dtype}, not time")
    text = pl.col(column).str.strip_chars()
    present = text.is_not_null() & (text != "")
    numeric = text.cast(pl.Float64, strict=False)
    normalised = text.str.replace(" ", "T", literal=True)
    with_offset = normalised.str.to_datetime(
        "%Y-%m-%dT%H:%M:%S%.f%#z", time_unit="us", strict=False
    ).dt.epoch("us")
    naive = normalised.str.to_datetime("%Y-%m-%dT%H:%M:%S%.f", time_unit="us", strict=False)
    parsed = pl.coalesce(with_offset, naive.dt.epoch("us")).cast(pl.Float64) / 1e6
    # A column of numbers stored as text is epoch seconds; otherwise ISO-8601 throughout.
    numbers = frame.select((present & numeric.is_null()).sum()).item() == 0
    converted = numeric if numbers else parsed
    bad = present & converted.is_null()
    if frame.select(bad.sum()).item():
        raise GridInputError(
            path,
            f"time column {column!r} is neither epoch seconds nor ISO-8601: "
            + _first_bad(frame, column, bad),
        )
    return frame.select(converted.alias(column)).get_column(column)


def _power_watts(frame: pl.DataFrame, path: Path, column: str, unit: PowerUnit) -> pl.Series:
    series = frame.get_column(column)
    if series.dtype.is_numeric() and series.dtype != pl.Boolean:
        values = series.cast(pl.Float64)
    elif series.dtype == pl.String:
        text = pl.col(column).str.strip_chars()
        converted = text.cast(pl.Float64, strict=False)
        bad = text.is_not_null() & (text != "") & converted.is_null()
        if frame.select(bad.sum()).item():
            raise GridInputError(
                path, f"power column {column!r} is not numeric: " + _first_bad(frame, column, bad)
            )
        values = frame.select(converted.alias(column)).get_column(column)
    else:
        raise GridInputError(path, f"power column {column!r} has type {series.dtype}, not numeric")
    return values * WATTS_PER_UNIT[unit]


def load_power_series(
    path: Path, time_column: str, power_column: str, unit: PowerUnit
) -> PowerSeries:
    """Read one meter's series; raise GridInputError naming the file and the problem."""
    frame = _read_frame(path, time_column, power_column)
    if frame.height == 0:
        raise GridInputError(path, "no data rows")
    times = _epoch_seconds(frame, path, time_column).to_numpy().astype(np.float64)
    watts = _power_watts(frame, path, power_column, unit).to_numpy().astype(np.float64)
    beyond = np.isfinite(times) & (np.abs(times) > MAX_ABS_EPOCH_SECONDS)
    if beyond.any():
        first = int(np.flatnonzero(beyond)[0])
        raise GridInputError(
            path,
            f"time column {time_column!r} is beyond year 9999: {int(beyond.sum()):,} row(s), "
            f"first at data row {first + 1}: {float(times[first]):g}",
        )
    usable = np.isfinite(times) & np.isfinite(watts)
    dropped = int(frame.height - np.count_nonzero(usable))
    times, watts = times[usable], watts[usable]
    if times.size < 2:
        raise GridInputError(
            path,
            f"{times.size} usable row(s) of {frame.height} (rows with a missing or non-finite "
            "time or power are dropped): need at least 2",
        )
    out_of_order = bool(np.any(np.diff(times) < 0))
    if out_of_order:
        order = np.argsort(times, kind="stable")
        times, watts = times[order], watts[order]
    return PowerSeries(times, watts, frame.height, dropped, out_of_order)


# --- output ----------------------------------------------------------------------------------


def _number(value: float | None) -> float | None:
    """JSON has no NaN or infinity: those become null."""
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def _step_events(steps: tuple[Step, ...]) -> list[dict[str, Any]]:
    return [
        {
            "at_seconds": step.at_seconds,
            "delta_watts": step.delta_watts,
            "duration_seconds": _number(step.duration_seconds),
            "level_before_watts": step.level_before_watts,
            "level_after_watts": step.level_after_watts,
        }
        for step in steps
    ]


def analysis_document(
    path: Path,
    series: PowerSeries,
    analysis: GridAnalysis,
    config: GridConfig,
    time_column: str,
    power_column: str,
    unit: PowerUnit,
    notes: list[str],
) -> dict[str, Any]:
    """The JSON document of `grid analyze`: a stable shape, keys in a fixed order, null for
    anything unknown (see the shape in the README)."""
    sampling = analysis.sampling
    spectrum = analysis.spectrum
    spectrum_document: dict[str, Any] | None = None
    if spectrum is not None:
        spectrum_document = {
            "resolution_hz": spectrum.resolution_hz,
            "lowest_resolvable_hz": spectrum.lowest_resolvable_hz,
            "nyquist_hz": spectrum.nyquist_hz,
            "segments_averaged": spectrum.segments_averaged,
            "dominant_frequency_hz": _number(spectrum.dominant_frequency_hz),
            "peak_to_peak_watts": _number(spectrum.peak_to_peak_watts),
            "bands": [
                {
                    "name": band.visibility.band,
                    "low_hz": band.visibility.low_hz,
                    "high_hz": band.visibility.high_hz,
                    "visibility": band.visibility.status,
                    "visibility_reason": band.visibility.reason,
                    "energy_share": _number(band.energy_share),
                    "dominant_frequency_hz": _number(band.dominant_frequency_hz),
                    "peak_to_peak_watts": _number(band.peak_to_peak_watts),
                    "warn_peak_to_peak_watts": config.peak_to_peak_watts(
                        spec.warn_peak_to_peak_ratio
                    ),
                    "critical_peak_to_peak_watts": _number(
                        config.peak_to_peak_watts(spec.critical_peak_to_peak_ratio)
                        if spec.critical_peak_to_peak_ratio is not None
                        else None
                    ),
                }
                for band, spec in zip(spectrum.bands, config.bands, strict=True)
            ],
        }
    return {
        "schema_version": JSON_SCHEMA_VERSION,
        "file": str(path),
        "input": {
            "time_column": time_column,
            "power_column": power_column,
            "unit": unit.value,
            "rows_read": series.rows_read,
            "rows_dropped_missing": series.rows_dropped_missing,
            "rows_used": int(series.timestamps.size),
            "sorted_on_load": series.sorted_on_load,
            "duplicate_timestamps": sampling.duplicate_timestamps,
        },
        "sampling": {
            "start_seconds": sampling.start_seconds,
            "end_seconds": sampling.end_seconds,
            "duration_seconds": sampling.end_seconds - sampling.start_seconds,
            "median_interval_seconds": sampling.median_interval_seconds,
            "source_rate_hz": sampling.source_rate_hz,
            "analysis_rate_hz": analysis.analysis_rate_hz,
            "min_interval_seconds": sampling.min_interval_seconds,
            "max_interval_seconds": sampling.max_interval_seconds,
            "irregular_intervals": sampling.irregular_intervals,
            "irregular_ratio": sampling.irregular_ratio,
            "gap_threshold_seconds": config.gap_multiple * sampling.median_interval_seconds,
            "gaps": [
                {
                    "start_seconds": gap.start_seconds,
                    "end_seconds": gap.end_seconds,
                    "duration_seconds": gap.duration_seconds,
                }
                for gap in sampling.gaps
            ],
            "segments": analysis.segments,
        },
        "ramps": [
            {
                "window_seconds": ramp.window_seconds,
                "max_abs_watts_per_second": _number(ramp.max_abs_watts_per_second),
                "signed_watts_per_second": _number(ramp.signed_watts_per_second),
                "at_seconds": _number(ramp.at_seconds),
                "warn_watts_per_second": _number(ramp.warn_watts_per_second),
                "critical_watts_per_second": _number(ramp.critical_watts_per_second),
                "seconds_above_warn": ramp.seconds_above_warn,
                "seconds_above_critical": ramp.seconds_above_critical,
                "status": ramp.status,
            }
            for ramp in analysis.ramps
        ],
        "steps": {
            "threshold_watts": config.step.threshold_watts,
            "within_seconds": config.step.within_seconds,
            "level_seconds": config.step.level_seconds,
            "events": _step_events(analysis.steps),
        },
        "drops": {
            "threshold_watts": config.drop.threshold_watts,
            "within_seconds": config.drop.within_seconds,
            "level_seconds": config.drop.level_seconds,
            "events": _step_events(analysis.drops),
        },
        "spectrum": spectrum_document,
        "episodes": {
            "window_seconds": analysis.window_seconds,
            "hop_seconds": analysis.hop_seconds,
            "windows_analysed": analysis.windows_analysed,
            "seconds_not_windowed": analysis.seconds_too_short_for_windows,
            "energy_share_threshold_ratio": config.energy_share_threshold_ratio,
            "min_duration_seconds": config.episode_min_seconds,
            "events": [
                {
                    "band": episode.band,
                    "start_seconds": episode.start_seconds,
                    "end_seconds": episode.end_seconds,
                    "duration_seconds": episode.duration_seconds,
                    "dominant_frequency_hz": _number(episode.dominant_frequency_hz),
                    "peak_to_peak_watts": episode.peak_to_peak_watts,
                    "max_energy_share": episode.max_energy_share,
                    "criteria": list(episode.criteria),
                    "severity": episode.severity,
                    "visibility": episode.visibility,
                }
                for episode in analysis.episodes
            ],
        },
        "notes": notes + list(analysis.notes),
    }


def _when(seconds: float | None) -> str:
    """Epoch seconds as UTC ISO-8601; small values (relative time) as seconds."""
    if seconds is None:
        return "-"
    if seconds > 3e8:  # after 1979: an epoch timestamp
        return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds")
    return f"{seconds:.3f} s"


def _mw(watts: float | None, digits: int = 1) -> str:
    return "-" if watts is None else f"{watts / 1e6:,.{digits}f} MW"


def _hz(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f} Hz"


def render_table(document: dict[str, Any]) -> str:
    """The JSON document as text for a person: MW, MW/min and UTC times."""
    lines = [f"grid analysis of {document['file']}"]
    source = document["input"]
    sampling = document["sampling"]
    lines.append(
        f"  rows {source['rows_used']:,} used of {source['rows_read']:,} "
        f"({source['rows_dropped_missing']:,} dropped as missing), "
        f"power column {source['power_column']!r} in {source['unit']}"
    )
    lines.append(
        f"  {_when(sampling['start_seconds'])} .. {_when(sampling['end_seconds'])} "
        f"({sampling['duration_seconds']:,.1f} s), median interval "
        f"{sampling['median_interval_seconds'] * 1e3:.1f} ms ({sampling['source_rate_hz']:.2f} Hz),"
        f" analysed at {sampling['analysis_rate_hz']:.2f} Hz"
    )
    lines.append(
        f"  irregular intervals {sampling['irregular_intervals']:,} "
        f"({sampling['irregular_ratio']:.2%}); gaps {len(sampling['gaps'])} "
        f"(> {sampling['gap_threshold_seconds']:.3g} s), segments {sampling['segments']}"
    )
    for gap in sampling["gaps"][:20]:
        lines.append(
            f"    gap {_when(gap['start_seconds'])} .. {_when(gap['end_seconds'])} "
            f"({gap['duration_seconds']:,.2f} s)"
        )
    if len(sampling["gaps"]) > 20:
        lines.append(f"    ... {len(sampling['gaps']) - 20} more gaps (see --format json)")

    lines.append("")
    lines.append("ramps (change of the window mean per second)")
    lines.append(
        f"  {'window':>8}  {'max |ramp|':>14}  {'':>16}  {'signed':>16}  {'at':<29}  status"
    )
    for ramp in document["ramps"]:
        signed = ramp["signed_watts_per_second"]
        largest = ramp["max_abs_watts_per_second"]
        lines.append(
            f"  {ramp['window_seconds']:>6g} s  "
            f"{'-' if largest is None else f'{largest / 1e6:,.1f} MW/s':>14}  "
            f"{'-' if largest is None else f'{largest * 60 / 1e6:,.1f} MW/min':>16}  "
            f"{'-' if signed is None else f'{signed * 60 / 1e6:+,.1f} MW/min':>16}  "
            f"{_when(ramp['at_seconds']):<29}  {ramp['status']}"
        )

    for key, title in (("steps", "steps"), ("drops", "drops (uncommanded-drop candidates)")):
        rule = document[key]
        events = rule["events"]
        lines.append("")
        lines.append(
            f"{title}: {len(events)} (> {_mw(rule['threshold_watts'], 0)} within "
            f"{rule['within_seconds']:g} s)"
        )
        for event in events[:50]:
            duration = event["duration_seconds"]
            lines.append(
                f"  {_when(event['at_seconds'])}  {event['delta_watts'] / 1e6:+,.1f} MW  "
                f"transition {'-' if duration is None else f'{duration:.2f} s'}"
            )
        if len(events) > 50:
            lines.append(f"  ... {len(events) - 50} more (see --format json)")

    lines.append("")
    spectrum = document["spectrum"]
    if spectrum is None:
        lines.append("spectrum: not enough data")
    else:
        lines.append(
            f"spectrum (Welch, {spectrum['segments_averaged']:,} segments, resolution "
            f"{spectrum['resolution_hz']:.3f} Hz, Nyquist {spectrum['nyquist_hz']:.2f} Hz): "
            f"dominant {_hz(spectrum['dominant_frequency_hz'])}, "
            f"{_mw(spectrum['peak_to_peak_watts'])} peak-to-peak"
        )
        lines.append(
            f"  {'band':<16}{'visibility':<13}{'energy':>8}  {'peak':>10}  {'p-p':>12}  reason"
        )
        for band in spectrum["bands"]:
            share = band["energy_share"]
            lines.append(
                f"  {band['name']:<16}{band['visibility']:<13}"
                f"{'-' if share is None else f'{share:.1%}':>8}  "
                f"{_hz(band['dominant_frequency_hz']):>10}  {_mw(band['peak_to_peak_watts']):>12}"
                f"  {band['visibility_reason']}"
            )

    episodes = document["episodes"]
    events = episodes["events"]
    lines.append("")
    lines.append(
        f"oscillation episodes: {len(events)} ({episodes['window_seconds']:g} s windows every "
        f"{episodes['hop_seconds']:g} s, sustained >= {episodes['min_duration_seconds']:g} s)"
    )
    for event in events[:50]:
        lines.append(
            f"  {_when(event['start_seconds'])} .. {_when(event['end_seconds'])} "
            f"({event['duration_seconds']:,.0f} s)  {event['band']:<14} "
            f"{_hz(event['dominant_frequency_hz'])}  {_mw(event['peak_to_peak_watts'])} p-p  "
            f"share {event['max_energy_share']:.0%}  {event['severity']}  "
            f"[{', '.join(event['criteria'])}]"
            + ("" if event["visibility"] == "visible" else f"  ({event['visibility']})")
        )
    if len(events) > 50:
        lines.append(f"  ... {len(events) - 50} more (see --format json)")
    if document["notes"]:
        lines.append("")
        lines.append("notes")
        lines.extend(f"  {note}" for note in document["notes"])
    return "\n".join(lines)


def _fail(message: str) -> typer.Exit:
    typer.echo(message, err=True)
    return typer.Exit(2)


@grid_app.command("analyze")
def grid_analyze(
    file: Annotated[Path, typer.Argument(help="CSV or Parquet with a time and a power column")],
    output_format: Annotated[
        OutputFormat, typer.Option("--format", help="json or table")
    ] = OutputFormat.table,
    time_column: Annotated[
        str, typer.Option(help="epoch seconds, or ISO-8601 text (UTC unless it has an offset)")
    ] = "timestamp_seconds",
    power_column: Annotated[str, typer.Option(help="active power")] = "power_watts",
    unit: Annotated[PowerUnit, typer.Option(help="unit of the power column")] = PowerUnit.W,
    config_file: Annotated[
        Path | None, typer.Option("--config", help="grid analysis YAML (thresholds, bands)")
    ] = None,
) -> None:
    """Ramps, steps, drops, spectrum, band visibility and oscillation episodes of one series.

    Exit 2 on bad input, with the file and the problem on stderr.
    """
    try:
        config = load_grid_config(config_file) if config_file else GridConfig()
    except GridConfigError as error:
        raise _fail(str(error)) from None
    try:
        series = load_power_series(file, time_column, power_column, unit)
    except GridInputError as error:
        raise _fail(str(error)) from None
    notes = []
    if series.sorted_on_load:
        notes.append("timestamps were not in order: the rows were sorted by time")
    if series.rows_dropped_missing:
        notes.append(
            f"{series.rows_dropped_missing:,} row(s) with a missing or non-finite time or power "
            "were dropped"
        )
    try:
        analysis = analyze(series.timestamps, series.watts, config)
    except ValueError as error:
        raise _fail(f"{file}: {error}") from None
    document = analysis_document(
        file, series, analysis, config, time_column, power_column, unit, notes
    )
    if output_format is OutputFormat.json:
        typer.echo(json.dumps(document, indent=2))
    else:
        typer.echo(render_table(document))
