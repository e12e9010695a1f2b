"""Exporter names mapped to READINGS: real captures read in place, conversions pinned by hand."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from collector import schemas
from collector.sources.exporter_maps import (
    EXPORTERS,
    MAPPINGS,
    detect_exporter,
    mapping_frame,
    readings_from_exposition,
)
from collector.sources.promtext import parse_exposition

DATADOG = Path("datadog-integrations-core-dcgm/dcgm/tests/fixtures/metrics.txt")
README_EXCERPTS = Path("nvidia-dcgm-exporter/README-excerpts")
NODE_EXPORTER = Path("prometheus-node_exporter/collector/fixtures")
T4 = "GPU-20c56d28-0da5-6d26-a36a-e7af1ce2586e"
SCRAPE_TIME = 1_750_000_000.0


def read(
    payload: str | bytes, exporter: str, target: str = "http://n1:9400/metrics"
) -> tuple[pl.DataFrame, pl.DataFrame]:
    exposition = parse_exposition(payload)
    return readings_from_exposition(exposition.samples, exporter, target, SCRAPE_TIME)


def value_of(readings: pl.DataFrame, device: str, metric: str) -> float:
    rows = readings.filter((pl.col("device") == device) & (pl.col("metric") == metric))
    assert rows.height == 1, f"{device} {metric}: {rows.height} rows"
    return float(rows.item(0, "value"))


def one_value(payload: str, exporter: str) -> tuple[str, float, str]:
    readings, problems = read(payload, exporter)
    assert problems.height == 0, problems.rows()
    assert readings.height == 1, readings.rows()
    return readings.item(0, "metric"), readings.item(0, "value"), readings.item(0, "unit")


# --- real captures ----------------------------------------------------------------------------


def test_datadog_t4_power_and_energy(shared_fixtures: Path) -> None:
    readings, _ = read((shared_fixtures / DATADOG).read_bytes(), "dcgm")
    assert readings.schema == pl.Schema(schemas.READINGS)
    assert value_of(readings, T4, "power_watts") == 8.969
    assert value_of(readings, T4, "energy_joules") == 128996.013  # 128996013 mJ
    t4 = readings.filter(pl.col("device") == T4)
    assert set(t4.get_column("host")) == {"424773df46e0"}
    assert set(t4.get_column("device_kind")) == {"accelerator"}
    assert set(t4.get_column("timestamp_seconds")) == {SCRAPE_TIME}
    assert not t4.get_column("estimated").any()


def test_datadog_gpu_zero_on_three_hosts_is_three_devices(shared_fixtures: Path) -> None:
    readings, problems = read((shared_fixtures / DATADOG).read_bytes(), "dcgm")
    identities = readings.select("host", "device").unique().sort("host").rows()
    assert identities == [
        ("424773df46e0", T4),
        ("551bdf382151", "GPU-9ef1b6d0-3643-5dd7-b823-c0ec20dcf2d5"),
        ("ip-11111", "GPU-abc"),
    ]
    # The capture's unlabeled placeholder samples name no GPU: problems, not readings.
    assert problems.select("location", "reason").rows() == [
        ("line 80", "missing_identity"),  # DCGM_FI_DEV_MEMORY_TEMP 0
        ("line 95", "missing_identity"),  # DCGM_FI_PROF_GR_ENGINE_ACTIVE 0
        ("line 104", "missing_identity"),  # DCGM_FI_PROF_PIPE_TENSOR_ACTIVE 0
    ]


def test_readme_sentinel_is_not_supported_not_a_reading(shared_fixtures: Path) -> None:
    for excerpt in sorted((shared_fixtures / README_EXCERPTS).iterdir()):
        readings, problems = read(excerpt.read_bytes(), "dcgm")
        assert readings.filter(pl.col("metric") == "memory_temperature_celsius").height == 0
        assert problems.select("location", "reason").rows() == [("line 10", "not_supported")]
        assert "GPU-604ac76c-d9cf-fef3-62e9-d92044ab6e52" in problems.item(0, "message")
        assert problems.schema == pl.Schema(schemas.PROBLEMS)


def test_node_exporter_rapl_counters_equal_the_powercap_files(shared_fixtures: Path) -> None:
    readings, problems = read(
        (shared_fixtures / NODE_EXPORTER / "e2e-output.txt").read_bytes(), "node"
    )
    assert problems.height == 0
    assert readings.select("device", "device_kind", "metric", "value").sort("device").rows() == [
        ("intel-rapl:0", "cpu_package", "energy_joules", 240422.366267),
        ("intel-rapl:0:0", "cpu_core", "energy_joules", 118821.284256),
    ]
    powercap = shared_fixtures / NODE_EXPORTER / "sys-extract/sys/class/powercap"
    for device, value in readings.select("device", "value").iter_rows():
        energy_uj = int((powercap / device / "energy_uj").read_text())
        assert value == energy_uj / 1e6


# --- unit conversions, each pinned by a hand-computed value -------------------------------------

GPU = 'UUID="GPU-1",Hostname="n1"'


@pytest.mark.parametrize(
    ("line", "metric", "value", "unit"),
    [
        (f"DCGM_FI_DEV_POWER_USAGE{{{GPU}}} 612.5", "power_watts", 612.5, "watts"),
        # 81044217332 mJ / 1000 = 81044217.332 J
        (
            f"DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{{{GPU}}} 81044217332",
            "energy_joules",
            81044217.332,
            "joules",
        ),
        (f"DCGM_FI_DEV_GPU_TEMP{{{GPU}}} 71", "temperature_celsius", 71.0, "celsius"),
        (f"DCGM_FI_DEV_MEMORY_TEMP{{{GPU}}} 83", "memory_temperature_celsius", 83.0, "celsius"),
        # 81559 MiB x 1048576 = 85520809984 B
        (f"DCGM_FI_DEV_FB_USED{{{GPU}}} 81559", "memory_used_bytes", 85520809984.0, "bytes"),
        (f"DCGM_FI_PROF_GR_ENGINE_ACTIVE{{{GPU}}} 0.875", "utilization_ratio", 0.875, "ratio"),
        # 37 % / 100
        (f"DCGM_FI_DEV_GPU_UTIL{{{GPU}}} 37", "utilization_ratio", 0.37, "ratio"),
        # 2500000000 ns / 1e9 = 2.5 s
        (
            f"DCGM_FI_DEV_POWER_VIOLATION{{{GPU}}} 2500000000",
            "power_violation_seconds",
            2.5,
            "seconds",
        ),
        (
            f"DCGM_FI_DEV_THERMAL_VIOLATION{{{GPU}}} 1500",
            "thermal_violation_seconds",
            1.5e-6,
            "seconds",
        ),
        (f"DCGM_FI_DEV_XID_ERRORS{{{GPU}}} 79", "xid_last_code", 79.0, "code"),
        (
            f"DCGM_FI_DEV_ECC_DBE_VOL_TOTAL{{{GPU}}} 3",
            "ecc_uncorrected_volatile_errors",
            3.0,
            "count",
        ),
        (
            f"DCGM_FI_DEV_ECC_SBE_VOL_TOTAL{{{GPU}}} 12",
            "ecc_corrected_volatile_errors",
            12.0,
            "count",
        ),
        # dcgm-exporter 1.x names, with its lower-case uuid label
        ('dcgm_power_usage{uuid="GPU-1"} 250.25', "power_watts", 250.25, "watts"),
        ('dcgm_total_energy_consumption{uuid="GPU-1"} 1500', "energy_joules", 1.5, "joules"),
        ('dcgm_fb_used{uuid="GPU-1"} 2', "memory_used_bytes", 2097152.0, "bytes"),
        ('dcgm_gpu_utilization{uuid="GPU-1"} 5', "utilization_ratio", 0.05, "ratio"),
    ],
)
def test_dcgm_conversions(line: str, metric: str, value: float, unit: str) -> None:
    got_metric, got_value, got_unit = one_value(line + "\n", "dcgm")
    assert (got_metric, got_unit) == (metric, unit)
    assert got_value == pytest.approx(value, rel=1e-12)


@pytest.mark.parametrize(
    ("exporter", "line", "metric", "value", "unit"),
    [
        (
            "node",
            'node_hwmon_power_watt{chip="acpi",sensor="power1"} 145.5',
            "power_watts",
            145.5,
            "watts",
        ),
        (
            "node",
            'node_hwmon_energy_joule_total{chip="amd_energy",sensor="energy1"} 9.25',
            "energy_joules",
            9.25,
            "joules",
        ),
        ("ipmi", "ipmi_dcmi_power_consumption_watts 344", "power_watts", 344.0, "watts"),
        ("ipmi", "ipmi_dcmi_power_consumption_current_watts 345", "power_watts", 345.0, "watts"),
        ("ipmi", 'ipmi_power_watts{id="12",name="PSU1 Input"} 180', "power_watts", 180.0, "watts"),
        (
            "ipmi",
            'ipmi_temperature_celsius{id="1",name="Inlet Temp"} 23.5',
            "temperature_celsius",
            23.5,
            "celsius",
        ),
        (
            "neuron",
            'neuroncore_utilization_ratio{instance_id="i-1",neuroncore="3",runtime_tag="7"} 0.86',
            "utilization_ratio",
            0.86,
            "ratio",
        ),
        (
            "neuron",
            'neuron_runtime_memory_used_bytes{memory_location="neuron_device",runtime_tag="7"}'
            " 6.3e+07",
            "device_memory_used_bytes",
            63000000.0,
            "bytes",
        ),
        (
            "kepler",
            'kepler_node_cpu_watts{zone="package",node_name="w1"} 125.2',
            "power_watts",
            125.2,
            "watts",
        ),
    ],
)
def test_other_exporters_keep_base_units(
    exporter: str, line: str, metric: str, value: float, unit: str
) -> None:
    assert one_value(line + "\n", exporter) == (metric, value, unit)


# --- DCGM sentinels -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "9223372036854775794",  # DCGM_INT64_NOT_SUPPORTED, as dcgm-exporter's README shows it
        "9223372036854775792",  # DCGM_INT64_BLANK
        "9223372036854775795",  # DCGM_INT64_NOT_PERMISSIONED
        "2147483632",  # DCGM_INT32_BLANK
        "2147483634",  # DCGM_INT32_NOT_SUPPORTED
        "140737488355328",  # DCGM_FP64_BLANK (2^47)
        "140737488355330",  # DCGM_FP64_NOT_SUPPORTED
    ],
)
def test_dcgm_blank_values_are_problems(value: str) -> None:
    readings, problems = read(f"DCGM_FI_DEV_GPU_TEMP{{{GPU}}} {value}\n", "dcgm")
    assert readings.height == 0
    assert problems.get_column("reason").to_list() == ["not_supported"]


def test_a_large_genuine_energy_counter_is_a_reading() -> None:
    # 3e12 mJ = 3e9 J: about 100 days at 350 W; above the int32 sentinels, below 2^47
    readings, problems = read(f"DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{{{GPU}}} 3e12\n", "dcgm")
    assert problems.height == 0
    assert readings.get_column("value").to_list() == [3e9]


def test_nan_is_not_finite_and_missing_stays_missing() -> None:
    payload = (
        'ipmi_temperature_celsius{id="2",name="Exhaust Temp"} NaN\n'
        'ipmi_temperature_celsius{id="1",name="Inlet Temp"} 24\n'
    )
    readings, problems = read(payload, "ipmi", target="bmc-17.mgmt")
    assert readings.select("host", "device", "value").rows() == [
        ("bmc-17.mgmt", "Inlet Temp", 24.0)
    ]
    assert problems.select("location", "reason").rows() == [("line 1", "not_finite")]


# --- identity and precedence --------------------------------------------------------------------


def test_gpu_identity_is_uuid_and_host_never_the_index() -> None:
    payload = (
        'DCGM_FI_DEV_POWER_USAGE{gpu="0",UUID="GPU-a"} 100\n'
        'DCGM_FI_DEV_POWER_USAGE{gpu="0",UUID="GPU-b",Hostname="n2"} 200\n'
        'DCGM_FI_DEV_POWER_USAGE{gpu="0"} 300\n'
        'DCGM_FI_DEV_POWER_USAGE{gpu="1",UUID="GPU-c",GPU_I_ID="3",GPU_I_PROFILE="1g.10gb"} 50\n'
    )
    readings, problems = read(payload, "dcgm", target="http://n1:9400/metrics")
    assert readings.select("host", "device", "value").rows() == [
        ("http://n1:9400/metrics", "GPU-a", 100.0),
        ("n2", "GPU-b", 200.0),
        ("http://n1:9400/metrics", "GPU-c/mig3", 50.0),
    ]
    assert problems.select("location", "reason").rows() == [("line 3", "missing_identity")]


def test_preferred_names_win_and_true_duplicates_are_reported() -> None:
    payload = (
        f"DCGM_FI_DEV_GPU_UTIL{{{GPU}}} 50\n"
        f"DCGM_FI_PROF_GR_ENGINE_ACTIVE{{{GPU}}} 0.25\n"
        'dcgm_power_usage{uuid="GPU-1"} 7\n'
        f"DCGM_FI_DEV_POWER_USAGE{{{GPU}}} 5\n"
        f'DCGM_FI_DEV_POWER_USAGE{{{GPU},pod="p"}} 6\n'
    )
    readings, problems = read(payload, "dcgm", target="n1")
    assert readings.select("metric", "value").sort("metric").rows() == [
        ("power_watts", 5.0),
        ("utilization_ratio", 0.25),
    ]
    assert problems.select("location", "reason").rows() == [("line 5", "duplicate")]


def test_node_host_comes_from_uname_and_zones_from_the_zone_label() -> None:
    payload = (
        'node_uname_info{nodename="gpu-node-7",release="6.8"} 1\n'
        'node_rapl_joules_total{index="0",path="/sys/class/powercap/intel-rapl:0",'
        'rapl_zone="package"} 10\n'
        'node_rapl_joules_total{index="0",path="/sys/class/powercap/intel-rapl:0:1",'
        'rapl_zone="dram"} 2\n'
        'node_hwmon_power_average_watt{chip="acpi",sensor="power1"} 99\n'
        'node_hwmon_power_watt{chip="acpi",sensor="power1"} 100\n'
        'node_hwmon_power_average_watt{chip="acpi",sensor="power2"} 42\n'
    )
    readings, problems = read(payload, "node", target="10.0.0.7:9100")
    assert problems.height == 0
    assert readings.select("host", "device", "device_kind", "metric", "value").rows() == [
        ("gpu-node-7", "intel-rapl:0", "cpu_package", "energy_joules", 10.0),
        ("gpu-node-7", "intel-rapl:0:1", "dram", "energy_joules", 2.0),
        ("gpu-node-7", "acpi/power1", "hwmon", "power_watts", 100.0),  # input beats average
        ("gpu-node-7", "acpi/power2", "hwmon", "power_watts", 42.0),
    ]


def test_ipmi_accepts_both_dcmi_names_and_prefers_the_emitted_one() -> None:
    payload = (
        "ipmi_dcmi_power_consumption_current_watts 345\nipmi_dcmi_power_consumption_watts 344\n"
    )
    readings, _ = read(payload, "ipmi", target="bmc-3")
    assert readings.select("host", "device", "device_kind", "value").rows() == [
        ("bmc-3", "dcmi", "node", 344.0)
    ]


def test_neuron_companion_names_and_no_watts() -> None:
    payload = (
        'neuroncore_utilization_ratio{instance_id="i-09db",neuroncore="0",runtime_tag="367"} 0.1\n'
        'neuron_runtime_memory_used_bytes{instance_id="i-09db",memory_location="host",'
        'runtime_tag="367"} 9043968\n'
        'hardware_ecc_events_total{event_type="mem_ecc_uncorrected",instance_id="i-09db",'
        'neuron_device_index="1"} 2\n'
        'execution_errors_total{error_type="hardware",instance_id="i-09db",runtime_tag="367"} 1\n'
        'neuron_hardware_info{neuron_device_count="16",neuroncore_per_device_count="2"} 1\n'
    )
    readings, problems = read(payload, "neuron", target="trn-1:8000")
    assert problems.height == 0
    assert readings.select("host", "device", "device_kind", "metric", "value").rows() == [
        ("i-09db", "neuroncore0", "neuroncore", "utilization_ratio", 0.1),
        ("i-09db", "runtime:367", "neuron_runtime", "host_memory_used_bytes", 9043968.0),
        ("i-09db", "neuron1", "accelerator", "mem_ecc_uncorrected_events", 2.0),
        ("i-09db", "runtime:367", "neuron_runtime", "execution_errors_hardware", 1.0),
    ]
    assert not readings.get_column("unit").is_in(["watts", "joules"]).any()


def test_kepler_node_zones_are_measured_and_workloads_estimated() -> None:
    payload = (
        'kepler_node_cpu_joules_total{zone="package",node_name="w1"} 89234.567\n'
        'kepler_node_cpu_active_joules_total{zone="package",node_name="w1"} 5000\n'
        'kepler_node_platform_watts{source="redfish",node_name="w1"} 450.5\n'
        'kepler_pod_cpu_joules_total{pod_id="abc",zone="dram",node_name="w1"} 67.89\n'
        'kepler_container_cpu_watts{container_id="c0ffee",zone="package",node_name="w1"} 3.5\n'
        'kepler_node_package_joules_total{mode="idle"} 10\n'
        "kepler_node_cpu_usage_ratio 0.5\n"
    )
    readings, problems = read(payload, "kepler", target="w1:28282")
    assert problems.height == 0
    columns = ["host", "device", "device_kind", "metric", "value", "estimated"]
    assert readings.select(columns).rows() == [
        ("w1", "package", "cpu_package", "energy_joules", 89234.567, False),
        ("w1", "package", "cpu_package", "active_energy_joules", 5000.0, True),
        ("w1", "platform:redfish", "node", "power_watts", 450.5, False),
        ("w1", "pod:abc/dram", "pod", "energy_joules", 67.89, True),
        ("w1", "container:c0ffee/package", "container", "power_watts", 3.5, True),
        ("w1:28282", "package", "cpu_package", "idle_energy_joules", 10.0, True),
    ]


# --- the interface ------------------------------------------------------------------------------


def test_many_targets_map_in_one_call() -> None:
    frames = [
        parse_exposition(
            f'DCGM_FI_DEV_POWER_USAGE{{UUID="GPU-{i}"}} {100 + i}\n'
        ).samples.with_columns(pl.lit(f"http://n{i}:9400/metrics").alias("target"))
        for i in range(3)
    ]
    readings, problems = readings_from_exposition(pl.concat(frames), "dcgm", None, SCRAPE_TIME)
    assert problems.height == 0
    assert readings.select("target", "host", "device", "value").rows() == [
        (f"http://n{i}:9400/metrics", f"http://n{i}:9400/metrics", f"GPU-{i}", 100.0 + i)
        for i in range(3)
    ]


def test_sample_timestamps_win_over_the_scrape_time() -> None:
    exposition = parse_exposition(f"DCGM_FI_DEV_POWER_USAGE{{{GPU}}} 5 1700000000500\n")
    readings, _ = readings_from_exposition(exposition.samples, "dcgm", "t", SCRAPE_TIME)
    assert readings.get_column("timestamp_seconds").to_list() == [1700000000.5]
    unstamped = parse_exposition(f"DCGM_FI_DEV_POWER_USAGE{{{GPU}}} 5\n").samples
    readings, _ = readings_from_exposition(unstamped, "dcgm", "t", None)
    assert readings.get_column("timestamp_seconds").to_list() == [None]


def test_unknown_exporter_and_missing_target_are_refused() -> None:
    samples = parse_exposition("a 1\n").samples
    with pytest.raises(ValueError, match="unknown exporter"):
        readings_from_exposition(samples, "snmp", "t", None)
    with pytest.raises(ValueError, match="target column"):
        readings_from_exposition(samples, "dcgm", None, None)


def test_an_empty_or_rejected_scrape_maps_to_empty_frames() -> None:
    rejected = parse_exposition("DCGM_FI_DEV_POWER_USAGE 1", strict=True)
    readings, problems = readings_from_exposition(rejected.samples, "dcgm", "t", SCRAPE_TIME)
    assert (readings.height, problems.height) == (0, 0)
    assert readings.schema == pl.Schema(schemas.READINGS)


def test_mapping_table_is_unique_and_in_base_units() -> None:
    assert MAPPINGS.select("exporter", "name").is_duplicated().sum() == 0
    assert set(MAPPINGS.get_column("exporter")) == set(EXPORTERS) - {"kepler"}
    assert set(MAPPINGS.get_column("unit")) <= {
        "watts",
        "joules",
        "celsius",
        "bytes",
        "ratio",
        "seconds",
        "count",
        "code",
    }
    assert mapping_frame("kepler").height == 0


def test_detect_exporter_by_names(shared_fixtures: Path) -> None:
    datadog = parse_exposition((shared_fixtures / DATADOG).read_bytes()).samples
    node = parse_exposition((shared_fixtures / NODE_EXPORTER / "e2e-output.txt").read_bytes())
    assert detect_exporter(datadog) == "dcgm"
    assert detect_exporter(node.samples) == "node"
    assert detect_exporter(parse_exposition("up 1\n").samples) is None
