"""Data quality: sources down or stale, feeds and accelerators not reporting, buildings that
lost power, counter-reset storms, and the three layers (PDU, server BMC, accelerators)
disagreeing about where the power goes."""

from __future__ import annotations

from dashboards.alerts.common import entity, num, percent, sentence
from dashboards.promql import DURATION, NUMBER, PERCENT, Series, labels_of
from dashboards.ruleset import Alert, Group
from exporters.contract.thresholds import Thresholds, format_duration


def _sources(series: Series, t: Thresholds) -> list[Alert]:
    q = t.data_quality
    labels = labels_of("source", "up")
    stale_after = q.stale_after
    stale = format_duration(stale_after)
    return [
        Alert(
            name="SourceDown",
            severity="warning",
            expr=f"{series('source', 'up')} == 0",
            for_seconds=q.source_down_for,
            summary="A source's reads of a target fail.",
            description=(
                f"{sentence(entity(labels))} has failed every read for "
                f"{t.for_duration(q.source_down_for)}; its entities show as not reporting."
            ),
            words="the source's last read of the target failed",
            entity=labels,
        ),
        Alert(
            name="SourceDataStale",
            severity="warning",
            expr=(
                f"time() - {series('source', 'last_success_timestamp_seconds')} "
                f"> {num(stale_after)}"
            ),
            for_seconds=0.0,
            summary="A target's data is stale: no successful read lately.",
            description=(
                f"{sentence(entity(labels))} last read successfully {DURATION} ago (limit {stale})."
            ),
            words=f"the target's last successful read older than {stale}",
            entity=labels,
        ),
    ]


def _reporting(series: Series, t: Thresholds) -> list[Alert]:
    q = t.data_quality
    feed_labels = labels_of("feed", "capacity_watts")
    building_labels = labels_of("building", "reporting_ratio")
    alerts = [
        Alert(
            name="FeedNotReporting",
            severity="warning",
            # A feed's rating is always exposed; its power only when the PDU reported.
            expr=f"{series('feed', 'capacity_watts')}\nunless\n{series('feed', 'power_watts')}",
            for_seconds=q.feed_silent_for,
            summary="A PDU feed stopped reporting its power.",
            description=(
                f"{sentence(entity(feed_labels))} has reported no power for "
                f"{t.for_duration(q.feed_silent_for)}; the rack's power is a partial sum."
            ),
            words="a PDU feed of the site reports no power",
            entity=feed_labels,
        ),
    ]
    for name, column, what, levels in (
        ("BuildingReportingLow", "reporting_ratio", "PDU feeds", q.building_reporting_ratio),
        (
            "BuildingAcceleratorsReportingLow",
            "accelerators_reporting_ratio",
            "accelerators",
            q.building_accelerators_reporting_ratio,
        ),
    ):
        alerts += [
            Alert(
                name=name,
                severity=severity,
                expr=f"{series('building', column)} < {num(limit.value)}",
                for_seconds=limit.for_,
                summary=f"Too few of a building's {what} report.",
                description=(
                    f"Only {PERCENT} of the {what} of {entity(building_labels)} reported "
                    f"(threshold {percent(limit.value)}); its totals are partial."
                ),
                words=f"share of the building's {what} reporting below {percent(limit.value)}",
                entity=building_labels,
            )
            for severity, limit in levels.limits()
        ]
    lost = q.building_power_lost_ratio
    alerts.append(
        Alert(
            name="BuildingPowerLost",
            severity="critical",
            expr=(
                f"{series('building', 'power_watts')} / {series('building', 'capacity_watts')}"
                f" < {num(lost.value)}\n"
                f"or\n{series('building', 'reporting_ratio')} == 0"
            ),
            for_seconds=lost.for_,
            summary="A building lost power: its IT load is gone or none of its feeds report.",
            description=(
                f"{sentence(entity(building_labels))} carries {PERCENT} of its IT capacity, "
                "or none of its PDU feeds report. Its rack alerts are held back while this "
                "fires."
            ),
            words=(
                f"building IT power below {percent(lost.value)} of its capacity, or no PDU "
                "feed of it reporting"
            ),
            entity=building_labels,
        )
    )
    return alerts


def _counters(series: Series, t: Thresholds) -> list[Alert]:
    q = t.data_quality
    window = t.window(q.counter_reset_window)
    most = q.counter_resets
    problems = series("problem", "problems", 'reason="counter_reset"')
    meters = series("feed", "meter_energy_joules")
    return [
        Alert(
            name="CounterResetStorm",
            severity="warning",
            expr=f"increase({problems}[{window}]) > {num(most.value)}",
            for_seconds=most.for_,
            summary="A source's energy counters keep resetting.",
            description=(
                f"{sentence(entity(labels_of('problem', 'problems')))} reported {NUMBER} "
                f"energy-counter resets within {window}; each costs the power of that "
                "interval."
            ),
            words=f"more than {num(most.value)} energy-counter resets of a source within {window}",
            entity=labels_of("problem", "problems"),
        ),
        Alert(
            name="PduMeterResetStorm",
            severity="warning",
            expr=f"sum by (building) (resets({meters}[{window}])) > {num(most.value)}",
            for_seconds=most.for_,
            summary="PDU energy meters of a building keep resetting.",
            description=(
                f"The PDU energy meters of {entity(('building',))} reset {NUMBER} times "
                f"within {window}."
            ),
            words=f"more than {num(most.value)} PDU meter resets in a building within {window}",
            entity=("building",),
        ),
    ]


def _layers(series: Series, t: Thresholds) -> Alert:
    q = t.data_quality
    share = f"{series('rack', 'unattributed_power_watts')} / {series('rack', 'power_watts')}"
    labels = labels_of("rack", "unattributed_power_watts")
    above, below = q.unattributed_above_ratio, q.unattributed_below_ratio
    return Alert(
        name="PowerLayersDisagree",
        severity="warning",
        expr=f"{share} > {num(above)}\nor\n{share} < {num(below)}",
        for_seconds=q.unattributed_for,
        summary="A rack's PDUs and its servers' BMCs disagree about its power.",
        description=(
            f"PDU power minus the servers' BMC power is {PERCENT} of the power of "
            f"{entity(labels)}, outside {percent(below)} to {percent(above)}: positive, a "
            "server under-reporting, an unmapped device or a PDU reading high; negative, a "
            "BMC over-reporting or a PDU feed reading low."
        ),
        words=(
            f"a rack's unattributed power (PDU minus BMC) above {percent(above)} or below "
            f"{percent(below)} of its power"
        ),
        entity=labels,
    )


def group(t: Thresholds) -> Group:
    series = Series(t)
    return Group(
        "gigawatt-data-quality",
        (
            *_sources(series, t),
            *_reporting(series, t),
            *_counters(series, t),
            _layers(series, t),
        ),
        topic="Data quality",
    )
