"""Kind ``redfish``: rack PDUs, BMCs and CDUs over Redfish::

    - kind: redfish
      name: pdus
      max_concurrent_targets: 16
      targets:
        - url: https://10.20.1.15
          credentials: {username_env: PDU_USER, password_env: PDU_PASSWORD}

Each PDU's power is the reading ``choose_pdu_power`` picks, added as a ``power_watts``
reading (device_kind ``pdu``) of the PDU resource itself, so an inventory row names the PDU
(host, resource path) and its rack feed. Likewise each server's input power is the reading
``chassis_power_frame`` picks, added as a ``power_watts`` reading (device_kind ``node``) of
the Chassis resource, which an inventory row maps to a node.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Literal

import polars as pl
from pydantic import Field

from collector import schemas
from collector.sources.base import Source
from collector.sources.plugin import (
    BuildContext,
    Probe,
    ProbeError,
    ProbeKind,
    ProbeOptions,
    SourceKind,
    SourceSpec,
    first_problem,
    timeout_seconds,
    validation_message,
)
from collector.sources.readings_source import ClosingReader, Reader, ReaderResult, ReadingsSource
from collector.sources.redfish import RedfishConfig, RedfishTarget

log = logging.getLogger(__name__)

# A probe's credentials: these variables unless --username-env / --password-env name others.
USERNAME_ENV = "GIGAWATT_REDFISH_USERNAME"
PASSWORD_ENV = "GIGAWATT_REDFISH_PASSWORD"


class RedfishSpec(SourceSpec):
    kind: Literal["redfish"]
    name: str = "redfish"
    targets: tuple[RedfishTarget, ...] = Field(min_length=1)
    max_concurrent_targets: int = Field(default=16, gt=0)


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


def redfish_reader(config: RedfishConfig, environ: Mapping[str, str] | None = None) -> Reader:
    """Every target's readings plus the chosen PDU and chassis power (see the module
    docstring); ``close`` logs the BMC sessions out."""
    from collector.sources.redfish import RedfishSource

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

    return ClosingReader(read, source.close)


def build(spec: RedfishSpec, context: BuildContext) -> Source:
    config = RedfishConfig(targets=spec.targets, max_concurrent_targets=spec.max_concurrent_targets)
    return ReadingsSource(spec.name, redfish_reader(config, context.environ), context.inventory)


def _credential_variables(options: ProbeOptions) -> tuple[str, str] | None:
    """The environment variable names to log in with, or None to read anonymously."""
    if options.username_env is not None or options.password_env is not None:
        return options.username_env or USERNAME_ENV, options.password_env or PASSWORD_ENV
    present = [name for name in (USERNAME_ENV, PASSWORD_ENV) if os.environ.get(name)]
    if len(present) == 1:
        missing = PASSWORD_ENV if present == [USERNAME_ENV] else USERNAME_ENV
        raise ProbeError(f"{present[0]} is set but {missing} is not: set both, or neither")
    return (USERNAME_ENV, PASSWORD_ENV) if present else None


def probe(target: str, options: ProbeOptions, now: float) -> Probe:
    """One BMC, PDU or CDU service. Credentials come only from environment variables (never
    from an option); without them the service is read anonymously."""
    from collector.sources.redfish import RedfishCredentials, RedfishSource

    names = _credential_variables(options)
    plain = target.strip().lower().startswith("http://")
    if names is not None and plain:
        log.warning("credentials go over plain http://")
    timeout = timeout_seconds(options)
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
        raise ProbeError(f"{target}: {validation_message(error)}") from None
    with RedfishSource(RedfishConfig(targets=(redfish_target,))) as source:
        read = source.read_readings(now)
    unreadable = None if read.targets.item(0, "up") else first_problem(read.problems)
    return Probe(read.readings, read.problems, unreadable)


KIND = SourceKind(
    spec=RedfishSpec,
    build=build,
    probe=ProbeKind(
        read=probe,
        target_help="a BMC, PDU or CDU service URL",
        options=frozenset({"timeout", "insecure", "ca_bundle", "username_env", "password_env"}),
    ),
)
