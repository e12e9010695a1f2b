"""The Neuron source: neuron-monitor output (the user guide's fragments, read in place) and the
sysfs power file (trees built per test: no sample of it exists)."""

from __future__ import annotations

import io
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from collector import schemas
from collector.sources import neuron

EXCERPTS = Path("aws-neuron-sdk/neuron-monitor-user-guide-excerpts")
# The fixture README: 6 of the 11 fragments parse once wrapped in {}; the others are elided.
PARSEABLE = {
    "execution_stats": 12,  # fragment -> readings it gives
    "instance_info": 0,
    "memory_info": 4,
    "neuron_hardware_info": 0,
    "neuron_hw_counters": 4,
    "neuron_runtime_vcpu_usage": 2,
}
ELIDED = {"memory_used", "metric_group-general-format", "neuron_k8s_info"}
ELIDED |= {"neuroncore_counters", "vcpu_usage"}


@pytest.fixture(scope="module")
def excerpts(shared_fixtures: Path) -> Path:
    return shared_fixtures / EXCERPTS


def fragment(excerpts: Path, name: str) -> str:
    return (excerpts / f"{name}.fragment.txt").read_text()


def group(excerpts: Path, name: str) -> object:
    """One fragment's group object, the fixture's elisions removed (in memory only)."""
    text = fragment(excerpts, name)
    text = re.sub(r"^\s*\[\.\.\.\]\s*,?\s*$\n?", "", text, flags=re.MULTILINE)
    text = re.sub(r",(\s*[}\]])", r"\1", text)
    return json.loads("{" + text.strip().rstrip(",") + "}")[name]


def values(readings: pl.DataFrame, metric: str) -> dict[str, float]:
    rows = readings.filter(pl.col("metric") == metric)
    return dict(zip(rows["device"], rows["value"], strict=True))


# --- the user guide's fragments ---------------------------------------------------------------


def test_the_fixture_holds_eleven_fragments(excerpts: Path) -> None:
    names = {path.name.removesuffix(".fragment.txt") for path in excerpts.glob("*.fragment.txt")}
    assert names == set(PARSEABLE) | ELIDED
    assert len(names) == 11


@pytest.mark.parametrize(("name", "count"), sorted(PARSEABLE.items()))
def test_parseable_fragments_parse(excerpts: Path, name: str, count: int) -> None:
    readings, problems = neuron.parse_fragment(fragment(excerpts, name), target=name)
    assert problems.is_empty(), problems["message"].to_list()
    assert readings.height == count
    assert readings.schema == pl.Schema(schemas.READINGS)


@pytest.mark.parametrize("name", sorted(ELIDED))
def test_elided_fragments_are_a_clear_problem(excerpts: Path, name: str) -> None:
    readings, problems = neuron.parse_fragment(fragment(excerpts, name), target=name)
    assert readings.is_empty()
    assert problems["reason"].to_list() == ["elided_placeholder"]
    assert "placeholder" in problems.item(0, "message")
    assert problems.schema == pl.Schema(schemas.PROBLEMS)


def test_the_output_skeleton_is_a_clear_problem(excerpts: Path) -> None:
    text = (excerpts / "output-structure-skeleton.txt").read_text()
    readings, problems = neuron.parse_report(text, target="skeleton")
    assert readings.is_empty()
    assert problems["reason"].to_list() == ["elided_placeholder"]


def test_fragment_values(excerpts: Path) -> None:
    memory, _ = neuron.parse_fragment(fragment(excerpts, "memory_info"), target="t")
    assert values(memory, "memory_used_bytes") == {"system_memory": 16042344448}
    assert values(memory, "memory_total_bytes") == {"system_memory": 49345835008}

    vcpu, _ = neuron.parse_fragment(fragment(excerpts, "neuron_runtime_vcpu_usage"), target="t")
    assert values(vcpu, "vcpu_user_ratio") == {"runtime": pytest.approx(0.4201)}
    assert values(vcpu, "vcpu_system_ratio") == {"runtime": pytest.approx(0.1234)}

    ecc, _ = neuron.parse_fragment(fragment(excerpts, "neuron_hw_counters"), target="t")
    assert set(ecc["metric"]) == {
        "mem_ecc_corrected_events",
        "mem_ecc_uncorrected_events",
        "sram_ecc_corrected_events",
        "sram_ecc_uncorrected_events",
    }
    assert set(ecc["device"]) == {"neuron0"}
    assert ecc["value"].sum() == 0

    stats, _ = neuron.parse_fragment(fragment(excerpts, "execution_stats"), target="t")
    assert values(stats, "executions_completed") == {"runtime": 123}
    assert values(stats, "execution_errors_hardware") == {"runtime": 0}


def test_instance_id_becomes_the_host(excerpts: Path) -> None:
    text = fragment(excerpts, "memory_info").rstrip() + ",\n" + fragment(excerpts, "instance_info")
    readings, _ = neuron.parse_fragment(text, target="t")
    assert set(readings["host"]) == {"i-0011223344556677a"}
    named, _ = neuron.parse_fragment(text, target="t", host="trn-a-01")
    assert set(named["host"]) == {"trn-a-01"}


def test_neuroncore_utilization_once_the_elision_is_removed(excerpts: Path) -> None:
    document = {"neuroncore_counters": group(excerpts, "neuroncore_counters")}
    readings, problems = neuron.parse_report(json.dumps(document), target="t")
    assert problems.is_empty()
    assert values(readings, "utilization_ratio") == {
        "neuroncore0": pytest.approx(0.4201),
        "neuroncore1": pytest.approx(0.4202),
    }
    assert set(readings["unit"]) == {"ratio"}


# --- whole reports, streamed ------------------------------------------------------------------


def full_report(excerpts: Path) -> dict[str, object]:
    """A report shaped like the user guide's skeleton, filled with its own fragments."""
    return {
        "neuron_runtime_data": [
            {
                "pid": 4242,
                "address": "",
                "neuron_runtime_tag": "my_app_1",
                "error": "",
                "report": {
                    name: group(excerpts, name)
                    for name in (
                        "neuroncore_counters",
                        "execution_stats",
                        "neuron_runtime_vcpu_usage",
                    )
                },
            }
        ],
        "system_data": {
            name: group(excerpts, name)
            for name in ("neuron_hw_counters", "vcpu_usage", "memory_info")
        },
        "instance_info": group(excerpts, "instance_info"),
        "neuron_hardware_info": group(excerpts, "neuron_hardware_info"),
    }


def test_a_full_report(excerpts: Path) -> None:
    readings, problems = neuron.parse_report(
        json.dumps(full_report(excerpts)), target="neuron-monitor", timestamp_seconds=1.5e9
    )
    assert problems.is_empty()
    runtime = readings.filter(pl.col("device") == "runtime:my_app_1")
    assert runtime.height == 12 + 2  # execution stats, runtime vCPU
    assert values(readings, "utilization_ratio")["neuroncore1"] == pytest.approx(0.4202)
    cpus = readings.filter(pl.col("device_kind") == "vcpu")
    assert sorted(set(cpus["device"])) == ["vcpu0", "vcpu1"]
    assert values(readings, "vcpu_user_ratio")["vcpu"] == pytest.approx(0.3277)
    assert set(readings["host"]) == {"i-0011223344556677a"}
    assert set(readings["timestamp_seconds"]) == {1.5e9}


def test_memory_used_per_runtime_and_core() -> None:
    # Shape of the user guide's memory_used group (its fragment is elided, so not parseable).
    used = {
        "host": 6997643264,
        "neuron_device": 12519788544,
        "usage_breakdown": {
            "neuroncore_memory_usage": {
                "0": {"constants": 193986816, "model_code": 176285056, "tensors": 20971520},
                "1": {"constants": {"present": 5, "peak": 9}, "tensors": 1},
            }
        },
    }
    report = {
        "neuron_runtime_data": [
            {
                "pid": 7,
                "neuron_runtime_tag": "",
                "error": "",
                "report": {
                    "memory_used": {"period": 1.0, "neuron_runtime_used_bytes": used, "error": ""}
                },
            }
        ]
    }
    readings, problems = neuron.parse_report(json.dumps(report), target="t")
    assert problems.is_empty()
    assert values(readings, "host_memory_used_bytes") == {"runtime:pid7": 6997643264}
    assert values(readings, "device_memory_used_bytes") == {"runtime:pid7": 12519788544}
    assert values(readings, "neuroncore_memory_used_bytes") == {
        "neuroncore0": 193986816 + 176285056 + 20971520,
        "neuroncore1": 6,
    }


def test_group_and_runtime_errors_are_problems_not_readings() -> None:
    report = {
        "neuron_runtime_data": [
            {"pid": 1, "neuron_runtime_tag": "a", "error": "runtime went away", "report": {}},
        ],
        "system_data": {
            "memory_info": {"period": 1.0, "error": "cannot read meminfo"},
            "vcpu_usage": {"average_usage": {"user": 10.0}, "error": ""},
        },
    }
    readings, problems = neuron.parse_report(json.dumps(report), target="t", line=3)
    assert problems["reason"].to_list() == ["monitor_error", "monitor_error"]
    assert problems["location"].to_list() == [
        "line 3 $.neuron_runtime_data[0].error",
        "line 3 $.system_data.memory_info.error",
    ]
    assert readings["metric"].to_list() == ["vcpu_user_ratio"]


def test_wrong_types_are_problems_and_the_rest_is_read() -> None:
    report = {
        "system_data": {
            "vcpu_usage": {"average_usage": {"user": "high", "system": 5, "idle": True}},
            "neuron_hw_counters": {"neuron_devices": [{"mem_ecc_corrected": 1}, 3]},
        }
    }
    readings, problems = neuron.parse_report(json.dumps(report), target="t")
    assert readings["metric"].to_list() == ["vcpu_system_ratio"]
    assert problems["reason"].to_list() == ["unexpected_type"] * 4
    assert problems["location"].to_list() == [
        "$.system_data.vcpu_usage.average_usage.user",
        "$.system_data.vcpu_usage.average_usage.idle",
        "$.system_data.neuron_hw_counters.neuron_devices[0].neuron_device_index",
        "$.system_data.neuron_hw_counters.neuron_devices[1]",
    ]


@pytest.mark.parametrize(
    ("text", "reason"),
    [("[1, 2]", "not_an_object"), ('{"a": ', "invalid_json"), ("NaN", "not_an_object")],
)
def test_bad_lines(text: str, reason: str) -> None:
    readings, problems = neuron.parse_report(text, target="t")
    assert readings.is_empty()
    assert problems["reason"].to_list() == [reason]


def test_lines_are_bounded() -> None:
    stream = io.BytesIO(b"x" * 100 + b"\n\n" + b"y" * 10 + b"\n" + b"\xff\xfe\n" + b"last")
    lines = list(neuron.iter_report_lines(stream, max_line_bytes=10))
    assert [(line.number, line.text, line.problem) for line in lines] == [
        (1, None, "line_too_long"),
        (3, "y" * 10, None),  # exactly at the limit; line 2 is blank
        (4, None, "not_utf8"),
        (5, "last", None),  # no final newline
    ]
    text_stream = io.StringIO("a\r\n" + "z" * 50)
    assert [line.problem for line in neuron.iter_report_lines(text_stream, max_line_bytes=8)] == [
        None,
        "line_too_long",
    ]


def test_reports_from_a_subprocess(excerpts: Path, tmp_path: Path) -> None:
    lines = tmp_path / "monitor.jsonl"
    good = json.dumps(full_report(excerpts))
    lines.write_text(f"{good}\nnot json\n{'{' * 5000}\n{good}\n")
    with subprocess.Popen(
        [sys.executable, "-c", f"import sys; sys.stdout.write(open({str(lines)!r}).read())"],
        stdout=subprocess.PIPE,
    ) as process:
        assert process.stdout is not None
        results = list(
            neuron.read_reports(process.stdout, target="neuron-monitor", max_line_bytes=1 << 20)
        )
    assert process.returncode == 0
    # neuroncores 2, execution 12, runtime vCPU 2, ECC 4, vCPU 7 + 2 x 7, memory 4
    assert [readings.height for readings, _ in results] == [45, 0, 0, 45]
    assert [problems["reason"].to_list() for _, problems in results] == [
        [],
        ["invalid_json"],
        ["invalid_json"],
        [],
    ]
    assert results[1][1].item(0, "location") == "line 2"


def test_read_reports_stamps_with_the_injected_clock() -> None:
    report = '{"system_data": {"memory_info": {"memory_used_bytes": 5, "error": ""}}}\n'
    ticks = iter([100.0, 200.0])
    results = list(
        neuron.read_reports(io.StringIO(report * 2), target="stdin", clock=lambda: next(ticks))
    )
    assert [readings.item(0, "timestamp_seconds") for readings, _ in results] == [100.0, 200.0]


# --- the sysfs power file ---------------------------------------------------------------------

# No sample of the power file exists anywhere public. These trees follow the documented format
# exactly (shared/docs/anchors.md: /sys/devices/virtual/neuron_device/neuron<N>/stats/power/
# utilization, one CSV line "<status>,<timestamp>,<min>,<max>,<avg>" in % of max power, status
# POWER_STATUS_VALID|NO_DATA|INVALID) and the driver's printf "%.32s,%lld,%u.%02u,%u.%02u,%u.%02u".

NOW = 1_781_370_750.0
SAMPLED = 1_781_370_720


def power_file(root: Path, device: int, line: str) -> Path:
    path = root / "devices/virtual/neuron_device" / f"neuron{device}" / "stats/power/utilization"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(line)
    return path


def test_valid_power_is_an_estimate_from_the_rated_power(tmp_path: Path) -> None:
    power_file(tmp_path, 0, f"POWER_STATUS_VALID,{SAMPLED},10.50,80.25,37.72\n")
    readings, problems = neuron.read_power_utilization(tmp_path, 500.0, now=NOW)
    assert problems.is_empty()
    assert readings.schema == pl.Schema(schemas.READINGS)
    by_metric = {row["metric"]: row for row in readings.iter_rows(named=True)}
    assert by_metric["power_watts"]["value"] == pytest.approx(37.72 / 100 * 500.0)
    assert by_metric["power_min_watts"]["value"] == pytest.approx(10.50 / 100 * 500.0)
    assert by_metric["power_max_watts"]["value"] == pytest.approx(80.25 / 100 * 500.0)
    assert by_metric["power_utilization_ratio"]["value"] == pytest.approx(0.3772)
    assert {m: r["estimated"] for m, r in by_metric.items()} == {
        "power_utilization_ratio": False,
        "power_watts": True,
        "power_min_watts": True,
        "power_max_watts": True,
    }
    assert set(readings["device"]) == {"neuron0"}
    assert set(readings["device_kind"]) == {"accelerator"}
    assert set(readings["timestamp_seconds"]) == {float(SAMPLED)}


def test_watts_scale_with_the_configured_rating(tmp_path: Path) -> None:
    power_file(tmp_path, 0, f"POWER_STATUS_VALID,{SAMPLED},0.00,100.00,50.00")
    for rated in (300.0, 700.0):
        readings, _ = neuron.read_power_utilization(tmp_path, rated, now=NOW)
        assert values(readings, "power_watts") == {"neuron0": pytest.approx(rated / 2)}
        assert values(readings, "power_max_watts") == {"neuron0": pytest.approx(rated)}


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (f"POWER_STATUS_NO_DATA,{SAMPLED},0.00,0.00,0.00\n", "no_data"),
        (f"POWER_STATUS_INVALID,{SAMPLED},0.00,0.00,0.00\n", "invalid"),
        (f"POWER_STATUS_MAX,{SAMPLED},0.00,0.00,0.00\n", "unknown_status"),
        ("", "empty"),
        ("garbage\n", "garbage"),
        (f"POWER_STATUS_VALID,{SAMPLED},1.00,2.00\n", "garbage"),
        ("POWER_STATUS_VALID,soon,1.00,2.00,1.50\n", "garbage"),
        (f"POWER_STATUS_VALID,{SAMPLED},1.00,nan,1.50\n", "out_of_range"),
        (f"POWER_STATUS_VALID,{SAMPLED},1.00,120.00,1.50\n", "out_of_range"),
        (f"POWER_STATUS_VALID,{SAMPLED},5.00,9.00,4.00\n", "inconsistent"),
        (f"POWER_STATUS_VALID,{int(NOW) - 600},1.00,2.00,1.50\n", "stale"),
        (f"POWER_STATUS_VALID,{int(NOW) + 60},1.00,2.00,1.50\n", "future"),
    ],
)
def test_lines_that_give_no_reading(tmp_path: Path, line: str, reason: str) -> None:
    path = power_file(tmp_path, 0, line)
    power_file(tmp_path, 1, f"POWER_STATUS_VALID,{SAMPLED},1.00,2.00,1.50\n")
    readings, problems = neuron.read_power_utilization(tmp_path, 500.0, now=NOW)
    assert problems["reason"].to_list() == [reason]
    assert problems["location"].to_list() == [str(path)]
    assert set(readings["device"]) == {"neuron1"}  # the other device is still read


def test_max_age_is_configurable(tmp_path: Path) -> None:
    power_file(tmp_path, 0, f"POWER_STATUS_VALID,{SAMPLED},1.00,2.00,1.50")
    _, stale = neuron.read_power_utilization(tmp_path, 500.0, now=NOW, max_age_seconds=10)
    assert stale["reason"].to_list() == ["stale"]
    fresh, problems = neuron.read_power_utilization(tmp_path, 500.0, now=NOW, max_age_seconds=60)
    assert problems.is_empty() and fresh.height == 4


def test_devices_in_numeric_order_and_missing_files(tmp_path: Path) -> None:
    for device in (10, 2):
        power_file(tmp_path, device, f"POWER_STATUS_VALID,{SAMPLED},1.00,2.00,1.50")
    (tmp_path / "devices/virtual/neuron_device/neuron3").mkdir()
    (tmp_path / "devices/virtual/neuron_device/not_a_device").mkdir()
    readings, problems = neuron.read_power_utilization(tmp_path, 500.0, now=NOW)
    assert readings["device"].unique(maintain_order=True).to_list() == ["neuron2", "neuron10"]
    assert problems["reason"].to_list() == ["not_found"]
    assert "neuron3" in problems.item(0, "location")


def test_no_neuron_devices_is_reported(tmp_path: Path) -> None:
    readings, problems = neuron.read_power_utilization(tmp_path, 500.0, now=NOW)
    assert readings.is_empty()
    assert problems["reason"].to_list() == ["not_found"]


@pytest.mark.parametrize("rated", [0.0, -1.0, math.nan, math.inf])
def test_the_rated_power_must_be_configured_sensibly(tmp_path: Path, rated: float) -> None:
    with pytest.raises(ValueError, match="rated_power_watts"):
        neuron.read_power_utilization(tmp_path, rated, now=NOW)
