"""``gigawatt probe KIND TARGET``: read one source once and print what gigawatt makes of it.

The first thing to run against a new exporter, BMC, PDU or host: one collection with the
same readers the service uses, then every normalized reading (``collector.schemas.READINGS``)
and every problem (``collector.schemas.PROBLEMS``)::

    $ gigawatt probe prometheus http://10.0.7.21:9400/metrics --format table
    device                                    kind         metric         value       unit  ...
    GPU-20c56d28-0da5-6d26-a36a-e7af1ce2586e  accelerator  power_watts    8.969       watts ...
    ...
    problems:
    location  reason                 message
    line 115  missing_final_newline  the last line has no newline; Prometheus rejects such a payload
    37 readings, 1 problems

Kinds and targets:

* ``prometheus URL``: an exporter's /metrics (dcgm-exporter, node_exporter, ipmi_exporter,
  neuron-monitor's companion, Kepler); ``--exporter`` names it, ``auto`` detects it.
* ``redfish URL``: a BMC, PDU or CDU service (``https://host``, optionally ``/redfish/v1``).
  Credentials come only from environment variables: GIGAWATT_REDFISH_USERNAME and
  GIGAWATT_REDFISH_PASSWORD, or the variables ``--username-env`` / ``--password-env`` name.
  Without them the service is read anonymously. There is no option for a password.
* ``neuron FILE|-|DIR``: neuron-monitor JSON lines (a file, or ``-`` for stdin: the first
  report is read, so ``neuron-monitor | gigawatt probe neuron -`` works); or, with
  ``--rated-power-watts``, a sysfs root whose Neuron power utilization files are read.
* ``nvml [local]``: this host's NVIDIA GPUs through NVML.
* ``sysfs [DIR]``: powercap (RAPL) and hwmon under a sysfs root (default /sys).

Output: ``--format jsonl`` (default) prints one JSON object per line, readings then problems,
each with ``"type": "reading"`` or ``"problem"``; ``--format table`` prints aligned columns,
the problems, and a last line ``N readings, M problems``.

Exit codes: 0 when there is at least one reading and no problem; 1 when there are problems
(the readings are printed too) or nothing was read; 2 when the target could not be read at all
(connection refused, timeout, HTTP error, TLS failure, no such file, NVML unavailable) or the
arguments are wrong. A reason goes to stderr, never a traceback.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import polars as pl
import typer

from collector import schemas

USERNAME_ENV = "GIGAWATT_REDFISH_USERNAME"
PASSWORD_ENV = "GIGAWATT_REDFISH_PASSWORD"
DEFAULT_TIMEOUT_SECONDS = 5.0
DEFAULT_SYSFS_ROOT = Path("/sys")


class Kind(StrEnum):
    prometheus = "prometheus"
    redfish = "redfish"
    neuron = "neuron"
    nvml = "nvml"
    sysfs = "sysfs"


class OutputFormat(StrEnum):
    jsonl = "jsonl"
    table = "table"


class ProbeError(Exception):
    """Arguments that cannot work, or a target that cannot be read at all: exit 2."""


@dataclass(frozen=True)
class Probe:
    """One collection: its frames, and why the target could not be read, if it could not."""

    readings: pl.DataFrame  # schemas.READINGS
    problems: pl.DataFrame  # schemas.PROBLEMS
    unreadable: str | None = None


@dataclass(frozen=True)
class Options:
    exporter: str | None
    rated_power_watts: float | None
    timeout: float | None
    insecure: bool
    ca_bundle: Path | None
    username_env: str | None
    password_env: str | None


# Options and the kinds they apply to.
_APPLIES: Mapping[str, tuple[Kind, ...]] = {
    "--exporter": (Kind.prometheus,),
    "--rated-power-watts": (Kind.neuron,),
    "--timeout": (Kind.prometheus, Kind.redfish),
    "--insecure": (Kind.prometheus, Kind.redfish),
    "--ca-bundle": (Kind.prometheus, Kind.redfish),
    "--username-env": (Kind.redfish,),
    "--password-env": (Kind.redfish,),
}


def _check_options(kind: Kind, options: Options) -> None:
    given = {
        "--exporter": options.exporter is not None,
        "--rated-power-watts": options.rated_power_watts is not None,
        "--timeout": options.timeout is not None,
        "--insecure": options.insecure,
        "--ca-bundle": options.ca_bundle is not None,
        "--username-env": options.username_env is not None,
        "--password-env": options.password_env is not None,
    }
    for option, present in given.items():
        if present and kind not in _APPLIES[option]:
            kinds = " and ".join(str(k) for k in _APPLIES[option])
            raise ProbeError(f"{option} applies to {kinds} only, not {kind}")
    if options.insecure and options.ca_bundle is not None:
        raise ProbeError("give --insecure or --ca-bundle, not both")
    if options.ca_bundle is not None and not options.ca_bundle.is_file():
        raise ProbeError(f"--ca-bundle {options.ca_bundle}: no such file")
    if options.timeout is not None and not (math.isfinite(options.timeout) and options.timeout > 0):
        raise ProbeError("--timeout must be a positive number of seconds")
    rated = options.rated_power_watts
    if rated is not None and not (math.isfinite(rated) and rated > 0):
        raise ProbeError("--rated-power-watts must be a positive number of watts")


def _validation_message(error: Exception) -> str:
    from pydantic import ValidationError

    if isinstance(error, ValidationError):
        return "; ".join(
            f"{'.'.join(str(part) for part in detail['loc']) or 'target'}: "
            + detail["msg"].removeprefix("Value error, ")
            for detail in error.errors()
        )
    return str(error)


# --- one collection per kind -----------------------------------------------------------------


def _probe_prometheus(target: str, options: Options, now: float) -> Probe:
    from collector.sources.scrape import AUTO, ScrapeTarget, scrape_all

    try:
        scrape_target = ScrapeTarget(
            url=target,
            exporter=options.exporter or AUTO,
            timeout_seconds=options.timeout or DEFAULT_TIMEOUT_SECONDS,
            tls_verify=not options.insecure,
            ca_bundle=options.ca_bundle,
        )
    except ValueError as error:
        raise ProbeError(f"{target}: {_validation_message(error)}") from None
    result = asyncio.run(
        scrape_all([scrape_target], now, deadline_seconds=scrape_target.timeout_seconds + 1)
    )
    unreadable = None
    if not result.targets.item(0, "up"):
        unreadable = _first_problem(result.problems)
    return Probe(result.readings, result.problems, unreadable)


def _redfish_credentials(options: Options) -> tuple[str, str] | None:
    """The environment variable names to log in with, or None to read anonymously."""
    if options.username_env is not None or options.password_env is not None:
        return options.username_env or USERNAME_ENV, options.password_env or PASSWORD_ENV
    present = [name for name in (USERNAME_ENV, PASSWORD_ENV) if os.environ.get(name)]
    if len(present) == 1:
        missing = PASSWORD_ENV if present == [USERNAME_ENV] else USERNAME_ENV
        raise ProbeError(f"{present[0]} is set but {missing} is not: set both, or neither")
    return (USERNAME_ENV, PASSWORD_ENV) if present else None


def _probe_redfish(target: str, options: Options, now: float) -> Probe:
    from collector.sources.redfish import (
        RedfishConfig,
        RedfishCredentials,
        RedfishSource,
        RedfishTarget,
    )

    names = _redfish_credentials(options)
    plain = target.strip().lower().startswith("http://")
    if names is not None and plain:
        typer.echo("gigawatt probe: warning: credentials go over plain http://", err=True)
    timeout = options.timeout or DEFAULT_TIMEOUT_SECONDS
    try:
        redfish_target = RedfishTarget(
            url=target,
            auth="none" if names is None else "session",
            basic_auth_fallback=names is not None,
            credentials=None
            if names is None
            else RedfishCredentials(username_env=names[0], password_env=names[1]),
            tls_verify=not options.insecure,
            ca_bundle=options.ca_bundle,
            allow_plain_http=plain,  # typed on the command line: an explicit choice
            request_timeout_seconds=timeout,
            deadline_seconds=max(30.0, 6 * timeout),
        )
    except ValueError as error:
        raise ProbeError(f"{target}: {_validation_message(error)}") from None
    with RedfishSource(RedfishConfig(targets=(redfish_target,))) as source:
        read = source.read_readings(now)
    unreadable = None if read.targets.item(0, "up") else _first_problem(read.problems)
    return Probe(read.readings, read.problems, unreadable)


def _probe_neuron(target: str, options: Options, now: float) -> Probe:
    from collector.sources import neuron

    if target != "-" and Path(target).is_dir():
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
    if target == "-":
        return _first_report(sys.stdin.buffer, "stdin", neuron.read_reports)
    path = Path(target)
    if not path.is_file():
        raise ProbeError(f"{target}: no such file or directory")
    try:
        with path.open("rb") as stream:
            return _first_report(stream, str(path), neuron.read_reports)
    except OSError as error:
        raise ProbeError(f"{target}: cannot read: {error.strerror or error}") from None


def _first_report(stream: Any, target: str, read_reports: Any) -> Probe:
    """The first line of a neuron-monitor stream (one report: one collection)."""
    for readings, problems in read_reports(stream, target=target):
        return Probe(readings, problems)
    raise ProbeError(f"{target}: no report (empty input)")


def _probe_nvml(target: str, options: Options, now: float) -> Probe:
    from collector.sources.nvml import NvmlSource

    if target != "local":
        raise ProbeError(f"nvml reads this host's GPUs: TARGET must be 'local', not {target!r}")
    with NvmlSource() as source:
        health = source.health()
        readings, problems = source.read_readings(now)
    return Probe(readings, problems, None if health.available else f"NVML {health.reason}")


def _probe_sysfs(target: str, options: Options, now: float) -> Probe:
    from collector.sources import sysfs

    root = Path(target)
    if not root.is_dir():
        raise ProbeError(f"{target}: not a directory (give a sysfs root such as /sys)")
    readings, problems = sysfs.read(root)
    return Probe(readings, problems)


_PROBES = {
    Kind.prometheus: _probe_prometheus,
    Kind.redfish: _probe_redfish,
    Kind.neuron: _probe_neuron,
    Kind.nvml: _probe_nvml,
    Kind.sysfs: _probe_sysfs,
}
_DEFAULT_TARGETS = {Kind.nvml: "local", Kind.sysfs: str(DEFAULT_SYSFS_ROOT)}


def _first_problem(problems: pl.DataFrame) -> str:
    if not problems.height:
        return "no answer"
    row = problems.row(0, named=True)
    return f"{row['reason']}: {row['message']}"


# --- output ----------------------------------------------------------------------------------

_TABLE_READINGS = (
    ("device", "device"),
    ("kind", "device_kind"),
    ("metric", "metric"),
    ("value", "value"),
    ("unit", "unit"),
    ("estimated", "estimated"),
    ("source", "source"),
    ("host", "host"),
    ("target", "target"),
)
_TABLE_PROBLEMS = (("location", "location"), ("reason", "reason"), ("message", "message"))


def _json_value(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN or infinity
    return value


def _jsonl(readings: pl.DataFrame, problems: pl.DataFrame) -> list[str]:
    lines = []
    for kind, frame in (("reading", readings), ("problem", problems)):
        for row in frame.iter_rows(named=True):
            record = {"type": kind} | {name: _json_value(value) for name, value in row.items()}
            lines.append(json.dumps(record, allow_nan=False))
    return lines


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return format(value, ".12g")  # the JSON output keeps every digit
    return str(value).replace("\n", " ")


def _aligned(columns: Sequence[tuple[str, str]], frame: pl.DataFrame) -> list[str]:
    headers = [header for header, _ in columns]
    cells = [[_cell(row[name]) for _, name in columns] for row in frame.iter_rows(named=True)]
    widths = [
        max([len(header), *(len(row[i]) for row in cells)]) for i, header in enumerate(headers)
    ]
    lines = []
    for row in [headers, *cells]:
        parts = [
            text.rjust(width) if header == "value" else text.ljust(width)
            for header, text, width in zip(headers, row, widths, strict=True)
        ]
        lines.append("  ".join(parts).rstrip())
    return lines


def _table(readings: pl.DataFrame, problems: pl.DataFrame) -> list[str]:
    lines = _aligned(_TABLE_READINGS, readings) if readings.height else []
    if problems.height:
        if lines:
            lines.append("")
        lines.append("problems:")
        lines += _aligned(_TABLE_PROBLEMS, problems)
    lines.append(f"{readings.height} readings, {problems.height} problems")
    return lines


class _OneLine(logging.Formatter):
    """Log records as one line on stderr: a source that logs a bug prints no traceback here."""

    def format(self, record: logging.LogRecord) -> str:
        return f"gigawatt probe: {record.levelname.lower()}: {record.getMessage()}"


# --- the command -----------------------------------------------------------------------------


def probe(
    kind: Annotated[Kind, typer.Argument(help="what to read", show_default=False)],
    target: Annotated[
        str | None,
        typer.Argument(
            help="a URL (prometheus, redfish); a file, - or a directory (neuron); "
            "'local' (nvml); a sysfs root (sysfs, default /sys)",
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        OutputFormat, typer.Option("--format", help="jsonl or table")
    ] = OutputFormat.jsonl,
    exporter: Annotated[
        str | None,
        typer.Option(help="prometheus: auto, dcgm, node, ipmi, neuron or kepler [default: auto]"),
    ] = None,
    rated_power_watts: Annotated[
        float | None,
        typer.Option(help="neuron: the device's maximum power, for a sysfs directory"),
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option(help="prometheus, redfish: seconds per request [default: 5]"),
    ] = None,
    insecure: Annotated[
        bool, typer.Option("--insecure", help="prometheus, redfish: do not verify TLS")
    ] = False,
    ca_bundle: Annotated[
        Path | None,
        typer.Option(help="prometheus, redfish: CA certificates that sign the target's"),
    ] = None,
    username_env: Annotated[
        str | None,
        typer.Option(help=f"redfish: variable holding the user name [default: {USERNAME_ENV}]"),
    ] = None,
    password_env: Annotated[
        str | None,
        typer.Option(help=f"redfish: variable holding the password [default: {PASSWORD_ENV}]"),
    ] = None,
) -> None:
    """Read one source once; print its readings and problems (exit 0 clean, 1 problems,
    2 unreadable or bad arguments)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_OneLine())
    logging.basicConfig(level=logging.WARNING, handlers=[handler], force=True)
    options = Options(
        exporter, rated_power_watts, timeout, insecure, ca_bundle, username_env, password_env
    )
    chosen = target if target is not None else _DEFAULT_TARGETS.get(kind)
    try:
        if chosen is None:
            raise ProbeError(f"{kind} needs a TARGET")
        _check_options(kind, options)
        if exporter is not None:
            from collector.sources.exporter_maps import EXPORTERS
            from collector.sources.scrape import AUTO

            if exporter != AUTO and exporter not in EXPORTERS:
                raise ProbeError(f"--exporter must be {AUTO} or one of {', '.join(EXPORTERS)}")
        result = _PROBES[kind](chosen, options, time.time())
        readings = schemas.conform(result.readings, schemas.READINGS, "readings")
        problems = schemas.conform(result.problems, schemas.PROBLEMS, "problems")
    except ProbeError as error:
        typer.echo(f"gigawatt probe: {error}", err=True)
        raise typer.Exit(2) from None
    except Exception as error:  # a bug must still end with a reason, not a traceback
        typer.echo(f"gigawatt probe: cannot probe {chosen}: {error!r}", err=True)
        raise typer.Exit(2) from None
    lines = (
        _jsonl(readings, problems) if output == OutputFormat.jsonl else _table(readings, problems)
    )
    if lines:
        typer.echo("\n".join(lines))
    if result.unreadable is not None:
        typer.echo(f"gigawatt probe: cannot read {chosen}: {result.unreadable}", err=True)
        raise typer.Exit(2)
    if problems.height:
        raise typer.Exit(1)
    if not readings.height:
        typer.echo(f"gigawatt probe: {chosen}: no readings", err=True)
        raise typer.Exit(1)
