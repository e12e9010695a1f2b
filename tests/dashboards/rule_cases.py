"""promtool unit tests for every rule, built from the default thresholds.

Most alerts judge one quantity against a limit (a load over its rating, a temperature, a
share). For those a ``Probe`` says how to build the input series that hold the quantity at a
value, and the harness writes two promtool test groups per rule: one just past the limit,
checked one evaluation before its ``for:`` elapses (nothing firing) and when it elapses
(firing, with its labels and severity), and one just short of the limit, checked when the
``for:`` has elapsed (nothing firing). What else of the same alert name must fire at those
times (a warning under a critical) follows from the sibling probes' limits.

Alerts of another shape (counters, absence, staleness, two-sided bands) have hand-written
groups in ``special_groups``; each names the rules it probes on both sides. Recording rules
are checked with exact values over two shards in ``recording_group``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Literal

import yaml

from collector.schemas import LEVEL_LABELS
from dashboards.generate import ALERTS_FILE, rule_files
from dashboards.promql import record_name
from dashboards.recording import (
    BUILDING_RACK_POWER,
    HALL_RACK_POWER,
    HALL_TEMPERATURE,
    METER_RATING,
    SITE_CONTRACT,
    SITE_CONTRACT_UTILIZATION,
    SITE_FACILITY_POWER,
    SITE_IT_CAPACITY,
    SITE_IT_POWER,
    building_pue_name,
    site_pue_name,
)
from exporters.contract import name_of
from exporters.contract.thresholds import (
    DEFAULT_THRESHOLDS,
    Thresholds,
    format_duration,
    parse_duration,
)

STEP = 15.0  # seconds between samples and between rule evaluations
INSTANCE = {"instance": "gw-0:9640", "job": "gigawatt"}
OTHER_INSTANCE = {"instance": "gw-1:9640", "job": "gigawatt"}

# One entity per level, named as the demo site names them.
ENTITY = {
    "building": "B01",
    "lineup": "A",
    "hall": "B01-H1",
    "row": "B01-H1-R01",
    "rack": "B01-H1-R01-K01",
    "feed": "A",
    "node": "B01-H1-R01-K01-N1",
    "accelerator": "B01-H1-R01-K01-N1-A03",
}


def entity_labels(frame: str, **override: str) -> dict[str, str]:
    """The labels of ``frame``'s physical level, for the one entity of ENTITY."""
    return {name: override.get(name, ENTITY[name]) for name in LEVEL_LABELS[frame]}


def _selector(name: str, labels: dict[str, str]) -> str:
    inner = ",".join(f'{key}="{value}"' for key, value in labels.items())
    return f"{name}{{{inner}}}"


def series(frame: str, column: str, labels: dict[str, str], values: str) -> dict[str, str]:
    """One input series of the metric read from ``frame``/``column``."""
    return {"series": _selector(name_of(frame, column), labels), "values": values}


def constant(value: float, samples: int) -> str:
    return f"{value!r}x{samples}"


def rising(start: float, per_step: float, samples: int) -> str:
    return f"{start!r}+{per_step!r}x{samples}"


def at(seconds: float) -> str:
    return format_duration(seconds)


# --- what Prometheus writes into an alert's annotations ----------------------------------------


def _go_g(value: float) -> str:
    """Go's %.4g, which Prometheus' humanize functions use (Python's agrees)."""
    return format(value, ".4g")


def _humanize(value: float) -> str:
    if value == 0 or not math.isfinite(value):
        return _go_g(value)
    prefixes = ("k", "M", "G", "T", "P", "E", "Z", "Y") if abs(value) >= 1 else ("m", "u", "n")
    prefix = ""
    for candidate in prefixes:
        if (abs(value) < 1000) if abs(value) >= 1 else (abs(value) >= 1):
            break
        prefix = candidate
        value = value / 1000 if prefixes[0] == "k" else value * 1000
    return f"{_go_g(value)}{prefix}"


def _humanize_duration(value: float) -> str:
    if value == 0:
        return f"{_go_g(value)}s"
    assert value >= 1, "durations under a second are not used by these rules"
    whole = int(value)
    days, hours = whole // 86400, whole // 3600 % 24
    minutes, seconds = whole // 60 % 60, whole % 60
    if days:
        return f"{days}d {hours}h {minutes}m {seconds}s"
    if hours:
        return f"{hours}h {minutes}m {seconds}s"
    if minutes:
        return f"{minutes}m {seconds}s"
    return f"{_go_g(value)}s"


_FUNCTIONS: dict[str, Callable[[float], str]] = {
    "humanize": _humanize,
    "humanizePercentage": lambda value: f"{_go_g(value * 100)}%",
    "humanizeDuration": _humanize_duration,
}
_ACTION = re.compile(r"\{\{\s*(.*?)\s*\}\}")


def render(template: str, labels: dict[str, str], value: float) -> str:
    """An annotation as Prometheus renders it, for the template actions these rules use
    (a label, or the value through humanize, humanizePercentage, humanizeDuration or printf);
    anything else fails the test, so a new construct gets a rendering here first."""

    def action(match: re.Match[str]) -> str:
        text = match.group(1)
        if text.startswith("$labels."):
            return labels[text.removeprefix("$labels.")]
        function = text.removeprefix("$value | ")
        if function in _FUNCTIONS:
            return _FUNCTIONS[function](value)
        printf = re.fullmatch(r'printf "(%\.\d+f)"', function)
        assert printf, f"no rendering for template action {text!r}"
        return printf.group(1) % value

    return _ACTION.sub(action, template)


@cache
def _alert_rules() -> dict[tuple[str, str], dict[str, Any]]:
    document = yaml.safe_load(rule_files(DEFAULT_THRESHOLDS)[ALERTS_FILE])
    return {
        (rule["alert"], rule["labels"]["severity"]): rule
        for group in document["groups"]
        for rule in group["rules"]
    }


def fired(alert: str, labels: dict[str, str], value: float) -> dict[str, Any]:
    """An expected firing alert: its labels (severity included) and its annotations as
    rendered for ``value``."""
    rule = _alert_rules()[(alert, labels["severity"])]
    return {
        "exp_labels": labels,
        "exp_annotations": {
            name: render(text, labels, value) for name, text in rule["annotations"].items()
        },
    }


Build = Callable[[float, int], list[dict[str, str]]]


@dataclass(frozen=True)
class Probe:
    """One alert rule whose condition is one quantity against one limit."""

    alert: str
    severity: str
    limit: float
    direction: Literal["above", "below"]
    for_seconds: float
    build: Build  # (quantity, samples) -> input series holding the quantity from t = 0
    labels: dict[str, str]  # the firing alert's labels, severity aside
    past: float | None = None  # the quantity just past the limit; default: by the margin
    short: float | None = None  # just short of it; default: by the margin
    margin: float = 0.01  # share of the limit
    true_from: float = 0.0  # first evaluation at which the condition can hold
    shown: Callable[[float], float] = float  # the alert's $value for a quantity

    def _margin(self) -> float:
        return max(abs(self.limit) * self.margin, 1e-3)

    def crosses(self, value: float) -> bool:
        return value > self.limit if self.direction == "above" else value < self.limit

    def value_past(self) -> float:
        if self.past is not None:
            return self.past
        sign = 1 if self.direction == "above" else -1
        return self.limit + sign * self._margin()

    def value_short(self) -> float:
        if self.short is not None:
            return self.short
        sign = 1 if self.direction == "above" else -1
        return self.limit - sign * self._margin()

    def fires_at(self) -> float:
        return self.true_from + self.for_seconds


def _expected(probes: list[Probe], value: float, time: float) -> list[dict[str, Any]]:
    """The alerts of the probes' name firing at ``time`` when their quantity is ``value``."""
    return [
        fired(probe.alert, {**probe.labels, "severity": probe.severity}, probe.shown(value))
        for probe in probes
        if probe.crosses(value) and time >= probe.fires_at()
    ]


def probe_groups(probe: Probe, siblings: list[Probe]) -> list[dict[str, Any]]:
    """Two test groups: just past the limit (before and after the for:), just short."""
    fires = probe.fires_at()
    samples = int(fires / STEP) + 4
    groups = []
    for value, times in (
        (probe.value_past(), [fires - STEP, fires] if probe.for_seconds > 0 else [fires]),
        (probe.value_short(), [fires]),
    ):
        assert probe.crosses(value) == (value == probe.value_past()), probe
        groups.append(
            {
                "name": f"{probe.alert} {probe.severity} at {value!r}",
                "interval": at(STEP),
                "input_series": probe.build(value, samples),
                "alert_rule_test": [
                    {
                        "eval_time": at(time),
                        "alertname": probe.alert,
                        "exp_alerts": _expected(siblings, value, time),
                    }
                    for time in times
                    if time >= 0
                ],
            }
        )
    return groups


# --- builders --------------------------------------------------------------------------------


def _load(frame: str) -> Build:
    """A level whose mean power over its capacity is the quantity."""
    labels = {**entity_labels(frame), **INSTANCE}

    def build(value: float, samples: int) -> list[dict[str, str]]:
        return [
            series(frame, "power_watts", labels, constant(value * 10_000, samples)),
            series(frame, "capacity_watts", labels, constant(10_000, samples)),
        ]

    return build


def _n_minus_one(value: float, samples: int) -> list[dict[str, str]]:
    """Rack power over its weakest feed's rating (feeds rated 10 kW and 12 kW)."""
    rack = {**entity_labels("rack"), **INSTANCE}
    return [
        series("rack", "power_watts", rack, constant(value * 10_000, samples)),
        series(
            "feed",
            "capacity_watts",
            {**entity_labels("feed"), **INSTANCE},
            constant(10_000, samples),
        ),
        series(
            "feed",
            "capacity_watts",
            {**entity_labels("feed", feed="B"), **INSTANCE},
            constant(12_000, samples),
        ),
    ]


def _feed_share(value: float, samples: int) -> list[dict[str, str]]:
    """Feed A's share of a 20 kW rack; feed B carries the rest."""
    return [
        series(
            "rack", "power_watts", {**entity_labels("rack"), **INSTANCE}, constant(20_000, samples)
        ),
        series(
            "feed",
            "power_watts",
            {**entity_labels("feed"), **INSTANCE},
            constant(value * 20_000, samples),
        ),
        series(
            "feed",
            "power_watts",
            {**entity_labels("feed", feed="B"), **INSTANCE},
            constant((1 - value) * 20_000, samples),
        ),
    ]


def _contract(value: float, samples: int) -> list[dict[str, str]]:
    """Two shards, each with one building and the whole 1 MW contract; their facility power
    sums to ``value`` of the contract."""
    return [
        series("site", "contract_watts", INSTANCE, constant(1e6, samples)),
        series("site", "contract_watts", OTHER_INSTANCE, constant(1e6, samples)),
        series(
            "building",
            "facility_power_watts",
            {"building": "B01", **INSTANCE},
            constant(value * 6e5, samples),
        ),
        series(
            "building",
            "facility_power_watts",
            {"building": "B02", **OTHER_INSTANCE},
            constant(value * 4e5, samples),
        ),
    ]


def _pue(value: float, samples: int) -> list[dict[str, str]]:
    labels = {"building": "B01", **INSTANCE}
    return [
        series("building", "facility_energy_joules", labels, rising(0, value * 1.5e6, samples)),
        series("building", "energy_joules", labels, rising(0, 1.5e6, samples)),
    ]


def _anomaly(column: str, reason: str, frame: str = "anomaly", **extra: str) -> Build:
    labels = {**entity_labels("accelerator"), **extra, **INSTANCE}

    def build(value: float, samples: int) -> list[dict[str, str]]:
        return [series(frame, column, {**labels, "reason": reason}, constant(value, samples))]

    return build


def _hot(value: float, samples: int) -> list[dict[str, str]]:
    """One chip listed twice (hot, and cooler as a power outlier): judged once, at its
    highest reading."""
    labels = {**entity_labels("accelerator"), **INSTANCE}
    return [
        series(
            "anomaly", "temperature_celsius", {**labels, "reason": "hot"}, constant(value, samples)
        ),
        series(
            "anomaly",
            "temperature_celsius",
            {**labels, "reason": "power_outlier"},
            constant(value - 5, samples),
        ),
    ]


def _cooling(climb: float, samples: int) -> list[dict[str, str]]:
    """Two racks of a hall whose hottest chips warm by ``climb`` °C/min at a steady 20 kW."""
    built = []
    for rack in ("B01-H1-R01-K01", "B01-H1-R01-K02"):
        labels = {**entity_labels("rack", rack=rack), **INSTANCE}
        built += [
            series(
                "rack", "max_temperature_celsius", labels, rising(60, climb * STEP / 60, samples)
            ),
            series("rack", "power_watts", labels, constant(20_000, samples)),
        ]
    return built


POI_RATING = 2.5e6  # the contract of the demo site: the poi meter's rating


def _meter(frame: str, column: str, labels: dict[str, str], scale: float) -> Build:
    """A poi meter series holding quantity x ``scale``, with the contract that rates it."""

    def build(value: float, samples: int) -> list[dict[str, str]]:
        return [
            series("site", "contract_watts", INSTANCE, constant(POI_RATING, samples)),
            series(frame, column, {**labels, **INSTANCE}, constant(value * scale, samples)),
        ]

    return build


def _band_energy(value: float, samples: int) -> list[dict[str, str]]:
    """Band 1-3 Hz holding ``value`` of the energy, with a peak twice the floor the alert
    requires (the defaults' band_energy_min_peak_to_peak_ratio)."""
    labels = {"meter": "poi", "band": "1-3 Hz", **INSTANCE}
    peak = 2 * DEFAULT_THRESHOLDS.grid.band_energy_min_peak_to_peak_ratio * POI_RATING
    return [
        series("site", "contract_watts", INSTANCE, constant(POI_RATING, samples)),
        series("grid_band", "energy_ratio", labels, constant(value, samples)),
        series("grid_band", "peak_to_peak_watts", labels, constant(peak, samples)),
    ]


def _skipping(value: float, samples: int) -> list[dict[str, str]]:
    """A collector that skips ``value`` of its cycle slots: of every 10 slots, 10 x value
    skipped and the rest run."""
    return [
        series("process", "cycles", INSTANCE, rising(0, (1 - value) * 10, samples)),
        series("process", "skipped", INSTANCE, rising(0, value * 10, samples)),
    ]


def _gauge(frame: str, column: str, labels: dict[str, str]) -> Build:
    def build(value: float, samples: int) -> list[dict[str, str]]:
        return [series(frame, column, {**labels, **INSTANCE}, constant(value, samples))]

    return build


def _power_lost(value: float, samples: int) -> list[dict[str, str]]:
    labels = {"building": "B01", **INSTANCE}
    return [
        series("building", "power_watts", labels, constant(value * 1e6, samples)),
        series("building", "capacity_watts", labels, constant(1e6, samples)),
        series("building", "reporting_ratio", labels, constant(1, samples)),
    ]


def probes(t: Thresholds) -> list[Probe]:
    c, th, acc, g, q, col = (
        t.capacity,
        t.thermal,
        t.accelerators,
        t.grid,
        t.data_quality,
        t.collector,
    )
    found: list[Probe] = []

    def add(
        alert: str,
        levels: Any,
        direction: Literal["above", "below"],
        build: Build,
        labels: dict[str, str],
        **options: Any,
    ) -> None:
        for severity, limit in levels.limits():
            found.append(
                Probe(alert, severity, limit.value, direction, limit.for_, build, labels, **options)
            )

    for alert, frame in (
        ("FeedLoadHigh", "feed"),
        ("RackLoadHigh", "rack"),
        ("RowLoadHigh", "row"),
        ("HallLoadHigh", "hall"),
        ("LineupLoadHigh", "lineup"),
        ("BuildingLoadHigh", "building"),
    ):
        add(alert, getattr(c, frame), "above", _load(frame), {**entity_labels(frame), **INSTANCE})
    rack = {**entity_labels("rack"), **INSTANCE}
    found.append(
        Probe(
            "RackNotRedundant",
            "warning",
            c.n_minus_one.value,
            "above",
            c.n_minus_one.for_,
            _n_minus_one,
            rack,
        )
    )
    found.append(
        Probe(
            "RackFeedLost",
            "critical",
            c.feed_lost_share.value,
            "below",
            c.feed_lost_share.for_,
            _feed_share,
            {**entity_labels("feed"), **INSTANCE},
        )
    )
    add("SitePowerNearContract", c.contract, "above", _contract, {})
    # rate() needs two samples of each energy counter.
    add("BuildingPUEHigh", c.pue, "above", _pue, {"building": "B01"}, true_from=STEP)

    accelerator = {**entity_labels("accelerator"), **INSTANCE}
    add("AcceleratorTemperatureHigh", th.accelerator_celsius, "above", _hot, accelerator)
    add(
        "HallCoolingDegraded",
        th.cooling_celsius_per_minute,
        "above",
        _cooling,
        {"building": "B01", "hall": "B01-H1"},
        # The trend is judged once the hall's temperature was recorded a whole window ago.
        true_from=parse_duration(t.window(th.cooling_window)),
        margin=0.04,  # its description prints two decimals: clear of a rounding tie
    )

    for severity, limit in acc.recent_errors.limits():
        found.append(
            Probe(
                "AcceleratorErrorsIncreasing",
                severity,
                limit.value,
                "above",
                limit.for_,
                _anomaly("recent_errors", "errors"),
                accelerator,
                past=limit.value + 1,
                short=limit.value,
            )
        )
    found.append(
        Probe(
            "AcceleratorStoppedReporting",
            "warning",
            acc.silent_after,
            "above",
            0.0,
            _anomaly("silent_seconds", "silent"),
            accelerator,
            past=acc.silent_after + STEP,
            short=acc.silent_after,
        )
    )
    job = {**accelerator, "training_job": "job-00001-0"}
    add(
        "AcceleratorStragglerPower",
        acc.straggler_power_ratio,
        "below",
        _anomaly("job_power_ratio", "straggler_power", "anomaly_job", training_job="job-00001-0"),
        job,
    )
    add(
        "AcceleratorStragglerTemperature",
        acc.straggler_temperature_excess_celsius,
        "above",
        _anomaly(
            "job_temperature_excess_celsius",
            "straggler_temperature",
            "anomaly_job",
            training_job="job-00001-0",
        ),
        job,
    )

    # The ramp is falling (negative): the rule judges its size. Quantity: W/min at the
    # reference rating, which the poi meter's 2.5 MW rating scales down.
    ramp_labels = {"meter": "poi", "window": g.ramp_window}
    add(
        "GridRampRateHigh",
        g.ramp_watts_per_minute,
        "above",
        _meter(
            "grid_ramp",
            "watts_per_second",
            ramp_labels,
            -POI_RATING / g.reference_rating_watts / 60,
        ),
        {**ramp_labels, **INSTANCE},
        shown=lambda quantity: quantity * POI_RATING / g.reference_rating_watts,
    )
    band = next(b for b in g.oscillation if b.warning_ratio and b.critical_ratio)
    band_labels = {"meter": "poi", "band": band.band}
    for severity, ratio in (("warning", band.warning_ratio), ("critical", band.critical_ratio)):
        assert ratio is not None
        found.append(
            Probe(
                "GridOscillationAmplitudeHigh",
                severity,
                ratio,
                "above",
                g.oscillation_for,
                _meter("grid_band", "peak_to_peak_watts", band_labels, POI_RATING),
                {**band_labels, **INSTANCE},
            )
        )
    add(
        "GridBandEnergyHigh",
        g.band_energy_ratio,
        "above",
        _band_energy,
        {"meter": "poi", "band": "1-3 Hz", **INSTANCE},
    )

    source = {"source": "redfish", "target": "pdu-b01-1"}
    found.append(
        Probe(
            "SourceDown",
            "warning",
            0.5,
            "below",
            q.source_down_for,
            _gauge("source", "up", source),
            {**source, **INSTANCE},
            past=0,
            short=1,
        )
    )
    building = {"building": "B01", **INSTANCE}
    add(
        "BuildingReportingLow",
        q.building_reporting_ratio,
        "below",
        _gauge("building", "reporting_ratio", {"building": "B01"}),
        building,
    )
    add(
        "BuildingAcceleratorsReportingLow",
        q.building_accelerators_reporting_ratio,
        "below",
        _gauge("building", "accelerators_reporting_ratio", {"building": "B01"}),
        building,
    )
    lost = q.building_power_lost_ratio
    found.append(
        Probe(
            "BuildingPowerLost", "critical", lost.value, "below", lost.for_, _power_lost, building
        )
    )
    found.append(
        Probe(
            "CollectorCycleOverrun",
            "warning",
            col.skipped_ratio.value,
            "above",
            col.skipped_ratio.for_,
            _skipping,
            INSTANCE,
            true_from=STEP,  # rate() needs two samples
        )
    )
    found.append(
        Probe(
            "CollectorExpositionSlow",
            "warning",
            col.render_seconds.value,
            "above",
            col.render_seconds.for_,
            _gauge("process", "render_seconds", {}),
            INSTANCE,
        )
    )
    return found


# --- hand-written groups ---------------------------------------------------------------------


@dataclass(frozen=True)
class Special:
    """A hand-written promtool test group and the rules (alert, severity) it probes on both
    sides of their limit and, where they have one, of their for:."""

    covers: tuple[tuple[str, str], ...]
    group: dict[str, Any] = field(default_factory=dict)


def _alert_test(time: float, alert: str, *firing: tuple[dict[str, str], float]) -> dict[str, Any]:
    """What fires of ``alert`` at ``time``: (labels, value) of each firing series."""
    return {
        "eval_time": at(time),
        "alertname": alert,
        "exp_alerts": [fired(alert, labels, value) for labels, value in firing],
    }


def special_groups(t: Thresholds) -> list[Special]:
    q, g, col = t.data_quality, t.grid, t.collector
    groups: list[Special] = []

    # Counters of events: an alert from the first evaluation that sees the increase until
    # the look-back has passed it; a flat counter never fires.
    lookback = g.event_lookback
    n = int((lookback + 10 * STEP) / STEP) + 2
    steps = {"meter": "poi", **INSTANCE}
    groups.append(
        Special(
            (("GridLoadStep", "warning"), ("GridUncommandedLoadDrop", "critical")),
            {
                "name": "grid steps and drops counted by the collector",
                "interval": at(STEP),
                "input_series": [
                    series("grid_step", "steps", {**steps, "direction": "down"}, f"0x9 1x{n}"),
                    series("grid_step", "steps", {**steps, "direction": "up"}, constant(0, n)),
                    series("grid_meter", "drops", steps, f"0x9 1x{n}"),
                    series("grid_meter", "drops", {**steps, "meter": "B01"}, constant(0, n)),
                ],
                "alert_rule_test": [
                    _alert_test(9 * STEP, "GridLoadStep"),
                    _alert_test(
                        10 * STEP,
                        "GridLoadStep",
                        ({**steps, "direction": "down", "severity": "warning"}, 1),
                    ),
                    _alert_test(10 * STEP + lookback + STEP, "GridLoadStep"),
                    _alert_test(9 * STEP, "GridUncommandedLoadDrop"),
                    _alert_test(
                        10 * STEP, "GridUncommandedLoadDrop", ({**steps, "severity": "critical"}, 1)
                    ),
                    _alert_test(10 * STEP + lookback + STEP, "GridUncommandedLoadDrop"),
                ],
            },
        )
    )

    failures = int(col.failures_lookback / STEP) + 12
    groups.append(
        Special(
            (("CollectorCycleFailures", "warning"),),
            {
                "name": "a failed cycle",
                "interval": at(STEP),
                "input_series": [
                    series("process", "failures", INSTANCE, f"0x9 1x{failures}"),
                    series("process", "failures", OTHER_INSTANCE, constant(0, failures)),
                ],
                "alert_rule_test": [
                    _alert_test(9 * STEP, "CollectorCycleFailures"),
                    _alert_test(
                        10 * STEP,
                        "CollectorCycleFailures",
                        ({**INSTANCE, "severity": "warning"}, 1),
                    ),
                    _alert_test(10 * STEP + col.failures_lookback + STEP, "CollectorCycleFailures"),
                ],
            },
        )
    )

    # Timestamps: a healthy one advances with the clock, a stuck one stays at 0.
    for alert, frame, column, labels, limit, severity in (
        ("CollectorStalled", "process", "timestamp_seconds", {}, col.stalled_after, "critical"),
        (
            "SourceDataStale",
            "source",
            "last_success_timestamp_seconds",
            {"source": "redfish", "target": "pdu-b01-1"},
            q.stale_after,
            "warning",
        ),
    ):
        samples = int(limit / STEP) + 4
        groups.append(
            Special(
                ((alert, severity),),
                {
                    "name": f"{alert}: one target stuck, one advancing",
                    "interval": at(STEP),
                    "input_series": [
                        series(frame, column, {**labels, **INSTANCE}, constant(0, samples)),
                        series(
                            frame, column, {**labels, **OTHER_INSTANCE}, rising(0, STEP, samples)
                        ),
                    ],
                    "alert_rule_test": [
                        _alert_test(limit, alert),
                        _alert_test(
                            limit + STEP,
                            alert,
                            ({**labels, **INSTANCE, "severity": severity}, limit + STEP),
                        ),
                    ],
                },
            )
        )

    absent = int(col.absent_for / STEP) + 4
    groups += [
        Special(
            (("CollectorAbsent", "critical"),),
            {
                "name": "no gigawatt series at all",
                "interval": at(STEP),
                "input_series": [
                    {
                        "series": 'up{instance="gw-0:9640",job="gigawatt"}',
                        "values": constant(0, absent),
                    }
                ],
                "alert_rule_test": [
                    _alert_test(col.absent_for - STEP, "CollectorAbsent"),
                    _alert_test(col.absent_for, "CollectorAbsent", ({"severity": "critical"}, 1)),
                ],
            },
        ),
        Special(
            (("CollectorAbsent", "critical"),),
            {
                "name": "a collector scraped",
                "interval": at(STEP),
                "input_series": [
                    series("build", "value", {**INSTANCE, "version": "0.1.0"}, constant(1, absent))
                ],
                "alert_rule_test": [_alert_test(col.absent_for + STEP, "CollectorAbsent")],
            },
        ),
        Special(
            (("Watchdog", "none"),),
            {
                "name": "the watchdog always fires",
                "interval": at(STEP),
                "input_series": [],
                "alert_rule_test": [
                    _alert_test(0, "Watchdog", ({"severity": "none"}, 1)),
                    _alert_test(3600, "Watchdog", ({"severity": "none"}, 1)),
                ],
            },
        ),
    ]

    # A silent feed: its rating is exposed, its power is not.
    silent = int(q.feed_silent_for / STEP) + 4
    feed_a = {**entity_labels("feed"), **INSTANCE}
    feed_b = {**entity_labels("feed", feed="B"), **INSTANCE}
    groups.append(
        Special(
            (("FeedNotReporting", "warning"),),
            {
                "name": "feed A silent, feed B reporting",
                "interval": at(STEP),
                "input_series": [
                    series("feed", "capacity_watts", feed_a, constant(34_500, silent)),
                    series("feed", "capacity_watts", feed_b, constant(34_500, silent)),
                    series("feed", "power_watts", feed_b, constant(12_000, silent)),
                ],
                "alert_rule_test": [
                    _alert_test(q.feed_silent_for - STEP, "FeedNotReporting"),
                    _alert_test(
                        q.feed_silent_for,
                        "FeedNotReporting",
                        ({**feed_a, "severity": "warning"}, 34_500),
                    ),
                ],
            },
        )
    )

    # A building whose feeds all went silent: no power series, reporting ratio 0.
    lost = q.building_power_lost_ratio.for_
    samples = int(lost / STEP) + 4
    groups.append(
        Special(
            (("BuildingPowerLost", "critical"),),
            {
                "name": "a building with no feed reporting",
                "interval": at(STEP),
                "input_series": [
                    series(
                        "building",
                        "reporting_ratio",
                        {"building": "B01", **INSTANCE},
                        constant(0, samples),
                    ),
                    series(
                        "building",
                        "reporting_ratio",
                        {"building": "B02", **INSTANCE},
                        constant(0.5, samples),
                    ),
                    series(
                        "building",
                        "capacity_watts",
                        {"building": "B01", **INSTANCE},
                        constant(1e6, samples),
                    ),
                ],
                "alert_rule_test": [
                    _alert_test(lost - STEP, "BuildingPowerLost"),
                    _alert_test(
                        lost,
                        "BuildingPowerLost",
                        ({"building": "B01", **INSTANCE, "severity": "critical"}, 0),
                    ),
                ],
            },
        )
    )

    # Counter resets: increases of a source's counter_reset problems; PDU meters going down.
    window = q.counter_resets
    span = t.data_quality.counter_reset_window
    samples = int(span / STEP) + 4
    per_window = span / STEP
    problems = {"source": "prometheus", "reason": "counter_reset", **INSTANCE}
    calm = {**problems, "source": "redfish"}
    groups.append(
        Special(
            (("CounterResetStorm", "warning"),),
            {
                "name": "a source's counters resetting twice as often as allowed, another half",
                "interval": at(STEP),
                "input_series": [
                    series(
                        "problem",
                        "problems",
                        problems,
                        rising(0, 2 * window.value / per_window, samples),
                    ),
                    series(
                        "problem",
                        "problems",
                        calm,
                        rising(0, 0.5 * window.value / per_window, samples),
                    ),
                ],
                "alert_rule_test": [
                    _alert_test(
                        span,
                        "CounterResetStorm",
                        ({**problems, "severity": "warning"}, 2 * window.value),
                    )
                ],
            },
        )
    )
    most = int(window.value)
    sawtooth_over = " ".join(["0 100"] * (most + 1)) + f" 100x{samples}"
    sawtooth_under = " ".join(["0 100"] * most) + f" 100x{samples}"
    groups.append(
        Special(
            (("PduMeterResetStorm", "warning"),),
            {
                "name": "PDU meters of B01 reset once too often, of B02 just often enough",
                "interval": at(STEP),
                "input_series": [
                    series(
                        "feed",
                        "meter_energy_joules",
                        {**entity_labels("feed"), **INSTANCE},
                        f"100 {sawtooth_over}",
                    ),
                    series(
                        "feed",
                        "meter_energy_joules",
                        {**entity_labels("feed", building="B02"), **INSTANCE},
                        f"100 {sawtooth_under}",
                    ),
                ],
                "alert_rule_test": [
                    _alert_test(
                        2 * (most + 1) * STEP,
                        "PduMeterResetStorm",
                        ({"building": "B01", "severity": "warning"}, most + 1),
                    ),
                ],
            },
        )
    )

    # Unattributed power: two-sided, one rack past each side, one just inside each.
    held = q.unattributed_for
    samples = int(held / STEP) + 4
    shares = {
        "B01-H1-R01-K01": q.unattributed_above_ratio + 0.001,
        "B01-H1-R01-K02": q.unattributed_above_ratio - 0.001,
        "B01-H1-R01-K03": q.unattributed_below_ratio - 0.001,
        "B01-H1-R01-K04": q.unattributed_below_ratio + 0.001,
    }
    inputs = []
    for rack_name, share in shares.items():
        labels = {**entity_labels("rack", rack=rack_name), **INSTANCE}
        inputs += [
            series("rack", "power_watts", labels, constant(20_000, samples)),
            series("rack", "unattributed_power_watts", labels, constant(share * 20_000, samples)),
        ]
    firing = [
        ({**entity_labels("rack", rack=name), **INSTANCE, "severity": "warning"}, shares[name])
        for name in ("B01-H1-R01-K01", "B01-H1-R01-K03")
    ]
    groups.append(
        Special(
            (("PowerLayersDisagree", "warning"),),
            {
                "name": "unattributed power each side of its band",
                "interval": at(STEP),
                "input_series": inputs,
                "alert_rule_test": [
                    _alert_test(held - STEP, "PowerLayersDisagree"),
                    _alert_test(held, "PowerLayersDisagree", *firing),
                ],
            },
        )
    )

    # Cooling: a climb fast enough, but with the hall's load rising: the load explains it.
    th = t.thermal
    warn = th.cooling_celsius_per_minute.limits()[-1][1]  # the fastest climb allowed
    window_seconds = th.cooling_window
    samples = int((window_seconds + warn.for_) / STEP) + 4
    rise = 4 * th.cooling_load_change_per_minute  # 4x the steady trend, per minute
    inputs = []
    for rack_name in ("B01-H1-R01-K01", "B01-H1-R01-K02"):
        labels = {**entity_labels("rack", rack=rack_name), **INSTANCE}
        inputs += [
            series(
                "rack",
                "max_temperature_celsius",
                labels,
                rising(60, 2 * warn.value * STEP / 60, samples),
            ),
            series(
                "rack",
                "power_watts",
                labels,
                rising(20_000, 20_000 * rise * STEP / 60, samples),
            ),
        ]
    groups.append(
        Special(
            (("HallCoolingDegraded", "warning"), ("HallCoolingDegraded", "critical")),
            {
                "name": "temperatures climbing with the load",
                "interval": at(STEP),
                "input_series": inputs,
                "alert_rule_test": [
                    _alert_test(window_seconds + warn.for_ + 2 * STEP, "HallCoolingDegraded")
                ],
            },
        )
    )

    # Band energy: a large share with no peak worth the name is noise.
    groups.append(
        Special(
            (("GridBandEnergyHigh", "warning"),),
            {
                "name": "a band's large energy share with a tiny peak",
                "interval": at(STEP),
                "input_series": [
                    series("site", "contract_watts", INSTANCE, constant(POI_RATING, 20)),
                    series(
                        "grid_band",
                        "energy_ratio",
                        {"meter": "poi", "band": "3-10 Hz", **INSTANCE},
                        constant(0.7, 20),
                    ),
                    series(
                        "grid_band",
                        "peak_to_peak_watts",
                        {"meter": "poi", "band": "3-10 Hz", **INSTANCE},
                        constant(0.5 * g.band_energy_min_peak_to_peak_ratio * POI_RATING, 20),
                    ),
                ],
                "alert_rule_test": [
                    _alert_test(g.oscillation_for + 4 * STEP, "GridBandEnergyHigh")
                ],
            },
        )
    )

    # Oscillation in the bands that only warn, each side of their limit, and the rating of
    # a building meter: its share of the contract by IT capacity.
    warn_only = [b for b in g.oscillation if b.warning_ratio and not b.critical_ratio]
    if warn_only:
        ratio = warn_only[0].warning_ratio
        assert ratio is not None
        samples = int(g.oscillation_for / STEP) + 8
        building = {"building": "B01", **INSTANCE}
        # B01 has half the site's IT capacity: its meter is rated half the contract.
        over = {"meter": "B01", "band": warn_only[0].band, **INSTANCE}
        under = {"meter": "poi", "band": warn_only[0].band, **INSTANCE}
        groups.append(
            Special(
                (("GridOscillationAmplitudeHigh", "warning"),),
                {
                    "name": "oscillation in a warn-only band at a building meter",
                    "interval": at(STEP),
                    "input_series": [
                        series("site", "contract_watts", INSTANCE, constant(POI_RATING, samples)),
                        series("building", "capacity_watts", building, constant(1e6, samples)),
                        series(
                            "building",
                            "capacity_watts",
                            {"building": "B02", **INSTANCE},
                            constant(1e6, samples),
                        ),
                        series(
                            "grid_band",
                            "peak_to_peak_watts",
                            over,
                            constant(1.01 * ratio * POI_RATING / 2, samples),
                        ),
                        series(
                            "grid_band",
                            "peak_to_peak_watts",
                            under,
                            constant(0.99 * ratio * POI_RATING, samples),
                        ),
                    ],
                    "alert_rule_test": [
                        _alert_test(g.oscillation_for - STEP, "GridOscillationAmplitudeHigh"),
                        _alert_test(
                            g.oscillation_for,
                            "GridOscillationAmplitudeHigh",
                            ({**over, "severity": "warning"}, 1.01 * ratio),
                        ),
                    ],
                },
            )
        )
    return groups


def annotation_groups(t: Thresholds) -> list[dict[str, Any]]:
    """A few alerts with their whole text, as a person receives it."""
    rack = {**entity_labels("rack"), **INSTANCE}
    limit = t.capacity.rack.critical
    assert limit is not None
    samples = int(limit.for_ / STEP) + 4
    smoothing = format_duration(t.capacity.smoothing)
    return [
        {
            "name": "a rack at 120 % of its continuous rating, as its operator reads it",
            "interval": at(STEP),
            "input_series": [
                series("rack", "power_watts", rack, constant(41_400, samples)),
                series("rack", "capacity_watts", rack, constant(34_500, samples)),
            ],
            "alert_rule_test": [
                {
                    "eval_time": at(limit.for_),
                    "alertname": "RackLoadHigh",
                    "exp_alerts": [
                        {
                            "exp_labels": {**rack, "severity": "critical"},
                            "exp_annotations": {
                                "summary": (
                                    "A rack carries more than 118.75 % of its continuous rating."
                                ),
                                "description": (
                                    "Rack B01-H1-R01-K01 has carried 120% of its continuous "
                                    f"rating (mean over {smoothing}) for "
                                    f"{format_duration(limit.for_)}; the limit is 118.75 %."
                                ),
                                "runbook_url": "docs/runbooks/RackLoadHigh.md",
                            },
                        }
                    ],
                }
            ],
        }
    ]


# --- recording rules -------------------------------------------------------------------------


def recording_group() -> tuple[dict[str, Any], set[str]]:
    """Two shards, each with its buildings' series and its own copy of the contract; the
    totals must count each building once. Returns the group and the rules it checks."""
    samples = 250
    b01, b02 = {"building": "B01", **INSTANCE}, {"building": "B02", **OTHER_INSTANCE}

    def rack(name: str, hall: str) -> dict[str, str]:
        return {"building": "B01", "hall": hall, "row": f"{hall}-R01", "rack": name, **INSTANCE}

    inputs = [
        series("site", "contract_watts", INSTANCE, constant(5e6, samples)),
        series("site", "contract_watts", OTHER_INSTANCE, constant(5e6, samples)),
        series("building", "facility_power_watts", b01, constant(1e6, samples)),
        series("building", "facility_power_watts", b02, constant(2e6, samples)),
        series("building", "power_watts", b01, constant(0.8e6, samples)),
        series("building", "power_watts", b02, constant(1.6e6, samples)),
        series("building", "capacity_watts", b01, constant(1e6, samples)),
        series("building", "capacity_watts", b02, constant(3e6, samples)),
        series("lineup", "capacity_watts", {**b01, "lineup": "A"}, constant(0.75e6, samples)),
        series("rack", "power_watts", rack("B01-H1-R01-K01", "B01-H1"), constant(10_000, samples)),
        series("rack", "power_watts", rack("B01-H1-R01-K02", "B01-H1"), constant(20_000, samples)),
        series("rack", "power_watts", rack("B01-H2-R01-K01", "B01-H2"), constant(5_000, samples)),
        series(
            "rack",
            "max_temperature_celsius",
            rack("B01-H1-R01-K01", "B01-H1"),
            constant(60, samples),
        ),
        series(
            "rack",
            "max_temperature_celsius",
            rack("B01-H1-R01-K02", "B01-H1"),
            constant(70, samples),
        ),
        # Energy: 1.5 MJ and 1.2 MJ every 15 s at B01 (100 kW and 80 kW), twice that at B02.
        series("building", "facility_energy_joules", b01, rising(0, 1.5e6, samples)),
        series("building", "energy_joules", b01, rising(0, 1.2e6, samples)),
        series("building", "facility_energy_joules", b02, rising(0, 3e6, samples)),
        series("building", "energy_joules", b02, rising(0, 2.4e6, samples)),
        series(
            "job",
            "energy_joules",
            {"training_job": "job-00001-0", **INSTANCE},
            rising(0, 0.75e6, samples),
        ),
    ]
    hour = 3600.0
    rate5m = "rate5m"
    month = f"increase{format_duration(30 * 86400)}"
    expected: list[tuple[str, float, dict[str, str]]] = [
        (SITE_FACILITY_POWER, 3e6, {}),
        (SITE_IT_POWER, 2.4e6, {}),
        (SITE_IT_CAPACITY, 4e6, {}),
        (SITE_CONTRACT, 5e6, {}),
        (SITE_CONTRACT_UTILIZATION, 0.6, {}),
        (BUILDING_RACK_POWER, 35_000, {"building": "B01"}),
        (HALL_RACK_POWER, 30_000, {"building": "B01", "hall": "B01-H1"}),
        (HALL_RACK_POWER, 5_000, {"building": "B01", "hall": "B01-H2"}),
        (HALL_TEMPERATURE, 65, {"building": "B01", "hall": "B01-H1"}),
        (METER_RATING, 5e6, {"meter": "poi"}),
        (METER_RATING, 1.25e6, {"meter": "B01"}),
        (METER_RATING, 3.75e6, {"meter": "B02"}),
        (METER_RATING, 0.75e6, {"meter": "B01-A"}),
        (
            record_name("building", "building", "facility_energy_joules", rate5m),
            1e5,
            {"building": "B01"},
        ),
        (
            record_name("building", "building", "facility_energy_joules", rate5m),
            2e5,
            {"building": "B02"},
        ),
        (record_name("building", "building", "energy_joules", rate5m), 8e4, {"building": "B01"}),
        (record_name("building", "building", "energy_joules", rate5m), 1.6e5, {"building": "B02"}),
        (record_name("site", "building", "facility_energy_joules", f"sum_{rate5m}"), 3e5, {}),
        (record_name("site", "building", "energy_joules", f"sum_{rate5m}"), 2.4e5, {}),
        (
            record_name("training_job", "job", "energy_joules", rate5m),
            5e4,
            {"training_job": "job-00001-0"},
        ),
        (building_pue_name(DEFAULT_THRESHOLDS), 1.25, {"building": "B01"}),
        (building_pue_name(DEFAULT_THRESHOLDS), 1.25, {"building": "B02"}),
        (site_pue_name(DEFAULT_THRESHOLDS), 1.25, {}),
        # Counters starting at 0: 30 days of energy is what they hold after the hour.
        (
            record_name("building", "building", "facility_energy_joules", month),
            240 * 1.5e6,
            {"building": "B01"},
        ),
        (
            record_name("building", "building", "facility_energy_joules", month),
            240 * 3e6,
            {"building": "B02"},
        ),
        (
            record_name("site", "building", "facility_energy_joules", f"sum_{month}"),
            240 * 4.5e6,
            {},
        ),
        (record_name("site", "building", "energy_joules", f"sum_{month}"), 240 * 3.6e6, {}),
    ]
    tests = [
        {
            "expr": name,
            "eval_time": at(hour),
            "exp_samples": [
                {
                    "labels": _selector(name, labels) if labels else name,
                    "value": value,
                }
                for record, value, labels in expected
                if record == name
            ],
        }
        for name in dict.fromkeys(record for record, _, _ in expected)
    ]
    group = {
        "name": "recording rules over two shards",
        "interval": at(STEP),
        "input_series": inputs,
        "promql_expr_test": tests,
    }
    return group, {record for record, _, _ in expected}
