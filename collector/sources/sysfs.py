"""Source ``sysfs``: CPU energy from powercap (RAPL) and power/energy from hwmon, read from /sys.

``read(root)`` returns a READINGS frame and a PROBLEMS frame (collector.schemas). The root is
injected, so tests point it at fixture trees. Example readings::

    source  target  device                         device_kind  metric         value
    sysfs   /sys    intel-rapl:0                   cpu_package  energy_joules  240422.366267
    sysfs   /sys    hwmon0/k10temp/power1:Package  cpu_package  power_watts    45.0

What is read, and the rules applied:

* powercap: every zone ``class/powercap/intel-rapl:N[:M]`` and ``intel-rapl-mmio:N[:M]``.
  ``energy_uj`` becomes ``energy_joules`` (/1e6) exactly as the kernel counts it: the raw
  counter, which wraps at ``max_energy_range_uj`` (node_exporter reports the same value as
  ``node_rapl_*_joules_total``). Turning successive raw values into a monotonic counter and a
  power needs state across reads: that is ``EnergyCounter``, fed from ``powercap_zones``.
  ``constraint_<i>_power_limit_uw`` / ``constraint_<i>_max_power_uw`` become
  ``power_limit_<name>_watts`` / ``power_limit_<name>_max_watts`` (0 means "no limit set" or
  "not reported" and is skipped: missing is never 0). The zone's ``enabled`` file is about power
  *limiting*, not about the energy counter, so a zone with ``enabled`` = 0 is still read
  (node_exporter does the same).
* Mirror rule: ``intel-rapl-mmio`` exposes the same package energy as the MSR interface
  ``intel-rapl``. Zones are keyed by (parent zone name, zone name), e.g. (None, "package-0")
  or ("package-0", "dram"); when both interfaces have a key, the MSR zone wins and the MMIO
  zone is dropped without a problem (a mirror is normal, not an error). MSR wins because it is
  the complete tree (core, uncore and dram subzones hang under it) and it is the zone
  node_exporter labels its RAPL counters with (``path=".../intel-rapl:0"``), so device ids
  match across tools. An MMIO zone with no MSR twin is kept.
* hwmon: every ``class/hwmon/*`` directory (and its ``device/`` directory, where old kernels
  put the attribute files, as node_exporter does). ``power<N>_input`` (µW) becomes
  ``power_watts``; ``power<N>_average`` is used only for a channel with no ``_input``, so each
  channel yields one power reading. ``energy<N>_input`` (µJ) becomes ``energy_joules``.
  ``<channel>_enable`` = 0 skips the channel silently. The device is
  ``<dir>/<chip name>/<channel>[:<label>]``, so two channels both labelled ``package`` stay
  apart by channel number. A directory with no ``name`` file is reported (reason ``no_name``)
  and read under its directory name.
* The walk never hangs and never dies: every directory entered is resolved to its real path;
  a real path already visited is not entered again (sysfs ``subsystem`` and ``device`` links
  loop back), a link that leaves the root or goes deeper than ``max_depth`` is reported, and
  an unreadable, empty, oversized or non-numeric file is reported with its path and reading
  goes on.

Problem reasons: ``not_found``, ``not_a_directory``, ``link_loop``, ``link_outside_root``,
``too_deep``, ``bad_zone_id``, ``missing``, ``unreadable``, ``empty``, ``too_large``,
``garbage``, ``out_of_range``, ``no_name`` and, from EnergyCounter, ``time_not_increasing``,
``counter_decrease_no_range``, ``ambiguous_wrap``, ``impossible_jump``.

sysfs carries no timestamps, so ``timestamp_seconds`` is null; the caller knows when it read.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from collector import schemas
from collector.readings import ReadingColumns

SOURCE = "sysfs"
DEFAULT_ROOT = Path("/sys")

# A sysfs attribute is at most one page; anything longer is not an attribute.
MAX_ATTRIBUTE_BYTES = 4096

# powercap control types, MSR first: the order is the mirror rule's priority.
RAPL_CONTROL_TYPES = ("intel-rapl", "intel-rapl-mmio")
_ZONE_DIRECTORY = re.compile(r"^(?P<control>intel-rapl(?:-mmio)?):(?P<ids>.+)$")
_ZONE_IDS = re.compile(r"^(?P<package>\d+)(?::(?P<sub>\d+))?$")
_CONSTRAINT_NAME = re.compile(r"^constraint_(?P<index>\d+)_name$")
_HWMON_ATTRIBUTE = re.compile(r"^(?P<kind>power|energy)(?P<number>\d+)_(?P<item>\w+)$")
_UNSAFE_METRIC_CHARACTERS = re.compile(r"[^a-z0-9_]+")

MICRO = 1e-6

Row = dict[str, object]


class SysfsReadError(Exception):
    """A sysfs file that could not be turned into a value; ``reason`` is a PROBLEMS reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def read_sysfs_text(path: Path, max_bytes: int = MAX_ATTRIBUTE_BYTES) -> str:
    """The stripped text of one sysfs attribute; raises SysfsReadError with a reason."""
    try:
        with path.open("rb") as handle:
            data = handle.read(max_bytes + 1)
    except OSError as error:
        raise SysfsReadError("unreadable", f"cannot read: {error.strerror or error}") from error
    if len(data) > max_bytes:
        raise SysfsReadError("too_large", f"longer than {max_bytes} bytes: not an attribute")
    if not data:
        raise SysfsReadError("empty", "0-byte file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise SysfsReadError("garbage", "not UTF-8 text") from error
    text = text.strip().strip("\x00").strip()
    if not text:
        raise SysfsReadError("empty", "only whitespace")
    return text


def read_sysfs_int(path: Path) -> int:
    """One integer attribute (decimal); raises SysfsReadError."""
    text = read_sysfs_text(path)
    try:
        return int(text, 10)
    except ValueError as error:
        raise SysfsReadError("garbage", f"not an integer: {text[:40]!r}") from error


def zone_kind(name: str) -> str:
    """device_kind of a RAPL zone (or hwmon label) by its name: package-0 -> cpu_package."""
    lowered = name.strip().lower()
    if lowered.startswith("package"):
        return "cpu_package"
    for kind in ("uncore", "core", "dram", "psys"):
        if lowered == kind or lowered.startswith(f"{kind}-"):
            return kind
    return "powercap_zone"


# --- the walk ---------------------------------------------------------------------------------


@dataclass
class _Walk:
    """Bookkeeping of one read: real directories visited, problems found, the bounds."""

    root: Path
    max_depth: int
    host: str | None
    readings: ReadingColumns = field(default_factory=ReadingColumns)
    problems: list[Row] = field(default_factory=list)
    visited: set[Path] = field(default_factory=set)
    root_real: Path = field(init=False)

    def __post_init__(self) -> None:
        self.root_real = Path(os.path.realpath(self.root))

    def problem(self, location: Path | str, reason: str, message: str) -> None:
        self.problems.append(
            {
                "source": SOURCE,
                "target": str(self.root),
                "location": str(location),
                "reason": reason,
                "message": message,
            }
        )

    def reading(self, device: str, device_kind: str, metric: str, value: float, unit: str) -> None:
        self.readings.add(device, device_kind, metric, value, unit)

    def enter(self, path: Path, depth: int, *, required: bool = True) -> bool:
        """Whether the directory at ``path`` may be read now (and mark it visited).

        A directory already visited (by any name) is skipped silently: in sysfs, reaching the
        same directory twice through links is normal. ``required`` False: a path that is not a
        directory is not worth a problem (an optional ``device`` link, say).
        """
        if depth > self.max_depth:
            self.problem(path, "too_deep", f"deeper than {self.max_depth} levels: not entered")
            return False
        try:
            real = path.resolve(strict=True)
        except FileNotFoundError:
            if required:
                self.problem(path, "not_found", "does not exist (or a link points nowhere)")
            return False
        except (OSError, RuntimeError) as error:
            # Python 3.11 raises RuntimeError on a symlink loop, later versions OSError(ELOOP).
            self.problem(path, "link_loop", f"cannot resolve: {error}")
            return False
        if not real.is_relative_to(self.root_real):
            self.problem(path, "link_outside_root", f"resolves to {real}, outside {self.root}")
            return False
        if not real.is_dir():
            if required:
                self.problem(path, "not_a_directory", "expected a directory")
            return False
        if real in self.visited:
            return False
        self.visited.add(real)
        return True

    def entries(self, directory: Path) -> list[str]:
        """Names in a directory, sorted; a listing failure is a problem and an empty list."""
        try:
            return sorted(entry.name for entry in os.scandir(directory))
        except OSError as error:
            self.problem(directory, "unreadable", f"cannot list: {error.strerror or error}")
            return []

    def text(self, path: Path) -> str | None:
        try:
            return read_sysfs_text(path)
        except SysfsReadError as error:
            self.problem(path, error.reason, error.message)
            return None

    def integer(self, path: Path, *, minimum: int | None = 0) -> int | None:
        try:
            value = read_sysfs_int(path)
        except SysfsReadError as error:
            self.problem(path, error.reason, error.message)
            return None
        if minimum is not None and value < minimum:
            self.problem(path, "out_of_range", f"{value} is below {minimum}")
            return None
        return value


# --- powercap ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PowerLimit:
    """One powercap constraint of a zone; None where the file is missing or unusable."""

    index: int
    name: str
    power_limit_uw: int | None
    max_power_uw: int | None


@dataclass(frozen=True)
class PowercapZone:
    """One RAPL zone as read; ``device`` is its directory name (``intel-rapl:0:1``)."""

    device: str
    control_type: str  # intel-rapl (MSR) or intel-rapl-mmio
    package: int
    subzone: int | None
    name: str
    energy_uj: int
    max_energy_range_uj: int | None  # None: unknown, so a decrease cannot be unwrapped
    limits: tuple[PowerLimit, ...] = ()

    @property
    def parent_device(self) -> str | None:
        return None if self.subzone is None else f"{self.control_type}:{self.package}"


def _read_limits(walk: _Walk, directory: Path, names: list[str]) -> tuple[PowerLimit, ...]:
    limits: list[PowerLimit] = []
    present = set(names)
    for entry in names:
        match = _CONSTRAINT_NAME.match(entry)
        if match is None:
            continue
        index = int(match["index"])
        name = walk.text(directory / entry)
        if name is None:
            continue
        power = f"constraint_{index}_power_limit_uw"
        maximum = f"constraint_{index}_max_power_uw"
        limits.append(
            PowerLimit(
                index=index,
                name=name,
                power_limit_uw=walk.integer(directory / power) if power in present else None,
                max_power_uw=walk.integer(directory / maximum) if maximum in present else None,
            )
        )
    return tuple(sorted(limits, key=lambda limit: limit.index))


def _read_zones(walk: _Walk) -> list[PowercapZone]:
    base = walk.root / "class" / "powercap"
    if not walk.enter(base, 0):
        return []
    zones: list[PowercapZone] = []
    for entry in walk.entries(base):
        match = _ZONE_DIRECTORY.match(entry)
        if match is None:
            continue  # a control type (intel-rapl), or a non-RAPL powercap driver
        path = base / entry
        ids = _ZONE_IDS.match(match["ids"])
        if ids is None:
            walk.problem(path, "bad_zone_id", "zone id is not <package>[:<subzone>] in decimal")
            continue
        if not walk.enter(path, 1):
            continue
        names = walk.entries(path)
        if "energy_uj" not in names:
            walk.problem(path / "energy_uj", "missing", "zone has no energy counter")
            continue
        name = walk.text(path / "name") if "name" in names else None
        if name is None:
            if "name" not in names:
                walk.problem(path / "name", "missing", "zone has no name")
            continue
        energy = walk.integer(path / "energy_uj")
        if energy is None:
            continue
        max_range = (
            walk.integer(path / "max_energy_range_uj", minimum=1)
            if "max_energy_range_uj" in names
            else None
        )
        zones.append(
            PowercapZone(
                device=entry,
                control_type=match["control"],
                package=int(ids["package"]),
                subzone=int(ids["sub"]) if ids["sub"] is not None else None,
                name=name,
                energy_uj=energy,
                max_energy_range_uj=max_range,
                limits=_read_limits(walk, path, names),
            )
        )
    return _without_mirrors(zones)


def _without_mirrors(zones: list[PowercapZone]) -> list[PowercapZone]:
    """One zone per (parent name, name): the MSR zone over its MMIO mirror (module docstring)."""
    by_device = {zone.device: zone for zone in zones}

    def key(zone: PowercapZone) -> tuple[str | None, str]:
        parent = by_device.get(zone.parent_device) if zone.parent_device else None
        parent_name = parent.name if parent is not None else zone.parent_device
        return (parent_name, zone.name)

    claimed: dict[tuple[str | None, str], str] = {}  # key -> control type that has it
    dropped: set[str] = set()
    for zone in sorted(zones, key=lambda z: RAPL_CONTROL_TYPES.index(z.control_type)):
        owner = claimed.setdefault(key(zone), zone.control_type)
        if owner != zone.control_type:
            dropped.add(zone.device)
    return [zone for zone in zones if zone.device not in dropped]


def _metric_word(text: str) -> str:
    return _UNSAFE_METRIC_CHARACTERS.sub("_", text.strip().lower()).strip("_") or "unnamed"


def _powercap_readings(walk: _Walk, zones: list[PowercapZone]) -> None:
    for zone in zones:
        kind = zone_kind(zone.name)
        walk.reading(zone.device, kind, "energy_joules", zone.energy_uj * MICRO, "joules")
        for limit in zone.limits:
            word = _metric_word(limit.name)
            if limit.power_limit_uw:  # 0: no limit set on this zone
                metric = f"power_limit_{word}_watts"
                walk.reading(zone.device, kind, metric, limit.power_limit_uw * MICRO, "watts")
            if limit.max_power_uw:  # 0: the hardware does not report a maximum
                metric = f"power_limit_{word}_max_watts"
                walk.reading(zone.device, kind, metric, limit.max_power_uw * MICRO, "watts")


# --- hwmon ------------------------------------------------------------------------------------


@dataclass
class _Channel:
    kind: str  # power or energy
    number: int
    files: dict[str, Path] = field(default_factory=dict)  # item (input, label...) -> file


def _hwmon_channels(walk: _Walk, directory: Path, depth: int) -> dict[tuple[str, int], _Channel]:
    """Channels of one hwmon directory; its own files win over those under ``device/``."""
    channels: dict[tuple[str, int], _Channel] = {}
    places = [directory]
    device = directory / "device"
    if os.path.lexists(device) and walk.enter(device, depth + 1, required=False):
        places.append(device)
    for place in places:
        for entry in walk.entries(place):
            match = _HWMON_ATTRIBUTE.match(entry)
            if match is None:
                continue
            key = (match["kind"], int(match["number"]))
            channel = channels.setdefault(key, _Channel(key[0], key[1]))
            channel.files.setdefault(match["item"], place / entry)
    return channels


def _read_hwmon(walk: _Walk) -> None:
    base = walk.root / "class" / "hwmon"
    if not walk.enter(base, 0):
        return
    for entry in walk.entries(base):
        directory = base / entry
        if not walk.enter(directory, 1):
            continue
        names = walk.entries(directory)
        chip = walk.text(directory / "name") if "name" in names else None
        if chip is None:
            if "name" not in names:
                walk.problem(directory, "no_name", f"no name file: read as {entry!r}")
            chip = entry
        for _key, channel in sorted(_hwmon_channels(walk, directory, 1).items()):
            _read_channel(walk, f"{entry}/{chip}", channel)


def _read_channel(walk: _Walk, prefix: str, channel: _Channel) -> None:
    files = channel.files
    if "enable" in files and walk.integer(files["enable"]) == 0:
        return  # disabled by the driver or the admin: not a reading, not an error
    if channel.kind == "power":
        value_file = files.get("input") or files.get("average")
        metric, unit = "power_watts", "watts"
    else:
        value_file = files.get("input")
        metric, unit = "energy_joules", "joules"
    if value_file is None:
        return  # only limits or alarms (power1_cap, ...): nothing measured
    value = walk.integer(value_file)
    if value is None:
        return
    label = walk.text(files["label"]) if "label" in files else None
    name = f"{channel.kind}{channel.number}"
    device = f"{prefix}/{name}:{label}" if label else f"{prefix}/{name}"
    walk.reading(device, _label_kind(label), metric, value * MICRO, unit)


def _label_kind(label: str | None) -> str:
    """A channel labelled like a RAPL zone (Package, Core...) gets that zone's kind."""
    kind = zone_kind(label) if label else "powercap_zone"
    return "hwmon" if kind == "powercap_zone" else kind


# --- public API -------------------------------------------------------------------------------


def _frames(walk: _Walk) -> tuple[pl.DataFrame, pl.DataFrame]:
    readings = walk.readings.frame(source=SOURCE, target=str(walk.root), host=walk.host)
    problems = pl.DataFrame(walk.problems, schema=dict(schemas.PROBLEMS))
    return readings, problems


def powercap_zones(
    root: Path = DEFAULT_ROOT, *, max_depth: int = 3
) -> tuple[list[PowercapZone], pl.DataFrame]:
    """The RAPL zones under ``root`` (mirrors removed) and a PROBLEMS frame: EnergyCounter input."""
    walk = _Walk(root, max_depth, None)
    zones = _read_zones(walk)
    return zones, _frames(walk)[1]


def read(
    root: Path = DEFAULT_ROOT, *, host: str | None = None, max_depth: int = 3
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """READINGS and PROBLEMS frames for powercap and hwmon under ``root`` (default /sys).

    ``max_depth`` bounds how many directory levels below ``class/`` are entered (zone or hwmon
    directory: 1, its ``device`` directory: 2). Never raises for what it finds on disk.
    """
    _, readings, problems = read_with_zones(root, host=host, max_depth=max_depth)
    return readings, problems


def read_with_zones(
    root: Path = DEFAULT_ROOT, *, host: str | None = None, max_depth: int = 3
) -> tuple[list[PowercapZone], pl.DataFrame, pl.DataFrame]:
    """``read``'s frames and ``powercap_zones``' zones from one walk of the tree: what a reader
    that keeps an EnergyCounter per zone needs each cycle, without reading /sys twice."""
    walk = _Walk(root, max_depth, host)
    zones = _read_zones(walk)
    _powercap_readings(walk, zones)
    _read_hwmon(walk)
    readings, problems = _frames(walk)
    return zones, readings, problems


# --- energy counter ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CounterStep:
    """What one more counter reading gives.

    ``energy_joules``: the monotonic total (it starts at the first raw value, so it equals the
    kernel's counter until the first wrap); None when the reading was rejected.
    ``average_power_watts``: energy over the interval / interval; None on the first reading
    and on a rejected one. ``problem``/``message``: why the reading was rejected.
    """

    energy_joules: float | None
    average_power_watts: float | None
    problem: str | None = None
    message: str | None = None


class EnergyCounter:
    """Unwraps one powercap ``energy_uj`` counter into monotonic joules and average watts.

    Wrap rule: a value below the previous one is one wrap, and the interval's energy is
    ``value - previous + max_energy_range_uj``. What cannot be told apart is reported, not
    guessed, and the counter re-bases on the new value (the interval's energy is lost, so the
    total stays monotonic but may undercount):

    * a decrease with no ``max_energy_range_uj`` known: ``counter_decrease_no_range`` (a wrap
      and a reset look the same);
    * with ``max_power_watts`` configured (a bound the zone cannot exceed, e.g. a few times its
      TDP): ``ambiguous_wrap`` when the interval is long enough that one more full wrap would
      still fit under that bound (more than one wrap may have happened), and
      ``impossible_jump`` when even the smallest unwrapped energy needs more than that bound.
      Without ``max_power_watts`` at most one wrap per interval is assumed, so read the
      counter more often than ``max_energy_range_uj / peak power`` (about an hour for a
      262 kJ range at 70 W, a few minutes on big packages).

    A reading no later than the previous one is ignored (``time_not_increasing``) and leaves
    the state as it was. Energy is accumulated in integer microjoules, so no rounding drift.
    """

    def __init__(self, max_power_watts: float | None = None) -> None:
        if max_power_watts is not None and not max_power_watts > 0:
            raise ValueError(f"max_power_watts must be positive, got {max_power_watts}")
        self.max_power_watts = max_power_watts
        self._last_uj: int | None = None
        self._last_time: float | None = None
        self._total_uj = 0

    @property
    def energy_joules(self) -> float | None:
        """The monotonic total so far; None before the first reading."""
        return None if self._last_uj is None else self._total_uj * MICRO

    def update(
        self, energy_uj: int, timestamp_seconds: float, max_energy_range_uj: int | None
    ) -> CounterStep:
        if energy_uj < 0:
            return CounterStep(None, None, "out_of_range", f"negative counter {energy_uj}")
        if self._last_uj is None or self._last_time is None:
            self._last_uj, self._last_time, self._total_uj = energy_uj, timestamp_seconds, energy_uj
            return CounterStep(self._total_uj * MICRO, None)
        interval = timestamp_seconds - self._last_time
        if not interval > 0:
            return CounterStep(
                None,
                None,
                "time_not_increasing",
                f"timestamp {timestamp_seconds} is not after {self._last_time}",
            )
        delta = energy_uj - self._last_uj
        if delta < 0:
            if max_energy_range_uj is None or max_energy_range_uj <= 0:
                return self._rebase(
                    energy_uj,
                    timestamp_seconds,
                    "counter_decrease_no_range",
                    f"counter fell from {self._last_uj} to {energy_uj} µJ and "
                    "max_energy_range_uj is unknown: wrap or reset cannot be told apart",
                )
            delta += max_energy_range_uj
        if self.max_power_watts is not None:
            bound_uj = self.max_power_watts * interval / MICRO
            if delta > bound_uj:
                return self._rebase(
                    energy_uj,
                    timestamp_seconds,
                    "impossible_jump",
                    f"{delta * MICRO:.6f} J in {interval:.3f} s exceeds {self.max_power_watts} W",
                )
            if max_energy_range_uj and delta + max_energy_range_uj <= bound_uj:
                return self._rebase(
                    energy_uj,
                    timestamp_seconds,
                    "ambiguous_wrap",
                    f"{interval:.3f} s at up to {self.max_power_watts} W can span more than one "
                    f"wrap of {max_energy_range_uj} µJ",
                )
        self._total_uj += delta
        self._last_uj, self._last_time = energy_uj, timestamp_seconds
        return CounterStep(self._total_uj * MICRO, delta * MICRO / interval)

    def _rebase(self, energy_uj: int, timestamp: float, reason: str, message: str) -> CounterStep:
        self._last_uj, self._last_time = energy_uj, timestamp
        return CounterStep(None, None, reason, message)
