"""Attach normalized readings (collector.schemas.READINGS) to the topology.

Pure: readings and an inventory in, sample frames out, ready for validation.

* Accelerator readings (device_kind ``accelerator``: GPUs through NVML or dcgm-exporter,
  Neuron devices) become ACCELERATOR_SAMPLES rows: power, temperature, utilization and memory
  used, each null where the device did not report it (not measured, never 0).
* Accelerators' error counters (``attach_errors``: uncorrected ECC, the lifetime count when
  the device gives one, and XID events) become ACCELERATOR_ERRORS rows.
* Readings of a device the inventory maps to a rack PDU feed become FEED_SAMPLES rows:
  power, current, voltage and the PDU's own energy meter.

* Readings of a device the inventory maps to a node (``attach_nodes``) become NODE_SAMPLES
  rows: ``power_watts`` of device_kind ``node`` (a server's input power: the chassis power
  Redfish's chosen reading gives, IPMI DCMI, Kepler's platform meter) and the sum of
  ``power_watts`` of device_kind ``cpu_package`` (RAPL) as ``cpu_power_watts``.

An accelerator reading whose device the inventory does not know keeps a null index, so
validation rejects it as ``unknown_entity`` and counts it, like any other unknown sample.
Node and feed readings the inventory does not list are not attached: a BMC or PDU serves
resources (power shelves, cooling units) that are no server or feed of the site, and the
level's ``nodes_reporting_ratio`` shows what is missing. Other readings (raw chassis and PSU
figures, cooling units, temperatures of sensors) pass through untouched for the probe.
"""

from __future__ import annotations

import polars as pl

from collector import schemas
from collector.inventory import Inventory

ACCELERATOR_METRICS = (
    "power_watts",
    "temperature_celsius",
    "utilization_ratio",
    "memory_used_bytes",
)
# Error counter column <- reading metrics, best first: the aggregate (lifetime) uncorrected
# ECC count survives a driver reload, the volatile one does not (dcgm-exporter gives only it).
ERROR_METRICS = {
    "ecc_errors": ("ecc_uncorrected_aggregate_errors", "ecc_uncorrected_volatile_errors"),
    "xid_errors": ("xid_events",),
}
# Reading metric -> feed sample column.
FEED_METRICS = {
    "power_watts": "power_watts",
    "current_amps": "current_amps",
    "voltage_volts": "voltage_volts",
    "energy_joules": "meter_energy_joules",
}


def _resolve(readings: pl.DataFrame, table: pl.DataFrame, key: str) -> pl.DataFrame:
    """Join on (host, device); rows the inventory lists with no host match on device alone."""
    with_host = table.filter(pl.col("host") != "")
    device_only = table.filter(pl.col("host") == "").select(
        "device", pl.col(key).alias(f"{key}_by_device")
    )
    return (
        readings.with_columns(pl.col("host").fill_null(""))
        .join(with_host, on=["host", "device"], how="left", maintain_order="left")
        .join(device_only, on="device", how="left", maintain_order="left")
        .with_columns(pl.coalesce(key, f"{key}_by_device").alias(key))
        .drop(f"{key}_by_device")
    )


def _widen(frame: pl.DataFrame, key: str, metrics: dict[str, str]) -> pl.DataFrame:
    """One row per entity, one column per metric (the first value of each)."""
    return frame.group_by(key, maintain_order=True).agg(
        pl.col("timestamp_seconds").max(),
        *(
            pl.col("value").filter(pl.col("metric") == metric).first().alias(column)
            for metric, column in metrics.items()
        ),
    )


def attach(readings: pl.DataFrame, inventory: Inventory) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(accelerator samples, feed samples) from readings; see the module docstring."""
    accelerator_rows = readings.filter(
        (pl.col("device_kind") == "accelerator") & pl.col("metric").is_in(ACCELERATOR_METRICS)
    )
    resolved = _resolve(accelerator_rows, inventory.accelerators, "accelerator_index")
    # Unknown devices keep apart: one row each (host and device), index null.
    resolved = resolved.with_columns(
        pl.when(pl.col("accelerator_index").is_null())
        .then(pl.concat_str([pl.col("host"), pl.lit("\u0000"), pl.col("device")]))
        .alias("unknown")
    )
    known = _widen(
        resolved.filter(pl.col("unknown").is_null()),
        "accelerator_index",
        {metric: metric for metric in ACCELERATOR_METRICS},
    )
    unknown = _widen(
        resolved.filter(pl.col("unknown").is_not_null()),
        "unknown",
        {metric: metric for metric in ACCELERATOR_METRICS},
    ).with_columns(pl.lit(None, dtype=pl.UInt32).alias("accelerator_index"))
    accelerators = schemas.conform(
        pl.concat(
            [
                known.select(schemas.ACCELERATOR_SAMPLES.keys()),
                unknown.select(schemas.ACCELERATOR_SAMPLES.keys()),
            ],
            how="vertical_relaxed",
        ),
        schemas.ACCELERATOR_SAMPLES,
        "attached accelerator readings",
        lenient=("accelerator_index",),
    ).sort("accelerator_index", nulls_last=True)

    feed_rows = _resolve(
        readings.filter(pl.col("metric").is_in(list(FEED_METRICS))),
        inventory.feeds,
        "feed_index",
    ).filter(pl.col("feed_index").is_not_null())
    feeds = schemas.conform(
        _widen(feed_rows, "feed_index", FEED_METRICS),
        schemas.FEED_SAMPLES,
        "attached feed readings",
    ).sort("feed_index")
    return accelerators, feeds


def attach_errors(readings: pl.DataFrame, inventory: Inventory) -> pl.DataFrame:
    """ACCELERATOR_ERRORS from the error counters (ERROR_METRICS) of the accelerators the
    inventory knows; a counter a device does not give is null. Unknown devices are left out:
    their power readings already count them as ``unknown_entity``."""
    wanted = [metric for metrics in ERROR_METRICS.values() for metric in metrics]
    rows = readings.filter(
        (pl.col("device_kind") == "accelerator") & pl.col("metric").is_in(wanted)
    )
    known = _resolve(rows, inventory.accelerators, "accelerator_index").filter(
        pl.col("accelerator_index").is_not_null()
    )
    counters = known.group_by("accelerator_index", maintain_order=True).agg(
        pl.col("timestamp_seconds").max(),
        *(
            pl.coalesce(
                pl.col("value").filter(pl.col("metric") == metric).first() for metric in metrics
            ).alias(column)
            for column, metrics in ERROR_METRICS.items()
        ),
    )
    return schemas.conform(
        counters, schemas.ACCELERATOR_ERRORS, "attached accelerator error counters"
    ).sort("accelerator_index")


NODE_POWER_KINDS = {"node": "power_watts", "cpu_package": "cpu_power_watts"}


def attach_nodes(readings: pl.DataFrame, inventory: Inventory) -> pl.DataFrame:
    """NODE_SAMPLES from the node-level power readings the inventory maps to a node.

    A reading's node is found by (host, device), then by device alone (rows with no host),
    then by its host alone (rows whose device is ``*``). CPU packages are summed per target,
    and the first target that reports a node wins, so a host scraped both through
    node_exporter and Kepler does not count its CPUs twice.
    """
    rows = readings.filter(
        pl.col("device_kind").is_in(list(NODE_POWER_KINDS)) & (pl.col("metric") == "power_watts")
    )
    table = inventory.nodes
    whole_host = table.filter(pl.col("device") == "*").select(
        "host", pl.col("node_index").alias("node_by_host")
    )
    resolved = (
        _resolve(rows, table.filter(pl.col("device") != "*"), "node_index")
        .join(whole_host, on="host", how="left", maintain_order="left")
        .with_columns(pl.coalesce("node_index", "node_by_host").alias("node_index"))
        .filter(pl.col("node_index").is_not_null())
    )
    per_target = resolved.group_by("node_index", "target", maintain_order=True).agg(
        pl.col("timestamp_seconds").max(),
        *(
            pl.col("value").filter(pl.col("device_kind") == kind).sum().alias(column)
            if kind == "cpu_package"
            else pl.col("value").filter(pl.col("device_kind") == kind).first().alias(column)
            for kind, column in NODE_POWER_KINDS.items()
        ),
        # Every package of the node read: a sum missing a socket is no reading either.
        (
            (pl.col("device_kind") == "cpu_package").any()
            & ~(pl.col("value").is_null() & (pl.col("device_kind") == "cpu_package")).any()
        ).alias("has_cpu"),
    )
    nodes = (
        per_target.with_columns(
            # a sum over no CPU package (or over a silent one) is no reading, not 0 W
            pl.when(pl.col("has_cpu")).then(pl.col("cpu_power_watts")).alias("cpu_power_watts")
        )
        .group_by("node_index", maintain_order=True)
        .agg(
            pl.col("timestamp_seconds").max(),
            pl.col("power_watts").drop_nulls().first(),
            pl.col("cpu_power_watts").drop_nulls().first(),
        )
    )
    return schemas.conform(nodes, schemas.NODE_SAMPLES, "attached node readings").sort("node_index")
