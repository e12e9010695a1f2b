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

Each kind's probe is declared in its own module (collector/sources/kinds/) and found through
collector.sources.registry: the kinds accepted, the options each takes and the default
targets all come from there, so this command names no kind.

Output: ``--format jsonl`` (default) prints one JSON object per line, readings then problems,
each with ``"type": "reading"`` or ``"problem"``; ``--format table`` prints aligned columns,
the problems, and a last line ``N readings, M problems``.

Exit codes: 0 when there is at least one reading and no problem; 1 when there are problems
(the readings are printed too) or nothing was read; 2 when the target could not be read at all
(connection refused, timeout, HTTP error, TLS failure, no such file, NVML unavailable) or the
arguments are wrong. A reason goes to stderr, never a traceback.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import polars as pl
import typer

from collector import schemas
from collector.redact import redacted
from collector.sources import registry
from collector.sources.kinds.redfish import PASSWORD_ENV, USERNAME_ENV
from collector.sources.plugin import (
    DEFAULT_TIMEOUT_SECONDS,
    Probe,
    ProbeError,
    ProbeKind,
    ProbeOptions,
    SourceKind,
)


class OutputFormat(StrEnum):
    jsonl = "jsonl"
    table = "table"


def _probed_kind(value: str) -> str:
    """KIND as given, when it is a kind registered now (not when the command was defined), so
    a kind registered later is accepted like the others."""
    probed = [kind.name for kind in registry.probed()]
    if value not in probed:
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(map(repr, probed))}")
    return value


def _flag(option: str) -> str:
    """The command-line flag of a ProbeOptions field: ``ca_bundle`` -> ``--ca-bundle``."""
    return "--" + option.replace("_", "-")


def _takers(option: str) -> list[str]:
    """The kinds that take a probe option, in registry order."""
    return [
        kind.name
        for kind in registry.probed()
        if kind.probe is not None and option in kind.probe.options
    ]


def _for(option: str) -> str:
    """An option's help prefix: the kinds it applies to (those registered at import)."""
    takers = _takers(option)
    return f"{', '.join(takers)}: " if takers else ""


def _probe_of(kind: SourceKind[Any]) -> ProbeKind:
    if kind.probe is None:  # not a choice: the command's argument type refuses it first
        raise ProbeError(f"{kind.name} cannot be probed")
    return kind.probe


def _check_options(kind: str, probe: ProbeKind, options: ProbeOptions) -> None:
    for option in options.given():
        if option not in probe.options:
            takers = _takers(option)
            if not takers:
                raise ProbeError(f"{_flag(option)} applies to no registered kind")
            raise ProbeError(f"{_flag(option)} applies to {' and '.join(takers)} only, not {kind}")
    if options.insecure and options.ca_bundle is not None:
        raise ProbeError("give --insecure or --ca-bundle, not both")
    if options.ca_bundle is not None and not options.ca_bundle.is_file():
        raise ProbeError(f"--ca-bundle {options.ca_bundle}: no such file")
    if options.timeout is not None and not (math.isfinite(options.timeout) and options.timeout > 0):
        raise ProbeError("--timeout must be a positive number of seconds")
    rated = options.rated_power_watts
    if rated is not None and not (math.isfinite(rated) and rated > 0):
        raise ProbeError("--rated-power-watts must be a positive number of watts")


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
    kind: Annotated[
        str,
        typer.Argument(
            help=f"what to read: {', '.join(kind.name for kind in registry.probed())}",
            parser=_probed_kind,
            show_default=False,
        ),
    ],
    target: Annotated[
        str | None,
        typer.Argument(
            help="; ".join(
                f"{kind.name}: {kind.probe.target_help}"
                + (f" (default {kind.probe.default_target})" if kind.probe.default_target else "")
                for kind in registry.probed()
                if kind.probe is not None
            ),
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        OutputFormat, typer.Option("--format", help="jsonl or table")
    ] = OutputFormat.jsonl,
    exporter: Annotated[
        str | None,
        typer.Option(
            help=f"{_for('exporter')}auto, dcgm, node, ipmi, neuron or kepler [default: auto]"
        ),
    ] = None,
    rated_power_watts: Annotated[
        float | None,
        typer.Option(
            help=f"{_for('rated_power_watts')}the device's maximum power, for a sysfs directory"
        ),
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option(
            help=f"{_for('timeout')}seconds per request [default: {DEFAULT_TIMEOUT_SECONDS:g}]"
        ),
    ] = None,
    insecure: Annotated[
        bool, typer.Option("--insecure", help=f"{_for('insecure')}do not verify TLS")
    ] = False,
    ca_bundle: Annotated[
        Path | None,
        typer.Option(help=f"{_for('ca_bundle')}CA certificates that sign the target's"),
    ] = None,
    username_env: Annotated[
        str | None,
        typer.Option(
            help=f"{_for('username_env')}variable holding the user name [default: {USERNAME_ENV}]"
        ),
    ] = None,
    password_env: Annotated[
        str | None,
        typer.Option(
            help=f"{_for('password_env')}variable holding the password [default: {PASSWORD_ENV}]"
        ),
    ] = None,
) -> None:
    """Read one source once; print its readings and problems (exit 0 clean, 1 problems,
    2 unreadable or bad arguments)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_OneLine())
    logging.basicConfig(level=logging.WARNING, handlers=[handler], force=True)
    options = ProbeOptions(
        exporter=exporter,
        rated_power_watts=rated_power_watts,
        timeout=timeout,
        insecure=insecure,
        ca_bundle=ca_bundle,
        username_env=username_env,
        password_env=password_env,
    )
    chosen: str | None = target
    try:
        how = _probe_of(registry.kind_named(kind))
        chosen = target if target is not None else how.default_target
        if chosen is None:
            raise ProbeError(f"{kind} needs a TARGET")
        _check_options(kind, how, options)
        result: Probe = how.read(chosen, options, time.time())
        readings = schemas.conform(result.readings, schemas.READINGS, "readings")
        problems = schemas.conform(result.problems, schemas.PROBLEMS, "problems")
    except ProbeError as error:
        typer.echo(redacted(f"gigawatt probe: {error}"), err=True)
        raise typer.Exit(2) from None
    except Exception as error:  # a bug must still end with a reason, not a traceback
        typer.echo(redacted(f"gigawatt probe: cannot probe {chosen}: {error!r}"), err=True)
        raise typer.Exit(2) from None
    lines = (
        _jsonl(readings, problems) if output == OutputFormat.jsonl else _table(readings, problems)
    )
    if lines:
        typer.echo(redacted("\n".join(lines)))
    if result.unreadable is not None:
        typer.echo(redacted(f"gigawatt probe: cannot read {chosen}: {result.unreadable}"), err=True)
        raise typer.Exit(2)
    if problems.height:
        raise typer.Exit(1)
    if not readings.height:
        typer.echo(redacted(f"gigawatt probe: {chosen}: no readings"), err=True)
        raise typer.Exit(1)
