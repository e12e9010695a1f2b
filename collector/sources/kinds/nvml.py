"""Kind ``nvml``: this machine's NVIDIA GPUs through NVML; unavailable (up 0, one problem)
without it::

    - kind: nvml
      host: gpu-node-017     # as the inventory names this machine; the hostname when absent
"""

from __future__ import annotations

import time
from typing import Literal

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
from collector.sources.readings_source import (
    ClosingReader,
    Reader,
    ReaderResult,
    ReadingsSource,
    health_row,
)

LOCAL = "local"  # the probe's one target: this host


class NvmlSpec(SourceSpec):
    kind: Literal["nvml"]
    name: str = "nvml"
    host: str | None = None  # as the inventory names this machine; the hostname when absent


def nvml_reader(host: str | None = None) -> Reader:
    """The GPUs of this machine; health: one target ``nvml://<host>`` (``nvml://local``
    without a host), up while NVML is available."""
    from collector.sources.nvml import NvmlSource

    source = NvmlSource(host=host)

    def read(now: float) -> ReaderResult:
        started = time.perf_counter()
        readings, problems = source.read_readings(now)
        health = source.health()
        target = f"nvml://{host}" if host else f"nvml://{LOCAL}"
        return ReaderResult(readings, problems, health_row(target, health.available, started))

    return ClosingReader(read, source.close)


def build(spec: NvmlSpec, context: BuildContext) -> Source:
    return ReadingsSource(spec.name, nvml_reader(spec.host), context.inventory)


def probe(target: str, options: ProbeOptions, now: float) -> Probe:
    from collector.sources.nvml import NvmlSource

    if target != LOCAL:
        raise ProbeError(f"nvml reads this host's GPUs: TARGET must be '{LOCAL}', not {target!r}")
    with NvmlSource() as source:
        health = source.health()
        readings, problems = source.read_readings(now)
    return Probe(readings, problems, None if health.available else f"NVML {health.reason}")


KIND = SourceKind(
    spec=NvmlSpec,
    build=build,
    probe=ProbeKind(read=probe, target_help=f"'{LOCAL}'", default_target=LOCAL),
)
