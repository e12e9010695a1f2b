"""The site file: a compact, validated description of a campus and its power chain.

A site file names templates (accelerator, node, rack and building types) and then says how
many of each stand where, so the 2.15-million-accelerator campus fits on one screen. Loading
validates everything at once and reports every problem with its location (a dotted path and,
when the file was YAML, its line), then hands back a frozen object.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, overload

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from collector.config_errors import (
    ConfigError,
    ConfigModel,
    ConfigProblem,
    line_index,
    located,
    read_config,
    validation_problems,
    yaml_mapping,
)

PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
PositiveInt = Annotated[int, Field(gt=0)]
Ratio = Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)]

# The site files shipped in collector/site/presets/.
Preset = Literal["campus", "demo", "demo6"]
PRESETS: tuple[Preset, ...] = get_args(Preset)


class _Frozen(ConfigModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AcceleratorType(_Frozen):
    tdp_watts: PositiveFloat
    idle_watts: PositiveFloat
    memory_bytes: PositiveInt
    max_temperature_celsius: PositiveFloat = 95.0


class NodeType(_Frozen):
    accelerator_type: str
    accelerators: PositiveInt
    # Host CPUs, DRAM, NICs and fans: what the node draws beyond its accelerators.
    host_idle_watts: PositiveFloat
    host_max_watts: PositiveFloat


@overload
def feed_power_watts(
    voltage_volts: float, breaker_amps: float, phases: int, ratio: float
) -> float: ...


@overload
def feed_power_watts(
    voltage_volts: pl.Expr, breaker_amps: pl.Expr, phases: pl.Expr, ratio: float
) -> pl.Expr: ...


def feed_power_watts(
    voltage_volts: float | pl.Expr,
    breaker_amps: float | pl.Expr,
    phases: int | pl.Expr,
    ratio: float,
) -> float | pl.Expr:
    """A feed's power at ``ratio`` of its breaker's rating: sqrt(3)·V·I·ratio for three-phase
    (V line-to-line), V·I·ratio for single-phase. Of one feed's numbers, or of Polars
    expressions with one value per feed."""
    if isinstance(phases, pl.Expr):
        phase_factor: float | pl.Expr = pl.when(phases == 3).then(math.sqrt(3)).otherwise(1.0)
    else:
        phase_factor = math.sqrt(3) if phases == 3 else 1.0
    return phase_factor * voltage_volts * breaker_amps * ratio


class PduSpec(_Frozen):
    feed: str = Field(min_length=1)
    voltage_volts: PositiveFloat
    phases: Literal[1, 3]
    breaker_amps: PositiveFloat
    # NEC 210.20(A): a breaker carries at most 80 % of its rating continuously unless
    # it is listed for 100 %.
    continuous_load_ratio: Ratio = 0.8

    @property
    def capacity_watts(self) -> float:
        """Usable continuous power: the feed's power at its continuous load ratio k."""
        return feed_power_watts(
            self.voltage_volts, self.breaker_amps, self.phases, self.continuous_load_ratio
        )


class RackType(_Frozen):
    node_type: str
    nodes: PositiveInt
    conversion_efficiency: Ratio = 0.97
    pdus: tuple[PduSpec, ...] = Field(min_length=1)
    # When absent: N-1 over the PDU feeds (any one feed may fail and the rest carry the rack).
    capacity_watts: PositiveFloat | None = None

    @property
    def effective_capacity_watts(self) -> float:
        if self.capacity_watts is not None:
            return self.capacity_watts
        feeds = [pdu.capacity_watts for pdu in self.pdus]
        return feeds[0] if len(feeds) == 1 else sum(feeds) - max(feeds)


class HallGroup(_Frozen):
    count: PositiveInt = 1
    rows: PositiveInt
    racks_per_row: PositiveInt
    rack_type: str
    # When absent, a hall's and a row's capacity is the sum of its children's.
    hall_capacity_watts: PositiveFloat | None = None
    row_capacity_watts: PositiveFloat | None = None


class Lineup(_Frozen):
    name: str = Field(min_length=1)
    capacity_watts: PositiveFloat


class BuildingType(_Frozen):
    halls: tuple[HallGroup, ...] = Field(min_length=1)
    lineups: tuple[Lineup, ...] = Field(min_length=1)
    # IT capacity of the building; when absent, the N-1 capacity of its lineups.
    it_capacity_watts: PositiveFloat | None = None

    @property
    def effective_it_capacity_watts(self) -> float:
        if self.it_capacity_watts is not None:
            return self.it_capacity_watts
        lineups = [lineup.capacity_watts for lineup in self.lineups]
        return lineups[0] if len(lineups) == 1 else sum(lineups) - max(lineups)


class BuildingGroup(_Frozen):
    type: str
    count: PositiveInt = 1
    prefix: str = Field(default="B", min_length=1)
    first: Annotated[int, Field(ge=0)] = 1


class Site(_Frozen):
    name: str = Field(min_length=1)
    contract_watts: PositiveFloat
    accelerator_types: dict[str, AcceleratorType] = Field(min_length=1)
    node_types: dict[str, NodeType] = Field(min_length=1)
    rack_types: dict[str, RackType] = Field(min_length=1)
    building_types: dict[str, BuildingType] = Field(min_length=1)
    buildings: tuple[BuildingGroup, ...] = Field(min_length=1)

    def building_names(self) -> list[tuple[str, str]]:
        """(building name, building type) in site order."""
        return [
            (f"{group.prefix}{group.first + offset:02d}", group.type)
            for group in self.buildings
            for offset in range(group.count)
        ]

    def it_capacity_watts(self) -> float:
        """IT capacity of every building of the site, whichever of them a process rolls up."""
        return math.fsum(
            self.building_types[type_name].effective_it_capacity_watts
            for _, type_name in self.building_names()
        )


SiteProblem = ConfigProblem

# What one site may expand to, checked on the templates' counts before any frame is built: a
# count mistyped by a few digits is an error naming the limit, not gigabytes allocated. The
# reference campus is 30 buildings, 3,360 rows, 67,200 racks, 134,400 feeds, 134,400 servers
# and 2,150,400 accelerators; the limits leave room for about twice that.
SITE_LIMITS = {
    "buildings": 1_000,
    "rows": 100_000,
    "racks": 250_000,
    "feeds": 1_000_000,
    "nodes": 500_000,
    "accelerators": 5_000_000,
}


class SiteError(ConfigError):
    """Every problem found in a site file, each with its location."""


def _cross_reference_problems(site: Site) -> Iterable[tuple[tuple[str | int, ...], str]]:
    """References between templates and facts that span them: what pydantic cannot see alone."""
    for name, node in site.node_types.items():
        if node.accelerator_type not in site.accelerator_types:
            yield (
                ("node_types", name, "accelerator_type"),
                (f"unknown accelerator type {node.accelerator_type!r}"),
            )
        if node.host_max_watts < node.host_idle_watts:
            yield ("node_types", name, "host_max_watts"), "is below host_idle_watts"
    for name, accelerator in site.accelerator_types.items():
        if accelerator.idle_watts >= accelerator.tdp_watts:
            yield ("accelerator_types", name, "idle_watts"), "must be below tdp_watts"
    for name, rack in site.rack_types.items():
        if rack.node_type not in site.node_types:
            yield ("rack_types", name, "node_type"), f"unknown node type {rack.node_type!r}"
        feeds = [pdu.feed for pdu in rack.pdus]
        for index, feed in enumerate(feeds):
            if feeds.index(feed) != index:
                yield ("rack_types", name, "pdus", index, "feed"), f"feed {feed!r} appears twice"
    for name, building in site.building_types.items():
        lineup_names = [lineup.name for lineup in building.lineups]
        for index, lineup in enumerate(lineup_names):
            if lineup_names.index(lineup) != index:
                yield (
                    ("building_types", name, "lineups", index, "name"),
                    (f"lineup {lineup!r} appears twice"),
                )
        for index, hall in enumerate(building.halls):
            hall_rack = site.rack_types.get(hall.rack_type)
            if hall_rack is None:
                yield (
                    ("building_types", name, "halls", index, "rack_type"),
                    (f"unknown rack type {hall.rack_type!r}"),
                )
                continue
            for pdu in hall_rack.pdus:
                if pdu.feed not in lineup_names:
                    yield (
                        ("building_types", name, "halls", index, "rack_type"),
                        (
                            f"rack type {hall.rack_type!r} has PDU feed {pdu.feed!r}, but this "
                            f"building has no lineup {pdu.feed!r} "
                            f"(lineups: {', '.join(lineup_names)})"
                        ),
                    )
    for index, group in enumerate(site.buildings):
        if group.type not in site.building_types:
            yield ("buildings", index, "type"), f"unknown building type {group.type!r}"
    if expansion_problems(site):
        return  # naming the buildings would allocate what the limits refuse
    seen: set[str] = set()
    for building_name, _ in site.building_names():
        if building_name in seen:
            yield ("buildings",), f"building name {building_name!r} is produced twice"
        seen.add(building_name)


def site_size(site: Site) -> dict[str, int]:
    """How many buildings, rows, racks, feeds, nodes and accelerators ``site`` expands to, from
    its counts alone (a group whose template is unknown or invalid counts none below it)."""
    size = dict.fromkeys(SITE_LIMITS, 0)
    for group in site.buildings:
        size["buildings"] += group.count
        building = site.building_types.get(group.type)
        for hall in building.halls if building else ():
            rows = group.count * hall.count * hall.rows
            racks = rows * hall.racks_per_row
            size["rows"] += rows
            size["racks"] += racks
            rack = site.rack_types.get(hall.rack_type)
            node = site.node_types.get(rack.node_type) if rack else None
            if rack is not None:
                size["feeds"] += racks * len(rack.pdus)
                size["nodes"] += racks * rack.nodes
            if rack is not None and node is not None:
                size["accelerators"] += racks * rack.nodes * node.accelerators
    return size


def expansion_problems(site: Site) -> list[tuple[tuple[str | int, ...], str]]:
    """Each count of ``site`` over its limit in SITE_LIMITS, with the limit."""
    return [
        (("buildings",), f"the site expands to {count:,} {what}, over the limit of {limit:,}")
        for (what, count), limit in zip(site_size(site).items(), SITE_LIMITS.values(), strict=True)
        if count > limit
    ]


def parse_site(text: str, source: str = "<site>") -> Site:
    """Parse and validate a site file's text; raise SiteError listing every problem."""
    data = yaml_mapping(text, source, SiteError)
    lines = line_index(text)
    try:
        site = Site.model_validate(data)
        problems: list[SiteProblem] = []
    except ValidationError as error:
        problems = validation_problems(error, lines)
        # Check references among the templates that are valid on their own, so one run
        # lists every problem; templates that failed are already reported.
        site = _valid_parts(data)
    declared = {
        section: set(data.get(section) or {}) if isinstance(data.get(section), dict) else set()
        for section in ("accelerator_types", "node_types", "rack_types", "building_types")
    }
    problems += [
        located(lines, path, message)
        for path, message in [*expansion_problems(site), *_cross_reference_problems(site)]
        if not _refers_to_invalid_template(message, declared)
    ]
    if problems:
        raise SiteError(source, problems)
    return site


def _valid_parts(data: dict[str, Any]) -> Site:
    """A Site holding only the templates and groups that validate on their own."""

    def valid(section: str, model: type[BaseModel]) -> dict[str, Any]:
        raw = data.get(section)
        parts: dict[str, Any] = {}
        if isinstance(raw, dict):
            for name, body in raw.items():
                try:
                    parts[str(name)] = model.model_validate(body)
                except ValidationError:
                    if model is RackType and isinstance(body, dict):
                        parts[str(name)] = _rack_references(body)
        return parts

    raw_groups = data.get("buildings")
    groups = []
    for body in raw_groups if isinstance(raw_groups, list) else []:
        with contextlib.suppress(ValidationError):
            groups.append(BuildingGroup.model_validate(body))
    return Site.model_construct(
        name=str(data.get("name", "")),
        contract_watts=1.0,
        accelerator_types=valid("accelerator_types", AcceleratorType),
        node_types=valid("node_types", NodeType),
        rack_types=valid("rack_types", RackType),
        building_types=valid("building_types", BuildingType),
        buildings=tuple(groups),
    )


def _rack_references(body: dict[str, Any]) -> RackType:
    """An invalid rack type reduced to what cross-checks read (node type, PDU feed names), so
    a bad breaker rating does not hide a feed that has no lineup."""
    pdus = body.get("pdus")
    # Ratings are placeholders: nothing reads them from a rack type that failed validation.
    return RackType.model_construct(
        node_type=str(body.get("node_type", "")),
        nodes=1,
        pdus=tuple(
            PduSpec.model_construct(
                feed=str(pdu.get("feed")), voltage_volts=0.0, phases=3, breaker_amps=0.0
            )
            for pdu in (pdus if isinstance(pdus, list) else [])
            if isinstance(pdu, dict) and "feed" in pdu
        ),
    )


def _refers_to_invalid_template(message: str, declared: dict[str, set[str]]) -> bool:
    """True for an "unknown ... type 'x'" problem where x is declared but failed validation."""
    for prefix, section in (
        ("unknown accelerator type ", "accelerator_types"),
        ("unknown node type ", "node_types"),
        ("unknown rack type ", "rack_types"),
        ("unknown building type ", "building_types"),
    ):
        if message.startswith(prefix):
            return message.removeprefix(prefix).strip("'\"") in declared[section]
    return False


def load_site(path: Path) -> Site:
    return parse_site(read_config(path, SiteError), str(path))


def preset_text(name: str) -> str:
    if name not in PRESETS:
        raise SiteError(name, [SiteProblem("(preset)", f"unknown preset; known: {PRESETS}")])
    return (resources.files("collector.site") / "presets" / f"{name}.yaml").read_text("utf-8")


def load_preset(name: str) -> Site:
    return parse_site(preset_text(name), f"preset {name}")
