"""Expand a site file into the topology: indexed frames for every level of the campus.

Every entity gets a dense index at its level, assigned in site order so that the children of
any parent occupy one contiguous index range. Identities are global strings built from the
path (building ``B07``, hall ``B07-H2``, row ``B07-H2-R14``, rack ``B07-H2-R14-K03``, node
``B07-H2-R14-K03-N1``, accelerator ``B07-H2-R14-K03-N1-A05``), so a label never has to be read
together with its parents to be unique.

Capacities are fixed here, once: feeds from their breakers, racks from their feeds (N-1),
rows and halls from their racks unless the site says otherwise, buildings from their lineups.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import polars as pl

from collector.site.model import Site

IndexArray = npt.NDArray[np.uint32]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Topology:
    """The campus as frames. Index columns are UInt32; ``*_index`` equals the row number."""

    site: Site
    buildings: pl.DataFrame  # building_index, building, capacity_watts
    lineups: pl.DataFrame  # lineup_index, building_index, lineup, capacity_watts
    halls: pl.DataFrame  # hall_index, hall, building_index, capacity_watts
    rows: pl.DataFrame  # row_index, row, hall_index, building_index, capacity_watts
    racks: pl.DataFrame  # rack_index, rack, row/hall/building_index, capacity_watts, ...
    feeds: pl.DataFrame  # feed_index, rack_index, lineup_index, feed, electrical ratings
    nodes: pl.DataFrame  # node_index, node, rack_index, host ratings, accelerator range
    accelerators: pl.DataFrame  # accelerator_index, node_index, rack_index, ratings
    _uniform: dict[tuple[str, str], float | None] = field(
        default_factory=dict, repr=False, compare=False
    )
    _names: dict[str, pl.DataFrame] = field(default_factory=dict, repr=False, compare=False)
    _offsets: dict[str, npt.NDArray[np.int64]] = field(
        default_factory=dict, repr=False, compare=False
    )

    def uniform_value(self, kind: str, column: str) -> float | None:
        """The one value a column takes across a level (accelerator, feed, building), or None
        when entities differ. Cached: the topology never changes."""
        if (kind, column) not in self._uniform:
            values = getattr(self, f"{kind}s").get_column(column).unique()
            self._uniform[(kind, column)] = float(values[0]) if values.len() == 1 else None
        return self._uniform[(kind, column)]

    def first_children(self, child: str, parent: str) -> npt.NDArray[np.int64]:
        """Per entity of the ``parent`` level (node, rack), the index of its first entity of
        the ``child`` level (accelerator, node, feed). Children of one parent are one
        contiguous range and every parent has at least one, so these offsets reduce a
        per-child array per parent with ``np.*.reduceat``. Cached: the topology never
        changes."""
        key = f"{child}/{parent}"
        if key not in self._offsets:
            of_parent = getattr(self, f"{child}s").get_column(f"{parent}_index").to_numpy()
            parents = getattr(self, f"{parent}s").height
            self._offsets[key] = np.searchsorted(of_parent, np.arange(parents)).astype(np.int64)
        return self._offsets[key]

    @property
    def accelerator_count(self) -> int:
        return self.accelerators.height

    def accelerator_names(self, indexes: pl.Series) -> pl.Series:
        """Global accelerator ids for the given indexes, built on demand (2 M strings are not
        kept around for a tier that is off by default)."""
        frame = pl.DataFrame({"accelerator_index": indexes.cast(pl.UInt32)})
        return frame.select(
            pl.concat_str(
                [
                    self.nodes["node"].gather(
                        self.accelerators["node_index"].gather(frame["accelerator_index"])
                    ),
                    pl.lit("-A"),
                    self.accelerators["local_index"]
                    .gather(frame["accelerator_index"])
                    .cast(pl.String)
                    .str.zfill(2),
                ]
            ).alias("accelerator")
        )["accelerator"]

    def names(self, level: str) -> pl.DataFrame:
        """The identity columns of every entity of a level (building, hall, row, rack, feed,
        node...), one row per entity in index order. Built once per level (the topology never
        changes), except accelerators': 2 M rows are built on demand and not kept."""
        if level in self._names:
            return self._names[level]
        names = self._build_names(level)
        if level != "accelerator":
            self._names[level] = names
        return names

    def _build_names(self, level: str) -> pl.DataFrame:
        if level == "site":
            return pl.DataFrame()
        if level == "building":
            return self.buildings.select("building")
        if level == "accelerator":
            nodes = self.names("node").select(pl.all().gather(self.accelerators["node_index"]))
            return nodes.with_columns(
                accelerator=self.accelerator_names(self.accelerators["accelerator_index"])
            )
        parent_level, parent_index, own = {
            "lineup": ("building", "building_index", "lineup"),
            "hall": ("building", "building_index", "hall"),
            "row": ("hall", "hall_index", "row"),
            "rack": ("row", "row_index", "rack"),
            "feed": ("rack", "rack_index", "feed"),
            "node": ("rack", "rack_index", "node"),
        }[level]
        table: pl.DataFrame = getattr(self, f"{level}s")
        parents = self.names(parent_level)
        return parents.select(pl.all().gather(table[parent_index])).with_columns(table[own])

    def resolve(self, level: str, names: pl.Series) -> pl.Series:
        """Index of each name at a level (rack, node, building...); null where unknown."""
        table = getattr(self, f"{level}s").select(level, f"{level}_index")
        looked_up = (
            pl.DataFrame({level: names.cast(pl.String)})
            .join(table, on=level, how="left", maintain_order="left")
            .get_column(f"{level}_index")
        )
        return looked_up

    def resolve_feed(self, racks: pl.Series, feeds: pl.Series) -> pl.Series:
        """Index of each (rack, feed letter) pair; null where unknown."""
        table = self.feeds.join(self.racks.select("rack_index", "rack"), on="rack_index").select(
            "rack", "feed", "feed_index"
        )
        return (
            pl.DataFrame({"rack": racks.cast(pl.String), "feed": feeds.cast(pl.String)})
            .join(table, on=["rack", "feed"], how="left", maintain_order="left")
            .get_column("feed_index")
        )


def _index(count: int) -> pl.Series:
    return pl.Series(np.arange(count, dtype=np.uint32))


def build_topology(site: Site, only_buildings: Collection[str] | None = None) -> Topology:
    """Expand templates and counts into frames. Pure: the same site gives the same frames.

    ``only_buildings``: these alone (a shard's share, collector.shard); their entities keep the
    site's order, and ``site`` stays the whole site (its contract, its other buildings).
    """
    building_rows: list[tuple[str, float]] = []
    lineup_rows: list[tuple[int, str, float]] = []
    hall_rows: list[tuple[str, int, float | None]] = []
    row_rows: list[tuple[str, int, int, float | None]] = []
    # Racks are produced per row in bulk: (row index, rack type name, count).
    rack_blocks: list[tuple[int, int, int, str, int]] = []

    named = [
        (building, type_name)
        for building, type_name in site.building_names()
        if only_buildings is None or building in only_buildings
    ]
    for building_index, (building, type_name) in enumerate(named):
        building_type = site.building_types[type_name]
        building_rows.append((building, building_type.effective_it_capacity_watts))
        for lineup in building_type.lineups:
            lineup_rows.append((building_index, lineup.name, lineup.capacity_watts))
        hall_number = 0
        for group in building_type.halls:
            for _ in range(group.count):
                hall_number += 1
                hall = f"{building}-H{hall_number}"
                hall_index = len(hall_rows)
                hall_rows.append((hall, building_index, group.hall_capacity_watts))
                for row_number in range(1, group.rows + 1):
                    row_index = len(row_rows)
                    row_rows.append(
                        (
                            f"{hall}-R{row_number:02d}",
                            hall_index,
                            building_index,
                            group.row_capacity_watts,
                        )
                    )
                    rack_blocks.append(
                        (
                            row_index,
                            hall_index,
                            building_index,
                            group.rack_type,
                            group.racks_per_row,
                        )
                    )

    buildings = pl.DataFrame(
        {
            "building_index": _index(len(building_rows)),
            "building": [name for name, _ in building_rows],
            "capacity_watts": [capacity for _, capacity in building_rows],
        }
    )
    lineups = pl.DataFrame(
        {
            "lineup_index": _index(len(lineup_rows)),
            "building_index": pl.Series([b for b, _, _ in lineup_rows], dtype=pl.UInt32),
            "lineup": [name for _, name, _ in lineup_rows],
            "capacity_watts": [capacity for _, _, capacity in lineup_rows],
        }
    )

    # Racks, feeds, nodes: built per rack type in numpy, never per accelerator in Python.
    row_names = [name for name, _, _, _ in row_rows]
    rack_row = np.repeat(
        np.array([block[0] for block in rack_blocks], dtype=np.uint32),
        [block[4] for block in rack_blocks],
    )
    rack_position = np.concatenate(
        [np.arange(1, block[4] + 1, dtype=np.uint32) for block in rack_blocks]
    )
    rack_type_names = np.repeat(
        np.array([block[3] for block in rack_blocks]), [block[4] for block in rack_blocks]
    )
    rack_count = rack_row.size
    rack_names = [
        f"{row_names[r]}-K{p:02d}"
        for r, p in zip(rack_row.tolist(), rack_position.tolist(), strict=True)
    ]
    row_hall = np.array([hall for _, hall, _, _ in row_rows], dtype=np.uint32)
    row_building = np.array([b for _, _, b, _ in row_rows], dtype=np.uint32)

    rack_type_list = sorted(site.rack_types)
    type_code = np.searchsorted(np.array(rack_type_list), rack_type_names)

    def per_rack_type(values: list[float]) -> FloatArray:
        return np.asarray(values, dtype=np.float64)[type_code]

    rack_types = [site.rack_types[name] for name in rack_type_list]
    node_types = [site.node_types[rack.node_type] for rack in rack_types]
    accelerator_types = [site.accelerator_types[node.accelerator_type] for node in node_types]
    nodes_per_rack = np.asarray([rack.nodes for rack in rack_types], dtype=np.uint32)[type_code]
    accelerators_per_node = np.asarray([node.accelerators for node in node_types], dtype=np.uint32)[
        type_code
    ]

    racks = pl.DataFrame(
        {
            "rack_index": _index(rack_count),
            "rack": rack_names,
            "row_index": rack_row,
            "hall_index": row_hall[rack_row],
            "building_index": row_building[rack_row],
            "rack_type": rack_type_names.astype(str),
            "capacity_watts": per_rack_type([r.effective_capacity_watts for r in rack_types]),
            "conversion_efficiency": per_rack_type([r.conversion_efficiency for r in rack_types]),
            "node_count": nodes_per_rack,
            "accelerator_count": nodes_per_rack * accelerators_per_node,
        }
    )

    # Feeds: each rack type contributes its PDUs; lineups are matched by feed name.
    feed_frames = []
    for code, rack_type in enumerate(rack_types):
        these = np.flatnonzero(type_code == code).astype(np.uint32)
        for pdu in rack_type.pdus:
            feed_frames.append(
                pl.DataFrame(
                    {
                        "rack_index": these,
                        "feed": pl.Series([pdu.feed] * these.size, dtype=pl.String),
                        "voltage_volts": np.full(these.size, pdu.voltage_volts),
                        "phases": np.full(these.size, pdu.phases, dtype=np.uint8),
                        "breaker_amps": np.full(these.size, pdu.breaker_amps),
                        "capacity_watts": np.full(these.size, pdu.capacity_watts),
                    }
                )
            )
    feeds = (
        pl.concat(feed_frames)
        .sort("rack_index", "feed")
        .with_columns(building_index=pl.lit(racks["building_index"]).gather(pl.col("rack_index")))
        .join(
            lineups.select("building_index", pl.col("lineup").alias("feed"), "lineup_index"),
            on=["building_index", "feed"],
            how="left",
            maintain_order="left",  # row order becomes feed_index: keep racks' feeds together
        )
        .drop("building_index")
    )
    feeds = feeds.select(
        pl.Series("feed_index", np.arange(feeds.height, dtype=np.uint32)), pl.all()
    )

    node_rack = np.repeat(np.arange(rack_count, dtype=np.uint32), nodes_per_rack)
    starts = np.cumsum(nodes_per_rack) - nodes_per_rack
    node_position = (np.arange(node_rack.size, dtype=np.uint32) - starts[node_rack] + 1).astype(
        np.uint32
    )
    node_accelerators = accelerators_per_node[node_rack]
    node_type_code = type_code[node_rack]
    node_count = node_rack.size
    rack_name_series = pl.Series(rack_names)
    nodes = (
        pl.DataFrame(
            {
                "node_index": _index(node_count),
                "rack_index": node_rack,
                "accelerator_count": node_accelerators,
                "first_accelerator_index": (
                    np.cumsum(node_accelerators) - node_accelerators
                ).astype(np.uint32),
                "host_idle_watts": np.asarray([n.host_idle_watts for n in node_types])[
                    node_type_code
                ],
                "host_max_watts": np.asarray([n.host_max_watts for n in node_types])[
                    node_type_code
                ],
                "capacity_watts": np.asarray(
                    [
                        n.accelerators * a.tdp_watts
                        for n, a in zip(node_types, accelerator_types, strict=True)
                    ]
                )[node_type_code],
                "_position": node_position,
            }
        )
        .with_columns(
            node=pl.concat_str(
                [
                    pl.lit(rack_name_series).gather(pl.col("rack_index")),
                    pl.lit("-N"),
                    pl.col("_position").cast(pl.String),
                ]
            )
        )
        .drop("_position")
        .select("node_index", "node", pl.exclude("node_index", "node"))
    )

    accelerator_node = np.repeat(np.arange(node_count, dtype=np.uint32), node_accelerators)
    accelerator_starts = np.cumsum(node_accelerators) - node_accelerators
    accelerator_code = node_type_code[accelerator_node]

    def per_accelerator(values: list[float]) -> FloatArray:
        return np.asarray(values, dtype=np.float64)[accelerator_code]

    accelerators = pl.DataFrame(
        {
            "accelerator_index": _index(accelerator_node.size),
            "node_index": accelerator_node,
            "rack_index": node_rack[accelerator_node],
            "local_index": (
                np.arange(accelerator_node.size, dtype=np.uint32)
                - accelerator_starts[accelerator_node]
            ).astype(np.uint8),
            "tdp_watts": per_accelerator([a.tdp_watts for a in accelerator_types]),
            "idle_watts": per_accelerator([a.idle_watts for a in accelerator_types]),
            "memory_bytes": per_accelerator([float(a.memory_bytes) for a in accelerator_types]),
            "max_temperature_celsius": per_accelerator(
                [a.max_temperature_celsius for a in accelerator_types]
            ),
        }
    )

    # Row and hall capacity: explicit in the site, else the sum of their racks.
    rack_capacity_by_row = np.bincount(
        rack_row, weights=racks["capacity_watts"].to_numpy(), minlength=len(row_rows)
    )
    rows = pl.DataFrame(
        {
            "row_index": _index(len(row_rows)),
            "row": row_names,
            "hall_index": row_hall,
            "building_index": row_building,
            "capacity_watts": [
                explicit if explicit is not None else float(summed)
                for (_, _, _, explicit), summed in zip(row_rows, rack_capacity_by_row, strict=True)
            ],
        }
    )
    rack_capacity_by_hall = np.bincount(
        row_hall, weights=rows["capacity_watts"].to_numpy(), minlength=len(hall_rows)
    )
    halls = pl.DataFrame(
        {
            "hall_index": _index(len(hall_rows)),
            "hall": [name for name, _, _ in hall_rows],
            "building_index": pl.Series([b for _, b, _ in hall_rows], dtype=pl.UInt32),
            "capacity_watts": [
                explicit if explicit is not None else float(summed)
                for (_, _, explicit), summed in zip(hall_rows, rack_capacity_by_hall, strict=True)
            ],
        }
    )
    return Topology(
        site=site,
        buildings=buildings,
        lineups=lineups,
        halls=halls,
        rows=rows,
        racks=racks,
        feeds=feeds,
        nodes=nodes,
        accelerators=accelerators,
    )
