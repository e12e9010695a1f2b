"""Real sources into the roll-up through the collectors file: a Redfish PDU served on loopback
feeding one rack feed of the demo site, a dcgm-exporter GPU, the sysfs and neuron kinds.
(The inventory and attach have tests of their own: test_inventory.py, test_attach.py.)"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from fastapi.testclient import TestClient

from collector.collectors import CollectorsError, build_sources, parse_collectors
from collector.pipeline import Pipeline
from collector.site.model import load_preset
from collector.site.topology import Topology, build_topology
from collector.sources.deadline import DeadlineSource
from collector.sources.kinds.neuron import NeuronReader, NeuronSpec
from collector.sources.kinds.sysfs import SysfsSpec
from collector.sources.readings_source import ReadingsSource
from exporters.composition import ServiceSettings, build_app
from exporters.service import CycleRunner
from tests.collector.sources.redfish_server import RedfishServer
from tests.loopback import ExporterServer

PDU = "/redfish/v1/PowerEquipment/RackPDUs/1"
PUBLIC_PDU_CHOSEN_WATTS = 2734.8  # public-pdu's PDUPower sensor: see choose_pdu_power


@pytest.fixture(scope="module")
def demo() -> Topology:
    return build_topology(load_preset("demo"))


def test_collectors_file_problems_are_listed_with_their_lines() -> None:
    with pytest.raises(CollectorsError) as raised:
        parse_collectors("sources:\n  - kind: redfish\n    targets: []\n  - kind: carrier-pigeon\n")
    text = str(raised.value)
    assert "line 3: sources.0.targets" in text
    assert "line 4: sources.1" in text
    assert "2 problem(s)" in text  # no echo of "sources has no valid item"


@pytest.fixture
def pdu_server(shared_fixtures: Path) -> Iterator[RedfishServer]:
    with RedfishServer(shared_fixtures / "dmtf-redfish-publications" / "public-pdu") as server:
        yield server


def write_collectors(tmp_path: Path, server_url: str, inventory: str) -> Path:
    (tmp_path / "inventory.csv").write_text(inventory, encoding="utf-8")
    path = tmp_path / "collectors.yaml"
    path.write_text(
        "inventory: inventory.csv\n"
        "sources:\n"
        "  - kind: redfish\n"
        "    name: pdus\n"
        "    targets:\n"
        f"      - {{url: '{server_url}', name: pdu-1, auth: none, allow_plain_http: true}}\n"
        "      - {url: 'http://127.0.0.1:9', name: dead, auth: none, allow_plain_http: true,\n"
        "         request_timeout_seconds: 1, deadline_seconds: 2}\n",
        encoding="utf-8",
    )
    return path


def test_a_redfish_pdu_on_loopback_feeds_its_rack_feed(
    demo: Topology, pdu_server: RedfishServer, tmp_path: Path
) -> None:
    host = pdu_server.url.removeprefix("http://")
    collectors = write_collectors(
        tmp_path, pdu_server.url, f"host,device,entity\n{host},{PDU},B01-H1-R01-K01/A\n"
    )
    clock = iter([1_000.0, 1_010.0])
    pipeline = Pipeline(demo, build_sources(collectors, demo), clock=lambda: next(clock))
    snapshot = pipeline.run_cycle()
    feed = snapshot.feeds.row(0, named=True)  # B01-H1-R01-K01 feed A
    assert feed["power_watts"] == pytest.approx(PUBLIC_PDU_CHOSEN_WATTS)
    rack = snapshot.racks.row(0, named=True)
    assert rack["power_watts"] == pytest.approx(PUBLIC_PDU_CHOSEN_WATTS)
    assert rack["reporting_ratio"] == 0.5  # feed B has no PDU in the inventory
    # Every other rack reports nothing: missing, never 0.
    assert snapshot.racks["power_watts"].null_count() == demo.racks.height - 1
    assert snapshot.site["reporting_ratio"][0] == pytest.approx(1 / demo.feeds.height)
    health = {row["target"]: row["up"] for row in snapshot.sources.to_dicts()}
    assert health[f"{pdu_server.url}/redfish/v1"] == 1.0
    assert health["http://127.0.0.1:9/redfish/v1"] == 0.0  # the dead one costs only itself
    reasons = set(snapshot.problems["reason"].to_list())
    assert "dangling_link" in reasons  # public-pdu's own broken links, counted, not fatal


DCGM_CAPTURE = "datadog-integrations-core-dcgm/dcgm/tests/fixtures/metrics.txt"


@pytest.fixture
def dcgm_exporter(shared_fixtures: Path) -> Iterator[str]:
    """The DataDog dcgm-exporter capture (a Tesla T4), served as an exporter on loopback."""
    with ExporterServer((shared_fixtures / DCGM_CAPTURE).read_bytes()) as server:
        yield server.url


def test_a_dcgm_exporter_gpu_becomes_an_accelerator_of_the_site(
    demo: Topology, dcgm_exporter: str, shared_fixtures: Path, tmp_path: Path
) -> None:
    capture = (shared_fixtures / DCGM_CAPTURE).read_text(encoding="utf-8")
    uuid = re.search(r'UUID="(GPU-20c56d28[^"]*)"', capture)
    assert uuid is not None
    (tmp_path / "inventory.csv").write_text(
        f"host,device,entity\n424773df46e0,{uuid.group(1)},B01-H1-R01-K01-N1-A05\n",
        encoding="utf-8",
    )
    collectors = tmp_path / "collectors.yaml"
    collectors.write_text(
        "inventory: inventory.csv\n"
        "sources:\n"
        "  - kind: prometheus\n"
        "    name: dcgm\n"
        f"    targets: [{{url: '{dcgm_exporter}', exporter: dcgm}}]\n",
        encoding="utf-8",
    )
    clock = iter([1_000.0])
    pipeline = Pipeline(demo, build_sources(collectors, demo), clock=lambda: next(clock))
    snapshot = pipeline.run_cycle()
    (row,) = snapshot.accelerators.filter(pl.col("accelerator_index") == 5).rows(named=True)
    assert row["power_watts"] == pytest.approx(8.969)
    assert row["temperature_celsius"] == 25.0
    node = snapshot.nodes.row(0, named=True)
    assert node["accelerators_reporting"] == 1
    assert node["accelerator_power_watts"] == pytest.approx(8.969)  # not 16 x, not 0 for the rest
    (health,) = snapshot.sources.rows(named=True)
    assert health["target"] == dcgm_exporter
    assert health["up"] == 1.0
    # the capture's flaws are counted, not fatal
    reasons = set(snapshot.problems["reason"].to_list())
    assert {"missing_final_newline", "missing_identity"} <= reasons


# --- the sysfs and neuron kinds -------------------------------------------------------------

TRN_HOST = "trn-a-01"
SAMPLED = 1_781_370_720  # when the driver wrote the power line: a minute boundary
POWER_LINE = f"POWER_STATUS_VALID,{SAMPLED},10.50,80.25,37.72\n"


def test_the_sysfs_and_neuron_kinds_parse() -> None:
    spec = parse_collectors(
        "sources:\n"
        "  - kind: sysfs\n"
        "  - {kind: sysfs, name: lab, root: /srv/sys, host: node-1, max_depth: 4,\n"
        "     max_power_watts: 400}\n"
        "  - kind: neuron\n"
        "    host: trn-a-01\n"
        "    command: [neuron-monitor, -c, /etc/neuron-monitor.json]\n"
        "    power: {rated_power_watts: 500}\n"
        "  - {kind: neuron, name: from-file, file: monitor.jsonl, max_report_age_seconds: 60}\n"
        "  - {kind: neuron, name: piped, stdin: true}\n"
        "  - {kind: neuron, name: power-only, power: {root: /srv/sys, rated_power_watts: 450,\n"
        "     max_age_seconds: 90}}\n"
    )
    default, lab, monitor, from_file, piped, power_only = spec.sources
    assert isinstance(default, SysfsSpec) and isinstance(lab, SysfsSpec)
    assert (default.name, default.root, default.host, default.max_power_watts) == (
        "sysfs",
        Path("/sys"),
        None,
        None,
    )
    assert (lab.root, lab.host, lab.max_depth, lab.max_power_watts) == (
        Path("/srv/sys"),
        "node-1",
        4,
        400.0,
    )
    assert isinstance(monitor, NeuronSpec) and monitor.power is not None
    assert monitor.command == ("neuron-monitor", "-c", "/etc/neuron-monitor.json")
    assert (monitor.name, monitor.host, monitor.max_report_age_seconds) == (
        "neuron",
        TRN_HOST,
        30.0,
    )
    assert (monitor.power.root, monitor.power.rated_power_watts) == (Path("/sys"), 500.0)
    assert monitor.power.max_age_seconds == 120.0
    assert isinstance(from_file, NeuronSpec) and from_file.file == Path("monitor.jsonl")
    assert isinstance(piped, NeuronSpec) and piped.stdin and piped.power is None
    assert isinstance(power_only, NeuronSpec) and not power_only.has_stream
    assert power_only.power is not None and power_only.power.max_age_seconds == 90.0


def test_bad_sysfs_and_neuron_sources_are_each_listed_with_their_line() -> None:
    with pytest.raises(CollectorsError) as raised:
        parse_collectors(
            "sources:\n"
            "  - kind: neuron\n"  # line 2
            "    command: [neuron-monitor]\n"
            "    file: /var/log/neuron-monitor.jsonl\n"
            "  - kind: neuron\n"  # line 5
            "    name: nothing\n"
            "  - kind: neuron\n"
            "    name: unrated\n"
            "    power: {rated_power_watts: 0}\n"  # line 9
            "  - kind: neuron\n"
            "    name: no-program\n"
            "    command: []\n"  # line 12
            "  - kind: sysfs\n"
            "    max_power_watts: -5\n"  # line 14
            "    rootfs: /sys\n"  # line 15
        )
    error = raised.value
    assert [str(problem) for problem in error.problems] == [
        "line 2: sources.0: Value error, give one stream input, not command and file",
        "line 5: sources.1: Value error, give a stream (command, file or stdin: true), a power "
        "block, or both",
        "line 9: sources.2.power.rated_power_watts: Input should be greater than 0",
        "line 12: sources.3.command: Tuple should have at least 1 item after validation, not 0",
        "line 14: sources.4.max_power_watts: Input should be greater than 0",
        "line 15: sources.4.rootfs: Extra inputs are not permitted",
    ]
    assert "6 problem(s)" in str(error)


def package_zone(root: Path) -> Path:
    """A RAPL package zone directory under a sysfs ``root``, named but with no counter yet."""
    zone = root / "class" / "powercap" / "intel-rapl:0"
    zone.mkdir(parents=True)
    (zone / "name").write_text("package-0\n")
    return zone


def test_the_sysfs_kind_reads_its_root_relative_to_the_collectors_file(
    demo: Topology, tmp_path: Path
) -> None:
    zone = package_zone(tmp_path / "sys")
    (zone / "energy_uj").write_text("1500000\n")
    collectors = tmp_path / "collectors.yaml"
    collectors.write_text("sources:\n  - {kind: sysfs, name: cpus, root: sys, host: node-1}\n")
    (source,) = build_sources(collectors, demo)
    assert isinstance(source, ReadingsSource) and source.name == "cpus"
    result = source.reader(1_000.0)
    energy = result.readings.filter(pl.col("metric") == "energy_joules")
    assert energy.select("host", "device", "value").rows() == [("node-1", "intel-rapl:0", 1.5)]
    assert result.targets.select("target", "up").rows() == [(f"sysfs://node-1{tmp_path}/sys", 1.0)]


def test_the_sysfs_kind_gives_its_node_cpu_power_and_no_naive_rate_over_a_wrap(
    demo: Topology, tmp_path: Path
) -> None:
    zone = package_zone(tmp_path / "sys")
    (zone / "max_energy_range_uj").write_text("262143328850\n")
    (tmp_path / "inventory.csv").write_text("host,device,entity\nnode-1,*,B01-H1-R01-K01-N2\n")
    collectors = tmp_path / "collectors.yaml"
    collectors.write_text(
        "inventory: inventory.csv\nsources:\n"
        "  - {kind: sysfs, root: sys, host: node-1, max_power_watts: 5000}\n"
    )
    clock = iter([1_000.0, 1_010.0, 1_110.0])
    pipeline = Pipeline(demo, build_sources(collectors, demo), clock=lambda: next(clock))
    cpu: list[float | None] = []
    for energy_uj in (5_000_000, 7_500_000, 9_000_000):
        (zone / "energy_uj").write_text(f"{energy_uj}\n")
        snapshot = pipeline.run_cycle()
        cpu.append(snapshot.nodes["cpu_power_watts"][1])
    # 2.5 J in 10 s; then 100 s at up to 5 kW may hide a wrap of 262 kJ: the zone's counter
    # refuses the interval, and no rate from the raw counter stands in for it.
    assert cpu == [None, pytest.approx(0.25), None]
    reasons = set(snapshot.problems["reason"].to_list())
    assert "ambiguous_wrap" in reasons
    assert "counter_reset" not in reasons


def neuron_power_tree(root: Path, device: int, line: str) -> None:
    path = root / "devices/virtual/neuron_device" / f"neuron{device}" / "stats/power/utilization"
    path.parent.mkdir(parents=True)
    path.write_text(line)


def test_a_neuron_device_power_file_becomes_an_accelerators_power(
    demo: Topology, tmp_path: Path
) -> None:
    neuron_power_tree(tmp_path / "sys", 0, POWER_LINE)
    neuron_power_tree(tmp_path / "sys", 1, POWER_LINE)  # not in the inventory
    (tmp_path / "inventory.csv").write_text(
        f"host,device,entity\n{TRN_HOST},neuron0,B01-H1-R01-K01-N1-A05\n"
    )
    collectors = tmp_path / "collectors.yaml"
    collectors.write_text(
        "inventory: inventory.csv\n"
        "sources:\n"
        "  - kind: neuron\n"
        "    name: trainium\n"
        f"    host: {TRN_HOST}\n"
        "    power: {root: sys, rated_power_watts: 500}\n"
    )
    clock = iter([SAMPLED + 30.0])
    pipeline = Pipeline(demo, build_sources(collectors, demo), clock=lambda: next(clock))
    snapshot = pipeline.run_cycle()
    reporting = snapshot.accelerators.filter(pl.col("power_watts").is_not_null())
    assert reporting["accelerator_index"].to_list() == [5]
    assert reporting.item(0, "power_watts") == pytest.approx(37.72 / 100 * 500)
    (health,) = snapshot.sources.rows(named=True)
    assert (health["source"], health["target"], health["up"]) == (
        "trainium",
        str(tmp_path / "sys"),
        1.0,
    )
    assert snapshot.problems.is_empty()  # neuron1 is an unknown device: a rejection, no problem


MONITOR = (
    "import sys, time\n"
    "report = sys.argv[1]\n"
    "while True:\n"
    "    print(report, flush=True)\n"
    "    time.sleep(0.05)\n"
)


def monitored_collectors(tmp_path: Path) -> Path:
    """A collectors file whose neuron source runs a stand-in neuron-monitor (a Python script)."""
    script = tmp_path / "monitor.py"
    script.write_text(MONITOR)
    report = '{"system_data": {"memory_info": {"memory_used_bytes": 5, "error": ""}}}'
    command = json.dumps([sys.executable, str(script), report])  # JSON is YAML
    collectors = tmp_path / "collectors.yaml"
    collectors.write_text(f"sources:\n  - {{kind: neuron, host: {TRN_HOST}, command: {command}}}\n")
    return collectors


def test_a_neuron_source_streams_and_closes_its_monitor(demo: Topology, tmp_path: Path) -> None:
    collectors = monitored_collectors(tmp_path)
    (source,) = build_sources(collectors, demo)
    assert isinstance(source, ReadingsSource) and isinstance(source.reader, NeuronReader)
    stream = source.reader.stream
    assert stream is not None and stream.process is None  # building starts nothing

    def memory() -> pl.DataFrame:
        return source.reader(time.time()).readings

    deadline = time.monotonic() + 10
    while memory().is_empty():
        assert time.monotonic() < deadline, "no report within 10 s"
        time.sleep(0.01)
    assert memory().select("host", "device", "value").rows() == [(TRN_HOST, "system_memory", 5.0)]
    process = stream.process
    assert process is not None
    source.close()
    assert process.poll() is not None  # ended and waited for: no child left behind
    assert not stream.running


def test_the_service_closes_its_sources_when_it_stops(tmp_path: Path) -> None:
    collectors = monitored_collectors(tmp_path)
    settings = ServiceSettings(preset="demo", collectors=collectors, interval_seconds=0.05)
    with TestClient(build_app(settings)) as client:
        runner: CycleRunner = client.app.state.runner  # type: ignore[attr-defined]
        (read_under_deadline,) = runner.pipeline.sources
        assert isinstance(read_under_deadline, DeadlineSource)
        source = read_under_deadline.inner
        assert isinstance(source, ReadingsSource) and isinstance(source.reader, NeuronReader)
        stream = source.reader.stream
        assert stream is not None
        deadline = time.monotonic() + 10
        while stream.process is None:  # the first cycle starts the monitor
            assert time.monotonic() < deadline, "the monitor did not start within 10 s"
            time.sleep(0.01)
        process = stream.process
    assert process.poll() is not None
    assert not stream.running
