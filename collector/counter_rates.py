"""Power from energy counters that come without a power reading.

node_exporter gives a CPU package's RAPL energy (``node_rapl_package_joules_total``) and no
power; Kepler's node counters are the same. The roll-up wants watts, so ``CounterRates``
keeps the last value of each such counter, per (target, host, device), and turns the next one
into the average power over the interval:

    power_watts = (joules - last joules) / (seconds - last seconds)

A device that reports its own power (dcgm-exporter, hwmon, the sysfs source's RAPL zones,
which unwrap the counter with its known range) keeps it: no derived figure is added.

What cannot be a rate is reported, never guessed: a counter that went down (an exporter
restart, or a RAPL wrap that node_exporter does not unwrap) is ``counter_reset`` and that
interval yields nothing; the counter's new value is the next base. A reading with no newer
time than the last one (a cached scrape) yields nothing and leaves the base as it was. A
counter not seen for ``max_gap_seconds`` starts again from its next value, so a long outage
does not become one flat average. Vectorized: one join per cycle, whatever the device count.
"""

from __future__ import annotations

import polars as pl

from collector import schemas

IDENTITY = ("target", "host", "device")
_STATE: schemas.Schema = {
    "target": pl.String,
    "host": pl.String,
    "device": pl.String,
    "last_joules": pl.Float64,
    "last_seconds": pl.Float64,
}


class CounterRates:
    """Average power per device from successive energy counter readings."""

    def __init__(self, max_gap_seconds: float = 300.0) -> None:
        if not max_gap_seconds > 0:
            raise ValueError(f"max_gap_seconds must be positive, got {max_gap_seconds}")
        self.max_gap_seconds = max_gap_seconds
        self._state = schemas.empty(_STATE)

    def derive(self, readings: pl.DataFrame, now: float) -> tuple[pl.DataFrame, pl.DataFrame]:
        """(READINGS of derived ``power_watts``, PROBLEMS) for this cycle's ``readings``."""
        has_power = readings.filter(pl.col("metric") == "power_watts").select(IDENTITY).unique()
        counters = (
            readings.filter((pl.col("metric") == "energy_joules") & pl.col("value").is_finite())
            .join(has_power, on=IDENTITY, how="anti", nulls_equal=True)
            .unique(IDENTITY, keep="first", maintain_order=True)
            .with_columns(seconds=pl.coalesce("timestamp_seconds", pl.lit(now, dtype=pl.Float64)))
            .join(self._state, on=IDENTITY, how="left", nulls_equal=True, maintain_order="left")
            .with_columns(
                joules=pl.col("value") - pl.col("last_joules"),
                interval=pl.col("seconds") - pl.col("last_seconds"),
            )
            .with_columns(
                fresh=pl.col("last_seconds").is_not_null()
                & (pl.col("interval") <= self.max_gap_seconds),
            )
        )
        newer = pl.col("fresh") & (pl.col("interval") > 0)
        power = counters.filter(newer & (pl.col("joules") >= 0)).select(
            "source",
            "target",
            "host",
            "device",
            "device_kind",
            pl.lit("power_watts").alias("metric"),
            (pl.col("joules") / pl.col("interval")).alias("value"),
            pl.lit("watts").alias("unit"),
            pl.lit(False).alias("estimated"),
            pl.col("seconds").alias("timestamp_seconds"),
        )
        problems = counters.filter(newer & (pl.col("joules") < 0)).select(
            "source",
            "target",
            pl.col("device").alias("location"),
            pl.lit("counter_reset").alias("reason"),
            pl.format(
                "energy counter fell from {} J to {} J: reset or unhandled wrap; "
                "no power for this interval",
                pl.col("last_joules"),
                pl.col("value"),
            ).alias("message"),
        )
        # The new base: every counter read at a newer time (or first seen, or back after a
        # long gap); the others keep theirs until they are too old to be one interval.
        moved = counters.filter(~pl.col("fresh") | (pl.col("interval") > 0)).select(
            *IDENTITY,
            pl.col("value").alias("last_joules"),
            pl.col("seconds").alias("last_seconds"),
        )
        kept = self._state.join(moved, on=IDENTITY, how="anti", nulls_equal=True).filter(
            pl.col("last_seconds") >= now - self.max_gap_seconds
        )
        self._state = pl.concat([kept, moved])
        return (
            schemas.conform(power, schemas.READINGS, "derived power"),
            schemas.conform(problems, schemas.PROBLEMS, "counter problems"),
        )
