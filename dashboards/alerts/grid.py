"""Grid: each fast meter (the point of interconnection, buildings, lineups) against its own
rating: ramp rate, steps, uncommanded drops, oscillation amplitude and band energy.

Absolute limits are written for the reference rating (the 2,250 MW contract) and scaled by
each meter's rating over it, from the ``meter`` rating recording rule. Steps and drops are
detected and counted by the collector; an alert says one happened lately.
"""

from __future__ import annotations

from collector.grid.config import GridConfig, StepRule
from dashboards.alerts.common import entity, num, percent, sentence, si
from dashboards.promql import NUMBER, PERCENT, Series, labels_of, regex_of
from dashboards.recording import METER_RATING
from dashboards.ruleset import Alert, Group, Severity
from exporters.contract.thresholds import Thresholds


def _ramps(series: Series, t: Thresholds) -> list[Alert]:
    g = t.grid
    ramp = series("grid_ramp", "watts_per_second", f'window="{g.ramp_window}"')
    labels = labels_of("grid_ramp", "watts_per_second")
    reference = si(g.reference_rating_watts, "W")
    return [
        Alert(
            name="GridRampRateHigh",
            severity=severity,
            expr=(
                f"abs({ramp}) * 60\n> on (meter) group_left\n"
                f"{METER_RATING} * {num(limit.value)} / {num(g.reference_rating_watts)}"
            ),
            for_seconds=limit.for_,
            summary="A meter's load ramps faster than its limit.",
            description=(
                f"{sentence(entity(labels))} ramps at {NUMBER}W/min over the "
                f"{g.ramp_window} window (limit: {si(limit.value, 'W')}/min for a "
                f"{reference} rating, scaled to the meter's)."
            ),
            words=(
                f"ramp over {g.ramp_window} faster than {si(limit.value, 'W')}/min per "
                f"{reference} of the meter's rating"
            ),
            entity=labels,
        )
        for severity, limit in g.ramp_watts_per_minute.limits()
    ]


def _detected(rule: StepRule, reference: float) -> str:
    """The collector's default detection threshold, in words."""
    return (
        f"{si(rule.threshold_watts, 'W')} within {rule.within_seconds:g} s at "
        f"{si(reference, 'W')}, scaled to the meter's rating"
    )


def _events(series: Series, t: Thresholds) -> list[Alert]:
    # What the collector counts as a step or a drop is its grid configuration's business
    # (collector/grid/config.py); the descriptions quote its defaults.
    collector = GridConfig()
    lookback = t.window(t.grid.event_lookback)
    steps = series("grid_step", "steps")
    drops = series("grid_meter", "drops")
    step_labels = labels_of("grid_step", "steps")
    drop_labels = labels_of("grid_meter", "drops")
    return [
        Alert(
            name="GridLoadStep",
            severity="warning",
            expr=f"increase({steps}[{lookback}]) > 0",
            for_seconds=0.0,
            summary="A meter saw a sudden, sustained load step.",
            description=(
                f"{sentence(entity(step_labels))} stepped {{{{ $labels.direction }}}} "
                f"{NUMBER} time(s) within {lookback}, each beyond the collector's step "
                f"threshold (by default {_detected(collector.step, collector.rating_watts)})."
            ),
            words=f"a load step counted by the collector within {lookback}",
            entity=step_labels,
        ),
        Alert(
            name="GridUncommandedLoadDrop",
            severity="critical",
            expr=f"increase({drops}[{lookback}]) > 0",
            for_seconds=0.0,
            summary="A meter's load fell sharply: a candidate uncommanded load drop.",
            description=(
                f"{sentence(entity(drop_labels))} dropped load {NUMBER} time(s) within "
                f"{lookback}, each beyond the collector's drop threshold (by default "
                f"{_detected(collector.drop, collector.rating_watts)}): record the event."
            ),
            words=f"an uncommanded load drop counted by the collector within {lookback}",
            entity=drop_labels,
        ),
    ]


def _oscillation(series: Series, t: Thresholds) -> list[Alert]:
    """One rule per severity: the bands that share a limit are matched together, and the
    groups of bands joined with ``or``."""
    labels = labels_of("grid_band", "peak_to_peak_watts")
    alerts = []
    severities: tuple[Severity, ...] = ("warning", "critical")
    for severity in severities:
        by_limit: dict[float, list[str]] = {}
        for band in t.grid.oscillation:
            ratio = band.warning_ratio if severity == "warning" else band.critical_ratio
            if ratio is not None:
                by_limit.setdefault(ratio, []).append(band.band)
        if not by_limit:
            continue
        terms = [
            f"{series('grid_band', 'peak_to_peak_watts', f'band=~{regex_of(tuple(bands))}')}\n"
            f"/ on (meter) group_left\n{METER_RATING}\n> {num(ratio)}"
            for ratio, bands in by_limit.items()
        ]
        limits = "; ".join(
            f"{', '.join(bands)} above {percent(ratio)}" for ratio, bands in by_limit.items()
        )
        alerts.append(
            Alert(
                name="GridOscillationAmplitudeHigh",
                severity=severity,
                expr="\nor\n".join(f"(\n{term}\n)" for term in terms)
                if len(terms) > 1
                else terms[0],
                for_seconds=t.grid.oscillation_for,
                summary="A meter shows a sustained power oscillation.",
                description=(
                    f"{sentence(entity(labels))} oscillates in band "
                    f"{{{{ $labels.band }}}} at {PERCENT} of its rating peak to peak "
                    f"(limits: {limits})."
                ),
                words=f"oscillation amplitude (peak to peak, of the meter's rating): {limits}",
                entity=labels,
            )
        )
    return alerts


def _band_energy(series: Series, t: Thresholds) -> list[Alert]:
    energy = series("grid_band", "energy_ratio")
    amplitude = series("grid_band", "peak_to_peak_watts")
    least = t.grid.band_energy_min_peak_to_peak_ratio
    labels = labels_of("grid_band", "energy_ratio")
    return [
        Alert(
            name="GridBandEnergyHigh",
            severity=severity,
            expr=(
                f"{energy} > {num(limit.value)}\n"
                "and on (meter, band)\n"
                f"({amplitude} / on (meter) group_left {METER_RATING} > {num(least)})"
            ),
            for_seconds=limit.for_,
            summary="One frequency band holds too much of a meter's oscillation energy.",
            description=(
                f"Band {{{{ $labels.band }}}} holds {PERCENT} of the spectral energy of "
                f"{entity(labels)} (limit {percent(limit.value)}), with a peak above "
                f"{percent(least)} of its rating."
            ),
            words=(
                f"a band's share of the spectral energy above {percent(limit.value)}, with a "
                f"peak above {percent(least)} of the meter's rating"
            ),
            entity=labels,
        )
        for severity, limit in t.grid.band_energy_ratio.limits()
    ]


def group(t: Thresholds) -> Group:
    series = Series(t)
    return Group(
        "gigawatt-grid",
        (
            *_ramps(series, t),
            *_events(series, t),
            *_oscillation(series, t),
            *_band_energy(series, t),
        ),
        topic="Grid",
    )
