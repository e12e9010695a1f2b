"""Exporter metric names mapped to gigawatt's canonical readings, with unit conversion.

``readings_from_exposition(samples, exporter, target, scrape_time)`` turns the samples frame of
collector.sources.promtext into a READINGS frame and a PROBLEMS frame (collector.schemas). It
joins the samples against ``MAPPINGS`` (one row per exposed name: canonical metric, unit, scale,
device kind) and reads identity from labels with vectorized expressions; no per-sample loop.
Kepler's open-ended ``kepler_*_joules_total`` / ``kepler_*_watts`` names are matched by pattern.

From dcgm-exporter::

    DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{gpu="0",UUID="GPU-20c5...",Hostname="4247..."} 128996013

becomes the reading (mJ to J)::

    source="prometheus" target=<target> host="4247..." device="GPU-20c5..."
    device_kind="accelerator" metric="energy_joules" value=128996.013 unit="joules"
    estimated=false timestamp_seconds=<scrape time>

Identity. A GPU is its UUID plus its host (``Hostname`` label, else the target), never its index;
a dcgm sample without a UUID is a ``missing_identity`` problem. A MIG instance is
``<UUID>/mig<GPU_I_ID>``. node_exporter's host is ``node_uname_info``'s nodename when the scrape
carries it, Neuron's is ``instance_id``, Kepler's ``node_name``; otherwise the target.

Not readings. DCGM reports "blank / not found / not supported / no permission" as sentinel values
(int64 ``0x7ffffffffffffff0``-``...f3``, which a float64 exposition shows as 2^63; int32
``0x7ffffff0``-``0x7fffffff``; fp64 ``2^47`` and above). Those become ``not_supported`` problems.
NaN and infinities from any exporter become ``not_finite`` problems; missing data stays missing.

Precedence. Where two exposed names give the same (target, host, device, metric), the lower
``priority`` wins silently: ``DCGM_FI_PROF_GR_ENGINE_ACTIVE`` over ``DCGM_FI_DEV_GPU_UTIL`` for
``utilization_ratio``, current dcgm names over 1.x names, hwmon ``power*_input`` over
``power*_average``, ipmi_exporter's emitted DCMI name over its documented one. Two samples with
the same key and priority are a ``duplicate`` problem; the first is kept.

Many targets at once. With ``target=None`` the samples frame brings a ``target`` column, so the
parsed scrapes of one exporter, concatenated, map in one call (about 0.25 ms per dcgm target
instead of about 3 ms for one call per target).

Left out on purpose: dcgm-exporter 1.x ``dcgm_fi_prof_*`` names, whose help says "(in %)" while
DCGM's profiling fields are ratios, so their scale cannot be trusted; ipmi_exporter's
``ipmi_sensor_state`` and Kepler's ``*_info`` and ``*_usage_ratio`` series, which are not
readings of power, energy, heat or memory.
"""

from __future__ import annotations

import functools

import polars as pl

from collector.readings import readings_frame
from collector.sources.promtext import label_value

EXPORTERS = ("dcgm", "node", "ipmi", "neuron", "kepler")

MIB = 1024.0 * 1024.0

# dcgm-exporter: exposed name, metric, unit, scale to the base unit, priority. Current names
# first, then the 1.x compatibility names (etc/1.x-compatibility-metrics.csv).
_DCGM = [
    ("DCGM_FI_DEV_POWER_USAGE", "power_watts", "watts", 1.0, 0),
    ("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "energy_joules", "joules", 1e-3, 0),  # mJ
    ("DCGM_FI_DEV_GPU_TEMP", "temperature_celsius", "celsius", 1.0, 0),
    ("DCGM_FI_DEV_MEMORY_TEMP", "memory_temperature_celsius", "celsius", 1.0, 0),
    ("DCGM_FI_DEV_FB_USED", "memory_used_bytes", "bytes", MIB, 0),  # MiB
    ("DCGM_FI_DEV_FB_FREE", "memory_free_bytes", "bytes", MIB, 0),
    ("DCGM_FI_PROF_GR_ENGINE_ACTIVE", "utilization_ratio", "ratio", 1.0, 0),
    ("DCGM_FI_DEV_GPU_UTIL", "utilization_ratio", "ratio", 0.01, 1),  # percent
    ("DCGM_FI_PROF_DRAM_ACTIVE", "memory_active_ratio", "ratio", 1.0, 0),
    ("DCGM_FI_PROF_PIPE_TENSOR_ACTIVE", "tensor_active_ratio", "ratio", 1.0, 0),
    ("DCGM_FI_DEV_POWER_VIOLATION", "power_violation_seconds", "seconds", 1e-9, 0),  # ns
    ("DCGM_FI_DEV_THERMAL_VIOLATION", "thermal_violation_seconds", "seconds", 1e-9, 0),
    ("DCGM_FI_DEV_XID_ERRORS", "xid_last_code", "code", 1.0, 0),  # the last XID, a gauge
    ("DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", "ecc_uncorrected_volatile_errors", "count", 1.0, 0),
    ("DCGM_FI_DEV_ECC_SBE_VOL_TOTAL", "ecc_corrected_volatile_errors", "count", 1.0, 0),
    ("DCGM_FI_DEV_POWER_MGMT_LIMIT", "power_limit_watts", "watts", 1.0, 0),
    ("dcgm_power_usage", "power_watts", "watts", 1.0, 1),
    ("dcgm_total_energy_consumption", "energy_joules", "joules", 1e-3, 1),
    ("dcgm_gpu_temp", "temperature_celsius", "celsius", 1.0, 1),
    ("dcgm_memory_temp", "memory_temperature_celsius", "celsius", 1.0, 1),
    ("dcgm_fb_used", "memory_used_bytes", "bytes", MIB, 1),
    ("dcgm_fb_free", "memory_free_bytes", "bytes", MIB, 1),
    ("dcgm_gpu_utilization", "utilization_ratio", "ratio", 0.01, 2),
    ("dcgm_power_violation", "power_violation_seconds", "seconds", 1e-9, 1),
    ("dcgm_thermal_violation", "thermal_violation_seconds", "seconds", 1e-9, 1),
    ("dcgm_xid_errors", "xid_last_code", "code", 1.0, 1),
    ("dcgm_ecc_dbe_volatile_total", "ecc_uncorrected_volatile_errors", "count", 1.0, 1),
    ("dcgm_ecc_sbe_volatile_total", "ecc_corrected_volatile_errors", "count", 1.0, 1),
]
# Other exporters: exposed name, metric, unit, device kind, identity rule, priority. Their
# values are already in base units. "identity" names the label rule of _identity.
_OTHERS: dict[str, list[tuple[str, str, str, str, str, int]]] = {
    "node": [
        ("node_rapl_package_joules_total", "energy_joules", "joules", "cpu_package", "rapl", 0),
        ("node_rapl_core_joules_total", "energy_joules", "joules", "cpu_core", "rapl", 0),
        ("node_rapl_uncore_joules_total", "energy_joules", "joules", "cpu_uncore", "rapl", 0),
        ("node_rapl_dram_joules_total", "energy_joules", "joules", "dram", "rapl", 0),
        ("node_rapl_psys_joules_total", "energy_joules", "joules", "platform", "rapl", 0),
        # --collector.rapl.enable-zone-label: one name, the zone in the rapl_zone label
        ("node_rapl_joules_total", "energy_joules", "joules", "rapl_zone", "rapl", 0),
        ("node_hwmon_power_watt", "power_watts", "watts", "hwmon", "hwmon", 0),
        ("node_hwmon_power_watts", "power_watts", "watts", "hwmon", "hwmon", 0),
        ("node_hwmon_power_average_watt", "power_watts", "watts", "hwmon", "hwmon", 1),
        ("node_hwmon_power_average_watts", "power_watts", "watts", "hwmon", "hwmon", 1),
        ("node_hwmon_energy_joule_total", "energy_joules", "joules", "hwmon", "hwmon", 0),
        ("node_hwmon_energy_joules_total", "energy_joules", "joules", "hwmon", "hwmon", 0),
    ],
    "ipmi": [
        # the collector emits ..._watts; ipmi_exporter's docs say ..._current_watts
        ("ipmi_dcmi_power_consumption_watts", "power_watts", "watts", "node", "dcmi", 0),
        ("ipmi_dcmi_power_consumption_current_watts", "power_watts", "watts", "node", "dcmi", 1),
        ("ipmi_power_watts", "power_watts", "watts", "bmc_sensor", "ipmi_sensor", 0),
        (
            "ipmi_temperature_celsius",
            "temperature_celsius",
            "celsius",
            "bmc_sensor",
            "ipmi_sensor",
            0,
        ),
    ],
    "neuron": [
        # neuron-monitor's Prometheus companion exposes no watts. Metric names follow the neuron
        # source: <event_type>_events, execution_errors_<error_type>, {host,device}_memory_...
        (
            "neuroncore_utilization_ratio",
            "utilization_ratio",
            "ratio",
            "neuroncore",
            "neuroncore",
            0,
        ),
        (
            "neuron_runtime_memory_used_bytes",
            "device_memory_used_bytes",
            "bytes",
            "neuron_runtime",
            "runtime",
            0,
        ),
        ("hardware_ecc_events_total", "ecc_events", "count", "accelerator", "neuron_device", 0),
        ("execution_errors_total", "execution_errors", "count", "neuron_runtime", "runtime", 0),
    ],
}
_TABLE = [
    ("dcgm", name, metric, unit, scale, "accelerator", "gpu", False, priority, True)
    for name, metric, unit, scale, priority in _DCGM
] + [
    (exporter, name, metric, unit, 1.0, kind, identity, False, priority, False)
    for exporter, rows in _OTHERS.items()
    for name, metric, unit, kind, identity, priority in rows
]

MAPPINGS = pl.DataFrame(
    _TABLE,
    schema={
        "exporter": pl.String,
        "name": pl.String,
        "metric": pl.String,
        "unit": pl.String,
        "scale": pl.Float64,
        "device_kind": pl.String,
        "identity": pl.String,
        "estimated": pl.Boolean,
        "priority": pl.UInt8,
        "sentinels": pl.Boolean,
    },
    orient="row",
)

# DCGM "blank" values (dcgm_structs.h): DCGM_*_IS_BLANK(v) is v >= the type's BLANK value.
DCGM_INT64_BLANK = 0x7FFFFFFFFFFFFFF0  # a float64 exposition shows it, and +1..+3, as 2^63
DCGM_INT32_BLANK = 0x7FFFFFF0  # 2147483632; +1 not found, +2 not supported, +3 no permission
DCGM_INT32_MAX = 0x7FFFFFFF
DCGM_FP64_BLANK = 140737488355328.0  # 2^47; +1.0 not found, +2.0 not supported, +3.0 no permission

_RAPL_KINDS = {
    "package": "cpu_package",
    "core": "cpu_core",
    "uncore": "cpu_uncore",
    "dram": "dram",
    "psys": "platform",
}
_KEPLER_NAME = (
    r"^kepler_(?P<scope>node|container|pod|process|vm)(?:_(?P<component>[a-z]+?))?"
    r"(?:_(?P<split>active|idle|dynamic))?_(?P<quantity>joules_total|watts)$"
)
_KEPLER_KINDS = {**_RAPL_KINDS, "platform": "node", "gpu": "accelerator", "other": "other"}

_LABELS = {
    "dcgm": ("UUID", "uuid", "Hostname", "GPU_I_ID"),
    "node": ("index", "path", "rapl_zone", "chip", "sensor"),
    "ipmi": ("id", "name"),
    "neuron": (
        "instance_id",
        "neuroncore",
        "runtime_tag",
        "memory_location",
        "event_type",
        "neuron_device_index",
        "error_type",
    ),
    "kepler": (
        "zone",
        "mode",
        "source",
        "node_name",
        "container_id",
        "pod_id",
        "pod_namespace",
        "pod_name",
        "pid",
        "vm_id",
    ),
}


def mapping_frame(exporter: str) -> pl.DataFrame:
    """The MAPPINGS rows of one exporter (Kepler's are patterns, so it has none)."""
    _check_exporter(exporter)
    return _mapping_frame(exporter).clone()


@functools.cache
def _mapping_frame(exporter: str) -> pl.DataFrame:
    return MAPPINGS.filter(pl.col("exporter") == exporter)


def detect_exporter(samples: pl.DataFrame) -> str | None:
    """The exporter whose names the samples use most, or None when none of them match."""
    name = pl.col("name")
    neuron = mapping_frame("neuron").get_column("name").to_list()
    counted = samples.select(
        (name.str.starts_with("DCGM_FI_") | name.str.starts_with("dcgm_")).sum().alias("dcgm"),
        name.str.starts_with("kepler_").sum().alias("kepler"),
        name.str.starts_with("ipmi_").sum().alias("ipmi"),
        name.str.starts_with("node_").sum().alias("node"),
        name.is_in(neuron).sum().alias("neuron"),
    )
    counts: dict[str, int] = counted.row(0, named=True)
    best = max(counts, key=lambda exporter: counts[exporter])
    return best if counts[best] else None


def readings_from_exposition(
    samples: pl.DataFrame,
    exporter: str,
    target: str | None,
    scrape_time: float | None,
    *,
    source: str = "prometheus",
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """READINGS and PROBLEMS frames from a promtext samples frame of one exporter.

    ``scrape_time`` stamps samples that carry no timestamp of their own; None leaves them null
    (or takes a ``scrape_time`` column when the frame has one). With ``target`` None the frame
    must have a ``target`` column: the samples of many scrapes of one exporter, concatenated,
    map in one call, which is what a large scrape cycle should do. Samples whose names are not
    in the map are ignored: most of any exposition is not power.
    """
    _check_exporter(exporter)
    columns = samples.columns
    if target is None and "target" not in columns:
        raise ValueError("target is None but the samples frame has no target column")
    given = samples.lazy().with_columns(
        pl.lit(source, pl.String).alias("source"),
        pl.col("target") if target is None else pl.lit(target, pl.String).alias("target"),
        pl.col("scrape_time").cast(pl.Float64)
        if scrape_time is None and "scrape_time" in columns
        else pl.lit(scrape_time, pl.Float64).alias("scrape_time"),
    )
    if exporter == "kepler":
        mapped = _kepler_mapped(given)
    else:
        mapped = given.join(
            _mapping_frame(exporter).lazy(), on="name", how="inner", maintain_order="left"
        )
    if exporter == "node":
        # node_exporter's own name for its host: node_uname_info's nodename label
        nodenames = (
            given.filter(pl.col("name") == "node_uname_info")
            .select("target", label_value("nodename").alias("node_host"))
            .unique("target", keep="first")
        )
        mapped = mapped.join(nodenames, on="target", how="left", maintain_order="left")
    frame = mapped
    for step in _steps(exporter):
        frame = frame.with_columns(step)
    collected = frame.collect()
    problems = collected.filter(~pl.col("reading_row") & ~pl.col("superseded")).select(
        _PROBLEM_COLUMNS
    )
    # every READINGS column is the mapped frame's own, but for the scaled value
    readings = readings_frame(collected.filter(pl.col("reading_row")), value=pl.col("reading"))
    return readings, problems


_PROBLEM_COLUMNS = [
    pl.col("source").cast(pl.String),
    pl.col("target").cast(pl.String),
    pl.concat_str(pl.lit("line "), pl.col("line")).alias("location"),
    pl.col("problem").struct.field("reason").cast(pl.String).alias("reason"),
    pl.col("problem").struct.field("message").cast(pl.String).alias("message"),
]


@functools.cache
def _steps(exporter: str) -> list[list[pl.Expr]]:
    """The with_columns steps after the join, built once per exporter."""
    # Label columns live under "label:" so that a label called "name" or "value" shadows nothing.
    steps = [[label_value(label).alias(f"label:{label}") for label in _LABELS[exporter]]]
    if exporter == "kepler":
        # attribution to workloads and the active/idle split are Kepler's model, not a meter
        steps.append(
            [
                (
                    (pl.col("scope") != "node")
                    | pl.col("mode_from_name").is_not_null()
                    | _present("mode").is_not_null()
                ).alias("estimated")
            ]
        )
    usable = pl.col("problem").is_null()
    # One string key (null where any part is) is cheaper to window and deduplicate than three.
    key = pl.concat_str("target", "host", "device", "metric", separator="\x1f")
    best = pl.when(usable).then(pl.col("priority")).min().over("key")
    first = pl.concat_str("key", pl.col("chosen").cast(pl.String)).is_first_distinct()
    duplicate = pl.struct(
        reason=pl.lit("duplicate"),
        message=pl.concat_str(
            pl.lit("a second "),
            pl.col("metric"),
            pl.lit(" for "),
            pl.col("device"),
            pl.lit(" on "),
            pl.col("host"),
            pl.lit(" ("),
            pl.col("name"),
            pl.lit("); the first is kept"),
        ),
    )
    steps += [
        _identity(exporter),
        [
            _metric(exporter).alias("metric"),
            _device_kind(exporter).alias("device_kind"),
            (pl.col("value") * pl.col("scale")).alias("reading"),
            pl.col("timestamp_seconds").fill_null(pl.col("scrape_time")),
        ],
        [_problem(exporter).alias("problem"), key.alias("key")],
        [
            # a lower priority name for the same key gives way silently
            (usable & (pl.col("priority") != best)).alias("superseded"),
            (usable & (pl.col("priority") == best)).alias("chosen"),
        ],
        [
            # the first chosen sample of a key is the reading; a later one is a duplicate
            (pl.col("chosen") & first).alias("reading_row"),
            pl.when(pl.col("chosen") & ~first)
            .then(duplicate)
            .otherwise(pl.col("problem"))
            .alias("problem"),
        ],
    ]
    return steps


def _check_exporter(exporter: str) -> None:
    if exporter not in EXPORTERS:
        raise ValueError(f"unknown exporter {exporter!r}; known: {', '.join(EXPORTERS)}")


def _label(label: str) -> pl.Expr:
    """The label's value (a column added by readings_from_exposition), null when absent."""
    return pl.col(f"label:{label}")


def _present(label: str) -> pl.Expr:
    """The label's value, null when absent or empty."""
    return pl.when(_label(label) != "").then(_label(label))


def _identity(exporter: str) -> list[pl.Expr]:
    """Expressions for the host and device columns."""
    fallback = pl.col("target")
    if exporter == "dcgm":
        uuid = pl.coalesce(_present("UUID"), _present("uuid"))
        device = (
            pl.when(_present("GPU_I_ID").is_not_null())
            .then(pl.concat_str(uuid, pl.lit("/mig"), _label("GPU_I_ID")))
            .otherwise(uuid)
        )
        return [pl.coalesce(_present("Hostname"), fallback).alias("host"), device.alias("device")]
    if exporter == "node":
        host = pl.coalesce(pl.col("node_host"), fallback)
        rapl = pl.coalesce(
            _present("path").str.extract(r"([^/]+)$", 1),
            pl.concat_str(
                pl.lit("rapl:"),
                pl.coalesce(
                    _present("rapl_zone"),
                    pl.col("name").str.extract(r"^node_rapl_(.+)_joules_total$", 1),
                ),
                pl.lit(":"),
                _label("index"),
            ),
        )
        hwmon = pl.concat_str(_label("chip"), pl.lit("/"), _label("sensor"))
        device = pl.when(pl.col("identity") == "rapl").then(rapl).otherwise(hwmon)
        return [host.alias("host"), device.alias("device")]
    if exporter == "ipmi":
        sensor = pl.coalesce(_present("name"), _present("id"))
        device = pl.when(pl.col("identity") == "dcmi").then(pl.lit("dcmi")).otherwise(sensor)
        return [fallback.alias("host"), device.alias("device")]
    if exporter == "neuron":
        device = (
            pl.when(pl.col("identity") == "neuroncore")
            .then(pl.concat_str(pl.lit("neuroncore"), _label("neuroncore")))
            .when(pl.col("identity") == "neuron_device")
            .then(pl.concat_str(pl.lit("neuron"), _label("neuron_device_index")))
            .otherwise(pl.concat_str(pl.lit("runtime:"), _label("runtime_tag")))  # "runtime"
        )
        return [
            pl.coalesce(_present("instance_id"), fallback).alias("host"),
            device.alias("device"),
        ]
    # kepler
    zone = pl.coalesce(_present("zone"), pl.col("zone_from_name"))
    owner = (
        pl.when(pl.col("scope") == "container")
        .then(pl.concat_str(pl.lit("container:"), _label("container_id")))
        .when(pl.col("scope") == "pod")
        .then(
            pl.concat_str(
                pl.lit("pod:"),
                pl.coalesce(
                    _present("pod_id"),
                    pl.concat_str(_label("pod_namespace"), pl.lit("/"), _label("pod_name")),
                ),
            )
        )
        .when(pl.col("scope") == "process")
        .then(pl.concat_str(pl.lit("process:"), _label("pid")))
        .when(pl.col("scope") == "vm")
        .then(pl.concat_str(pl.lit("vm:"), _label("vm_id")))
    )
    node_device = (
        pl.when(pl.col("component") == "platform")
        .then(
            pl.concat_str(
                pl.lit("platform"), pl.concat_str(pl.lit(":"), _present("source"))
            ).fill_null("platform")
        )
        .otherwise(zone)
    )
    device = (
        pl.when(pl.col("scope") == "node")
        .then(node_device)
        .otherwise(
            pl.when(zone.is_not_null())
            .then(pl.concat_str(owner, pl.lit("/"), zone))
            .otherwise(owner)
        )
    )
    return [pl.coalesce(_present("node_name"), fallback).alias("host"), device.alias("device")]


def _metric(exporter: str) -> pl.Expr:
    metric = pl.col("metric")
    if exporter == "neuron":
        return (
            pl.when(pl.col("name") == "hardware_ecc_events_total")
            .then(pl.concat_str(_label("event_type"), pl.lit("_events")))
            .when(pl.col("name") == "execution_errors_total")
            .then(pl.concat_str(pl.lit("execution_errors_"), _label("error_type")))
            .when(
                (pl.col("name") == "neuron_runtime_memory_used_bytes")
                & (_label("memory_location") == "host")
            )
            .then(pl.lit("host_memory_used_bytes"))
            .otherwise(metric)
        )
    if exporter == "kepler":
        # kepler 0.7 put the split in a mode label; later releases in the name
        mode = pl.coalesce(pl.col("mode_from_name"), _present("mode"))
        return (
            pl.when(mode.is_not_null())
            .then(pl.concat_str(mode, pl.lit("_"), metric))
            .otherwise(metric)
        )
    return metric


def _device_kind(exporter: str) -> pl.Expr:
    kind = pl.col("device_kind")
    if exporter == "node":
        zone_kind = _label("rapl_zone").replace_strict(_RAPL_KINDS, default=pl.lit("rapl_zone"))
        return pl.when(kind == "rapl_zone").then(zone_kind).otherwise(kind)
    if exporter == "kepler":
        zone = pl.coalesce(_present("zone"), pl.col("zone_from_name"))
        node_kind = (
            pl.when(pl.col("component") == "platform")
            .then(pl.lit("node"))
            .otherwise(
                zone.str.extract(r"^([a-z]+)", 1).replace_strict(
                    _KEPLER_KINDS, default=pl.lit("cpu_zone")
                )
            )
        )
        return pl.when(pl.col("scope") == "node").then(node_kind).otherwise(pl.col("scope"))
    return kind


def _problem(exporter: str) -> pl.Expr:
    """A struct {reason, message} for samples that are not readings; null for the others."""
    value = pl.col("value")
    what = pl.concat_str(
        pl.col("name"),
        pl.lit(" for "),
        pl.coalesce(pl.col("device"), pl.lit("?")),
        pl.lit(" on "),
        pl.coalesce(pl.col("host"), pl.lit("?")),
    )
    sentinel = (
        pl.when(value >= float(DCGM_INT64_BLANK))
        .then(pl.lit("the int64 blank sentinel 0x7ffffffffffffff0-3"))
        .when(value >= DCGM_FP64_BLANK)
        .then(pl.lit("an fp64 blank sentinel (2^47 or more)"))
        .when(value.is_between(float(DCGM_INT32_BLANK), float(DCGM_INT32_MAX)))
        .then(pl.lit("an int32 blank sentinel 0x7ffffff0-0x7fffffff"))
    )
    rules: list[tuple[pl.Expr, str, pl.Expr]] = [
        (
            pl.col("device").is_null(),
            "missing_identity",
            pl.concat_str(
                pl.col("name"),
                pl.lit(
                    " has no device identity label"
                    + (
                        " (UUID); a GPU index alone is not an identity"
                        if exporter == "dcgm"
                        else ""
                    )
                ),
            ),
        ),
        (
            ~value.is_finite(),
            "not_finite",
            pl.concat_str(what, pl.lit(" is "), value.cast(pl.String)),
        ),
    ]
    if exporter == "dcgm":
        rules.insert(
            0,
            (
                pl.col("sentinels") & sentinel.is_not_null(),
                "not_supported",
                pl.concat_str(
                    what,
                    pl.lit(" reports "),
                    value.cast(pl.String),
                    pl.lit(", DCGM's blank / not-supported value: "),
                    sentinel,
                ),
            ),
        )
    expression: pl.Expr = pl.lit(None, pl.Struct({"reason": pl.String, "message": pl.String}))
    for condition, reason, message in reversed(rules):
        expression = (
            pl.when(condition)
            .then(pl.struct(reason=pl.lit(reason), message=message))
            .otherwise(expression)
        )
    return expression


def _kepler_mapped(samples: pl.LazyFrame) -> pl.LazyFrame:
    """Kepler samples with the mapping columns MAPPINGS gives the other exporters."""
    parts = pl.col("name").str.extract_groups(_KEPLER_NAME)
    mapped = (
        samples.filter(pl.col("name").str.contains(_KEPLER_NAME))
        .with_columns(parts.alias("parts"))
        .unnest("parts")
    )
    component = pl.col("component").fill_null("")
    energy = pl.col("quantity") == "joules_total"
    return mapped.with_columns(
        pl.when(energy)
        .then(pl.lit("energy_joules"))
        .otherwise(pl.lit("power_watts"))
        .alias("metric"),
        pl.when(energy).then(pl.lit("joules")).otherwise(pl.lit("watts")).alias("unit"),
        pl.lit(1.0).alias("scale"),
        pl.lit(None, pl.String).alias("device_kind"),
        pl.lit("kepler").alias("identity"),
        pl.lit(False).alias("estimated"),
        pl.lit(0, pl.UInt8).alias("priority"),
        pl.lit(False).alias("sentinels"),
        pl.when(component.is_in(["", "cpu", "platform"]))
        .then(None)
        .otherwise(component)
        .alias("zone_from_name"),
        pl.col("split").alias("mode_from_name"),
    )
