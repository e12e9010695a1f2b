"""Kind ``neuron``: AWS Trainium/Inferentia devices, from neuron-monitor's report stream
and/or the driver's power utilization files::

    - kind: neuron
      host: trn-node-003
      command: [neuron-monitor, -c, /etc/neuron-monitor.json]   # or file: PATH, or stdin: true
      power: {root: /sys, rated_power_watts: 500}
"""

from __future__ import annotations

import math
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated, Literal, Self

import polars as pl
from pydantic import ConfigDict, Field, model_validator

from collector.config_errors import ConfigModel
from collector.sources.base import Source
from collector.sources.plugin import (
    BuildContext,
    Probe,
    ProbeError,
    ProbeKind,
    ProbeOptions,
    SourceKind,
    SourceSpec,
)
from collector.sources.readings_source import ReaderResult, ReadingsSource, health_row

if TYPE_CHECKING:
    from collector.sources.neuron_stream import NeuronStream

STDIN = "-"  # the probe's target for gigawatt's own standard input


class NeuronPowerSpec(ConfigModel):
    """The Neuron driver's power utilization files: percentages of ``rated_power_watts``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    root: Path = Path("/sys")
    rated_power_watts: float = Field(gt=0, allow_inf_nan=False)
    max_age_seconds: float = Field(default=120.0, gt=0, allow_inf_nan=False)


class NeuronSpec(SourceSpec):
    """AWS Trainium/Inferentia: neuron-monitor's report stream and/or the power files."""

    kind: Literal["neuron"]
    name: str = "neuron"
    host: str | None = None  # names every reading (not the reports' instance id); else hostname
    command: Annotated[tuple[str, ...], Field(min_length=1)] | None = None  # argv, no shell
    file: Path | None = None  # a file neuron-monitor's output is appended to, followed
    stdin: bool = False  # gigawatt's own standard input: neuron-monitor | gigawatt serve ...
    max_report_age_seconds: float = Field(default=30.0, gt=0, allow_inf_nan=False)
    power: NeuronPowerSpec | None = None

    @model_validator(mode="after")
    def _inputs(self) -> Self:
        streams = [
            name
            for name, given in (
                ("command", self.command is not None),
                ("file", self.file is not None),
                ("stdin", self.stdin),
            )
            if given
        ]
        errors = []
        if len(streams) > 1:
            errors.append(f"give one stream input, not {' and '.join(streams)}")
        if not streams and self.power is None:
            errors.append("give a stream (command, file or stdin: true), a power block, or both")
        if self.command is not None and not self.command[0].strip():
            errors.append("command must start with the program to run")
        if errors:
            raise ValueError("; ".join(errors))
        return self

    @property
    def has_stream(self) -> bool:
        return self.command is not None or self.file is not None or self.stdin


@dataclass(frozen=True)
class NeuronPowerFiles:
    """Where the Neuron driver's power utilization files are, and what 100 % means."""

    root: Path  # a sysfs root: /sys
    rated_power_watts: float  # the device's maximum power: the files' percentages are of it
    max_age_seconds: float = 120.0  # older is stale (per-minute file; the pipeline limit)


class NeuronReader:
    """Readings of neuron-monitor's stream (the latest report) and of the power files; health
    rows for the stream (its target) and for the power root. ``close`` ends the stream."""

    def __init__(
        self, stream: NeuronStream | None, power: NeuronPowerFiles | None, host: str
    ) -> None:
        if stream is None and power is None:
            raise ValueError("a neuron reader needs a stream, power files, or both")
        self.stream = stream
        self.power = power
        self.host = host

    def __call__(self, now: float) -> ReaderResult:
        from collector.sources import neuron

        readings: list[pl.DataFrame] = []
        problems: list[pl.DataFrame] = []
        targets: list[pl.DataFrame] = []
        if self.stream is not None:
            started = time.perf_counter()
            cycle = self.stream.take(now)
            readings.append(cycle.readings)
            problems.append(cycle.problems)
            targets.append(health_row(self.stream.target, cycle.up, started))
        if self.power is not None:
            started = time.perf_counter()
            power_readings, power_problems = neuron.read_power_utilization(
                self.power.root,
                self.power.rated_power_watts,
                now=now,
                max_age_seconds=self.power.max_age_seconds,
                host=self.host,
            )
            # Down when the driver's device directory cannot be listed or holds no device.
            devices = str(self.power.root / neuron.NEURON_DEVICES)
            up = not power_problems["location"].eq(devices).any()
            readings.append(power_readings)
            problems.append(power_problems)
            targets.append(health_row(str(self.power.root), up, started))
        return ReaderResult(pl.concat(readings), pl.concat(problems), pl.concat(targets))

    def close(self) -> None:
        if self.stream is not None:
            self.stream.close()


def neuron_reader(
    stream: NeuronStream | None, power: NeuronPowerFiles | None, host: str | None = None
) -> NeuronReader:
    """AWS Trainium/Inferentia devices: neuron-monitor's reports, read continuously by
    ``stream`` (collector.sources.neuron_stream; started at the first read), and the driver's
    power files (``power``), each device ``neuron<N>`` (device_kind ``accelerator``). ``host``:
    as the inventory names this machine (default: the hostname), for the power readings; give
    the stream the same host (the build does), so that its readings carry it rather than
    the reports' instance id and one inventory row matches both."""
    name = host if host is not None else socket.gethostname()
    if power is not None and not (
        math.isfinite(power.rated_power_watts) and power.rated_power_watts > 0
    ):
        raise ValueError(f"rated_power_watts must be positive, got {power.rated_power_watts}")
    return NeuronReader(stream, power, name)


def build(spec: NeuronSpec, context: BuildContext) -> Source:
    from collector.sources.neuron_stream import NeuronStream

    host = spec.host if spec.host is not None else socket.gethostname()
    stream = (
        NeuronStream(
            command=spec.command,
            file=context.beside(spec.file) if spec.file is not None else None,
            stdin=sys.stdin.buffer if spec.stdin else None,
            host=host,
            max_report_age_seconds=spec.max_report_age_seconds,
        )
        if spec.has_stream
        else None
    )
    power = (
        NeuronPowerFiles(
            context.beside(spec.power.root),
            spec.power.rated_power_watts,
            spec.power.max_age_seconds,
        )
        if spec.power is not None
        else None
    )
    return ReadingsSource(spec.name, neuron_reader(stream, power, host), context.inventory)


def _first_report(stream: IO[bytes], target: str) -> Probe:
    """The first line of a neuron-monitor stream (one report: one collection)."""
    from collector.sources import neuron

    for readings, problems in neuron.read_reports(stream, target=target):
        return Probe(readings, problems)
    raise ProbeError(f"{target}: no report (empty input)")


def probe(target: str, options: ProbeOptions, now: float) -> Probe:
    """neuron-monitor JSON lines (a file, or ``-`` for stdin: the first report is read, so
    ``neuron-monitor | gigawatt probe neuron -`` works); or, with ``rated_power_watts``, a
    sysfs root whose Neuron power utilization files are read."""
    from collector.sources import neuron

    if target != STDIN and Path(target).is_dir():
        if options.rated_power_watts is None:
            raise ProbeError(
                f"{target} is a directory: reading Neuron power from sysfs needs "
                "--rated-power-watts (the device's maximum power)"
            )
        readings, problems = neuron.read_power_utilization(
            Path(target), options.rated_power_watts, now=now
        )
        return Probe(readings, problems)
    if options.rated_power_watts is not None:
        raise ProbeError("--rated-power-watts applies to a sysfs directory, not a report stream")
    if target == STDIN:
        return _first_report(sys.stdin.buffer, "stdin")
    path = Path(target)
    if not path.is_file():
        raise ProbeError(f"{target}: no such file or directory")
    try:
        with path.open("rb") as stream:
            return _first_report(stream, str(path))
    except OSError as error:
        raise ProbeError(f"{target}: cannot read: {error.strerror or error}") from None


KIND = SourceKind(
    spec=NeuronSpec,
    build=build,
    probe=ProbeKind(
        read=probe,
        target_help=f"a report file, {STDIN} for stdin, or a sysfs root",
        options=frozenset({"rated_power_watts"}),
    ),
)
