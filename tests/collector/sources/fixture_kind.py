"""A kind of source written the way a new one is: one module, one ``KIND`` (here, a test
fixture; a real kind's module lives in collector/sources/kinds/ and has a line in the
registry). It reads meters that are not there: each is a device name and a fixed number of
watts, a PDU of the inventory's host ``meter-host``.

``BUILT`` lists the name of every source the kind has built, and ``CLOSED`` every one closed,
so a test can count them; a test clears them when it registers the kind."""

from __future__ import annotations

import time
from typing import Literal

import polars as pl
from pydantic import Field

from collector import schemas
from collector.readings import readings_frame
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
    ReaderResult,
    ReadingsSource,
    health_row,
)

NAME = "fixture-meter"
HOST = "meter-host"
BUILT: list[str] = []
CLOSED: list[str] = []


class MeterSpec(SourceSpec):
    kind: Literal["fixture-meter"]
    name: str = NAME
    device: str
    watts: float = Field(gt=0)


def meter_readings(device: str, watts: float, target: str) -> pl.DataFrame:
    """One PDU power reading (READINGS)."""
    return readings_frame(
        source=NAME,
        target=target,
        host=HOST,
        device=[device],
        device_kind="pdu",
        metric="power_watts",
        value=[watts],
        unit="watts",
    )


def build(spec: MeterSpec, context: BuildContext) -> Source:
    BUILT.append(spec.name)
    target = f"meter://{spec.device}"

    def read(now: float) -> ReaderResult:
        started = time.perf_counter()
        readings = meter_readings(spec.device, spec.watts, target)
        health = health_row(target, True, started)
        return ReaderResult(readings, schemas.empty(schemas.PROBLEMS), health)

    return ReadingsSource(
        spec.name, ClosingReader(read, lambda: CLOSED.append(spec.name)), context.inventory
    )


def probe(target: str, options: ProbeOptions, now: float) -> Probe:
    """TARGET is ``DEVICE=WATTS``."""
    device, _, watts = target.partition("=")
    try:
        return Probe(meter_readings(device, float(watts), target), schemas.empty(schemas.PROBLEMS))
    except ValueError:
        raise ProbeError(f"{target}: give DEVICE=WATTS") from None


FIXTURE_KIND = SourceKind(
    spec=MeterSpec,
    build=build,
    probe=ProbeKind(read=probe, target_help="DEVICE=WATTS", options=frozenset({"timeout"})),
)
