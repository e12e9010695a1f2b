"""Real sources as pipeline sources: a reader's normalized readings, attached to the topology.

A reader is any callable ``now -> ReaderResult`` (readings, problems and one health row per
target). ``ReadingsSource`` runs it, attaches the readings through the inventory and hands
the pipeline a SampleBatch with its per-target health and problems, so one dead or hanging
target costs only its own devices, which then show as not reporting, never as 0 W. A reader
that holds something (connections, NVML, a subprocess and its thread) also has a ``close``,
which ``ReadingsSource.close`` calls when the service stops.

Adding a kind of source is one reader factory here and one line in collector.collectors.
"""

from __future__ import annotations

import math
import os
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from collector import schemas
from collector.attach import attach, attach_nodes
from collector.counter_rates import CounterRates
from collector.inventory import Inventory
from collector.sources.base import SampleBatch

if TYPE_CHECKING:
    from collector.sources.neuron_stream import NeuronStream


@dataclass(frozen=True)
class ReaderResult:
    readings: pl.DataFrame  # schemas.READINGS
    problems: pl.DataFrame  # schemas.PROBLEMS
    targets: pl.DataFrame  # schemas.TARGET_HEALTH


Reader = Callable[[float], ReaderResult]


class ReadingsSource:
    """Source ``name``: a reader plus an inventory."""

    def __init__(
        self, name: str, reader: Reader, inventory: Inventory, *, derive_rates: bool = True
    ) -> None:
        self._name = name
        self.reader = reader
        self.inventory = inventory
        # RAPL counters scraped from node_exporter come without power: watts from the deltas.
        # A reader that unwraps its own counters (sysfs knows each zone's wrap range, and
        # refuses an ambiguous interval) must not get a naive rate in its place.
        self.rates = CounterRates() if derive_rates else None

    @property
    def name(self) -> str:
        return self._name

    def read(self, now: float) -> SampleBatch:
        result = self.reader(now)
        readings = result.readings
        problems = schemas.conform(result.problems, schemas.PROBLEMS, f"{self.name} problems")
        if self.rates is not None:
            derived, counter_problems = self.rates.derive(readings, now)
            readings = pl.concat([readings, derived])
            problems = pl.concat([problems, counter_problems])
        accelerators, feeds = attach(readings, self.inventory)
        return SampleBatch(
            accelerators=accelerators,
            nodes=attach_nodes(readings, self.inventory),
            feeds=feeds,
            targets=schemas.conform(result.targets, schemas.TARGET_HEALTH, f"{self.name} targets"),
            problems=problems,
        )

    def close(self) -> None:
        """Close the reader when it has a ``close`` (it holds connections, NVML, a process)."""
        close = getattr(self.reader, "close", None)
        if callable(close):
            close()


def _chosen_readings(
    chosen: pl.DataFrame, hosts: pl.DataFrame, device_kind: str, what: str
) -> pl.DataFrame:
    """READINGS rows for the figures a choice rule picked (one per PDU or chassis)."""
    return schemas.conform(
        chosen.drop_nulls("power_watts")
        .join(hosts, on="target", how="left", maintain_order="left")
        .select(
            pl.lit("redfish").alias("source"),
            "target",
            "host",
            "device",
            pl.lit(device_kind).alias("device_kind"),
            pl.lit("power_watts").alias("metric"),
            pl.col("power_watts").alias("value"),
            pl.lit("watts").alias("unit"),
            pl.lit(False).alias("estimated"),
            pl.lit(None, dtype=pl.Float64).alias("timestamp_seconds"),
        ),
        schemas.READINGS,
        what,
    )


def redfish_reader(config: object, environ: Mapping[str, str] | None = None) -> Reader:
    """Rack PDUs, BMCs and CDUs over Redfish. Each PDU's power is the reading
    ``choose_pdu_power`` picks, added as a ``power_watts`` reading (device_kind ``pdu``) of the
    PDU resource itself, so an inventory row names the PDU (host, resource path) and its rack
    feed. Likewise each server's input power is the reading ``chassis_power_frame`` picks,
    added as a ``power_watts`` reading (device_kind ``node``) of the Chassis resource, which an
    inventory row maps to a node."""
    from collector.sources.redfish import RedfishConfig, RedfishSource

    assert isinstance(config, RedfishConfig)
    source = RedfishSource(config, environ=environ)

    def read(now: float) -> ReaderResult:
        result = source.read_readings(now)
        hosts = result.targets.select("target", "host")
        readings = pl.concat(
            [
                schemas.conform(result.readings, schemas.READINGS, "redfish readings"),
                _chosen_readings(result.pdu_power(), hosts, "pdu", "chosen PDU power"),
                _chosen_readings(result.chassis_power(), hosts, "node", "chosen chassis power"),
            ]
        )
        targets = result.targets.select("target", pl.col("up").cast(pl.Float64), "duration_seconds")
        return ReaderResult(readings, result.problems, targets)

    return ClosingReader(read, source.close)  # logs the BMC sessions out


def prometheus_reader(
    targets: Sequence[object], max_concurrency: int, deadline_seconds: float
) -> Reader:
    """Exporters sites already run (dcgm-exporter, node_exporter, ipmi_exporter, neuron-monitor's
    companion, Kepler), scraped once per cycle with connections kept between cycles."""
    from collector.sources.scrape import Scraper, ScrapeTarget

    assert all(isinstance(target, ScrapeTarget) for target in targets)
    scraper = Scraper(
        [t for t in targets if isinstance(t, ScrapeTarget)],
        max_concurrency=max_concurrency,
        deadline_seconds=deadline_seconds,
    )

    def read(now: float) -> ReaderResult:
        result = scraper.scrape(now)
        health = result.targets.select("target", pl.col("up").cast(pl.Float64), "duration_seconds")
        return ReaderResult(result.readings, result.problems, health)

    return ClosingReader(read, scraper.close)


def nvml_reader(host: str | None = None) -> Reader:
    """The GPUs of this machine through NVML; unavailable (up 0, one problem) without it."""
    from collector.sources.nvml import NvmlSource

    source = NvmlSource(host=host)

    def read(now: float) -> ReaderResult:
        started = time.perf_counter()
        readings, problems = source.read_readings(now)
        health = source.health()
        target = f"nvml://{host}" if host else "nvml://local"
        return ReaderResult(readings, problems, _health(target, health.available, started))

    return ClosingReader(read, source.close)


class ClosingReader:
    """A reader function and what closes what it holds: a Reader with a ``close``."""

    def __init__(self, read: Reader, close: Callable[[], None]) -> None:
        self._read = read
        self._close = close

    def __call__(self, now: float) -> ReaderResult:
        return self._read(now)

    def close(self) -> None:
        self._close()


def _health(target: str, up: bool, started: float) -> pl.DataFrame:
    """One TARGET_HEALTH row; its duration runs from ``started`` (time.perf_counter) to now."""
    return pl.DataFrame(
        {
            "target": [target],
            "up": [1.0 if up else 0.0],
            "duration_seconds": [time.perf_counter() - started],
        },
        schema=dict(schemas.TARGET_HEALTH),
    )


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
                _health(target, False, started),
            )
        zones, readings, problems = sysfs.read_with_zones(root, host=name, max_depth=max_depth)
        power: list[dict[str, object]] = []
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
                power.append(
                    {
                        "source": sysfs.SOURCE,
                        "target": str(root),
                        "host": name,
                        "device": zone.device,
                        "device_kind": sysfs.zone_kind(zone.name),
                        "metric": "power_watts",
                        "value": step.average_power_watts,
                        "unit": "watts",
                        "estimated": False,
                        "timestamp_seconds": None,  # like every sysfs reading: the cycle's time
                    }
                )
        return ReaderResult(
            pl.concat([readings, pl.DataFrame(power, schema=dict(schemas.READINGS))]),
            pl.concat([problems, pl.DataFrame(rejected, schema=dict(schemas.PROBLEMS))]),
            _health(target, True, started),
        )

    return read


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
            targets.append(_health(self.stream.target, cycle.up, started))
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
            targets.append(_health(str(self.power.root), up, started))
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
    the stream the same host (build_sources does), so that its readings carry it rather than
    the reports' instance id and one inventory row matches both."""
    name = host if host is not None else socket.gethostname()
    if power is not None and not (
        math.isfinite(power.rated_power_watts) and power.rated_power_watts > 0
    ):
        raise ValueError(f"rated_power_watts must be positive, got {power.rated_power_watts}")
    return NeuronReader(stream, power, name)
