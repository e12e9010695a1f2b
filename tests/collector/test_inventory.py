"""The inventory: which accelerator, node or rack feed each device real sources see belongs to,
and every problem of an inventory file listed with its line."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from collector.inventory import (
    Inventory,
    InventoryError,
    load_inventory,
    parse_inventory,
    resolve_accelerators,
)
from collector.site.model import load_preset
from collector.site.topology import Topology, build_topology


@pytest.fixture(scope="module")
def demo() -> Topology:
    return build_topology(load_preset("demo"))


def problems(text: str, topology: Topology) -> list[str]:
    """Every problem parse_inventory finds in ``text``, as the operator reads them."""
    with pytest.raises(InventoryError) as raised:
        parse_inventory(text, topology)
    return [str(problem) for problem in raised.value.problems]


# --- resolving rows --------------------------------------------------------------------------


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


def test_inventory_tells_nodes_from_accelerators_and_feeds(demo: Topology) -> None:
    inventory = parse_inventory(
        "host,device,entity\n"
        "gpu-1,*,B01-H1-R01-K01-N1\n"
        "10.0.0.7,/redfish/v1/Chassis/1,B01-H1-R01-K01-N2\n"
        "gpu-1,GPU-aaa,B01-H1-R01-K01-N1-A03\n"
        "pdu-1,/pdu/1,B01-H1-R01-K01/A\n",
        demo,
    )
    assert inventory.nodes.rows() == [("gpu-1", "*", 0), ("10.0.0.7", "/redfish/v1/Chassis/1", 1)]
    assert inventory.accelerators["accelerator_index"].to_list() == [3]
    assert inventory.feeds["feed_index"].to_list() == [0]


def test_cells_are_trimmed_and_blank_rows_skipped(demo: Topology) -> None:
    inventory = parse_inventory(
        " host , device , entity \n\n node-1 , GPU-x , B01-H1-R01-K01-N1-A01 \n , , \n", demo
    )
    assert inventory.accelerators.rows() == [("node-1", "GPU-x", 1)]
    assert inventory.feeds.is_empty() and inventory.nodes.is_empty()


def test_an_inventory_of_only_its_header_has_typed_empty_tables(demo: Topology) -> None:
    inventory = parse_inventory("host,device,entity\n", demo)
    empty = Inventory.empty()
    for parsed, expected in (
        (inventory.accelerators, empty.accelerators),
        (inventory.feeds, empty.feeds),
        (inventory.nodes, empty.nodes),
    ):
        assert parsed.is_empty()
        assert parsed.schema == expected.schema


# --- problems, each with its line ----------------------------------------------------------


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


def test_inventory_node_row_problems_are_listed_with_their_lines(demo: Topology) -> None:
    with pytest.raises(InventoryError) as raised:
        parse_inventory(
            "host,device,entity\n"
            ",*,B01-H1-R01-K01-N1\n"  # a whole host with no host
            "gpu-1,*,B01-H1-R01-K01-N1-A00\n"  # a whole host is a node, not a chip
            "gpu-1,*,B01-H1-R01-K01-N9\n",  # no such node
            demo,
        )
    text = str(raised.value)
    assert "line 2: device '*' (the whole host) needs a host" in text
    assert "line 3: device '*' (the whole host) is only for a node" in text
    assert "line 4: unknown accelerator or node 'B01-H1-R01-K01-N9' in this site" in text


@pytest.mark.parametrize("header", ["", "host,device\n", "device,host,entity\n"])
def test_a_missing_or_wrong_header_is_a_problem_of_line_1(demo: Topology, header: str) -> None:
    assert problems(header + "node-1,GPU-a,B01-H1-R01-K01-N1-A00\n", demo) == [
        "line 1: the header must be host,device,entity"
    ]


def test_problems_keep_the_file_lines_across_blank_rows_and_come_in_line_order(
    demo: Topology,
) -> None:
    assert problems(
        "host,device,entity\n"
        "\n"
        "pdu,*,B01-H1-R01-K01/A\n"  # line 3: '*' names a whole server, not a PDU
        "node-1,,B01-H1-R01-K01-N1-A00\n"  # line 4
        "\n"
        "pdu,/pdu/1,B01-H1-R01-K01/C\n"  # line 6: the demo's racks have feeds A and B
        "node-1,GPU-a,\n",  # line 7
        demo,
    ) == [
        "line 3: device '*' (the whole host) is only for a node",
        "line 4: device and entity are required",
        "line 6: unknown rack feed 'B01-H1-R01-K01/C' in this site",
        "line 7: device and entity are required",
    ]


def test_one_device_cannot_belong_to_two_entities_of_different_kinds(demo: Topology) -> None:
    # The same (host, device) as a chip and as a rack feed: both rows are named.
    assert problems(
        "host,device,entity\nh,d,B01-H1-R01-K01-N1-A00\nh,d,B01-H1-R01-K01/A\n", demo
    ) == [
        "line 2: device 'd' of host 'h' is listed twice",
        "line 3: device 'd' of host 'h' is listed twice",
    ]


# --- the file ------------------------------------------------------------------------------


def test_load_inventory_names_its_file_in_every_problem(demo: Topology, tmp_path: Path) -> None:
    path = tmp_path / "inventory.csv"
    path.write_text("host,device,entity\nnode-1,GPU-a,B01-H1-R01-K01-N1-A99\n", encoding="utf-8")
    with pytest.raises(InventoryError) as raised:
        load_inventory(path, demo)
    assert raised.value.source == str(path)
    assert str(raised.value).startswith(f"{path}: 1 problem(s)\n")


def test_an_unreadable_inventory_file_is_one_problem_not_a_traceback(
    demo: Topology, tmp_path: Path
) -> None:
    missing = tmp_path / "nowhere" / "inventory.csv"
    with pytest.raises(InventoryError) as raised:
        load_inventory(missing, demo)
    assert str(raised.value) == (
        f"{missing}: 1 problem(s)\n  (file): cannot read: No such file or directory"
    )
