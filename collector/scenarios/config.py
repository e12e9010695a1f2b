"""The scenario file: incidents to play on the simulated campus, validated once.

A scenario is a list of events, each with a ``kind``, the entity it strikes (a rack, a feed,
an accelerator, a hall, a building, a server, a fast meter or a source, named as the site
names it), its own figures, when it starts (``at``) and for how long (``duration``; without
one it lasts to the end). Times are seconds after the service started, given as a number of
seconds or a Prometheus duration (``90s``, ``10m``, ``1h30m``)::

    events:
      - {kind: rack_overload, rack: B01-H1-R02-K05, watts: 33000, at: 20s, duration: 10m}
      - {kind: feed_trip, rack: B01-H1-R03-K01, feed: A, at: 20s}

Loading reports every problem at once, each with its line (collector.config_errors): a field
that is missing, unknown or out of range, and an entity the site does not have. The result is
a frozen Scenario whose events name their entities by topology index.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import polars as pl
from pydantic import (
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
)

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
from collector.site.topology import Topology

# Prometheus duration units, longest first, in seconds.
UNITS = {"y": 365 * 86400.0, "w": 7 * 86400.0, "d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}
DURATION = re.compile(
    r"^(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$"
)


def seconds_of(value: object) -> float:
    """Seconds from a number of seconds or a Prometheus duration string (``90s``, ``1h30m``,
    ``500ms``); a ValueError names what is wrong."""
    if isinstance(value, bool):  # YAML's yes/no are booleans, and bool is an int
        raise ValueError("expected seconds or a duration such as 90s or 10m")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        match = DURATION.match(value.strip())
        if match and value.strip():
            *units, millis = match.groups()
            total = sum(int(n) * UNITS[u] for n, u in zip(units, UNITS, strict=True) if n)
            return total + (int(millis) / 1000.0 if millis else 0.0)
        raise ValueError(f"{value!r} is not a duration such as 90s, 10m or 1h30m")
    raise ValueError("expected seconds or a duration such as 90s or 10m")


Seconds = Annotated[float, BeforeValidator(seconds_of), Field(ge=0, allow_inf_nan=False)]
PositiveSeconds = Annotated[float, BeforeValidator(seconds_of), Field(gt=0, allow_inf_nan=False)]
Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Finite = Annotated[float, Field(allow_inf_nan=False)]


class _Event(ConfigModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    at: Seconds = 0.0
    duration: PositiveSeconds | None = None  # None: to the end of the run


class RackOverload(_Event):
    """The rack draws ``watts`` in all (its PDU feeds and servers scaled together)."""

    kind: Literal["rack_overload"]
    rack: str
    watts: Positive


class FeedTrip(_Event):
    """The feed's breaker opens: it reads 0 W and the rack's other feed carries the rack."""

    kind: Literal["feed_trip"]
    rack: str
    feed: str


class PduSilent(_Event):
    """The feed's PDU stops reporting; the rack draws as before."""

    kind: Literal["pdu_silent"]
    rack: str
    feed: str


class AcceleratorOverheat(_Event):
    kind: Literal["accelerator_overheat"]
    accelerator: str
    celsius: Annotated[float, Field(gt=-40, le=150, allow_inf_nan=False)]


class AcceleratorSilent(_Event):
    kind: Literal["accelerator_silent"]
    accelerator: str


class AcceleratorErrors(_Event):
    """The accelerator's uncorrected ECC counter grows by ``per_minute``."""

    kind: Literal["accelerator_errors"]
    accelerator: str
    per_minute: Positive


class Straggler(_Event):
    """The accelerator draws ``power_ratio`` of what its peers draw."""

    kind: Literal["straggler"]
    accelerator: str
    power_ratio: Annotated[float, Field(ge=0, lt=1, allow_inf_nan=False)]


class CoolingFailure(_Event):
    """Every accelerator of the hall heats by ``celsius_per_minute`` while its load holds."""

    kind: Literal["cooling_failure"]
    hall: str
    celsius_per_minute: Positive


class BuildingOutage(_Event):
    """The building loses power: its racks fall silent and its meters read 0 W."""

    kind: Literal["building_outage"]
    building: str


class Oscillation(_Event):
    """A load swinging sinusoidally under the meter (``poi``, a building, a lineup)."""

    kind: Literal["oscillation"]
    meter: str
    frequency_hz: Positive
    peak_to_peak_watts: Positive


class LoadStep(_Event):
    """A load under the meter steps by ``delta_watts`` (negative: a drop)."""

    kind: Literal["load_step"]
    meter: str
    delta_watts: Finite


class SiteSurge(_Event):
    """All load of the site scaled by ``ratio``."""

    kind: Literal["site_surge"]
    ratio: Positive


class BmcOverreport(_Event):
    """The server's BMC reports ``ratio`` times its input power."""

    kind: Literal["bmc_overreport"]
    node: str
    ratio: Positive


class SourceDown(_Event):
    """Every read of the source fails."""

    kind: Literal["source_down"]
    source: str


class CycleOverrun(_Event):
    """Each cycle takes ``seconds`` longer (a slow read)."""

    kind: Literal["cycle_overrun"]
    seconds: PositiveSeconds


EventSpec = Annotated[
    RackOverload
    | FeedTrip
    | PduSilent
    | AcceleratorOverheat
    | AcceleratorSilent
    | AcceleratorErrors
    | Straggler
    | CoolingFailure
    | BuildingOutage
    | Oscillation
    | LoadStep
    | SiteSurge
    | BmcOverreport
    | SourceDown
    | CycleOverrun,
    Field(discriminator="kind"),
]
EVENT_ADAPTER: TypeAdapter[EventSpec] = TypeAdapter(EventSpec)
KINDS: tuple[str, ...] = tuple(
    get_args(model.model_fields["kind"].annotation)[0] for model in _Event.__subclasses__()
)


class ScenarioError(ConfigError):
    """Every problem found in one scenario file."""


@dataclass(frozen=True)
class Event:
    """One validated event, its entity resolved to a topology index (``target``; -1 for the
    kinds that strike no entity: site_surge, cycle_overrun; a source keeps its name)."""

    number: int  # position in the file, from 0
    spec: EventSpec
    target: int = -1

    @property
    def kind(self) -> str:
        return self.spec.kind

    @property
    def start(self) -> float:
        return self.spec.at

    @property
    def end(self) -> float | None:
        """Seconds after the start of the run when it stops; None: it lasts to the end."""
        return None if self.spec.duration is None else self.spec.at + self.spec.duration

    def active(self, elapsed: float) -> bool:
        """Whether the event is under way ``elapsed`` seconds after the run started."""
        end = self.end
        return self.start <= elapsed and (end is None or elapsed < end)

    def active_seconds(self, elapsed: float) -> float:
        """How long the event has acted by ``elapsed`` (it stops counting at its end)."""
        end = elapsed if self.end is None else min(elapsed, self.end)
        return max(0.0, end - self.start)

    def describe(self) -> dict[str, Any]:
        """The event as the file gave it, times in seconds."""
        return self.spec.model_dump(exclude_none=True)


@dataclass(frozen=True)
class Scenario:
    source: str  # the file it came from
    events: tuple[Event, ...] = field(default=())

    def of_kind(self, *kinds: str) -> list[Event]:
        return [event for event in self.events if event.kind in kinds]


def meter_names(topology: Topology) -> list[str]:
    """Every fast meter of the site: ``poi``, each building, each building lineup."""
    lineups = topology.names("lineup")
    return [
        "poi",
        *topology.buildings["building"].to_list(),
        *(lineups["building"] + "-" + lineups["lineup"]).to_list(),
    ]


def _accelerator_index(topology: Topology, name: str) -> int | None:
    """``B01-H1-R01-K01-N1-A03`` -> its index: the node's first accelerator plus 3."""
    node, _, local = name.rpartition("-A")
    if not node or not local.isdigit():
        return None
    index = topology.resolve("node", pl.Series([node]))[0]
    if index is None:
        return None
    row = topology.nodes.row(int(index), named=True)
    position = int(local)
    if position >= row["accelerator_count"]:
        return None
    return int(row["first_accelerator_index"]) + position


ENTITY_FIELDS = ("rack", "feed", "accelerator", "hall", "building", "node", "meter", "source")


def _resolve(
    fields: Mapping[str, Any], topology: Topology, sources: Sequence[str]
) -> tuple[int, list[tuple[str, str]]]:
    """(target index, [(field, problem)]) for one event's entity fields, read as the file
    gives them, so that an unknown entity is reported even when other fields are wrong."""
    named = {key: fields[key] for key in ENTITY_FIELDS if isinstance(fields.get(key), str)}
    if "feed" in named and "rack" in named:
        rack, feed = named["rack"], named["feed"]
        if topology.resolve("rack", pl.Series([rack]))[0] is None:
            return -1, [("rack", f"no rack {rack!r} in the site")]
        index = topology.resolve_feed(pl.Series([rack]), pl.Series([feed]))[0]
        if index is None:
            return -1, [("feed", f"rack {rack!r} has no feed {feed!r}")]
        return int(index), []
    if "accelerator" in named:
        found = _accelerator_index(topology, named["accelerator"])
        if found is None:
            return -1, [("accelerator", f"no accelerator {named['accelerator']!r} in the site")]
        return found, []
    if "meter" in named:
        meters = meter_names(topology)
        if named["meter"] not in meters:
            message = f"no meter {named['meter']!r}: poi, a building or a lineup (such as B01-A)"
            return -1, [("meter", message)]
        return meters.index(named["meter"]), []
    if "source" in named:
        if named["source"] not in sources:
            known = ", ".join(sources) or "none"
            return -1, [("source", f"no source {named['source']!r} (sources: {known})")]
        return -1, []
    for level in ("rack", "hall", "building", "node"):
        if level in named:
            index = topology.resolve(level, pl.Series([named[level]]))[0]
            if index is None:
                return -1, [(level, f"no {level} {named[level]!r} in the site")]
            return int(index), []
    return -1, []


def parse_scenario(
    text: str, topology: Topology, sources: Sequence[str], source: str = "<scenario>"
) -> Scenario:
    """Parse and validate a scenario file against the site and the running sources; raise
    ScenarioError listing every problem, each with its line."""
    data = yaml_mapping(text, source, ScenarioError)
    lines = line_index(text)
    problems: list[ConfigProblem] = []
    unknown = sorted(str(key) for key in set(data) - {"events"})
    problems += [located(lines, (key,), "unknown setting (only events)") for key in unknown]
    raw = data.get("events")
    if not isinstance(raw, list):
        problems.append(located(lines, ("events",), "must be a list of events"))
        raise ScenarioError(source, problems)
    events: list[Event] = []
    for number, item in enumerate(raw):
        path: tuple[str | int, ...] = ("events", number)
        if not isinstance(item, dict):
            problems.append(located(lines, path, "an event must be a mapping with a kind"))
            continue
        target, wrong = _resolve(item, topology, sources)
        problems += [located(lines, (*path, name), message) for name, message in wrong]
        if item.get("kind") not in KINDS:
            given = f"unknown kind {item['kind']!r}" if "kind" in item else "kind is missing"
            problems.append(located(lines, (*path, "kind"), f"{given}; known: {', '.join(KINDS)}"))
            continue
        try:
            spec = EVENT_ADAPTER.validate_python(item)
        except ValidationError as error:
            problems += _placed(validation_problems(error, {}), lines, path)
            continue
        if not wrong:
            events.append(Event(number, spec, target))
    if problems:
        raise ScenarioError(source, sorted(problems, key=lambda p: (p.line or 0, p.location)))
    return Scenario(source, tuple(events))


def _placed(
    found: Iterable[ConfigProblem],
    lines: dict[tuple[str | int, ...], int],
    prefix: tuple[str | int, ...],
) -> list[ConfigProblem]:
    """Problems pydantic found inside one event, moved under the event's path and line. The
    discriminated union puts the kind's name first in each location; it is dropped."""
    placed = []
    for problem in found:
        parts = [p for p in problem.location.split(".") if p and p != "(file)"]
        if parts and parts[0] in KINDS:
            parts = parts[1:]
        path = (*prefix, *parts)
        placed.append(located(lines, path, problem.message.removeprefix("Value error, ")))
    return placed


def load_scenario(path: Path, topology: Topology, sources: Sequence[str]) -> Scenario:
    return parse_scenario(read_config(path, ScenarioError), topology, sources, str(path))
