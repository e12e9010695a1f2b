"""Frame schemas: the one contract between sources, the core and the exporters.

Entities are addressed by dense integer indexes into the topology (see collector.site.topology);
a source that knows names resolves them once with Topology.resolve_*. Every measurement is a
Float64, so a NaN, an infinity or a negative value can be seen and rejected by validation.

Level frames (the roll-up output) share one column vocabulary, listed in LEVEL_COLUMNS, so
that exposition, the API and the docs address them by name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, get_args

import polars as pl

Schema = Mapping[str, pl.DataType | type[pl.DataType]]

# --- samples, as a source hands them over -------------------------------------------------

ACCELERATOR_SAMPLES: Schema = {
    "accelerator_index": pl.UInt32,
    "timestamp_seconds": pl.Float64,
    "power_watts": pl.Float64,
    "temperature_celsius": pl.Float64,
    "utilization_ratio": pl.Float64,
    "memory_used_bytes": pl.Float64,
}

FEED_SAMPLES: Schema = {
    "feed_index": pl.UInt32,
    "timestamp_seconds": pl.Float64,
    "power_watts": pl.Float64,
    "current_amps": pl.Float64,
    "voltage_volts": pl.Float64,
    # The PDU's own cumulative meter; it may reset, and gigawatt integrates its own counters.
    "meter_energy_joules": pl.Float64,
}

# What a server measures of itself: its BMC's input power (Redfish chassis power, IPMI DCMI)
# and its CPUs' RAPL power. The accelerators' own reports stay in ACCELERATOR_SAMPLES; the
# difference is the host (CPUs, memory, fans, NICs), and rack PDU power minus the servers'
# input power is what no server meters (switches, conversion losses, a miscalibrated meter).
NODE_SAMPLES: Schema = {
    "node_index": pl.UInt32,
    "timestamp_seconds": pl.Float64,
    "power_watts": pl.Float64,  # the server's input power, as its BMC reports it
    "cpu_power_watts": pl.Float64,  # sum of its CPU packages (RAPL)
}

BUILDING_SAMPLES: Schema = {
    "building_index": pl.UInt32,
    "timestamp_seconds": pl.Float64,
    # Everything the building draws beyond its racks' PDUs: cooling, air handlers, pumps,
    # lighting, UPS and transformer losses. Facility power = IT power + this.
    "non_it_power_watts": pl.Float64,
    "outdoor_temperature_celsius": pl.Float64,
}

# Training jobs as the scheduler sees them (the simulator's job model, later Slurm/K8s).
JOB_SAMPLES: Schema = {
    "job": pl.String,
    "state": pl.String,  # queued, loading, training, checkpoint, failed, recovering
    "accelerators": pl.UInt32,
    "timestamp_seconds": pl.Float64,
}

# Which job holds each rack (null: none). Trainium UltraServers are two whole racks, so jobs
# own racks, and a job's IT power is its racks' PDU power: hosts and losses included.
ALLOCATION_SAMPLES: Schema = {
    "rack_index": pl.UInt32,
    "job": pl.String,
}

# Fast meters (>= 20 Hz) at the point of interconnection, per building and per lineup.
# Meter ids: "poi", a building ("B07") or a building lineup ("B07-A").
METER_SAMPLES: Schema = {
    "meter": pl.String,
    "timestamp_seconds": pl.Float64,
    "power_watts": pl.Float64,
}

# Cumulative error counters of each accelerator, as the device reports them (NVML's
# uncorrected ECC total and XID critical errors, the simulator's counters). Apart from
# ACCELERATOR_SAMPLES because few sources read them: a device without a row reports none,
# and a missing count is null, never 0. Counters may reset (a driver reload).
ACCELERATOR_ERRORS: Schema = {
    "accelerator_index": pl.UInt32,
    "timestamp_seconds": pl.Float64,
    "ecc_errors": pl.Float64,  # uncorrected ECC errors since the counter started
    "xid_errors": pl.Float64,  # XID critical errors since the counter started
}

SAMPLE_SCHEMAS: Mapping[str, Schema] = {
    "accelerator": ACCELERATOR_SAMPLES,
    "node": NODE_SAMPLES,
    "feed": FEED_SAMPLES,
    "building": BUILDING_SAMPLES,
}

# The key column of each sample kind and the measurement columns validation checks.
SAMPLE_KEYS: Mapping[str, str] = {
    "accelerator": "accelerator_index",
    "node": "node_index",
    "feed": "feed_index",
    "building": "building_index",
}


def measurement_columns(kind: str) -> list[str]:
    key = SAMPLE_KEYS[kind]
    return [name for name in SAMPLE_SCHEMAS[kind] if name not in (key, "timestamp_seconds")]


# --- normalized readings: what every real source (issue: real collectors) reads ---------------

# One row per value a device reported, in base units, before it is attached to the topology.
# `gigawatt probe` prints exactly these; an inventory maps (host, device) to a topology entity.
READINGS: Schema = {
    "source": pl.String,  # plugin kind: prometheus, redfish, neuron, nvml, sysfs, simulated
    "target": pl.String,  # what was read: a URL, a file or a directory
    "host": pl.String,  # host name, BMC address or PDU name when the payload says; else null
    "device": pl.String,  # stable identity inside the target: GPU UUID, Redfish path, zone...
    "device_kind": pl.String,  # accelerator, cpu_package, dram, node, psu, chassis, pdu, ...
    "metric": pl.String,  # canonical name: power_watts, energy_joules, temperature_celsius...
    "value": pl.Float64,
    "unit": pl.String,  # base unit of the value: watts, joules, celsius, ratio, bytes...
    "estimated": pl.Boolean,  # derived rather than measured (e.g. Neuron % of max power)
    "timestamp_seconds": pl.Float64,  # when the device says it measured; null when it does not
}

PROBLEMS: Schema = {
    "source": pl.String,
    "target": pl.String,
    "location": pl.String,  # where in the payload: a line number, a JSON path, a file
    "reason": pl.String,  # short machine-readable reason, used as a counter label
    "message": pl.String,  # what a person needs to fix it
}

# Health of each target a source reads in a cycle (a BMC, an exporter URL, a local device).
TARGET_HEALTH: Schema = {
    "target": pl.String,
    "up": pl.Float64,  # 1 read, 0 not
    "duration_seconds": pl.Float64,
}

# --- rejection counts ------------------------------------------------------------------------

REJECTIONS: Schema = {
    "source": pl.String,
    "kind": pl.String,
    "reason": pl.String,
    "samples": pl.UInt64,
}

REJECTION_REASONS = (
    "not_finite",  # NaN or infinity
    "negative",  # below zero where the quantity cannot be
    "out_of_range",  # physically implausible for this entity (above its rating, say)
    "unknown_entity",  # the index names nothing in the topology
    "duplicate",  # a second sample for one entity in one cycle
    "stale",  # older than the configured maximum sample age
    "future",  # timestamped ahead of the clock beyond the allowed skew
)

# --- roll-up output --------------------------------------------------------------------------

# Columns every level frame from rack up to site carries (plus its key and label columns).
LEVEL_COLUMNS: Schema = {
    "power_watts": pl.Float64,  # IT power: sum of reporting PDU feeds; null when none report
    "capacity_watts": pl.Float64,
    "headroom_watts": pl.Float64,
    "utilization_ratio": pl.Float64,
    "feeds_reporting": pl.UInt32,
    "feeds_expected": pl.UInt32,
    "reporting_ratio": pl.Float64,
    "accelerator_power_watts": pl.Float64,
    "accelerators_reporting": pl.UInt32,
    "accelerators_expected": pl.UInt32,
    "accelerators_reporting_ratio": pl.Float64,
    "node_power_watts": pl.Float64,  # servers' input power, as their BMCs report it
    "nodes_reporting": pl.UInt32,
    "nodes_expected": pl.UInt32,
    "nodes_reporting_ratio": pl.Float64,
    # PDU power minus node power, over the racks where every feed and node reported
    "unattributed_power_watts": pl.Float64,
    "max_temperature_celsius": pl.Float64,
    "energy_joules": pl.Float64,
    "accelerator_energy_joules": pl.Float64,
}

# The levels of the site, outermost first. The exposition's tiers are these levels (a tier
# exposes every level down to it), so this Literal is the one place they are listed.
Level = Literal["site", "building", "hall", "row", "rack", "node", "accelerator"]
ALL_LEVELS: tuple[Level, ...] = get_args(Level)

# Label columns per level, outermost first: the physical identity of each series.
LEVEL_LABELS: Mapping[str, tuple[str, ...]] = {
    "site": (),
    "building": ("building",),
    "lineup": ("building", "lineup"),
    "hall": ("building", "hall"),
    "row": ("building", "hall", "row"),
    "rack": ("building", "hall", "row", "rack"),
    "feed": ("building", "hall", "row", "rack", "feed"),
    "node": ("building", "hall", "row", "rack", "node"),
    "accelerator": ("building", "hall", "row", "rack", "node", "accelerator"),
}


def conform(
    frame: pl.DataFrame, schema: Schema, what: str, lenient: tuple[str, ...] = ()
) -> pl.DataFrame:
    """Select and cast a frame to a schema; raise ValueError naming the frame and every missing
    or unreadable column. Columns in ``lenient`` cast non-strictly: a value that does not fit
    (a negative index, say) becomes null for validation to reject, instead of failing the frame.
    """
    missing = [name for name in schema if name not in frame.columns]
    if missing:
        raise ValueError(f"{what}: missing column(s) {', '.join(missing)}")
    columns = []
    unreadable = []
    for name, dtype in schema.items():
        try:
            columns.append(frame.get_column(name).cast(dtype, strict=name not in lenient))
        except pl.exceptions.PolarsError:
            unreadable.append(f"{name} ({frame.schema[name]} is not {dtype})")
    if unreadable:
        raise ValueError(f"{what}: unreadable column(s) {', '.join(unreadable)}")
    return pl.DataFrame(columns)


def empty(schema: Schema) -> pl.DataFrame:
    return pl.DataFrame(schema=dict(schema))
