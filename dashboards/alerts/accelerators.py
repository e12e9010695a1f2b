"""Accelerator health: errors increasing, devices that stopped reporting, stragglers.

At the default tier one accelerator is named only through the bounded anomaly list, whose
rows carry the values these rules judge (recent errors, seconds silent, power and
temperature against the chip's training job); the collector lists, the rules decide.
"""

from __future__ import annotations

from dashboards.alerts.common import entity, num, percent, sentence
from dashboards.promql import CELSIUS, DURATION, NUMBER, PERCENT, Series, labels_of
from dashboards.ruleset import Alert, Group
from exporters.contract.thresholds import Thresholds, format_duration


def _labels(frame: str, column: str) -> tuple[str, ...]:
    return tuple(name for name in labels_of(frame, column) if name != "reason")


def _errors(series: Series, t: Thresholds) -> list[Alert]:
    recent = series("anomaly", "recent_errors", 'reason="errors"')
    labels = _labels("anomaly", "recent_errors")
    return [
        Alert(
            name="AcceleratorErrorsIncreasing",
            severity=severity,
            expr=f"max without (reason) ({recent}) > {num(limit.value)}",
            for_seconds=limit.for_,
            summary="An accelerator's uncorrected ECC or XID error count is increasing.",
            description=(
                f"{sentence(entity(labels))} counted {NUMBER} uncorrected ECC and XID "
                "errors within the collector's error window (10 min unless configured)."
            ),
            words=(
                f"more than {num(limit.value)} uncorrected ECC + XID errors on one accelerator "
                "within the error window"
            ),
            entity=labels,
        )
        for severity, limit in t.accelerators.recent_errors.limits()
    ]


def _silent(series: Series, t: Thresholds) -> Alert:
    silent = series("anomaly", "silent_seconds", 'reason="silent"')
    labels = _labels("anomaly", "silent_seconds")
    silent_after = t.accelerators.silent_after
    after = format_duration(silent_after)
    return Alert(
        name="AcceleratorStoppedReporting",
        severity="warning",
        expr=f"max without (reason) ({silent}) > {num(silent_after)}",
        for_seconds=0.0,
        summary="An accelerator that reported before has stopped reporting.",
        description=f"{sentence(entity(labels))} last reported {DURATION} ago.",
        words=f"an accelerator that reported before silent for more than {after}",
        entity=labels,
    )


def _stragglers(series: Series, t: Thresholds) -> list[Alert]:
    ratio = series("anomaly_job", "job_power_ratio", 'reason="straggler_power"')
    excess = series(
        "anomaly_job", "job_temperature_excess_celsius", 'reason="straggler_temperature"'
    )
    labels = _labels("anomaly_job", "job_power_ratio")
    alerts = [
        Alert(
            name="AcceleratorStragglerPower",
            severity=severity,
            expr=f"min without (reason) ({ratio}) < {num(limit.value)}",
            for_seconds=limit.for_,
            summary="An accelerator runs far below its training job's peers: a straggler.",
            description=(
                f"{sentence(entity(labels))} of training job {{{{ $labels.training_job }}}} "
                f"draws {PERCENT} of its job's median power; every step of the job waits "
                "for it."
            ),
            words=f"accelerator power below {percent(limit.value)} of its job's median",
            entity=labels,
        )
        for severity, limit in t.accelerators.straggler_power_ratio.limits()
    ]
    alerts += [
        Alert(
            name="AcceleratorStragglerTemperature",
            severity=severity,
            expr=f"max without (reason) ({excess}) > {num(limit.value)}",
            for_seconds=limit.for_,
            summary="An accelerator runs far hotter than its training job's peers.",
            description=(
                f"{sentence(entity(labels))} of training job {{{{ $labels.training_job }}}} "
                f"runs {CELSIUS} above its job's median temperature."
            ),
            words=f"accelerator more than {num(limit.value)} °C above its job's median",
            entity=labels,
        )
        for severity, limit in t.accelerators.straggler_temperature_excess_celsius.limits()
    ]
    return alerts


def group(t: Thresholds) -> Group:
    series = Series(t)
    return Group(
        "gigawatt-accelerators",
        (*_errors(series, t), _silent(series, t), *_stragglers(series, t)),
        topic="Accelerator health",
    )
