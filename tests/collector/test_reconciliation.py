"""Servers in the roll-up: a rack of real payloads on loopback (two rack PDUs, a Dell iDRAC and
an HPE iLO) reconciled, and node_exporter's RAPL counters as the servers' CPU power. (The
inventory's node rows and what attaches to a node: test_inventory.py, test_attach.py.)"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import polars as pl
import pytest

from collector.collectors import build_sources
from collector.pipeline import Pipeline
from collector.site.model import load_preset
from collector.site.topology import Topology, build_topology
from tests.collector.sources.redfish_server import RedfishServer
from tests.collector.sources.test_redfish import (
    DELL_CHASSIS,
    HPE_CHASSIS,
    dell_routes,
    hpe_routes,
    mockup,
)
from tests.loopback import ExporterServer

PDU = "/redfish/v1/PowerEquipment/RackPDUs/1"
PUBLIC_PDU_CHOSEN_WATTS = 2734.8  # public-pdu's PDUPower sensor: see choose_pdu_power
DELL_WATTS = 429.0  # PowerConsumedWatts of the iDRAC capture
HPE_WATTS = 221.0  # PowerConsumedWatts of the iLO capture


@pytest.fixture(scope="module")
def demo() -> Topology:
    return build_topology(load_preset("demo"))


# --- a rack of real payloads, reconciled -------------------------------------------------------


@pytest.fixture
def rack_of_bmcs(shared_fixtures: Path) -> Iterator[dict[str, RedfishServer]]:
    """Rack B01-H1-R01-K01: public-pdu as feed A and as feed B, a Dell and an HPE server."""
    with ExitStack() as stack:
        servers = {
            "pdu-a": RedfishServer(mockup(shared_fixtures, "public-pdu")),
            "pdu-b": RedfishServer(mockup(shared_fixtures, "public-pdu")),
            "dell": RedfishServer(routes=dell_routes(shared_fixtures)),
            "hpe": RedfishServer(routes=hpe_routes(shared_fixtures)),
        }
        for server in servers.values():
            stack.enter_context(server)
        yield servers


def test_a_rack_of_real_pdus_and_bmcs_reconciles(
    demo: Topology, rack_of_bmcs: dict[str, RedfishServer], tmp_path: Path
) -> None:
    def host(name: str) -> str:
        return rack_of_bmcs[name].url.removeprefix("http://")

    (tmp_path / "inventory.csv").write_text(
        "host,device,entity\n"
        f"{host('pdu-a')},{PDU},B01-H1-R01-K01/A\n"
        f"{host('pdu-b')},{PDU},B01-H1-R01-K01/B\n"
        f"{host('dell')},{DELL_CHASSIS},B01-H1-R01-K01-N1\n"
        f"{host('hpe')},{HPE_CHASSIS},B01-H1-R01-K01-N2\n",
        encoding="utf-8",
    )
    targets = "".join(
        f"      - {{url: '{server.url}', name: {name}, auth: none, allow_plain_http: true,\n"
        "         crawl_prefixes: ['/redfish/v1']}\n"
        for name, server in rack_of_bmcs.items()
    )
    collectors = tmp_path / "collectors.yaml"
    collectors.write_text(
        f"inventory: inventory.csv\nsources:\n  - kind: redfish\n    targets:\n{targets}",
        encoding="utf-8",
    )
    clock = iter([1_000.0])
    pipeline = Pipeline(demo, build_sources(collectors, demo), clock=lambda: next(clock))
    snapshot = pipeline.run_cycle()

    assert snapshot.nodes["power_watts"][:2].to_list() == [DELL_WATTS, HPE_WATTS]
    assert snapshot.nodes["power_watts"][2:].null_count() == demo.nodes.height - 2
    rack = snapshot.racks.row(0, named=True)
    pdus = 2 * PUBLIC_PDU_CHOSEN_WATTS
    assert rack["power_watts"] == pytest.approx(pdus)
    assert rack["node_power_watts"] == pytest.approx(DELL_WATTS + HPE_WATTS)
    assert rack["nodes_reporting_ratio"] == 1.0
    assert rack["unattributed_power_watts"] == pytest.approx(pdus - DELL_WATTS - HPE_WATTS)
    # The rest of the site reports nothing: its racks cannot be reconciled, and the site
    # total covers the one rack that can.
    assert snapshot.racks["unattributed_power_watts"].null_count() == demo.racks.height - 1
    site = snapshot.site.row(0, named=True)
    assert site["unattributed_power_watts"] == pytest.approx(rack["unattributed_power_watts"])
    assert site["nodes_reporting_ratio"] == pytest.approx(2 / demo.nodes.height)
    accepted = snapshot.accepted.filter(pl.col("kind") == "node")["samples"].sum()
    assert accepted == 2


# --- RAPL scraped from node_exporter becomes a server's CPU power -----------------------------

NODE_EXPORTER_CAPTURE = "prometheus-node_exporter/collector/fixtures/e2e-output.txt"
RAPL_PACKAGE = (
    'node_rapl_package_joules_total{index="0",'
    'path="collector/fixtures/sys/class/powercap/intel-rapl:0"}'
)
# The capture was taken with the uname collector off; deployed node_exporters have it on, and
# its nodename is the host the inventory names.
UNAME = (
    "# TYPE node_uname_info gauge\n"
    'node_uname_info{domainname="(none)",machine="x86_64",nodename="gpu-node-017",'
    'release="6.1.0",sysname="Linux",version="#1 SMP"} 1\n'
)


def test_node_exporter_rapl_counters_become_the_servers_cpu_power(
    demo: Topology, shared_fixtures: Path, tmp_path: Path
) -> None:
    capture = (shared_fixtures / NODE_EXPORTER_CAPTURE).read_text(encoding="utf-8")
    start = 240_422.366267
    assert f"{RAPL_PACKAGE} {start}\n" in capture
    with ExporterServer((UNAME + capture).encode()) as exporter:
        (tmp_path / "inventory.csv").write_text(
            "host,device,entity\ngpu-node-017,*,B01-H1-R01-K01-N2\n", encoding="utf-8"
        )
        collectors = tmp_path / "collectors.yaml"
        collectors.write_text(
            "inventory: inventory.csv\nsources:\n  - kind: prometheus\n"
            f"    targets: [{{url: '{exporter.url}', exporter: node}}]\n",
            encoding="utf-8",
        )
        clock = iter([1_000.0, 1_010.0, 1_020.0])
        pipeline = Pipeline(demo, build_sources(collectors, demo), clock=lambda: next(clock))
        first = pipeline.run_cycle()
        assert first.nodes["cpu_power_watts"][1] is None  # one counter value is no rate
        exporter.body = (UNAME + capture.replace(f"{start}\n", f"{start + 1_500.0}\n")).encode()
        second = pipeline.run_cycle()
        assert second.nodes["cpu_power_watts"][1] == pytest.approx(150.0)  # 1,500 J in 10 s
        assert second.nodes["cpu_power_watts"].null_count() == demo.nodes.height - 1
        # an exporter restart: the counter starts again, reported and not read as a rate
        exporter.body = (UNAME + capture.replace(f"{start}\n", "12.5\n")).encode()
        third = pipeline.run_cycle()
        assert third.nodes["cpu_power_watts"][1] is None
        problems = dict(zip(third.problems["reason"], third.problems["problems"], strict=True))
        assert problems["counter_reset"] == 1.0
