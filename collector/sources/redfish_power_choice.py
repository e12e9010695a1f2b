"""Which reading wins: the power figure of a PDU and of a server chassis that feeds the roll-up.

A PDU reports its power several ways (its Mains circuits, its Metrics, Total sensors, the sums of
its branches and outlets) and a chassis two (EnvironmentMetrics, legacy PowerControl); they
disagree in the field. ``choose_pdu_power`` and ``chassis_power_frame`` say which one is the
PDU's or the server's power and why, from the readings ``collector.sources.redfish_resources``
extracts and the resources the crawl read.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import polars as pl

from collector import schemas
from collector.sources.redfish_resources import normalize_link, resource_type


@dataclass(frozen=True, slots=True)
class PowerDistributionLayout:
    """What a PowerDistribution resource (rack PDU, power shelf...) is made of, by path.

    Only resources the crawl read are listed; a collection it could not read leaves its tuple
    empty, which ``choose_pdu_power`` treats as "cannot tell", never as "none there".
    """

    target: str
    device: str
    equipment_type: str | None
    mains: tuple[str, ...]
    branches: tuple[str, ...]
    outlets: tuple[str, ...]
    metrics: str | None
    total_sensors: tuple[str, ...]  # Power sensors with ElectricalContext Total, cited first


def _ref(node: Any, origin: str) -> str | None:
    if isinstance(node, dict):
        link = node.get("@odata.id")
        if isinstance(link, str):
            return normalize_link(link, origin)
    return None


def _collection_members(
    resources: Mapping[str, Mapping[str, Any]], collection: str | None, origin: str
) -> tuple[str, ...]:
    """Member paths of a collection, across its Members@odata.nextLink pages."""
    paths: list[str] = []
    page = collection
    pages_seen: set[str] = set()
    while page is not None and page in resources and page not in pages_seen:
        pages_seen.add(page)
        members = resources[page].get("Members")
        for member in members if isinstance(members, list) else []:
            path = _ref(member, origin)
            if path is not None:
                paths.append(path)
        next_link = resources[page].get("Members@odata.nextLink")
        page = normalize_link(next_link, origin) if isinstance(next_link, str) else None
    return tuple(paths)


def _is_total_power_sensor(payload: Mapping[str, Any] | None) -> bool:
    return (
        payload is not None
        and payload.get("ReadingType") == "Power"
        and payload.get("ElectricalContext") == "Total"
    )


def power_distribution_layouts(
    resources: Mapping[str, Mapping[str, Any]], *, target: str, origin: str
) -> list[PowerDistributionLayout]:
    """One layout per PowerDistribution resource among crawled ``resources`` (path -> payload)."""
    layouts = []
    for path, payload in resources.items():
        if resource_type(path, payload) != "PowerDistribution":
            continue
        metrics = _ref(payload.get("Metrics"), origin)
        cited: list[str] = []
        metrics_payload = resources.get(metrics) if metrics else None
        if metrics_payload is not None:
            power = metrics_payload.get("PowerWatts")
            if isinstance(power, dict) and isinstance(power.get("DataSourceUri"), str):
                source = normalize_link(power["DataSourceUri"], origin)
                if source is not None and _is_total_power_sensor(resources.get(source)):
                    cited.append(source)
        sensor_collections = [_ref(payload.get("Sensors"), origin), f"{path}/Sensors"]
        links = payload.get("Links")
        chassis = links.get("Chassis") if isinstance(links, dict) else None
        for reference in chassis if isinstance(chassis, list) else [chassis]:
            chassis_path = _ref(reference, origin)
            if chassis_path is not None and chassis_path in resources:
                sensor_collections.append(_ref(resources[chassis_path].get("Sensors"), origin))
        others = sorted(
            {
                sensor
                for collection in sensor_collections
                for sensor in _collection_members(resources, collection, origin)
                if sensor not in cited and _is_total_power_sensor(resources.get(sensor))
            }
        )
        branches = _collection_members(
            resources, _ref(payload.get("Branches"), origin), origin
        ) or _collection_members(resources, _ref(payload.get("Feeders"), origin), origin)
        equipment_type = payload.get("EquipmentType")
        layouts.append(
            PowerDistributionLayout(
                target=target,
                device=path,
                equipment_type=equipment_type if isinstance(equipment_type, str) else None,
                mains=_collection_members(resources, _ref(payload.get("Mains"), origin), origin),
                branches=branches,
                outlets=_collection_members(
                    resources, _ref(payload.get("Outlets"), origin), origin
                ),
                metrics=metrics,
                total_sensors=(*cited, *others),
            )
        )
    return layouts


@dataclass(frozen=True, slots=True)
class PowerCandidate:
    """One way to tell a PDU's power, and what ``choose_pdu_power`` made of it.

    verdict: chosen, disagrees (off the children's sum by more than the tolerance),
    incomplete (a member reports no power), unavailable (nothing to read), not_needed.
    """

    rule: str
    devices: tuple[str, ...]
    power_watts: float | None
    verdict: str


@dataclass(frozen=True, slots=True)
class PduPowerChoice:
    target: str
    device: str
    power_watts: float | None  # None: no candidate survived; missing, never 0
    rule: str | None
    reference_watts: float | None  # the complete branch (else outlet) sum it was checked against
    candidates: tuple[PowerCandidate, ...]


def choose_pdu_power(
    readings: pl.DataFrame,
    layout: PowerDistributionLayout,
    *,
    tolerance_ratio: float = 0.05,
    tolerance_watts: float = 50.0,
) -> PduPowerChoice:
    """The power reading of a PDU that feeds the roll-up, with every candidate's verdict.

    The roll-up wants what the PDU draws from its feed: that is what the upstream breaker,
    the feed's capacity and the utility meter see. So the PDU's own input-side figures come
    first, in this order:

    1. ``mains``: the sum of the Mains circuits' PowerWatts, only when every Mains circuit
       reports one (the input meter itself). Per-line poly-phase readings are never summed
       into a total here: line-to-line and line-to-neutral figures overlap.
    2. ``metrics``: PowerDistributionMetrics.PowerWatts, the schema's equipment total.
    3. ``total_sensor``: a Power sensor with ElectricalContext Total, the one Metrics cites
       as its DataSourceUri first, then the others under the PDU's chassis by path.

    Each of these is checked against the reference: the sum of the branch circuits when
    every branch reports, else the sum of the outlets when every outlet reports. Energy is
    conserved, and a PDU's own electronics draw tens of watts, so an input figure more than
    max(tolerance_ratio x reference, tolerance_watts) away from what leaves through its
    branches is a broken figure, not a measurement: it is passed over (verdict
    ``disagrees``). With no complete reference the first available input figure wins as is.

    4. ``branches``, then 5. ``outlets``: the complete sums themselves, when no input-side
       figure survived. The outlet sum is a lower bound (it misses the PDU's own draw and
       any unmetered load), which is why it comes last.

    Nothing survives: power_watts is None, never 0. On public-pdu, Mains/AC1 has no
    PowerWatts, Metrics says 6438 W against 2731.7 W through the branches (and cites the
    PDUPower sensor, which says 2734.8 W), so PDUPower wins; ACMainPower (28783 W) is also
    a Total sensor and disagrees too. The outlet sum (2714.5 W) is not needed.
    """
    power = readings.filter(
        (pl.col("target") == layout.target) & (pl.col("metric") == "power_watts")
    )
    by_device = dict(zip(power["device"].to_list(), power["value"].to_list(), strict=True))

    def complete_sum(rule: str, devices: tuple[str, ...]) -> PowerCandidate:
        if not devices:
            return PowerCandidate(rule, devices, None, "unavailable")
        values = [by_device.get(device) for device in devices]
        if any(value is None for value in values):
            return PowerCandidate(rule, devices, None, "incomplete")
        return PowerCandidate(rule, devices, math.fsum(v for v in values if v is not None), "")

    def single(rule: str, device: str | None) -> PowerCandidate:
        if device is None or by_device.get(device) is None:
            return PowerCandidate(rule, (device,) if device else (), None, "unavailable")
        return PowerCandidate(rule, (device,), by_device[device], "")

    inputs = [complete_sum("mains", layout.mains), single("metrics", layout.metrics)]
    inputs += [single("total_sensor", sensor) for sensor in layout.total_sensors]
    children = [complete_sum("branches", layout.branches), complete_sum("outlets", layout.outlets)]
    reference = next((c.power_watts for c in children if c.power_watts is not None), None)

    decided: list[PowerCandidate] = []
    chosen: PowerCandidate | None = None
    for candidate in [*inputs, *children]:
        if candidate.power_watts is None:
            decided.append(candidate)
            continue
        if chosen is not None:
            decided.append(_with_verdict(candidate, "not_needed"))
            continue
        is_input = candidate.rule not in ("branches", "outlets")
        if is_input and reference is not None:
            tolerance = max(tolerance_ratio * abs(reference), tolerance_watts)
            if abs(candidate.power_watts - reference) > tolerance:
                decided.append(_with_verdict(candidate, "disagrees"))
                continue
        chosen = _with_verdict(candidate, "chosen")
        decided.append(chosen)
    return PduPowerChoice(
        target=layout.target,
        device=layout.device,
        power_watts=chosen.power_watts if chosen else None,
        rule=chosen.rule if chosen else None,
        reference_watts=reference,
        candidates=tuple(decided),
    )


def _with_verdict(candidate: PowerCandidate, verdict: str) -> PowerCandidate:
    return PowerCandidate(candidate.rule, candidate.devices, candidate.power_watts, verdict)


PDU_POWER: schemas.Schema = {
    "target": pl.String,
    "device": pl.String,  # the PowerDistribution resource
    "power_watts": pl.Float64,  # null when no candidate survived
    "rule": pl.String,  # mains, metrics, total_sensor, branches, outlets; null with no value
    "source_device": pl.String,  # the winning resource, or the collection a sum was made over
    "reference_watts": pl.Float64,
}


def pdu_power_frame(
    readings: pl.DataFrame, layouts: Iterable[PowerDistributionLayout], **tolerances: float
) -> pl.DataFrame:
    """One row per PDU: the power ``choose_pdu_power`` picks, and where it came from."""
    rows = []
    for layout in layouts:
        choice = choose_pdu_power(readings, layout, **tolerances)
        source = None
        for candidate in choice.candidates:
            if candidate.verdict == "chosen":
                devices = candidate.devices
                source = devices[0] if len(devices) == 1 else devices[0].rsplit("/", 1)[0]
        rows.append(
            (
                choice.target,
                choice.device,
                choice.power_watts,
                choice.rule,
                source,
                choice.reference_watts,
            )
        )
    return pl.DataFrame(rows, schema=dict(PDU_POWER), orient="row")


# --- servers: which chassis reading is the server's input power ------------------------------

CHASSIS_POWER: schemas.Schema = {
    "target": pl.String,
    "device": pl.String,  # the Chassis resource
    "power_watts": pl.Float64,
    "rule": pl.String,  # environment_metrics or power_control
    "source_device": pl.String,  # the reading that won
}

_CHASSIS_RULES = (
    # (rule, pattern of the reading's device; group 1 is the chassis, group 2 an order)
    ("environment_metrics", r"^(.*/Chassis/[^/#]+)/EnvironmentMetrics()$"),
    ("power_control", r"^(.*/Chassis/[^/#]+)/Power#/PowerControl/(\d+)$"),
)


def chassis_power_frame(readings: pl.DataFrame) -> pl.DataFrame:
    """One row per chassis with a power reading: the figure that is the server's input power.

    1. ``environment_metrics``: ``Chassis/{id}/EnvironmentMetrics`` PowerWatts, the schema
       that replaced ``Power`` (deprecated since 2020.4) and the one current firmware keeps up.
    2. ``power_control``: the legacy ``Chassis/{id}/Power`` PowerControl PowerConsumedWatts,
       the lowest-numbered member that reports (member 0 is the chassis total on the Dell
       and HPE captures; most BMCs in service still serve only this).

    Power supply figures are not summed into a total: a supply the crawl did not read
    cannot be told from an empty bay, and input figures overstate (the Dell capture has
    900 W in on a 750 W unit). Both candidates stay readings of their own, so the probe
    shows the disagreement (public-rackmount1: 374 W against 344 W).
    """
    power = readings.filter(
        (pl.col("metric") == "power_watts") & (pl.col("device_kind") == "chassis")
    )
    candidates = [
        power.select(
            "target",
            pl.col("device").str.extract(pattern, 1).alias("chassis"),
            pl.col("value").alias("power_watts"),
            pl.lit(rule).alias("rule"),
            pl.lit(rank).alias("rank"),
            pl.col("device").str.extract(pattern, 2).cast(pl.Int64, strict=False).alias("order"),
            pl.col("device").alias("source_device"),
        ).filter(pl.col("chassis").is_not_null() & pl.col("power_watts").is_not_null())
        for rank, (rule, pattern) in enumerate(_CHASSIS_RULES)
    ]
    return (
        pl.concat(candidates)
        .sort("target", "chassis", "rank", "order", nulls_last=False)
        .unique(["target", "chassis"], keep="first", maintain_order=True)
        .select(
            "target",
            pl.col("chassis").alias("device"),
            "power_watts",
            "rule",
            "source_device",
        )
    )
