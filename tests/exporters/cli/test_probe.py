"""`gigawatt probe` end to end: the real command as a subprocess, against loopback servers
serving real payloads and against fixture trees read in place, for every kind; exit codes
0 (clean), 1 (problems) and 2 (unreadable, bad arguments), never a traceback."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from collector.sources.nvml import nvml_available
from tests.collector.sources.redfish_server import RedfishServer
from tests.collector.sources.test_scrape import (
    MetricsServer,
    Route,
    dead_url,
    eight_gpu_payload,
)

ROOT = Path(__file__).resolve().parents[3]
DCGM = Path("datadog-integrations-core-dcgm/dcgm/tests/fixtures/metrics.txt")
PUBLIC_PDU = Path("dmtf-redfish-publications/public-pdu")
EXCERPTS = Path("aws-neuron-sdk/neuron-monitor-user-guide-excerpts")
SYS_EXTRACT = Path("prometheus-node_exporter/collector/fixtures/sys-extract/sys")
T4_UUID = "GPU-20c56d28-0da5-6d26-a36a-e7af1ce2586e"
OUTLET_A1 = "/redfish/v1/PowerEquipment/RackPDUs/1/Outlets/A1"
CREDENTIAL_VARIABLES = ("GIGAWATT_REDFISH_USERNAME", "GIGAWATT_REDFISH_PASSWORD")


def probe(
    *args: str | Path, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in CREDENTIAL_VARIABLES}
    result = subprocess.run(
        [sys.executable, "-m", "exporters.cli", "probe", *map(str, args)],
        cwd=ROOT,
        env=base | {"COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"} | (env or {}),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result


def records(result: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in result.stdout.splitlines()]


def of_type(result: subprocess.CompletedProcess[str], kind: str) -> list[dict[str, Any]]:
    return [record for record in records(result) if record["type"] == kind]


def value(readings: list[dict[str, Any]], device: str, metric: str) -> float:
    found = [r["value"] for r in readings if r["device"] == device and r["metric"] == metric]
    assert len(found) == 1, found
    return float(found[0])


@pytest.fixture(scope="module")
def dcgm_server(shared_fixtures: Path) -> Iterator[MetricsServer]:
    capture = (shared_fixtures / DCGM).read_bytes()
    clean = eight_gpu_payload(capture, "gpu-node-7").encode()
    routes = {"/metrics": Route(capture), "/clean": Route(clean)}
    with MetricsServer(routes) as server:
        yield server


# --- prometheus --------------------------------------------------------------------------------


def test_prometheus_jsonl_readings_then_problems(dcgm_server: MetricsServer) -> None:
    url = dcgm_server.url("/metrics")
    result = probe("prometheus", url)
    # The capture lacks its final newline, and three of its samples carry no labels at all.
    assert result.returncode == 1, result.stderr
    kinds = [record["type"] for record in records(result)]
    assert kinds == sorted(kinds, key=["reading", "problem"].index)  # readings first
    readings = of_type(result, "reading")
    assert value(readings, T4_UUID, "power_watts") == 8.969
    assert value(readings, T4_UUID, "energy_joules") == pytest.approx(128996.013)
    t4 = next(r for r in readings if r["device"] == T4_UUID and r["metric"] == "power_watts")
    assert t4 == {
        "type": "reading",
        "source": "prometheus",
        "target": url,
        "host": "424773df46e0",
        "device": T4_UUID,
        "device_kind": "accelerator",
        "metric": "power_watts",
        "value": 8.969,
        "unit": "watts",
        "estimated": False,
        "timestamp_seconds": t4["timestamp_seconds"],
    }
    assert abs(t4["timestamp_seconds"] - time.time()) < 60  # the probe's clock
    problems = of_type(result, "problem")
    assert [p["reason"] for p in problems] == ["missing_final_newline"] + 3 * ["missing_identity"]
    assert set(problems[0]) == {"type", "source", "target", "location", "reason", "message"}


def test_prometheus_clean_target_exits_0(dcgm_server: MetricsServer) -> None:
    result = probe("prometheus", dcgm_server.url("/clean"), "--exporter", "dcgm")
    assert result.returncode == 0, result.stderr
    assert of_type(result, "problem") == []
    readings = of_type(result, "reading")
    assert {r["host"] for r in readings} == {"gpu-node-7"}
    assert len({r["device"] for r in readings}) == 8


def test_prometheus_table(dcgm_server: MetricsServer) -> None:
    url = dcgm_server.url("/metrics")
    table = probe("prometheus", url, "--format", "table")
    jsonl = probe("prometheus", url)
    assert table.returncode == 1
    lines = table.stdout.splitlines()
    assert lines[0].split() == [
        "device",
        "kind",
        "metric",
        "value",
        "unit",
        "estimated",
        "source",
        "host",
        "target",
    ]
    power = next(line for line in lines if T4_UUID in line and "power_watts" in line)
    assert power.split()[:6] == [T4_UUID, "accelerator", "power_watts", "8.969", "watts", "no"]
    assert "problems:" in lines
    assert re.search(r"^line \d+\s+missing_final_newline\s+", table.stdout, re.MULTILINE)
    counts = f"{len(of_type(jsonl, 'reading'))} readings, {len(of_type(jsonl, 'problem'))} problems"
    assert lines[-1] == counts


def test_prometheus_dead_target_exits_2() -> None:
    url = dead_url()
    result = probe("prometheus", url, "--timeout", "2")
    assert result.returncode == 2
    assert f"cannot read {url}: connect_error" in result.stderr
    assert [p["reason"] for p in of_type(result, "problem")] == ["connect_error"]


# --- redfish -----------------------------------------------------------------------------------


def test_redfish_public_pdu(shared_fixtures: Path) -> None:
    with RedfishServer(shared_fixtures / PUBLIC_PDU) as server:
        result = probe("redfish", server.url)
    assert result.returncode == 1, result.stderr  # the mockup's dangling sensor links
    readings = of_type(result, "reading")
    assert value(readings, OUTLET_A1, "power_watts") == 197.4
    assert {r["source"] for r in readings} == {"redfish"}
    assert {p["reason"] for p in of_type(result, "problem")} >= {"dangling_link"}


def test_redfish_credentials_come_from_named_variables(shared_fixtures: Path) -> None:
    secrets = {"PDU_USER": "admin", "PDU_PASSWORD": "correct horse"}
    with RedfishServer(shared_fixtures / PUBLIC_PDU, credentials=("admin", "correct horse")) as (
        server
    ):
        result = probe(
            "redfish",
            server.url,
            "--username-env",
            "PDU_USER",
            "--password-env",
            "PDU_PASSWORD",
            "--format",
            "table",
            env=secrets,
        )
        assert (server.logins, server.logouts, server.unauthorized) == (1, 1, 0)
    assert result.returncode == 1, result.stderr
    assert re.search(
        rf"^{re.escape(OUTLET_A1)}\s+pdu_outlet\s+power_watts\s+197\.4\s", result.stdout, re.M
    )
    assert "correct horse" not in result.stdout + result.stderr


def test_redfish_half_the_default_credentials_is_refused() -> None:
    result = probe("redfish", "https://127.0.0.1:1", env={"GIGAWATT_REDFISH_USERNAME": "admin"})
    assert result.returncode == 2
    assert "GIGAWATT_REDFISH_PASSWORD" in result.stderr


# --- neuron ------------------------------------------------------------------------------------


def one_line_report(shared_fixtures: Path, fragment: str) -> str:
    """A fixture fragment wrapped in {} as one JSON line, as neuron-monitor writes reports."""
    text = (shared_fixtures / EXCERPTS / f"{fragment}.fragment.txt").read_text()
    return json.dumps(json.loads("{" + text.strip().rstrip(",") + "}")) + "\n"


def test_neuron_report_file_and_stdin(shared_fixtures: Path, tmp_path: Path) -> None:
    report = tmp_path / "monitor.jsonl"
    report.write_text(one_line_report(shared_fixtures, "memory_info"))
    from_file = probe("neuron", report)
    from_stdin = probe("neuron", "-", stdin=report.read_text())
    for result, target in ((from_file, str(report)), (from_stdin, "stdin")):
        assert result.returncode == 0, result.stderr
        readings = of_type(result, "reading")
        assert value(readings, "system_memory", "memory_used_bytes") == 16042344448
        assert {(r["source"], r["target"]) for r in readings} == {("neuron", target)}


def test_neuron_elided_fragment_is_a_problem(shared_fixtures: Path, tmp_path: Path) -> None:
    text = (shared_fixtures / EXCERPTS / "neuroncore_counters.fragment.txt").read_text()
    report = tmp_path / "elided.jsonl"
    report.write_text("{" + " ".join(text.split()) + "}\n")
    result = probe("neuron", report)
    assert result.returncode == 1
    assert [p["reason"] for p in of_type(result, "problem")] == ["elided_placeholder"]


def test_neuron_power_from_a_sysfs_directory(tmp_path: Path) -> None:
    power = tmp_path / "devices/virtual/neuron_device/neuron0/stats/power/utilization"
    power.parent.mkdir(parents=True)
    power.write_text(f"POWER_STATUS_VALID,{int(time.time()) - 5},10.50,80.25,37.72\n")
    result = probe("neuron", tmp_path, "--rated-power-watts", "500")
    assert result.returncode == 0, result.stderr
    readings = of_type(result, "reading")
    assert value(readings, "neuron0", "power_watts") == pytest.approx(188.6)
    watts = next(r for r in readings if r["metric"] == "power_watts")
    assert watts["estimated"] is True


# --- sysfs and nvml ----------------------------------------------------------------------------


def test_sysfs_on_node_exporters_tree(shared_fixtures: Path) -> None:
    result = probe("sysfs", shared_fixtures / SYS_EXTRACT)
    assert result.returncode == 1  # the tree's links are plain files in this checkout
    readings = of_type(result, "reading")
    assert value(readings, "intel-rapl:0", "energy_joules") == pytest.approx(240422.366267)
    assert of_type(result, "problem")


def test_nvml_without_a_gpu_says_why() -> None:
    available, reason = nvml_available()
    result = probe("nvml", "--format", "table")
    if available:
        assert result.returncode in (0, 1), result.stderr
        return
    assert result.returncode == 2
    key = reason.split(":", 1)[0]
    assert f"cannot read local: NVML {key}:" in result.stderr
    assert "unavailable" in result.stdout


# --- bad arguments -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["snmp", "http://127.0.0.1/"], "Invalid value"),
        (["prometheus"], "prometheus needs a TARGET"),
        (["prometheus", "ftp://127.0.0.1/metrics"], "http:// or https://"),
        (["prometheus", "http://127.0.0.1/m", "--exporter", "snmp"], "--exporter must be"),
        (["prometheus", "http://127.0.0.1/m", "--timeout", "0"], "--timeout"),
        (["sysfs", "--exporter", "dcgm"], "applies to prometheus only"),
        (["redfish", "https://127.0.0.1", "--insecure", "--ca-bundle", "ca.pem"], "not both"),
        (["redfish", "https://127.0.0.1/other"], "path must be empty"),
        (["redfish", "https://127.0.0.1", "--password", "x"], "No such option"),
        (["neuron", "."], "--rated-power-watts"),
        (["neuron", "no-such-file.jsonl"], "no such file"),
        (["nvml", "gpu0"], "must be 'local'"),
        (["sysfs", "/no/such/root"], "not a directory"),
    ],
)
def test_bad_arguments_exit_2(args: list[str], message: str) -> None:
    result = probe(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stdout == ""
