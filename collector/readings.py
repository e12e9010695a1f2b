"""The one constructor of READINGS frames (collector.schemas), for every source.

``readings_frame`` takes each column once. A plain value (a string, a number, a bool, None) is
every row's; a list or a Series gives one value per row, and every such column must be as long
as the others; with ``frame`` given, an expression is evaluated on it. A column left out takes,
with ``frame``, the frame's column of that name, else its default (host null, estimated false,
timestamp_seconds null). Every column is checked against the schema's type, so a source that
hands over a string for a value, or forgets the device, fails with a ValueError naming the
column, never with a frame of the wrong shape. A reading from a sysfs RAPL zone::

    readings_frame(source="sysfs", target="/sys", host="node-7",
                   device=["intel-rapl:0"], device_kind="cpu_package",
                   metric="energy_joules", value=[1234.5], unit="joules")

``ReadingColumns`` gathers readings one at a time for sources that find them that way.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypeGuard

import polars as pl

from collector import schemas

Scalar = str | float | bool | None
Column = Scalar | Sequence[Scalar] | pl.Series | pl.Expr


class _Left(enum.Enum):
    """A column the caller did not give (None is a value: null)."""

    OUT = enum.auto()


LEFT_OUT = _Left.OUT

_DEFAULTS: dict[str, Scalar] = {"host": None, "estimated": False, "timestamp_seconds": None}


def readings_frame(
    frame: pl.DataFrame | None = None,
    *,
    source: Column | _Left = LEFT_OUT,
    target: Column | _Left = LEFT_OUT,
    host: Column | _Left = LEFT_OUT,
    device: Column | _Left = LEFT_OUT,
    device_kind: Column | _Left = LEFT_OUT,
    metric: Column | _Left = LEFT_OUT,
    value: Column | _Left = LEFT_OUT,
    unit: Column | _Left = LEFT_OUT,
    estimated: Column | _Left = LEFT_OUT,
    timestamp_seconds: Column | _Left = LEFT_OUT,
) -> pl.DataFrame:
    """A frame of ``schemas.READINGS`` from its columns (see the module docstring).

    Raises ValueError for a column with no value, lists of different lengths, a list where a
    frame is given, or a value the column's type cannot hold.
    """
    given: dict[str, Column | _Left] = {
        "source": source,
        "target": target,
        "host": host,
        "device": device,
        "device_kind": device_kind,
        "metric": metric,
        "value": value,
        "unit": unit,
        "estimated": estimated,
        "timestamp_seconds": timestamp_seconds,
    }
    if frame is not None:
        return _from_frame(frame, given)
    missing = [
        name for name, column in given.items() if column is LEFT_OUT and name not in _DEFAULTS
    ]
    if missing:
        raise ValueError(f"readings: no value for column(s) {', '.join(missing)}")
    columns = {
        name: _DEFAULTS[name] if column is LEFT_OUT else column for name, column in given.items()
    }
    if any(isinstance(column, pl.Expr) for column in columns.values()):
        raise ValueError("readings: an expression needs a frame to be evaluated on")
    lengths = {name: len(column) for name, column in columns.items() if _is_per_row(column)}
    if len(set(lengths.values())) > 1:
        shown = ", ".join(f"{name} {length}" for name, length in lengths.items())
        raise ValueError(f"readings: columns differ in length ({shown})")
    height = next(iter(lengths.values()), 1)
    series = []
    for name, dtype in schemas.READINGS.items():
        column = columns[name]
        values = column if _is_per_row(column) else [column] * height
        try:
            series.append(pl.Series(name, values, dtype=dtype, strict=True))
        except (TypeError, pl.exceptions.PolarsError) as error:
            reason = str(error).splitlines()[0]  # Polars adds a context stack and a hint
            raise ValueError(f"readings: column {name} is not {dtype}: {reason}") from None
    return pl.DataFrame(series)


def _is_per_row(column: object) -> TypeGuard[Sequence[Scalar] | pl.Series]:
    """A list, tuple or Series: one value per row (a string is one value)."""
    return isinstance(column, pl.Series | list | tuple)


def _from_frame(frame: pl.DataFrame, given: dict[str, Column | _Left]) -> pl.DataFrame:
    expressions = []
    missing = []
    for name, column in given.items():
        if isinstance(column, pl.Expr):
            expression = column
        elif _is_per_row(column):
            raise ValueError(f"readings: column {name} is a list; with a frame, give an expression")
        elif column is not LEFT_OUT:
            expression = pl.lit(column)
        elif name in frame.columns:
            expression = pl.col(name)
        elif name in _DEFAULTS:
            expression = pl.lit(_DEFAULTS[name])
        else:
            missing.append(name)
            continue
        expressions.append(expression.alias(name))
    if missing:
        raise ValueError(f"readings: no value and no frame column for {', '.join(missing)}")
    return schemas.conform(frame.select(expressions), schemas.READINGS, "readings")


@dataclass
class ReadingColumns:
    """Readings gathered one at a time, column by column, for ``readings_frame``."""

    device: list[str] = field(default_factory=list)
    device_kind: list[str] = field(default_factory=list)
    metric: list[str] = field(default_factory=list)
    value: list[float] = field(default_factory=list)
    unit: list[str] = field(default_factory=list)
    estimated: list[bool] = field(default_factory=list)
    timestamp_seconds: list[float | None] = field(default_factory=list)

    def add(
        self,
        device: str,
        device_kind: str,
        metric: str,
        value: float,
        unit: str,
        *,
        estimated: bool = False,
        timestamp_seconds: float | None = None,
    ) -> None:
        self.device.append(device)
        self.device_kind.append(device_kind)
        self.metric.append(metric)
        self.value.append(value)
        self.unit.append(unit)
        self.estimated.append(estimated)
        self.timestamp_seconds.append(timestamp_seconds)

    def frame(self, *, source: str, target: str, host: str | None) -> pl.DataFrame:
        """The gathered readings, every one from ``source`` reading ``target`` on ``host``."""
        return readings_frame(
            source=source,
            target=target,
            host=host,
            device=self.device,
            device_kind=self.device_kind,
            metric=self.metric,
            value=self.value,
            unit=self.unit,
            estimated=self.estimated,
            timestamp_seconds=self.timestamp_seconds,
        )
