"""The inventory: which topology entity each device that real sources see belongs to.

An inventory is a CSV with three columns, one row per device:

    host,device,entity
    gpu-node-017,GPU-8f3a61c2-0b4e-4c6a-9d7e-2f1e5a9c0b11,B01-H1-R01-K01-N1-A03
    ,GPU-5d1c0e77-...,B01-H1-R01-K01-N2-A00
    10.20.1.15,/redfish/v1/PowerEquipment/RackPDUs/1,B01-H1-R01-K01/A

* ``host`` is what the reading names as its host (a hostname, a BMC or PDU address); empty
  when the device identity is unique on its own (a GPU UUID).
* ``device`` is the reading's device: a GPU UUID, a Neuron device (``neuron3``), a Redfish
  resource path.
* ``entity`` is a global topology id: an accelerator (``B01-H1-R01-K01-N1-A03``), a node
  (``B01-H1-R01-K01-N1``: a server, whose BMC and CPUs report its input and CPU power) or a
  rack PDU feed (``B01-H1-R01-K01/A``: rack, slash, feed).
* For a node, ``device`` may be ``*``: every node-level reading of that host (its IPMI DCMI
  power, its RAPL packages) belongs to the node, whatever the device is called. A BMC seen
  over Redfish names its server by chassis path, so list that path instead when one BMC
  serves several servers.

    gpu-node-017,*,B01-H1-R01-K01-N1
    10.20.3.17,/redfish/v1/Chassis/System.Embedded.1,B01-H1-R01-K01-N1

Loading validates every row against the topology and lists every problem with its line;
identity never rests on a GPU index alone.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from collector.config_errors import (
    MAX_INVENTORY_BYTES,
    ConfigError,
    ConfigProblem,
    read_config,
    shown,
)
from collector.site.topology import Topology


def _row_problem(line: int | None, message: str) -> ConfigProblem:
    return ConfigProblem("", message, line)


class InventoryError(ConfigError):
    """Every problem found in an inventory, each with its line."""


@dataclass(frozen=True)
class Inventory:
    """Resolved rows: (host, device) -> accelerator index or feed index."""

    accelerators: pl.DataFrame  # host (may be ""), device, accelerator_index
    feeds: pl.DataFrame  # host (may be ""), device, feed_index
    nodes: pl.DataFrame  # host (may be ""), device (may be "*": the whole host), node_index

    @classmethod
    def empty(cls) -> Inventory:
        def table(key: str) -> pl.DataFrame:
            return pl.DataFrame(schema={"host": pl.String, "device": pl.String, key: pl.UInt32})

        return cls(
            accelerators=table("accelerator_index"),
            feeds=table("feed_index"),
            nodes=table("node_index"),
        )


def resolve_accelerators(topology: Topology, names: pl.Series) -> pl.Series:
    """Index of each accelerator id (``<node>-A<n>``); null where unknown."""
    frame = pl.DataFrame({"name": names.cast(pl.String)}).with_columns(
        node=pl.col("name").str.extract(r"^(.*)-A\d+$", 1),
        local=pl.col("name").str.extract(r"-A(\d+)$", 1).cast(pl.Int64, strict=False),
    )
    node_index = topology.resolve("node", frame["node"])
    nodes = topology.nodes
    first = pl.lit(nodes["first_accelerator_index"].cast(pl.Int64)).gather(pl.col("node_index"))
    count = pl.lit(nodes["accelerator_count"].cast(pl.Int64)).gather(pl.col("node_index"))
    return (
        frame.with_columns(node_index=node_index)
        .select(
            pl.when(
                pl.col("node_index").is_not_null()
                & pl.col("local").is_not_null()
                & (pl.col("local") < pl.when(pl.col("node_index").is_not_null()).then(count))
            )
            .then(first + pl.col("local"))
            .cast(pl.UInt32)
            .alias("accelerator_index")
        )
        .to_series()
    )


def parse_inventory(text: str, topology: Topology, source: str = "<inventory>") -> Inventory:
    """Parse and resolve an inventory CSV; raise InventoryError listing every problem."""
    reader = csv.reader(text.splitlines())
    try:
        rows = list(reader)
    except csv.Error as failure:  # a field past csv's limit: a binary file, not an inventory
        problem = _row_problem(reader.line_num, f"not CSV: {failure}")
        raise InventoryError(source, [problem]) from None
    problems: list[ConfigProblem] = []
    if not rows or [cell.strip() for cell in rows[0]] != ["host", "device", "entity"]:
        raise InventoryError(source, [_row_problem(1, "the header must be host,device,entity")])
    hosts, devices, entities, lines = [], [], [], []
    for number, row in enumerate(rows[1:], start=2):
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) != 3:
            problems.append(_row_problem(number, f"expected 3 columns, found {len(row)}"))
            continue
        host, device, entity = (cell.strip() for cell in row)
        if not device or not entity:
            problems.append(_row_problem(number, "device and entity are required"))
            continue
        hosts.append(host)
        devices.append(device)
        entities.append(entity)
        lines.append(number)
    frame = pl.DataFrame(
        {"host": hosts, "device": devices, "entity": entities, "line": lines},
        schema={"host": pl.String, "device": pl.String, "entity": pl.String, "line": pl.Int64},
    )
    is_feed = pl.col("entity").str.contains("/", literal=True)
    feeds = frame.filter(is_feed).with_columns(
        rack=pl.col("entity").str.split("/").list.first(),
        feed=pl.col("entity").str.split("/").list.last(),
    )
    feeds = feeds.with_columns(feed_index=topology.resolve_feed(feeds["rack"], feeds["feed"]))
    others = frame.filter(~is_feed)
    others = others.with_columns(node_index=topology.resolve("node", others["entity"]))
    nodes = others.filter(pl.col("node_index").is_not_null())
    accelerators = others.filter(pl.col("node_index").is_null())
    accelerators = accelerators.with_columns(
        accelerator_index=resolve_accelerators(topology, accelerators["entity"])
    )
    for kind, table, column in (
        ("accelerator", accelerators, "accelerator_index"),
        ("rack feed", feeds, "feed_index"),
    ):
        for line, entity in table.filter(pl.col(column).is_null()).select("line", "entity").rows():
            what = kind
            if kind == "accelerator" and not re.search(r"-A\d+$", entity):
                what = "accelerator or node"
            problems.append(_row_problem(line, f"unknown {what} {shown(entity)} in this site"))
    for line in nodes.filter(pl.col("device").eq("*") & pl.col("host").eq("")).get_column("line"):
        problems.append(_row_problem(line, "device '*' (the whole host) needs a host"))
    for table in (accelerators, feeds):
        for line in table.filter(pl.col("device") == "*").get_column("line"):
            problems.append(_row_problem(line, "device '*' (the whole host) is only for a node"))
    both = pl.concat(
        [table.select("host", "device", "line") for table in (accelerators, feeds, nodes)]
    )
    repeated = both.filter(pl.struct("host", "device").is_duplicated())
    for line, host, device in repeated.select("line", "host", "device").rows():
        problems.append(
            _row_problem(line, f"device {shown(device)} of host {shown(host)} is listed twice")
        )
    # Two devices read as one accelerator (or one PDU feed) would count its power twice.
    for table, column, what in (
        (accelerators, "accelerator_index", "accelerator"),
        (feeds, "feed_index", "rack feed"),
    ):
        known = table.filter(pl.col(column).is_not_null())
        first = known.group_by(column).agg(pl.col("line").min().alias("first_line"))
        shared = known.join(first, on=column).filter(pl.col("line") != pl.col("first_line"))
        for line, entity, first_line in shared.select("line", "entity", "first_line").rows():
            problems.append(
                _row_problem(
                    line,
                    f"{what} {shown(entity)} is already the entity of line {first_line}: "
                    "one device per entity",
                )
            )
    if problems:
        raise InventoryError(source, sorted(problems, key=lambda problem: problem.line or 0))
    return Inventory(
        accelerators=accelerators.select("host", "device", "accelerator_index"),
        feeds=feeds.select("host", "device", "feed_index"),
        nodes=nodes.select("host", "device", "node_index"),
    )


def load_inventory(path: Path, topology: Topology) -> Inventory:
    text = read_config(path, InventoryError, max_bytes=MAX_INVENTORY_BYTES)
    return parse_inventory(text, topology, str(path))
