"""Capacity: every level of the power chain against its continuous rating, the racks' N-1
redundancy, the site against its contract and the buildings' PUE.

The limits are ratios of the capacity series, which are continuous ratings already (NEC's
80 % of a breaker's nameplate is in them): a warning above 100 % of the rating for hours is
NEC's continuous-load limit, a critical above 118.75 % is 95 % of the nameplate."""

from __future__ import annotations

from dashboards.alerts.common import entity, num, percent, sentence
from dashboards.promql import PERCENT, Series, labels_of
from dashboards.recording import SITE_CONTRACT_UTILIZATION, building_pue_name
from dashboards.ruleset import Alert, Group
from exporters.contract.thresholds import Thresholds, format_duration

# (alert, frame, what it is): each level's power and capacity share their column names.
_LEVELS = (
    ("FeedLoadHigh", "feed", "PDU feed"),
    ("RackLoadHigh", "rack", "rack"),
    ("RowLoadHigh", "row", "row"),
    ("HallLoadHigh", "hall", "hall"),
    ("LineupLoadHigh", "lineup", "lineup"),
    ("BuildingLoadHigh", "building", "building"),
)


def _level_alerts(series: Series, t: Thresholds) -> list[Alert]:
    smoothing = t.window(t.capacity.smoothing)
    alerts = []
    for name, frame, noun in _LEVELS:
        levels = getattr(t.capacity, frame)
        labels = labels_of(frame, "power_watts")
        power = series(frame, "power_watts")
        capacity = series(frame, "capacity_watts")
        for severity, limit in levels.limits():
            alerts.append(
                Alert(
                    name=name,
                    severity=severity,
                    expr=f"avg_over_time({power}[{smoothing}]) / {capacity} > {num(limit.value)}",
                    for_seconds=limit.for_,
                    summary=(
                        f"A {noun} carries more than {percent(limit.value)} of its "
                        "continuous rating."
                    ),
                    description=(
                        f"{sentence(entity(labels))} has carried {PERCENT} of its continuous "
                        f"rating (mean over {smoothing}) for {t.for_duration(limit.for_)}; "
                        f"the limit is {percent(limit.value)}."
                    ),
                    words=(
                        f"{noun} power, mean over {smoothing}, above {percent(limit.value)} "
                        "of its continuous rating"
                    ),
                    entity=labels,
                )
            )
    return alerts


def _redundancy_alerts(series: Series, t: Thresholds) -> list[Alert]:
    smoothing = t.window(t.capacity.smoothing)
    rack_power = series("rack", "power_watts")
    feed_power = series("feed", "power_watts")
    feed_capacity = series("feed", "capacity_watts")
    n1, lost = t.capacity.n_minus_one, t.capacity.feed_lost_share
    rack_labels, feed_labels = labels_of("rack", "power_watts"), labels_of("feed", "power_watts")
    return [
        Alert(
            name="RackNotRedundant",
            severity="warning",
            expr=(
                f"avg_over_time({rack_power}[{smoothing}])\n"
                f"/ min without (feed) ({feed_capacity})\n"
                f"> {num(n1.value)}"
            ),
            for_seconds=n1.for_,
            summary="A rack draws more than one of its feeds alone could carry (N-1 lost).",
            description=(
                f"{sentence(entity(rack_labels))} draws {PERCENT} of the continuous rating "
                f"of its weakest feed (mean over {smoothing}): if the other feed trips, that "
                "one is overloaded."
            ),
            words=(
                f"rack power, mean over {smoothing}, above {percent(n1.value)} of its "
                "weakest feed's continuous rating"
            ),
            entity=rack_labels,
        ),
        Alert(
            name="RackFeedLost",
            severity="critical",
            expr=(f"{feed_power}\n/ ignoring (feed) group_left\n{rack_power}\n< {num(lost.value)}"),
            for_seconds=lost.for_,
            summary="A rack runs on one feed: the other carries almost none of its load.",
            description=(
                f"{sentence(entity(feed_labels))} carries {PERCENT} of the rack's power; the "
                "other feed carries the rest, with no redundancy left."
            ),
            words=(
                f"a feed carries less than {percent(lost.value)} of its rack's power while "
                "the rack draws power"
            ),
            entity=feed_labels,
        ),
    ]


def _site_alerts(t: Thresholds) -> list[Alert]:
    alerts = []
    for severity, limit in t.capacity.contract.limits():
        alerts.append(
            Alert(
                name="SitePowerNearContract",
                severity=severity,
                expr=f"{SITE_CONTRACT_UTILIZATION} > {num(limit.value)}",
                for_seconds=limit.for_,
                summary=f"Site facility power is above {percent(limit.value)} of the contract.",
                description=(
                    f"The site draws {PERCENT} of its contracted power at the point of "
                    f"interconnection (limit {percent(limit.value)})."
                ),
                words=(
                    f"site facility power (sum of the buildings) above {percent(limit.value)} "
                    "of the contract"
                ),
            )
        )
    pue = building_pue_name(t)
    window = format_duration(t.capacity.pue_window)
    labels = labels_of("building", "pue_ratio")
    for severity, limit in t.capacity.pue.limits():
        alerts.append(
            Alert(
                name="BuildingPUEHigh",
                severity=severity,
                expr=f"{pue} > {num(limit.value)}",
                for_seconds=limit.for_,
                summary=f"A building's PUE over the last {window} is above {num(limit.value)}.",
                description=(
                    f"{sentence(entity(labels))} used "
                    '{{ $value | printf "%.3f" }} W of facility power per W of IT power '
                    f"over the last {window} (limit {num(limit.value)})."
                ),
                words=f"building PUE over a rolling {window} above {num(limit.value)}",
                entity=labels,
            )
        )
    return alerts


def group(t: Thresholds) -> Group:
    series = Series(t)
    return Group(
        "gigawatt-capacity",
        (*_level_alerts(series, t), *_redundancy_alerts(series, t), *_site_alerts(t)),
        topic="Capacity",
    )
