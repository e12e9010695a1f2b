"""Kind ``sysfs``: Linux powercap (RAPL) and hwmon of the machine gigawatt runs on::

- kind: sysfs
  host: gpu-node-017     # as the inventory names this machine; the hostname when absent
  root: /sys             # relative to the collectors file
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Literal

import polars as pl
from pydantic import Field

from collector import schemas
from collector.readings import ReadingColumns
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
from collector.sources.readings_source import Reader, ReaderResult, ReadingsSource, health_row

DEFAULT_ROOT = Path("/sys")


class SysfsSpec(SourceSpec):
    """Linux powercap (RAPL) and hwmon of the machine gigawatt runs on."""

    kind: Literal["sysfs"]
    name: str = "sysfs"
    root: Path = DEFAULT_ROOT
    host: str | None = None  # as the inventory names this machine; the hostname when absent
    max_depth: int = Field(default=3, ge=1)  # directory levels entered below class/
    # A bound the zones cannot exceed (EnergyCounter): tells a wrap from a reset. None: assume
    # at most one wrap between two cycles.
    max_power_watts: float | None = Field(default=None, gt=0, allow_inf_nan=False)


def _unreadable_root(root: Path) -> tuple[str, str] | None:
    """(reason, message) when ``root`` cannot be listed; None when it can."""
    try:
        with os.scandir(root):
            return None
    except FileNotFoundError:
        return "not_found", "does not exist"
    except NotADirectoryError:
        return "not_a_directory", "expected a directory"
    except OSError as error:
        return "unreadable", f"cannot list: {error.strerror or error}"


def sysfs_reader(
    root: Path,
    host: str | None = None,
    max_depth: int = 3,
    max_power_watts: float | None = None,
) -> Reader:
    """This machine's RAPL and hwmon readings (collector.sources.sysfs) plus, from the second
    read on, each RAPL zone's average power since the previous read::

        source  device        device_kind  metric         value          unit
        sysfs   intel-rapl:0  cpu_package  energy_joules  240422.366267  joules
        sysfs   intel-rapl:0  cpu_package  power_watts    87.5           watts

    One EnergyCounter per zone unwraps ``energy_uj`` at ``max_energy_range_uj``; the first read
    has no power (missing, not 0) and a read the counter rejects (an ambiguous wrap, say) is a
    problem located at the zone. ``host``: as the inventory names this machine (default: the
    hostname). Health: one target ``sysfs://<host><root>``, up when the root can be listed.
    """
    from collector.sources import sysfs

    name = host if host is not None else socket.gethostname()
    target = f"sysfs://{name}{root}"
    counters: dict[str, sysfs.EnergyCounter] = {}

    def read(now: float) -> ReaderResult:
        started = time.perf_counter()
        unreadable = _unreadable_root(root)
        if unreadable is not None:
            reason, message = unreadable
            problem = {
                "source": sysfs.SOURCE,
                "target": str(root),
                "location": str(root),
                "reason": reason,
                "message": message,
            }
            return ReaderResult(
                schemas.empty(schemas.READINGS),
                pl.DataFrame([problem], schema=dict(schemas.PROBLEMS)),
                health_row(target, False, started),
            )
        zones, readings, problems = sysfs.read_with_zones(root, host=name, max_depth=max_depth)
        power = ReadingColumns()
        rejected: list[dict[str, object]] = []
        for zone in zones:
            counter = counters.get(zone.device)
            if counter is None:
                counter = counters[zone.device] = sysfs.EnergyCounter(max_power_watts)
            step = counter.update(zone.energy_uj, now, zone.max_energy_range_uj)
            if step.problem is not None:
                rejected.append(
                    {
                        "source": sysfs.SOURCE,
                        "target": str(root),
                        "location": str(root / "class" / "powercap" / zone.device),
                        "reason": step.problem,
                        "message": step.message or "",
                    }
                )
            elif step.average_power_watts is not None:
                # no timestamp, like every sysfs reading: the cycle's time
                power.add(
                    zone.device,
                    sysfs.zone_kind(zone.name),
                    "power_watts",
                    step.average_power_watts,
                    "watts",
                )
        return ReaderResult(
            pl.concat([readings, power.frame(source=sysfs.SOURCE, target=str(root), host=name)]),
            pl.concat([problems, pl.DataFrame(rejected, schema=dict(schemas.PROBLEMS))]),
            health_row(target, True, started),
        )

    return read


def build(spec: SysfsSpec, context: BuildContext) -> Source:
    reader = sysfs_reader(
        context.beside(spec.root),
        host=spec.host,
        max_depth=spec.max_depth,
        max_power_watts=spec.max_power_watts,
    )
    # its RAPL counters are unwrapped with their known range: no naive rates on top
    return ReadingsSource(spec.name, reader, context.inventory, derive_rates=False)


def probe(target: str, options: ProbeOptions, now: float) -> Probe:
    from collector.sources import sysfs

    root = Path(target)
    if not root.is_dir():
        raise ProbeError(f"{target}: not a directory (give a sysfs root such as {DEFAULT_ROOT})")
    readings, problems = sysfs.read(root)
    return Probe(readings, problems)


KIND = SourceKind(
    spec=SysfsSpec,
    build=build,
    probe=ProbeKind(read=probe, target_help="a sysfs root", default_target=str(DEFAULT_ROOT)),
)
