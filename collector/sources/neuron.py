"""Source ``neuron``: AWS Trainium/Inferentia telemetry from neuron-monitor and from sysfs.

Two inputs, one output: READINGS and PROBLEMS frames (collector.schemas).

**neuron-monitor reports.** neuron-monitor writes one JSON report per line on stdout.
``iter_report_lines`` reads lines from any stream (a subprocess's stdout, a file, stdin; bytes
or text) with a bounded line length; ``parse_report`` turns one line into frames;
``read_reports`` does both. What becomes a reading (device / metric / unit)::

    neuroncore_counters        neuroncore<i>      utilization_ratio             ratio (% / 100)
    memory_used                runtime:<tag>      host_memory_used_bytes, device_memory_used_bytes
                               neuroncore<i>      neuroncore_memory_used_bytes  (sum of categories)
    neuron_runtime_vcpu_usage  runtime:<tag>      vcpu_user_ratio, vcpu_system_ratio
    execution_stats            runtime:<tag>      execution_errors_<type>, executions_<status>
    neuron_hw_counters         neuron<d>          <counter>_events (mem_ecc_corrected_events...)
    vcpu_usage                 vcpu, vcpu<c>      vcpu_<mode>_ratio
    memory_info                system_memory      memory_used_bytes, memory_total_bytes, swap_*

Counts (errors, executions, ECC events) are what happened during the group's ``period``, as
neuron-monitor reports them (its Prometheus companion adds them to counters); they are not
running totals. ``instance_info.instance_id`` becomes ``host`` unless the caller names one.
``instance_info``, ``neuron_hardware_info`` and ``neuron_k8s_info`` yield no readings; a group
whose ``error`` is not empty is a problem (``monitor_error``) and yields none either. Reports
carry no timestamp, so ``timestamp_seconds`` is what the caller passes (null by default).
Documentation excerpts with ``[...]`` or ``...`` elisions are reported as
``elided_placeholder``, never parsed by guesswork.

**Device power (sysfs).** neuron-monitor has no power fields. Power exists only in
``/sys/devices/virtual/neuron_device/neuron<N>/stats/power/utilization``: one CSV line
``<status>,<unix seconds>,<min>,<max>,<avg>`` in percent of the device's maximum power (the
driver prints ``%.32s,%lld,%u.%02u,%u.%02u,%u.%02u`` from basis points, refreshed at each
minute boundary). ``read_power_utilization`` turns it into ``power_utilization_ratio``
(measured) and ``power_watts``, ``power_min_watts``, ``power_max_watts`` = percent / 100 x
the configured rated power, all three marked ``estimated``. The rated power is configuration,
never a constant here. Example reading::

    source  device   device_kind  metric       value  unit   estimated  timestamp_seconds
    neuron  neuron0  accelerator  power_watts  377.2  watts  true       1781370720.0

Problem reasons: ``line_too_long``, ``not_utf8``, ``invalid_json``, ``elided_placeholder``,
``not_an_object``, ``unexpected_type``, ``not_finite``, ``monitor_error``; for the power file
``not_found``, ``unreadable``, ``empty``, ``too_large``, ``garbage``, ``no_data``, ``invalid``,
``unknown_status``, ``out_of_range``, ``inconsistent``, ``stale``, ``future``,
``link_outside_root``.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import polars as pl

from collector import schemas
from collector.readings import ReadingColumns
from collector.sources.sysfs import SysfsReadError, read_sysfs_text

SOURCE = "neuron"
DEFAULT_ROOT = Path("/sys")

# A report grows with runtimes x NeuronCores; a few MiB is plenty. A longer line is dropped,
# not buffered, so a runaway writer cannot exhaust memory.
DEFAULT_MAX_LINE_BYTES = 8 * 1024 * 1024
_DRAIN_CHUNK = 64 * 1024

POWER_FILE = Path("stats") / "power" / "utilization"
NEURON_DEVICES = Path("devices") / "virtual" / "neuron_device"
_NEURON_DEVICE = re.compile(r"^neuron(?P<index>\d+)$")
_POWER_STATUS_PROBLEMS = {"POWER_STATUS_NO_DATA": "no_data", "POWER_STATUS_INVALID": "invalid"}

# Elisions in documentation excerpts: "[...]" anywhere, or a line that is only "...".
_PLACEHOLDER = re.compile(r"\[\.\.\.\]|^\s*\.\.\.\s*,?\s*$", re.MULTILINE)
_UNSAFE_METRIC_CHARACTERS = re.compile(r"[^a-z0-9_]+")

Row = dict[str, object]
Frames = tuple[pl.DataFrame, pl.DataFrame]


def _frames(problems: list[Row], readings: pl.DataFrame | None = None) -> Frames:
    return (
        schemas.empty(schemas.READINGS) if readings is None else readings,
        pl.DataFrame(problems, schema=dict(schemas.PROBLEMS)),
    )


def _problem(target: str, location: str, reason: str, message: str) -> Row:
    return {
        "source": SOURCE,
        "target": target,
        "location": location,
        "reason": reason,
        "message": message,
    }


def _metric_word(text: str) -> str:
    return _UNSAFE_METRIC_CHARACTERS.sub("_", text.strip().lower()).strip("_") or "unnamed"


# --- the line stream --------------------------------------------------------------------------


@dataclass(frozen=True)
class ReportLine:
    """One line of a neuron-monitor stream: its text, or why it was dropped."""

    number: int  # 1-based
    text: str | None
    problem: str | None = None
    message: str | None = None


def iter_report_lines(
    stream: IO[bytes] | IO[str], *, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
) -> Iterator[ReportLine]:
    """Lines of ``stream`` without their line ending; blank lines are skipped.

    A line longer than ``max_line_bytes`` (characters, for a text stream) is read past in
    chunks, never held whole, and comes out as a ``line_too_long`` ReportLine with no text.
    Bytes that are not UTF-8 give ``not_utf8``. Ends at end of stream.
    """
    if max_line_bytes < 1:
        raise ValueError(f"max_line_bytes must be positive, got {max_line_bytes}")
    number = 0
    while True:
        chunk: bytes | str = stream.readline(max_line_bytes + 1)
        if not chunk:
            return
        number += 1
        if len(chunk) > max_line_bytes and not _ends_line(chunk):
            skipped = len(chunk)
            while True:
                rest: bytes | str = stream.readline(_DRAIN_CHUNK)
                skipped += len(rest)
                if not rest or _ends_line(rest):
                    break
            yield ReportLine(
                number,
                None,
                "line_too_long",
                f"{skipped} bytes, more than the {max_line_bytes} allowed: dropped",
            )
            continue
        if isinstance(chunk, bytes):
            try:
                text = chunk.decode("utf-8")
            except UnicodeDecodeError as error:
                yield ReportLine(number, None, "not_utf8", f"not UTF-8: {error.reason}")
                continue
        else:
            text = chunk
        text = text.rstrip("\r\n")
        if text.strip():
            yield ReportLine(number, text)


def _ends_line(chunk: bytes | str) -> bool:
    return chunk.endswith(b"\n") if isinstance(chunk, bytes) else chunk.endswith("\n")


def read_reports(
    stream: IO[bytes] | IO[str],
    *,
    target: str,
    host: str | None = None,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    clock: Callable[[], float] | None = None,
) -> Iterator[Frames]:
    """READINGS and PROBLEMS frames for each line of a neuron-monitor stream, as it arrives.

    ``clock``, when given, stamps each report with the time its line was read (neuron-monitor
    reports carry no time of their own).
    """
    for line in iter_report_lines(stream, max_line_bytes=max_line_bytes):
        if line.text is None:
            location = f"line {line.number}"
            problem = _problem(target, location, line.problem or "", line.message or "")
            yield _frames([problem])
            continue
        stamp = clock() if clock is not None else None
        yield parse_report(
            line.text, target=target, line=line.number, host=host, timestamp_seconds=stamp
        )


# --- one report -------------------------------------------------------------------------------


@dataclass
class _Report:
    target: str
    line: int | None
    host: str | None
    timestamp_seconds: float | None
    readings: ReadingColumns = field(default_factory=ReadingColumns)
    problems: list[Row] = field(default_factory=list)

    def frames(self) -> Frames:
        readings = self.readings.frame(source=SOURCE, target=self.target, host=self.host)
        return _frames(self.problems, readings)

    def location(self, path: str) -> str:
        return path if self.line is None else f"line {self.line} {path}"

    def problem(self, path: str, reason: str, message: str) -> None:
        self.problems.append(_problem(self.target, self.location(path), reason, message))

    def reading(self, device: str, device_kind: str, metric: str, value: float, unit: str) -> None:
        self.readings.add(
            device, device_kind, metric, value, unit, timestamp_seconds=self.timestamp_seconds
        )

    def number(self, value: object, path: str) -> float | None:
        """A JSON number as float; anything else is a problem and None."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.problem(path, "unexpected_type", f"expected a number, got {_kind(value)}")
            return None
        result = float(value)
        if not math.isfinite(result):
            self.problem(path, "not_finite", f"{value!r} is not a finite number")
            return None
        return result

    def mapping(self, value: object, path: str) -> Mapping[str, object] | None:
        if not isinstance(value, dict):
            self.problem(path, "unexpected_type", f"expected an object, got {_kind(value)}")
            return None
        return value


def _kind(value: object) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(value), "null" if value is None else type(value).__name__
    )


def _percent_ratios(
    report: _Report, values: Mapping[str, object], path: str, device: str, kind: str, prefix: str
) -> None:
    for name, value in values.items():
        number = report.number(value, f"{path}.{name}")
        if number is not None:
            report.reading(
                device, kind, f"{prefix}{_metric_word(name)}_ratio", number / 100, "ratio"
            )


def _counts(
    report: _Report, values: object, path: str, device: str, kind: str, template: str
) -> None:
    counts = report.mapping(values, path)
    for name, value in (counts or {}).items():
        number = report.number(value, f"{path}.{name}")
        if number is not None:
            report.reading(device, kind, template.format(_metric_word(name)), number, "count")


GroupParser = Callable[[_Report, Mapping[str, object], str, str], None]


def _neuroncore_counters(report: _Report, data: Mapping[str, object], path: str, _: str) -> None:
    cores = report.mapping(data.get("neuroncores_in_use"), f"{path}.neuroncores_in_use")
    for index, core in (cores or {}).items():
        core_path = f"{path}.neuroncores_in_use.{index}"
        fields = report.mapping(core, core_path)
        if fields is None:
            continue
        value_path = f"{core_path}.neuroncore_utilization"
        value = report.number(fields.get("neuroncore_utilization"), value_path)
        if value is not None:
            report.reading(
                f"neuroncore{index}", "neuroncore", "utilization_ratio", value / 100, "ratio"
            )


def _memory_used(report: _Report, data: Mapping[str, object], path: str, runtime: str) -> None:
    used_path = f"{path}.neuron_runtime_used_bytes"
    used = report.mapping(data.get("neuron_runtime_used_bytes"), used_path)
    if used is None:
        return
    for location in ("host", "neuron_device"):
        if location in used:
            value = report.number(used[location], f"{used_path}.{location}")
            if value is not None:
                metric = (
                    "host_memory_used_bytes" if location == "host" else "device_memory_used_bytes"
                )
                report.reading(runtime, "neuron_runtime", metric, value, "bytes")
    breakdown = used.get("usage_breakdown")
    if not isinstance(breakdown, dict) or "neuroncore_memory_usage" not in breakdown:
        return
    cores_path = f"{used_path}.usage_breakdown.neuroncore_memory_usage"
    cores = report.mapping(breakdown["neuroncore_memory_usage"], cores_path)
    for index, categories in (cores or {}).items():
        total = _category_total(report, categories, f"{cores_path}.{index}")
        if total is not None:
            report.reading(
                f"neuroncore{index}", "neuroncore", "neuroncore_memory_used_bytes", total, "bytes"
            )


def _category_total(report: _Report, categories: object, path: str) -> float | None:
    """Sum of a core's memory categories; a category may be a number or {"present": n, ...}."""
    fields = report.mapping(categories, path)
    if fields is None:
        return None
    total = 0.0
    for name, value in fields.items():
        amount = value.get("present") if isinstance(value, dict) else value
        number = report.number(amount, f"{path}.{name}")
        if number is None:
            return None
        total += number
    return total


def _runtime_vcpu_usage(
    report: _Report, data: Mapping[str, object], path: str, runtime: str
) -> None:
    usage = report.mapping(data.get("vcpu_usage"), f"{path}.vcpu_usage")
    if usage is not None:
        _percent_ratios(report, usage, f"{path}.vcpu_usage", runtime, "neuron_runtime", "vcpu_")


def _execution_stats(report: _Report, data: Mapping[str, object], path: str, runtime: str) -> None:
    for key, template in (
        ("error_summary", "execution_errors_{}"),
        ("execution_summary", "executions_{}"),
    ):
        if key in data:
            _counts(report, data[key], f"{path}.{key}", runtime, "neuron_runtime", template)


def _neuron_hw_counters(report: _Report, data: Mapping[str, object], path: str, _: str) -> None:
    devices = data.get("neuron_devices")
    if not isinstance(devices, list):
        report.problem(
            f"{path}.neuron_devices", "unexpected_type", f"expected an array, got {_kind(devices)}"
        )
        return
    for position, entry in enumerate(devices):
        entry_path = f"{path}.neuron_devices[{position}]"
        fields = report.mapping(entry, entry_path)
        if fields is None:
            continue
        index = fields.get("neuron_device_index")
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            report.problem(
                f"{entry_path}.neuron_device_index", "unexpected_type", "expected a device index"
            )
            continue
        for name, value in fields.items():
            if name == "neuron_device_index" or "ecc" not in name:
                continue
            number = report.number(value, f"{entry_path}.{name}")
            if number is not None:
                metric = f"{_metric_word(name)}_events"
                report.reading(f"neuron{index}", "accelerator", metric, number, "count")


def _vcpu_usage(report: _Report, data: Mapping[str, object], path: str, _: str) -> None:
    if "average_usage" in data:
        average = report.mapping(data["average_usage"], f"{path}.average_usage")
        if average is not None:
            _percent_ratios(report, average, f"{path}.average_usage", "vcpu", "node", "vcpu_")
    per_cpu = report.mapping(data.get("usage_data", {}), f"{path}.usage_data")
    for cpu, modes in (per_cpu or {}).items():
        cpu_modes = report.mapping(modes, f"{path}.usage_data.{cpu}")
        if cpu_modes is not None:
            _percent_ratios(
                report, cpu_modes, f"{path}.usage_data.{cpu}", f"vcpu{cpu}", "vcpu", "vcpu_"
            )


def _memory_info(report: _Report, data: Mapping[str, object], path: str, _: str) -> None:
    for name in ("memory_total_bytes", "memory_used_bytes", "swap_total_bytes", "swap_used_bytes"):
        if name in data:
            value = report.number(data[name], f"{path}.{name}")
            if value is not None:
                report.reading("system_memory", "node", name, value, "bytes")


def _no_readings(report: _Report, data: Mapping[str, object], path: str, _: str) -> None:
    """instance_info, neuron_hardware_info, neuron_k8s_info: metadata, not measurements."""


GROUPS: Mapping[str, GroupParser] = {
    # per runtime (under neuron_runtime_data[].report)
    "neuroncore_counters": _neuroncore_counters,
    "memory_used": _memory_used,
    "neuron_runtime_vcpu_usage": _runtime_vcpu_usage,
    "execution_stats": _execution_stats,
    # per instance (under system_data)
    "neuron_hw_counters": _neuron_hw_counters,
    "vcpu_usage": _vcpu_usage,
    "memory_info": _memory_info,
    # top level
    "instance_info": _no_readings,
    "neuron_hardware_info": _no_readings,
    "neuron_k8s_info": _no_readings,
}


def _parse_groups(report: _Report, groups: Mapping[str, object], path: str, runtime: str) -> None:
    """Each known metric group; an unknown group (a newer neuron-monitor) is skipped."""
    for name, data in groups.items():
        parser = GROUPS.get(name)
        if parser is None:
            continue
        group_path = f"{path}.{name}"
        fields = report.mapping(data, group_path)
        if fields is None:
            continue
        error = fields.get("error")
        if isinstance(error, str) and error:
            report.problem(f"{group_path}.error", "monitor_error", error)
            continue
        parser(report, fields, group_path, runtime)


def _runtime_device(runtime: Mapping[str, object], position: int) -> str:
    tag = runtime.get("neuron_runtime_tag")
    if isinstance(tag, str | int) and not isinstance(tag, bool) and str(tag):
        return f"runtime:{tag}"
    pid = runtime.get("pid")
    if isinstance(pid, int) and not isinstance(pid, bool):
        return f"runtime:pid{pid}"
    return f"runtime:{position}"


def _parse_document(report: _Report, document: Mapping[str, object]) -> None:
    runtimes = document.get("neuron_runtime_data")
    if runtimes is not None and not isinstance(runtimes, list):
        report.problem(
            "$.neuron_runtime_data", "unexpected_type", f"expected an array, got {_kind(runtimes)}"
        )
    for position, entry in enumerate(runtimes if isinstance(runtimes, list) else []):
        path = f"$.neuron_runtime_data[{position}]"
        runtime = report.mapping(entry, path)
        if runtime is None:
            continue
        error = runtime.get("error")
        if isinstance(error, str) and error:
            report.problem(f"{path}.error", "monitor_error", error)
            continue
        groups = report.mapping(runtime.get("report"), f"{path}.report")
        if groups is not None:
            _parse_groups(report, groups, f"{path}.report", _runtime_device(runtime, position))
    system = document.get("system_data")
    if system is not None:  # null when no system metric group is configured
        groups = report.mapping(system, "$.system_data")
        if groups is not None:
            _parse_groups(report, groups, "$.system_data", "runtime")
    # Top-level groups, and any group given at top level (a fragment wrapped in {}).
    top = {name: value for name, value in document.items() if name in GROUPS}
    _parse_groups(report, top, "$", "runtime")


def _instance_id(document: Mapping[str, object]) -> str | None:
    info = document.get("instance_info")
    if isinstance(info, dict):
        instance = info.get("instance_id")
        if isinstance(instance, str) and instance:
            return instance
    return None


def parse_report_object(
    document: object,
    *,
    target: str,
    line: int | None = None,
    host: str | None = None,
    timestamp_seconds: float | None = None,
) -> Frames:
    """READINGS and PROBLEMS frames for one decoded neuron-monitor report (module docstring)."""
    report = _Report(target, line, host, timestamp_seconds)
    if not isinstance(document, dict):
        report.problem("$", "not_an_object", f"a report is a JSON object, got {_kind(document)}")
        return report.frames()
    if report.host is None:
        report.host = _instance_id(document)
    _parse_document(report, document)
    return report.frames()


def _undecodable(text: str, error: Exception) -> tuple[str, str]:
    """Reason and message for text that is not JSON: an elided excerpt or plain bad JSON."""
    placeholder = _PLACEHOLDER.search(text)
    if placeholder is not None:
        at = text.count("\n", 0, placeholder.start()) + 1
        found = placeholder.group(0).strip()
        return (
            "elided_placeholder",
            f"documentation placeholder {found!r} at line {at}: an excerpt with content left "
            "out, not neuron-monitor output",
        )
    return "invalid_json", f"not JSON: {error}"


def parse_report(
    text: str,
    *,
    target: str,
    line: int | None = None,
    host: str | None = None,
    timestamp_seconds: float | None = None,
) -> Frames:
    """READINGS and PROBLEMS frames for one line of neuron-monitor output."""
    try:
        document = json.loads(text)
    except (ValueError, RecursionError) as error:
        reason, message = _undecodable(text, error)
        location = "$" if line is None else f"line {line}"
        return _frames([_problem(target, location, reason, message)])
    return parse_report_object(
        document, target=target, line=line, host=host, timestamp_seconds=timestamp_seconds
    )


def parse_fragment(text: str, *, target: str, host: str | None = None) -> Frames:
    """Frames for a ``"group": {...}`` fragment (as in the neuron-monitor user guide).

    The fragment is wrapped in ``{}`` (a trailing comma dropped) and parsed like a report whose
    groups sit at the top level, with no runtime: runtime readings get the device ``runtime``.
    """
    body = text.strip().rstrip(",").rstrip()
    try:
        document = json.loads("{" + body + "}")
    except (ValueError, RecursionError) as error:
        reason, message = _undecodable(text, error)
        return _frames([_problem(target, "$", reason, message)])
    return parse_report_object(document, target=target, host=host)


# --- device power from sysfs ------------------------------------------------------------------


class PowerFileError(Exception):
    """A power utilization line that gives no reading; ``reason`` is a PROBLEMS reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class PowerUtilization:
    """One VALID line of ``stats/power/utilization``; percentages of the device's max power."""

    timestamp_seconds: int
    min_percent: float
    max_percent: float
    avg_percent: float


def parse_power_utilization(text: str) -> PowerUtilization:
    """The values of a ``<status>,<timestamp>,<min>,<max>,<avg>`` line; raises PowerFileError.

    Only ``POWER_STATUS_VALID`` gives values: ``NO_DATA`` (fewer than 60 samples in the last
    minute, or power not supported by the firmware) and ``INVALID`` are reasons, as is any
    other status (the driver prints ``POWER_STATUS_MAX`` for an out-of-range status).
    """
    fields = [part.strip() for part in text.strip().split(",")]
    if len(fields) != 5:
        raise PowerFileError("garbage", f"expected 5 comma-separated fields, got {len(fields)}")
    status = fields[0]
    if status in _POWER_STATUS_PROBLEMS:
        raise PowerFileError(_POWER_STATUS_PROBLEMS[status], f"device reports {status}")
    if status != "POWER_STATUS_VALID":
        raise PowerFileError("unknown_status", f"unknown status {status[:40]!r}")
    try:
        timestamp = int(fields[1], 10)
        low, high, average = (float(value) for value in fields[2:])
    except ValueError as error:
        raise PowerFileError("garbage", f"not numbers: {error}") from error
    for name, value in (("min", low), ("max", high), ("avg", average)):
        if not (math.isfinite(value) and 0.0 <= value <= 100.0):
            raise PowerFileError("out_of_range", f"{name} {value} is not a percentage in 0-100")
    if not low <= average <= high:
        raise PowerFileError(
            "inconsistent", f"expected min <= avg <= max, got {low}, {average}, {high}"
        )
    return PowerUtilization(timestamp, low, high, average)


def _device_directories(root: Path, problems: list[Row]) -> list[tuple[int, Path]]:
    base = root / NEURON_DEVICES
    try:
        names = [entry.name for entry in os.scandir(base)]
    except FileNotFoundError:
        problems.append(
            _problem(str(root), str(base), "not_found", "no Neuron devices (driver not loaded?)")
        )
        return []
    except OSError as error:
        problems.append(
            _problem(str(root), str(base), "unreadable", f"cannot list: {error.strerror or error}")
        )
        return []
    devices = [
        (int(match["index"]), base / name)
        for name in names
        if (match := _NEURON_DEVICE.match(name)) is not None
    ]
    if not devices:
        problems.append(_problem(str(root), str(base), "not_found", "no neuron<N> directory"))
    return sorted(devices)


def _read_power_file(root: Path, path: Path) -> PowerUtilization:
    """The parsed power file at ``path``; raises SysfsReadError or PowerFileError."""
    if not Path(os.path.realpath(path)).is_relative_to(os.path.realpath(root)):
        raise PowerFileError("link_outside_root", "resolves outside the root: not read")
    if not path.exists():
        raise PowerFileError("not_found", "no power file (older driver, or no power support)")
    return parse_power_utilization(read_sysfs_text(path))


def read_power_utilization(
    root: Path,
    rated_power_watts: float,
    *,
    now: float,
    max_age_seconds: float = 120.0,
    max_future_skew_seconds: float = 5.0,
    host: str | None = None,
) -> Frames:
    """READINGS and PROBLEMS frames for every Neuron device's power file under ``root``.

    ``rated_power_watts``: the device's maximum power, from configuration; the file's
    percentages are of that figure, so watts are estimates. ``now``: the cycle's clock. A line
    older than ``max_age_seconds`` (default 120: the file refreshes every minute, and the
    pipeline takes no sample older than 120 s) is ``stale``, one more than
    ``max_future_skew_seconds`` ahead of ``now`` is ``future``; neither is a reading. Raises
    ValueError only for a bad configuration.
    """
    if not (math.isfinite(rated_power_watts) and rated_power_watts > 0):
        raise ValueError(f"rated_power_watts must be a positive number, got {rated_power_watts}")
    if not max_age_seconds > 0 or not max_future_skew_seconds >= 0:
        raise ValueError("max_age_seconds must be positive and max_future_skew_seconds >= 0")
    readings = ReadingColumns()
    problems: list[Row] = []
    for index, directory in _device_directories(root, problems):
        path = directory / POWER_FILE
        try:
            sample = _read_power_file(root, path)
        except (SysfsReadError, PowerFileError) as error:
            problems.append(_problem(str(root), str(path), error.reason, error.message))
            continue
        age = now - sample.timestamp_seconds
        if age > max_age_seconds:
            message = f"sampled {age:.0f} s before now, more than {max_age_seconds} s"
            problems.append(_problem(str(root), str(path), "stale", message))
            continue
        if -age > max_future_skew_seconds:
            message = f"sampled {-age:.0f} s after now"
            problems.append(_problem(str(root), str(path), "future", message))
            continue
        watts = rated_power_watts / 100
        for metric, value, unit, estimated in (
            ("power_utilization_ratio", sample.avg_percent / 100, "ratio", False),
            ("power_watts", sample.avg_percent * watts, "watts", True),
            ("power_min_watts", sample.min_percent * watts, "watts", True),
            ("power_max_watts", sample.max_percent * watts, "watts", True),
        ):
            readings.add(
                f"neuron{index}",
                "accelerator",
                metric,
                value,
                unit,
                estimated=estimated,
                timestamp_seconds=float(sample.timestamp_seconds),
            )
    return _frames(problems, readings.frame(source=SOURCE, target=str(root), host=host))
