"""Real sources into the roll-up: inventory, attach, the collectors file, and a Redfish PDU
served on loopback feeding one rack feed of the demo site."""

from __future__ import annotations

import http.server
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from collector import schemas
from collector.attach import attach
from collector.collectors import CollectorsError, build_sources, parse_collectors
from collector.inventory import InventoryError, parse_inventory, resolve_accelerators
from collector.pipeline import Pipeline
from collector.site.model import load_preset
from collector.site.topology import Topology, build_topology
from tests.collector.sources.redfish_server import RedfishServer

PDU = "/redfish/v1/PowerEquipment/RackPDUs/1"
PUBLIC_PDU_CHOSEN_WATTS = 2734.8  # public-pdu's PDUPower sensor: see choose_pdu_power


@pytest.fixture(scope="module")
def demo() -> Topology:
    return build_topology(load_preset("demo"))


def readings(rows: list[tuple[str | None, str, str, str, float]]) -> pl.DataFrame:
    """READINGS rows from (host, device, device_kind, metric, value)."""
    return pl.DataFrame(
        {
            "source": ["test"] * len(rows),
            "target": ["t"] * len(rows),
            "host": [row[0] for row in rows],
            "device": [row[1] for row in rows],
            "device_kind": [row[2] for row in rows],
            "metric": [row[3] for row in rows],
            "value": [row[4] for row in rows],
            "unit": ["x"] * len(rows),
            "estimated": [False] * len(rows),
            "timestamp_seconds": [None] * len(rows),
        },
        schema=dict(schemas.READINGS),
    )


def test_accelerator_ids_resolve_to_their_index(demo: Topology) -> None:
    names = pl.Series(
        [
            "B01-H1-R01-K01-N1-A00",
            "B01-H1-R01-K01-N2-A15",
            "B01-H1-R01-K01-N1-A16",
            "nope-A01",
            "B01-H1-R01-K01-N1",
        ]
    )
    assert resolve_accelerators(demo, names).to_list() == [0, 31, None, None, None]


def test_inventory_resolves_accelerators_and_feeds(demo: Topology) -> None:
    inventory = parse_inventory(
        "host,device,entity\n"
        "node-1,GPU-aaa,B01-H1-R01-K01-N1-A03\n"
        ",GPU-bbb,B01-H1-R01-K01-N2-A00\n"
        "10.0.0.5,/redfish/v1/PowerEquipment/RackPDUs/1,B01-H1-R01-K02/B\n",
        demo,
    )
    assert inventory.accelerators.rows() == [("node-1", "GPU-aaa", 3), ("", "GPU-bbb", 16)]
    assert inventory.feeds.rows() == [("10.0.0.5", "/redfish/v1/PowerEquipment/RackPDUs/1", 3)]


def test_inventory_lists_every_problem_with_its_line(demo: Topology) -> None:
    with pytest.raises(InventoryError) as raised:
        parse_inventory(
            "host,device,entity\n"
            "node-1,GPU-aaa,B01-H1-R01-K01-N1-A99\n"  # no such accelerator
            "pdu,/pdu/1,B01-H1-R01-K99/A\n"  # no such rack
            "node-1,GPU-aaa,B01-H1-R01-K01-N1-A01\n"  # the same device twice
            "only,two\n",
            demo,
        )
    text = str(raised.value)
    assert "line 2: unknown accelerator 'B01-H1-R01-K01-N1-A99'" in text
    assert "line 3: unknown rack feed 'B01-H1-R01-K99/A'" in text
    assert "line 4: device 'GPU-aaa' of host 'node-1' is listed twice" in text
    assert "line 5: expected 3 columns, found 2" in text


def test_attach_widens_readings_and_keeps_unknown_devices_for_validation(
    demo: Topology,
) -> None:
    inventory = parse_inventory(
        "host,device,entity\nnode-1,GPU-aaa,B01-H1-R01-K01-N1-A03\npdu,/pdu/1,B01-H1-R01-K01/A\n",
        demo,
    )
    accelerators, feeds = attach(
        readings(
            [
                ("node-1", "GPU-aaa", "accelerator", "power_watts", 312.5),
                ("node-1", "GPU-aaa", "accelerator", "temperature_celsius", 61.0),
                ("node-1", "GPU-zzz", "accelerator", "power_watts", 100.0),  # not listed
                ("node-1", "GPU-aaa", "accelerator", "clock_sm_hertz", 1.4e9),  # not rolled up
                ("pdu", "/pdu/1", "pdu", "power_watts", 12_000.0),
                ("pdu", "/pdu/1", "pdu", "energy_joules", 3.6e9),
                ("other", "/pdu/1", "pdu", "power_watts", 9.0),  # same path, another host
            ]
        ),
        inventory,
    )
    first = accelerators.row(0, named=True)
    assert first["accelerator_index"] == 3
    assert first["power_watts"] == 312.5
    assert first["temperature_celsius"] == 61.0
    assert first["utilization_ratio"] is None  # not measured: missing, never 0
    unknown = accelerators.row(1, named=True)
    assert unknown["accelerator_index"] is None  # validation counts it as unknown_entity
    assert unknown["power_watts"] == 100.0
    assert feeds.rows(named=True) == [
        {
            "feed_index": 0,
            "timestamp_seconds": None,
            "power_watts": 12_000.0,
            "current_amps": None,
            "voltage_volts": None,
            "meter_energy_joules": 3.6e9,
        }
    ]


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
    body = (shared_fixtures / DCGM_CAPTURE).read_bytes()

    class Exporter(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Exporter)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/metrics"
    finally:
        server.shutdown()
        server.server_close()


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
