"""Redfish payloads to readings: pure functions of (resource path, JSON payload), no I/O.

The crawler in ``collector.sources.redfish`` fetches resources; everything here turns what it
fetched into rows of ``collector.schemas.READINGS`` and ``PROBLEMS``. Which of a PDU's or a
chassis' disagreeing power readings feeds the roll-up is decided in
``collector.sources.redfish_power_choice``.

Device identity
    ``device`` is the resource path (the URL path we fetched, never the payload's own
    ``@odata.id``, which upstream mockups sometimes copy from another resource). A value that
    is not the resource's headline reading of its metric carries a JSON pointer fragment to
    where it sits in the payload, so (target, device, metric) is unique per crawl::

        /redfish/v1/PowerEquipment/RackPDUs/1/Outlets/A1                         power_watts 197.4
        /redfish/v1/PowerEquipment/RackPDUs/1/Mains/AC1#/PolyPhasePowerWatts/Line1ToNeutral
        /redfish/v1/Chassis/1U/Power#/PowerControl/0                             power_watts 344
        /redfish/v1/Chassis/1/Power#/PowerSupplies/1/Oem/Hpe/AveragePowerOutputWatts

    A reading found under ``Oem`` always has ``/Oem/<vendor>/`` in its device: that is the
    OEM note (``"/Oem/" in device`` selects them).

Device kinds
    ===================  ==========================================================
    chassis              legacy PowerControl, PowerSubsystem, chassis EnvironmentMetrics
    psu                  PowerSupply, PowerSupplyMetrics, legacy PowerSupplies[]
    pdu                  PowerDistribution (rack PDU, power shelf, busway, switch)
    pdu_mains            Circuit under Mains (the equipment's input)
    pdu_branch           Circuit under Branches or Feeders
    pdu_subfeed          Circuit under Subfeeds (inside a feeder: never add to it)
    pdu_outlet           Outlet
    pdu_outlet_group     OutletGroup (overlaps its outlets: never add to them)
    pdu_metrics          PowerDistributionMetrics (the equipment's own summary)
    sensor               Sensor, legacy Thermal Temperatures[] and Power Voltages[]
    cdu                  CoolingUnit, its connectors and environment (ThermalEquipment)
    processor, dram      EnvironmentMetrics of a Processor or a Memory module
    ===================  ==========================================================

Units
    Excerpt properties carry their unit in their name (``EnergykWh``, ``HeatRemovedkW``,
    ``DeltaPressurekPa``, ``FlowLitersPerMinute``). A Sensor's quantity comes from its
    ``ReadingType``, whose unit the schema fixes; ``ReadingUnits`` is honoured when it is a
    unit of the same quantity (a vendor saying ``kW`` for Power), and otherwise reported as a
    ``unit_mismatch`` problem and read in the schema's unit (public-pdu's energy sensors say
    ``kW`` for ``EnergykWh``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

import polars as pl

from collector import schemas
from collector.readings import readings_frame

JsonObject = dict[str, Any]

SERVICE_ROOT = "/redfish/v1"

KILOWATT_HOUR_JOULES = 3.6e6
LITERS_PER_MINUTE_CUBIC_METERS_PER_SECOND = 1.0 / 60000.0

METRIC_UNITS: Mapping[str, str] = {
    "power_watts": "watts",
    "capacity_watts": "watts",
    "heat_load_watts": "watts",
    "energy_joules": "joules",
    "current_amps": "amperes",
    "voltage_volts": "volts",
    "temperature_celsius": "celsius",
    "pressure_pascals": "pascals",
    "flow_cubic_meters_per_second": "cubic_meters_per_second",
}


@dataclass(frozen=True, slots=True)
class Reading:
    """One value a resource reported, in the base unit of its metric."""

    device: str
    device_kind: str
    metric: str
    value: float
    timestamp_seconds: float | None = None

    @property
    def unit(self) -> str:
        return METRIC_UNITS[self.metric]


@dataclass(frozen=True, slots=True)
class Problem:
    """Something a person has to look at; ``reason`` is a short counter label."""

    location: str
    reason: str
    message: str


# --- parsing and links -----------------------------------------------------------------------


def parse_resource(body: bytes) -> JsonObject | Problem:
    """The JSON object in a response body, or a Problem (reason invalid_json or not_an_object).

    The Problem's location is empty; the caller knows the resource path.
    """
    try:
        payload = json.loads(body)
    except UnicodeDecodeError as error:
        return Problem("", "invalid_json", f"body is not UTF-8 text: {error}")
    except json.JSONDecodeError as error:
        return Problem(
            "",
            "invalid_json",
            f"invalid JSON at line {error.lineno} column {error.colno}: {error.msg}",
        )
    if not isinstance(payload, dict):
        return Problem(
            "",
            "not_an_object",
            f"a Redfish resource is a JSON object, got {type(payload).__name__}",
        )
    return payload


def normalize_link(link: str, origin: str, base_path: str = SERVICE_ROOT) -> str | None:
    """The resource path a link names on this service, or None when it leaves the service.

    ``origin`` is ``scheme://host[:port]``. Fragments go (``Power#/PowerControl/0`` is the Power
    resource), trailing slashes go (``/redfish/v1/Systems/1/`` is ``/redfish/v1/Systems/1``), a
    query stays (paging: ``Members@odata.nextLink``). Links to another host, and anything outside
    ``/redfish/v1`` or to ``$metadata``, give None.
    """
    link = link.strip()
    if not link:
        return None
    absolute = urljoin(origin + base_path.split("?", 1)[0] + "/", link)
    parts = urlsplit(absolute)
    if f"{parts.scheme}://{parts.netloc}".lower() != origin.lower():
        return None
    path = parts.path.rstrip("/") or "/"
    if not (path == SERVICE_ROOT or path.startswith(SERVICE_ROOT + "/")) or "$metadata" in path:
        return None
    return path + (f"?{parts.query}" if parts.query else "")


@dataclass(frozen=True, slots=True)
class Link:
    """A reference found in a payload: the raw text and the JSON pointer where it sits."""

    target: str
    pointer: str


def _is_reference(node: Mapping[str, Any]) -> bool:
    # A reference object holds only @odata.id (and maybe other @-annotations). An object with
    # data besides is an embedded member (Dell's PowerControl, HPE's PowerSupplies): its data is
    # already here, and its @odata.id often names no fetchable resource.
    return all(key.startswith("@") for key in node)


def resource_links(payload: Mapping[str, Any]) -> list[Link]:
    """Every link a crawler should follow, in document order.

    Followed: reference objects (``{"@odata.id": ...}``) anywhere (collection Members, nested
    objects, Links, Oem), ``DataSourceUri`` of sensor excerpts, and ``Members@odata.nextLink``.
    Not followed: the resource's own ``@odata.id``, embedded members' ids, action targets.
    """
    found: list[Link] = []

    def walk(node: Any, pointer: str) -> None:
        if isinstance(node, dict):
            if pointer and "@odata.id" in node and _is_reference(node):
                target = node["@odata.id"]
                if isinstance(target, str):
                    found.append(Link(target, pointer + "/@odata.id"))
                return
            for key, value in node.items():
                child = f"{pointer}/{_escape(key)}"
                if key in ("DataSourceUri", "Members@odata.nextLink") and isinstance(value, str):
                    found.append(Link(value, child))
                elif isinstance(value, dict | list):
                    walk(value, child)
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(value, f"{pointer}/{index}")

    walk(payload, "")
    return found


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def resource_type(path: str, payload: Mapping[str, Any]) -> str | None:
    """The schema name of a resource (``#Outlet.v1_4_4.Outlet`` -> ``Outlet``).

    Some BMCs leave out ``@odata.type`` (the HPE chassis capture); for the few resources whose
    last path segment is the schema name, that segment stands in.
    """
    odata_type = payload.get("@odata.type")
    if isinstance(odata_type, str) and odata_type:
        return odata_type.rsplit(".", 1)[-1].lstrip("#")
    last = path.rstrip("/").rsplit("/", 1)[-1]
    if last in ("Power", "Thermal", "PowerSubsystem", "ThermalSubsystem", "EnvironmentMetrics"):
        return last
    return None


def odata_id_problem(path: str, payload: Mapping[str, Any], origin: str) -> Problem | None:
    """A Problem when the payload's @odata.id names another resource than the URL we read."""
    claimed = payload.get("@odata.id")
    if not isinstance(claimed, str):
        return None
    if normalize_link(claimed, origin) in (path, path.split("?", 1)[0]):  # pages keep their id
        return None
    return Problem(
        path,
        "odata_id_mismatch",
        f"served at {path} but its @odata.id says {claimed!r}; the URL is kept as its identity",
    )


# --- values and units -------------------------------------------------------------------------


class _NotANumber:
    def __init__(self, raw: Any) -> None:
        self.raw = raw


def _number(raw: Any) -> float | _NotANumber | None:
    """A reading from a SensorExcerpt (``{"Reading": x}``) or a plain number; None when absent."""
    if isinstance(raw, dict):
        raw = raw.get("Reading")
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        return _NotANumber(raw)
    return float(raw)


# Unit (as Redfish writes it, UCUM-like) -> (quantity, factor, offset) to the base unit.
_UNITS: Mapping[str, tuple[str, float, float]] = {
    "W": ("power", 1.0, 0.0),
    "kW": ("power", 1e3, 0.0),
    "mW": ("power", 1e-3, 0.0),
    "J": ("energy", 1.0, 0.0),
    "kJ": ("energy", 1e3, 0.0),
    "W.h": ("energy", 3600.0, 0.0),
    "Wh": ("energy", 3600.0, 0.0),
    "kW.h": ("energy", KILOWATT_HOUR_JOULES, 0.0),
    "kWh": ("energy", KILOWATT_HOUR_JOULES, 0.0),
    "MW.h": ("energy", 3.6e9, 0.0),
    "A": ("current", 1.0, 0.0),
    "mA": ("current", 1e-3, 0.0),
    "V": ("voltage", 1.0, 0.0),
    "mV": ("voltage", 1e-3, 0.0),
    "Cel": ("temperature", 1.0, 0.0),
    "C": ("temperature", 1.0, 0.0),
    "°C": ("temperature", 1.0, 0.0),
    "K": ("temperature", 1.0, -273.15),
    "Pa": ("pressure", 1.0, 0.0),
    "kPa": ("pressure", 1e3, 0.0),
    "L/min": ("flow", LITERS_PER_MINUTE_CUBIC_METERS_PER_SECOND, 0.0),
    "L/s": ("flow", 1e-3, 0.0),
    "m3/s": ("flow", 1.0, 0.0),
}

_METRIC_QUANTITY: Mapping[str, str] = {
    "power_watts": "power",
    "heat_load_watts": "power",
    "capacity_watts": "power",
    "energy_joules": "energy",
    "current_amps": "current",
    "voltage_volts": "voltage",
    "temperature_celsius": "temperature",
    "pressure_pascals": "pressure",
    "flow_cubic_meters_per_second": "flow",
}

# Sensor ReadingType -> (metric, the unit the Sensor schema defines for that type). Types not
# listed (Frequency, Humidity, Percent, AirFlow, Rotational...) give no reading.
SENSOR_READING_TYPES: Mapping[str, tuple[str, str]] = {
    "Power": ("power_watts", "W"),
    "EnergyJoules": ("energy_joules", "J"),
    "EnergykWh": ("energy_joules", "kW.h"),
    "EnergyWh": ("energy_joules", "W.h"),
    "Current": ("current_amps", "A"),
    "Voltage": ("voltage_volts", "V"),
    "Temperature": ("temperature_celsius", "Cel"),
    "Heat": ("heat_load_watts", "kW"),
    "PressurekPa": ("pressure_pascals", "kPa"),
    "PressurePa": ("pressure_pascals", "Pa"),
    "Pressure": ("pressure_pascals", "Pa"),
    "LiquidFlowLPM": ("flow_cubic_meters_per_second", "L/min"),
    "LiquidFlow": ("flow_cubic_meters_per_second", "L/s"),
}


def to_base_unit(value: float, unit: str) -> float:
    """A value in a Redfish unit (``kW.h``, ``kPa``, ``L/min``...) in its base unit."""
    _, factor, offset = _UNITS[unit]
    return value * factor + offset


def _timestamp(raw: Any) -> float | None:
    if not isinstance(raw, str):
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        return None
    if moment.tzinfo is None:  # a BMC clock without a zone: no honest epoch for it
        return None
    return moment.timestamp()


# --- extraction tables -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Field:
    """A property holding a reading: its metric, the factor to the base unit, and whether it
    is the resource's headline value of that metric (device = the path, no fragment)."""

    name: str
    metric: str
    factor: float = 1.0
    headline: bool = True


_ELECTRICAL = (
    _Field("PowerWatts", "power_watts"),
    _Field("EnergykWh", "energy_joules", KILOWATT_HOUR_JOULES),
    _Field("CurrentAmps", "current_amps"),
    _Field("Voltage", "voltage_volts"),
    _Field("TemperatureCelsius", "temperature_celsius"),
)
# Per-line readings: each line is its own device (no total is made up from them).
_POLY_PHASE = (
    _Field("PolyPhasePowerWatts", "power_watts", headline=False),
    _Field("PolyPhaseCurrentAmps", "current_amps", headline=False),
    _Field("PolyPhaseVoltage", "voltage_volts", headline=False),
    _Field("PolyPhaseEnergykWh", "energy_joules", KILOWATT_HOUR_JOULES, headline=False),
)
_ENVIRONMENT = (
    _Field("PowerWatts", "power_watts"),
    _Field("EnergyJoules", "energy_joules"),
    _Field("EnergykWh", "energy_joules", KILOWATT_HOUR_JOULES, headline=False),
    _Field("TemperatureCelsius", "temperature_celsius"),
)
_PSU_METRICS = (
    _Field("InputPowerWatts", "power_watts"),
    _Field("OutputPowerWatts", "power_watts", headline=False),
    _Field("InputCurrentAmps", "current_amps"),
    _Field("InputVoltage", "voltage_volts"),
    _Field("EnergykWh", "energy_joules", KILOWATT_HOUR_JOULES),
    _Field("TemperatureCelsius", "temperature_celsius"),
)
_COOLANT_CONNECTOR = (
    _Field("HeatRemovedkW", "heat_load_watts", 1e3),
    _Field("FlowLitersPerMinute", "flow_cubic_meters_per_second", 1.0 / 60000.0),
    _Field("SupplyTemperatureCelsius", "temperature_celsius", headline=False),
    _Field("ReturnTemperatureCelsius", "temperature_celsius", headline=False),
    _Field("DeltaTemperatureCelsius", "temperature_celsius", headline=False),
    _Field("SupplyPressurekPa", "pressure_pascals", 1e3, headline=False),
    _Field("ReturnPressurekPa", "pressure_pascals", 1e3, headline=False),
    _Field("DeltaPressurekPa", "pressure_pascals", 1e3, headline=False),
)
# Legacy Power and Thermal arrays: every member is its own device (#/PowerControl/0, ...).
_POWER_CONTROL = (
    _Field("PowerConsumedWatts", "power_watts"),
    _Field("PowerCapacityWatts", "capacity_watts"),
)
_LEGACY_POWER_SUPPLY = (
    _Field("PowerInputWatts", "power_watts"),
    _Field("PowerOutputWatts", "power_watts", headline=False),
    _Field("LastPowerOutputWatts", "power_watts", headline=False),
    _Field("LineInputVoltage", "voltage_volts"),
    _Field("PowerCapacityWatts", "capacity_watts"),
)

# Power hidden under Oem: (vendor key, property path below it) -> metric; vendor "*" matches any
# vendor that mirrors a standard DMTF property name in its OEM block.
OEM_READINGS: Mapping[tuple[str, tuple[str, ...]], str] = {
    # HPE iLO 5 (and iLO 4 under "Hp"): PowerSupplies[].Oem.Hpe.AveragePowerOutputWatts.
    ("Hpe", ("AveragePowerOutputWatts",)): "power_watts",
    ("Hp", ("AveragePowerOutputWatts",)): "power_watts",
    ("*", ("PowerConsumedWatts",)): "power_watts",
    ("*", ("PowerInputWatts",)): "power_watts",
    ("*", ("InputPowerWatts",)): "power_watts",
    ("*", ("PowerWatts",)): "power_watts",
}

_CIRCUIT_KINDS: Mapping[str, str] = {
    "Mains": "pdu_mains",
    "Branches": "pdu_branch",
    "Feeders": "pdu_branch",
    "Subfeeds": "pdu_subfeed",
}
_CIRCUIT_TYPES: Mapping[str, str] = {
    "Mains": "pdu_mains",
    "Branch": "pdu_branch",
    "Feeder": "pdu_branch",
    "Subfeed": "pdu_subfeed",
}


def device_kind(
    path: str, kind_of_resource: str | None, payload: Mapping[str, Any] | None = None
) -> str | None:
    """The device_kind of a resource, from its schema name and where it sits."""
    segments = path.split("?", 1)[0].split("/")
    match kind_of_resource:
        case "Outlet":
            return "pdu_outlet"
        case "OutletGroup":
            return "pdu_outlet_group"
        case "PowerDistributionMetrics":
            return "pdu_metrics"
        case "PowerDistribution":
            return "pdu"
        case "Circuit":
            parent = segments[-2] if len(segments) >= 2 else ""
            circuit_type = (payload or {}).get("CircuitType")
            if parent in _CIRCUIT_KINDS:
                return _CIRCUIT_KINDS[parent]
            if isinstance(circuit_type, str) and circuit_type in _CIRCUIT_TYPES:
                return _CIRCUIT_TYPES[circuit_type]
            return "pdu_branch"
        case "Sensor" | "Thermal":
            return "sensor"
        case "PowerSupply" | "PowerSupplyMetrics":
            return "psu"
        case "Chassis" | "Power" | "PowerSubsystem":  # a Chassis itself: only its Oem block
            return "chassis"
        case "CoolingUnit":
            return "cdu"
        case "CoolantConnector" | "EnvironmentMetrics":
            if "ThermalEquipment" in segments:
                return "cdu"
            if "Processors" in segments:
                return "processor"
            if "Memory" in segments:
                return "dram"
            return "chassis"
    return None


# --- extraction ------------------------------------------------------------------------------


@dataclass
class _Collector:
    path: str
    readings: list[Reading] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    def add(
        self,
        pointer: str,
        kind: str,
        metric: str,
        raw: Any,
        factor: float = 1.0,
        timestamp: float | None = None,
    ) -> None:
        value = _number(raw)
        device = self.path + (f"#{pointer}" if pointer else "")
        if isinstance(value, _NotANumber):
            self.problems.append(
                Problem(device, "not_a_number", f"{metric}: expected a number, got {value.raw!r}")
            )
            return
        if value is not None:
            self.readings.append(Reading(device, kind, metric, value * factor, timestamp))

    def fields(
        self, node: Mapping[str, Any], pointer: str, kind: str, table: Iterable[_Field]
    ) -> None:
        for spec in table:
            if spec.name in node:
                where = pointer if spec.headline else f"{pointer}/{spec.name}"
                self.add(where, kind, spec.metric, node[spec.name], spec.factor)

    def poly_phase(self, node: Mapping[str, Any], kind: str) -> None:
        for spec in _POLY_PHASE:
            lines = node.get(spec.name)
            if not isinstance(lines, dict):
                continue
            for line, excerpt in lines.items():
                if line.startswith("@"):
                    continue
                self.add(f"/{spec.name}/{_escape(line)}", kind, spec.metric, excerpt, spec.factor)


def _absent(node: Mapping[str, Any]) -> bool:
    status = node.get("Status")
    return isinstance(status, dict) and status.get("State") == "Absent"


def readings_from_resource(
    path: str, payload: Mapping[str, Any]
) -> tuple[list[Reading], list[Problem]]:
    """The readings one resource holds, and the problems met reading them.

    ``path`` is the URL path the payload was read from; it becomes the device. Resources of
    schemas this module does not read (accounts, managers, collections...) give nothing.
    A value that is null or absent gives no reading (missing, never 0); an absent component
    (``Status.State == "Absent"``) gives none either.
    """
    kind_of_resource = resource_type(path, payload)
    kind = device_kind(path, kind_of_resource, payload)
    out = _Collector(path)
    if kind_of_resource is None or kind is None or _absent(payload):
        return out.readings, out.problems
    match kind_of_resource:
        case "Outlet" | "Circuit" | "OutletGroup" | "PowerDistributionMetrics":
            out.fields(payload, "", kind, _ELECTRICAL)
            out.poly_phase(payload, kind)
        case "EnvironmentMetrics":
            out.fields(payload, "", kind, _ENVIRONMENT)
        case "PowerSupplyMetrics":
            out.fields(payload, "", kind, _PSU_METRICS)
        case "PowerSupply" if str(payload.get("@odata.type", "")).startswith("#Power."):
            # A legacy Power.PowerSupply served on its own (iDRAC's PoweredBy links).
            out.fields(payload, "", kind, _LEGACY_POWER_SUPPLY)
        case "PowerSupply":
            out.add("", kind, "capacity_watts", payload.get("PowerCapacityWatts"))
        case "PowerSubsystem":
            out.add("", kind, "capacity_watts", payload.get("CapacityWatts"))
        case "CoolingUnit":
            out.add("", kind, "capacity_watts", payload.get("CoolingCapacityWatts"))
        case "CoolantConnector":
            out.fields(payload, "", kind, _COOLANT_CONNECTOR)
        case "Sensor":
            _sensor(out, payload)
        case "Power":
            _legacy_power(out, payload)
        case "Thermal":
            for index, member in _members(payload, "Temperatures"):
                out.add(
                    f"/Temperatures/{index}",
                    "sensor",
                    "temperature_celsius",
                    member.get("ReadingCelsius"),
                )
    _oem(out, payload, kind)
    return out.readings, out.problems


def _members(payload: Mapping[str, Any], name: str) -> Iterator[tuple[int, Mapping[str, Any]]]:
    members = payload.get(name)
    if not isinstance(members, list):
        return
    for index, member in enumerate(members):
        if isinstance(member, dict) and not _absent(member):
            yield index, member


def _legacy_power(out: _Collector, payload: Mapping[str, Any]) -> None:
    for index, member in _members(payload, "PowerControl"):
        out.fields(member, f"/PowerControl/{index}", "chassis", _POWER_CONTROL)
    for index, member in _members(payload, "PowerSupplies"):
        out.fields(member, f"/PowerSupplies/{index}", "psu", _LEGACY_POWER_SUPPLY)
    for index, member in _members(payload, "Voltages"):
        out.add(f"/Voltages/{index}", "sensor", "voltage_volts", member.get("ReadingVolts"))


def _sensor(out: _Collector, payload: Mapping[str, Any]) -> None:
    reading_type = payload.get("ReadingType")
    if not isinstance(reading_type, str) or reading_type not in SENSOR_READING_TYPES:
        return
    metric, schema_unit = SENSOR_READING_TYPES[reading_type]
    unit = schema_unit
    stated = payload.get("ReadingUnits")
    if isinstance(stated, str) and stated != schema_unit:
        known = _UNITS.get(stated)
        if known is not None and known[0] == _METRIC_QUANTITY[metric]:
            unit = stated
        else:
            out.problems.append(
                Problem(
                    out.path,
                    "unit_mismatch",
                    f"ReadingUnits {stated!r} is not a unit of ReadingType {reading_type}; "
                    f"read as {schema_unit}, the unit the Sensor schema defines for it",
                )
            )
    value = _number(payload.get("Reading"))
    if isinstance(value, _NotANumber):
        out.problems.append(
            Problem(out.path, "not_a_number", f"Reading: expected a number, got {value.raw!r}")
        )
        return
    if value is None:
        return
    out.readings.append(
        Reading(
            out.path,
            "sensor",
            metric,
            to_base_unit(value, unit),
            _timestamp(payload.get("ReadingTime")),
        )
    )


def _oem(out: _Collector, payload: Mapping[str, Any], kind: str) -> None:
    """Readings under any Oem block, from OEM_READINGS; the device keeps the /Oem/ pointer."""

    def walk(node: Any, pointer: str, node_kind: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                child = f"{pointer}/{_escape(key)}"
                if key == "Oem" and isinstance(value, dict):
                    for vendor, block in value.items():
                        if isinstance(block, dict):
                            _oem_block(out, block, f"{child}/{_escape(vendor)}", vendor, node_kind)
                elif isinstance(value, dict | list):
                    walk(value, child, node_kind)
        elif isinstance(node, list):
            for index, value in enumerate(node):
                member_kind = node_kind
                if pointer == "/PowerSupplies":
                    member_kind = "psu"
                walk(value, f"{pointer}/{index}", member_kind)

    walk(payload, "", kind)


def _oem_block(
    out: _Collector, block: Mapping[str, Any], pointer: str, vendor: str, kind: str
) -> None:
    for (table_vendor, keys), metric in OEM_READINGS.items():
        if table_vendor not in ("*", vendor):
            continue
        node: Any = block
        for key in keys:
            node = node.get(key) if isinstance(node, dict) else None
        if node is not None:
            out.add(pointer + "".join(f"/{_escape(key)}" for key in keys), kind, metric, node)


# --- frames ----------------------------------------------------------------------------------


def redfish_readings_frame(
    readings: Sequence[Reading], *, target: str, host: str | None, source: str = "redfish"
) -> pl.DataFrame:
    """Readings as a frame of ``schemas.READINGS``."""
    return readings_frame(
        source=source,
        target=target,
        host=host,
        device=[reading.device for reading in readings],
        device_kind=[reading.device_kind for reading in readings],
        metric=[reading.metric for reading in readings],
        value=[reading.value for reading in readings],
        unit=[reading.unit for reading in readings],
        timestamp_seconds=[reading.timestamp_seconds for reading in readings],
    )


def problems_frame(
    problems: Sequence[Problem], *, target: str, source: str = "redfish"
) -> pl.DataFrame:
    """Problems as a frame of ``schemas.PROBLEMS``."""
    return pl.DataFrame(
        {
            "source": [source] * len(problems),
            "target": [target] * len(problems),
            "location": [problem.location for problem in problems],
            "reason": [problem.reason for problem in problems],
            "message": [problem.message for problem in problems],
        },
        schema=dict(schemas.PROBLEMS),
    )
