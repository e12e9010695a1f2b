"""Attach normalized readings (collector.schemas.READINGS) to the topology.

Pure: readings and an inventory in, sample frames out, ready for validation.

* Accelerator readings (device_kind ``accelerator``: GPUs through NVML or dcgm-exporter,
  Neuron devices) become ACCELERATOR_SAMPLES rows: power, temperature, utilization and memory
  used, each null where the device did not report it (not measured, never 0).
* Readings of a device the inventory maps to a rack PDU feed become FEED_SAMPLES rows:
  power, current, voltage and the PDU's own energy meter.

An accelerator reading whose device the inventory does not know keeps a null index, so
validation rejects it as ``unknown_entity`` and counts it, like any other unknown sample.
Other readings (CPU packages, chassis, cooling units) are not part of the roll-up yet and
pass through untouched for the probe and the logs.
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
