"""The collectors file: which sources ``gigawatt serve --collectors FILE`` reads, and the
inventory that attaches what they see to the site. Without it, the simulator runs.

    inventory: inventory.csv            # relative to this file; see collector/inventory.py
    sources:
      - kind: redfish                   # rack PDUs, BMCs, CDUs
        name: pdus
        max_concurrent_targets: 16
        targets:
          - url: https://10.20.1.15
            credentials: {username_env: PDU_USER, password_env: PDU_PASSWORD}
      - kind: prometheus                # dcgm-exporter, node_exporter, ipmi, neuron, Kepler
        targets:
          - {url: http://gpu-node-017:9400/metrics, exporter: dcgm}
      - kind: nvml                      # this machine's NVIDIA GPUs
        host: gpu-node-017
      - kind: sysfs                     # this machine's CPU packages (RAPL) and hwmon sensors
        host: gpu-node-017
        root: /sys
      - kind: neuron                    # this machine's Trainium/Inferentia devices
        host: trn-node-003
        command: [neuron-monitor, -c, /etc/neuron-monitor.json]   # or file: PATH, or stdin: true
        power: {root: /sys, rated_power_watts: 500}
      - kind: simulated                 # the simulated campus, beside real sources
        workload: jobs

The file is validated once; every problem is listed with its location and line. Credentials
are never in the file: it names environment variables or files that hold them. Relative paths
(the inventory, a sysfs root, a followed file) are relative to this file.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from collector.config_errors import (
    ConfigError,
    ConfigProblem,
    line_index,
    nearest_line,
    read_config,
)
from collector.inventory import Inventory, load_inventory
from collector.site.topology import Topology
from collector.sources.base import Source
from collector.sources.redfish import RedfishConfig, RedfishTarget
from collector.sources.scrape import ScrapeTarget
from collector.sources.simulated import SimulatedSource, SimulationConfig


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RedfishSpec(_Spec):
    kind: Literal["redfish"]
    name: str = "redfish"
    targets: tuple[RedfishTarget, ...] = Field(min_length=1)
    max_concurrent_targets: int = Field(default=16, gt=0)


class PrometheusSpec(_Spec):
    kind: Literal["prometheus"]
    name: str = "prometheus"
    targets: tuple[ScrapeTarget, ...] = Field(min_length=1)
    max_concurrency: int = Field(default=64, gt=0)
    deadline_seconds: float = Field(default=10.0, gt=0)


class NvmlSpec(_Spec):
    kind: Literal["nvml"]
    name: str = "nvml"
    host: str | None = None  # as the inventory names this machine; the hostname when absent


class SysfsSpec(_Spec):
    """Linux powercap (RAPL) and hwmon of the machine gigawatt runs on."""

    kind: Literal["sysfs"]
    name: str = "sysfs"
    root: Path = Path("/sys")
    host: str | None = None  # as the inventory names this machine; the hostname when absent
    max_depth: int = Field(default=3, ge=1)  # directory levels entered below class/
    # A bound the zones cannot exceed (EnergyCounter): tells a wrap from a reset. None: assume
    # at most one wrap between two cycles.
    max_power_watts: float | None = Field(default=None, gt=0, allow_inf_nan=False)


class NeuronPowerSpec(_Spec):
    """The Neuron driver's power utilization files: percentages of ``rated_power_watts``."""

    root: Path = Path("/sys")
    rated_power_watts: float = Field(gt=0, allow_inf_nan=False)
    max_age_seconds: float = Field(default=120.0, gt=0, allow_inf_nan=False)


class NeuronSpec(_Spec):
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


class SimulatedSpec(_Spec):
    kind: Literal["simulated"]
    name: str = "simulated"
    workload: Literal["jobs", "steady"] = "jobs"
    seed: int = Field(default=0, ge=0)


SourceSpec = Annotated[
    RedfishSpec | PrometheusSpec | NvmlSpec | SysfsSpec | NeuronSpec | SimulatedSpec,
    Field(discriminator="kind"),
]


class CollectorsFile(_Spec):
    inventory: Path | None = None
    sources: tuple[SourceSpec, ...] = Field(min_length=1)


class CollectorsError(ConfigError):
    """Every problem found in a collectors file, each with its location."""


def parse_collectors(text: str, source: str = "<collectors>") -> CollectorsFile:
    try:
        data: Any = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise CollectorsError(
            source, [ConfigProblem("(file)", f"not valid YAML: {error}")]
        ) from None
    lines = line_index(text)
    try:
        spec = CollectorsFile.model_validate(data)
    except ValidationError as error:
        problems = []
        details = error.errors()
        tags = {"redfish", "prometheus", "nvml", "sysfs", "neuron", "simulated"}
        for detail in details:
            # pydantic names the union member chosen by `kind` in the path: not a YAML key.
            path = tuple(
                part
                for position, part in enumerate(detail["loc"])
                if not (position == 2 and detail["loc"][0] == "sources" and part in tags)
            )
            deeper = [
                d
                for d in details
                if len(d["loc"]) > len(detail["loc"])
                and tuple(d["loc"][: len(detail["loc"])]) == tuple(detail["loc"])
            ]
            if detail["type"] == "too_short" and deeper:
                continue  # "no item left" only echoes the items' own problems, listed anyway
            location = ".".join(str(part) for part in path)
            problems.append(ConfigProblem(location, detail["msg"], nearest_line(lines, path)))
        raise CollectorsError(source, problems) from None
    names = [item.name for item in spec.sources]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        problem = ConfigProblem("sources", f"names must differ: {', '.join(repeated)}")
        raise CollectorsError(source, [problem])
    return spec


def _beside(collectors: Path, path: Path) -> Path:
    """``path`` as the collectors file means it: a relative path is relative to that file."""
    return (collectors.parent / path).absolute()


def build_sources(
    path: Path, topology: Topology, environ: Mapping[str, str] | None = None
) -> list[Source]:
    """The sources a collectors file describes, attached through its inventory."""
    from collector.sources.neuron_stream import NeuronStream
    from collector.sources.readings_source import (
        NeuronPowerFiles,
        ReadingsSource,
        neuron_reader,
        nvml_reader,
        prometheus_reader,
        redfish_reader,
        sysfs_reader,
    )

    spec = parse_collectors(read_config(path, CollectorsError), str(path))
    inventory = (
        load_inventory(path.parent / spec.inventory, topology)
        if spec.inventory
        else Inventory.empty()
    )
    sources: list[Source] = []
    for item in spec.sources:
        if isinstance(item, RedfishSpec):
            config = RedfishConfig(
                targets=item.targets, max_concurrent_targets=item.max_concurrent_targets
            )
            sources.append(ReadingsSource(item.name, redfish_reader(config, environ), inventory))
        elif isinstance(item, PrometheusSpec):
            reader = prometheus_reader(item.targets, item.max_concurrency, item.deadline_seconds)
            sources.append(ReadingsSource(item.name, reader, inventory))
        elif isinstance(item, NvmlSpec):
            sources.append(ReadingsSource(item.name, nvml_reader(item.host), inventory))
        elif isinstance(item, SysfsSpec):
            reader = sysfs_reader(
                _beside(path, item.root),
                host=item.host,
                max_depth=item.max_depth,
                max_power_watts=item.max_power_watts,
            )
            # its RAPL counters are unwrapped with their known range: no naive rates on top
            sources.append(ReadingsSource(item.name, reader, inventory, derive_rates=False))
        elif isinstance(item, NeuronSpec):
            host = item.host if item.host is not None else socket.gethostname()
            stream = (
                NeuronStream(
                    command=item.command,
                    file=_beside(path, item.file) if item.file is not None else None,
                    stdin=sys.stdin.buffer if item.stdin else None,
                    host=host,
                    max_report_age_seconds=item.max_report_age_seconds,
                )
                if item.has_stream
                else None
            )
            power = (
                NeuronPowerFiles(
                    _beside(path, item.power.root),
                    item.power.rated_power_watts,
                    item.power.max_age_seconds,
                )
                if item.power is not None
                else None
            )
            sources.append(ReadingsSource(item.name, neuron_reader(stream, power, host), inventory))
        else:
            simulated = SimulatedSource(
                topology, SimulationConfig(seed=item.seed, workload=item.workload)
            )
            sources.append(simulated)
    return sources
