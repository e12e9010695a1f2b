"""Thermal: accelerators near their temperature limit, and halls whose cooling falls behind
(temperatures climbing while the load holds)."""

from __future__ import annotations

from dashboards.alerts.common import entity, num, percent, sentence
from dashboards.promql import CELSIUS, Series, labels_of
from dashboards.recording import HALL_RACK_POWER, HALL_TEMPERATURE
from dashboards.ruleset import Alert, Group
from exporters.contract.thresholds import Thresholds


def _accelerator_temperature(series: Series, t: Thresholds) -> list[Alert]:
    # The anomaly list names the hottest chips at every tier; a chip listed under several
    # reasons is one chip.
    temperature = series("anomaly", "temperature_celsius")
    labels = labels_of("anomaly", "temperature_celsius")
    labels = tuple(name for name in labels if name != "reason")
    return [
        Alert(
            name="AcceleratorTemperatureHigh",
            severity=severity,
            expr=f"max without (reason) ({temperature}) > {num(limit.value)}",
            for_seconds=limit.for_,
            summary=f"An accelerator is above {num(limit.value)} °C.",
            description=(
                f"{sentence(entity(labels))} is at {CELSIUS} "
                f"(limit {num(limit.value)} °C); it throttles or fails near its maximum."
            ),
            words=f"accelerator temperature above {num(limit.value)} °C",
            entity=labels,
        )
        for severity, limit in t.thermal.accelerator_celsius.limits()
    ]


def _cooling(t: Thresholds) -> list[Alert]:
    window = t.window(t.thermal.cooling_window)
    steady = t.thermal.cooling_load_change_per_minute
    labels = ("building", "hall")
    return [
        Alert(
            name="HallCoolingDegraded",
            severity=severity,
            expr=(
                f"deriv({HALL_TEMPERATURE}[{window}]) * 60 > {num(limit.value)}\n"
                "and on (building, hall)\n"
                f"abs(deriv({HALL_RACK_POWER}[{window}])) * 60\n"
                f"< {num(steady)} * avg_over_time({HALL_RACK_POWER}[{window}])\n"
                # Only once the trend spans its whole window: fitted over the first minutes
                # after the recording starts (a new Prometheus, a new hall), a slope is noise.
                "and on (building, hall)\n"
                f"{HALL_TEMPERATURE} offset {window}"
            ),
            for_seconds=limit.for_,
            summary="A hall's temperatures climb while its load holds: cooling is failing.",
            description=(
                f"{sentence(entity(labels))} warms by "
                '{{ $value | printf "%.2f" }} °C/min over the last '
                f"{window} while its power changes by less than {percent(steady)} a minute."
            ),
            words=(
                f"hall temperature (mean of its racks' hottest chips) climbing faster than "
                f"{num(limit.value)} °C/min over {window} while hall power changes by less "
                f"than {percent(steady)} a minute, once the hall has a whole window of history"
            ),
            entity=labels,
        )
        for severity, limit in t.thermal.cooling_celsius_per_minute.limits()
    ]


def group(t: Thresholds) -> Group:
    series = Series(t)
    return Group(
        "gigawatt-thermal",
        (*_accelerator_temperature(series, t), *_cooling(t)),
        topic="Thermal",
    )
