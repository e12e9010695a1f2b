"""attach and attach_nodes: normalized readings and an inventory in, sample frames out, and
what happens to the devices the inventory does not know."""

from __future__ import annotations

import polars as pl
import pytest

from collector import schemas
from collector.attach import attach, attach_errors, attach_nodes
from collector.inventory import parse_inventory
from collector.site.model import load_preset
from collector.site.topology import Topology, build_topology
from collector.validate import validate
from tests.frames import power_readings

NOW = 1_000.0


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


# --- accelerators and feeds ------------------------------------------------------------------


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


def test_unknown_devices_stay_apart_and_validation_counts_each_of_their_samples(
    demo: Topology,
) -> None:
    inventory = parse_inventory("host,device,entity\nnode-1,GPU-a,B01-H1-R01-K01-N1-A00\n", demo)
    accelerators, _ = attach(
        readings(
            [
                ("node-1", "GPU-a", "accelerator", "power_watts", 300.0),
                # Two devices the inventory does not list, one with two measurements, and one
                # of them under a device name another host uses too: three rows in all.
                ("node-1", "GPU-x", "accelerator", "power_watts", 310.0),
                ("node-1", "GPU-x", "accelerator", "temperature_celsius", 60.0),
                ("node-2", "GPU-x", "accelerator", "power_watts", 320.0),
            ]
        ),
        inventory,
    )
    assert accelerators.schema == pl.Schema(schemas.ACCELERATOR_SAMPLES)
    assert accelerators.select("accelerator_index", "power_watts").rows() == [
        (0, 300.0),
        (None, 310.0),
        (None, 320.0),
    ]
    checked = validate("accelerator", accelerators, demo, NOW)
    assert checked.rejections == {"unknown_entity": 3}  # samples, not rows: counted, not dropped
    assert checked.accepted_samples == 1
    assert checked.frame["accelerator_index"].to_list() == [0]


def test_a_host_specific_row_wins_over_a_device_only_row(demo: Topology) -> None:
    inventory = parse_inventory(
        "host,device,entity\n"
        ",GPU-x,B01-H1-R01-K01-N1-A00\n"  # any host: a UUID is unique on its own
        "node-2,GPU-x,B01-H1-R01-K01-N1-A01\n",
        demo,
    )
    accelerators, _ = attach(
        readings(
            [
                ("node-1", "GPU-x", "accelerator", "power_watts", 100.0),
                ("node-2", "GPU-x", "accelerator", "power_watts", 200.0),
                (None, "GPU-x", "accelerator", "utilization_ratio", 0.5),  # no host at all
            ]
        ),
        inventory,
    )
    assert accelerators.select("accelerator_index", "power_watts", "utilization_ratio").rows() == [
        (0, 100.0, 0.5),  # node-1 and the host-less reading: the device-only row
        (1, 200.0, None),
    ]


def test_the_first_value_of_a_measurement_wins(demo: Topology) -> None:
    inventory = parse_inventory("host,device,entity\npdu,/pdu/1,B01-H1-R01-K01/B\n", demo)
    _, feeds = attach(
        readings(
            [
                ("pdu", "/pdu/1", "pdu", "current_amps", 21.5),
                ("pdu", "/pdu/1", "pdu", "current_amps", 99.0),  # a second outlet bank, say
                ("pdu", "/pdu/1", "pdu", "voltage_volts", 415.0),
            ]
        ),
        inventory,
    )
    assert feeds.select("feed_index", "power_watts", "current_amps", "voltage_volts").rows() == [
        (1, None, 21.5, 415.0)
    ]


def test_no_readings_attach_to_typed_empty_frames(demo: Topology) -> None:
    inventory = parse_inventory("host,device,entity\nn,GPU-a,B01-H1-R01-K01-N1-A00\n", demo)
    accelerators, feeds = attach(readings([]), inventory)
    assert accelerators.is_empty() and feeds.is_empty()
    assert accelerators.schema == pl.Schema(schemas.ACCELERATOR_SAMPLES)
    assert feeds.schema == pl.Schema(schemas.FEED_SAMPLES)


# --- nodes ---------------------------------------------------------------------------------


def test_node_readings_attach_by_device_then_by_whole_host(demo: Topology) -> None:
    inventory = parse_inventory(
        "host,device,entity\n"
        "bmc-1,/redfish/v1/Chassis/1,B01-H1-R01-K01-N1\n"
        "gpu-2,*,B01-H1-R01-K01-N2\n"
        "gpu-3,*,B01-H1-R01-K02-N1\n",
        demo,
    )
    nodes = attach_nodes(
        power_readings(
            [
                ("https://bmc-1", "bmc-1", "/redfish/v1/Chassis/1", "node", 4_100.0),
                ("https://bmc-1", "bmc-1", "/redfish/v1/Chassis/9", "node", 9_999.0),  # unlisted
                ("http://gpu-2:9290", "gpu-2", "dcmi", "node", 3_900.0),
                ("http://gpu-2:9100", "gpu-2", "intel-rapl:0", "cpu_package", 250.0),
                ("http://gpu-2:9100", "gpu-2", "intel-rapl:1", "cpu_package", 240.0),
                # Kepler on the same host sees the same packages: not counted twice
                ("http://gpu-2:8888", "gpu-2", "package-0", "cpu_package", 251.0),
                ("http://gpu-2:8888", "gpu-2", "package-1", "cpu_package", 239.0),
                ("http://gpu-3:9100", "gpu-3", "intel-rapl:0", "cpu_package", 300.0),
                ("http://gpu-3:9100", "gpu-3", "hwmon0/k10temp/temp1", "sensor", 55.0),
                ("http://gpu-9:9100", "gpu-9", "dcmi", "node", 3_000.0),  # unknown host
            ]
        ),
        inventory,
    )
    assert nodes.schema == pl.Schema(schemas.NODE_SAMPLES)
    rack_k02_node_1 = 2
    assert nodes.select("node_index", "power_watts", "cpu_power_watts").rows() == [
        (0, 4_100.0, None),  # a BMC: no CPU figure, missing rather than 0
        (1, 3_900.0, 490.0),  # the first target's packages, summed
        (rack_k02_node_1, None, 300.0),
    ]


def test_an_empty_inventory_attaches_no_node(demo: Topology) -> None:
    inventory = parse_inventory("host,device,entity\n", demo)
    nodes = attach_nodes(power_readings([("t", "h", "dcmi", "node", 1.0)]), inventory)
    assert nodes.height == 0
    assert nodes.schema == pl.Schema(schemas.NODE_SAMPLES)


def test_the_first_target_that_reports_a_nodes_power_wins(demo: Topology) -> None:
    inventory = parse_inventory(
        "host,device,entity\n"
        "gpu-1,*,B01-H1-R01-K01-N1\n"
        "bmc-1,/redfish/v1/Chassis/1,B01-H1-R01-K01-N1\n",
        demo,
    )
    nodes = attach_nodes(
        power_readings(
            [
                # The same server seen by its BMC over Redfish and by IPMI DCMI: one figure,
                # the first target's, never their sum.
                ("https://bmc-1", "bmc-1", "/redfish/v1/Chassis/1", "node", 3_480.0),
                ("http://gpu-1:9290", "gpu-1", "dcmi", "node", 3_510.0),
                ("http://gpu-1:9100", "gpu-1", "intel-rapl:0", "cpu_package", 260.0),
            ]
        ),
        inventory,
    )
    assert nodes.select("node_index", "power_watts", "cpu_power_watts").rows() == [
        (0, 3_480.0, 260.0)
    ]


def test_a_cpu_package_without_a_value_makes_the_cpu_figure_missing_not_0(demo: Topology) -> None:
    inventory = parse_inventory(
        "host,device,entity\ngpu-1,*,B01-H1-R01-K01-N1\ngpu-2,*,B01-H1-R01-K01-N2\n", demo
    )
    nodes = attach_nodes(
        power_readings(
            [
                ("http://gpu-1:9100", "gpu-1", "dcmi", "node", 3_500.0),
                ("http://gpu-1:9100", "gpu-1", "intel-rapl:0", "cpu_package", None),
                # one socket of two read: half the CPUs is not the CPUs' power
                ("http://gpu-2:9100", "gpu-2", "intel-rapl:0", "cpu_package", 250.0),
                ("http://gpu-2:9100", "gpu-2", "intel-rapl:1", "cpu_package", None),
            ]
        ),
        inventory,
    )
    assert nodes.select("node_index", "power_watts", "cpu_power_watts").rows() == [
        (0, 3_500.0, None),
        (1, None, None),
    ]


def test_error_counters_prefer_the_lifetime_ecc_count_and_skip_unknown_devices(
    demo: Topology,
) -> None:
    inventory = parse_inventory(
        "host,device,entity\n"
        "node-1,GPU-aaa,B01-H1-R01-K01-N1-A03\n"
        "node-1,GPU-bbb,B01-H1-R01-K01-N1-A04\n"
        "node-1,GPU-ccc,B01-H1-R01-K01-N1-A05\n",
        demo,
    )
    errors = attach_errors(
        readings(
            [
                ("node-1", "GPU-aaa", "accelerator", "ecc_uncorrected_volatile_errors", 2.0),
                ("node-1", "GPU-aaa", "accelerator", "ecc_uncorrected_aggregate_errors", 9.0),
                ("node-1", "GPU-aaa", "accelerator", "ecc_corrected_aggregate_errors", 500.0),
                ("node-1", "GPU-aaa", "accelerator", "xid_events", 1.0),
                ("node-1", "GPU-bbb", "accelerator", "ecc_uncorrected_volatile_errors", 4.0),
                ("node-1", "GPU-ccc", "accelerator", "power_watts", 300.0),  # no counters
                ("node-1", "GPU-zzz", "accelerator", "xid_events", 3.0),  # not listed
            ]
        ),
        inventory,
    )
    assert errors.select("accelerator_index", "ecc_errors", "xid_errors").rows() == [
        (3, 9.0, 1.0),
        (4, 4.0, None),  # no XID count from it: missing, never 0
    ]
    assert errors.schema == pl.Schema(schemas.ACCELERATOR_ERRORS)
