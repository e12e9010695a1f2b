"""The collector itself: cycles overrunning, failing or stalled, a slow exposition, no
gigawatt series at all, and the always-firing Watchdog that proves the pipeline delivers."""

from __future__ import annotations

from dashboards.alerts.common import num, percent
from dashboards.promql import DURATION, NUMBER, PERCENT, Series
from dashboards.ruleset import Alert, Group
from exporters.contract.thresholds import Thresholds, format_duration


def _cycles(series: Series, t: Thresholds) -> list[Alert]:
    c = t.collector
    window = t.window(c.skipped_window)
    cycles, skipped = series("process", "cycles"), series("process", "skipped")
    lookback = t.window(c.failures_lookback)
    stalled_after = c.stalled_after
    stalled = format_duration(stalled_after)
    return [
        Alert(
            name="CollectorCycleOverrun",
            severity="warning",
            expr=(
                f"rate({skipped}[{window}])\n"
                f"/ (rate({cycles}[{window}]) + rate({skipped}[{window}]))\n"
                f"> {num(c.skipped_ratio.value)}"
            ),
            for_seconds=c.skipped_ratio.for_,
            summary="The collector's cycles overrun their interval.",
            description=(
                f"The collector at {{{{ $labels.instance }}}} skipped {PERCENT} of its cycle "
                f"slots over the last {window}: its cycles take longer than the interval, so "
                "readings arrive late and less often."
            ),
            words=(
                f"share of cycle slots skipped over {window} above {percent(c.skipped_ratio.value)}"
            ),
            entity=("instance",),
        ),
        Alert(
            name="CollectorCycleFailures",
            severity="warning",
            expr=f"increase({series('process', 'failures')}[{lookback}]) > 0",
            for_seconds=0.0,
            summary="Collector cycles fail; it serves the last good one.",
            description=(
                f"{NUMBER} cycle(s) of the collector at {{{{ $labels.instance }}}} failed "
                f"within {lookback}; /metrics keeps serving the last good cycle."
            ),
            words=f"a failed cycle within {lookback}",
            entity=("instance",),
        ),
        Alert(
            name="CollectorStalled",
            severity="critical",
            expr=f"time() - {series('process', 'timestamp_seconds')} > {num(stalled_after)}",
            for_seconds=0.0,
            summary="The collector completed no cycle lately: every series it serves is old.",
            description=(
                f"The collector at {{{{ $labels.instance }}}} last completed a cycle "
                f"{DURATION} ago (limit {stalled})."
            ),
            words=f"no completed cycle for more than {stalled}",
            entity=("instance",),
        ),
        Alert(
            name="CollectorExpositionSlow",
            severity="warning",
            expr=f"{series('process', 'render_seconds')} > {num(c.render_seconds.value)}",
            for_seconds=c.render_seconds.for_,
            summary="Rendering the exposition is slow; scrapes risk timing out.",
            description=(
                f"The collector at {{{{ $labels.instance }}}} took {NUMBER}s to render its "
                f"exposition (limit {num(c.render_seconds.value)} s)."
            ),
            words=f"exposition render time above {num(c.render_seconds.value)} s",
            entity=("instance",),
        ),
    ]


def _presence(series: Series, t: Thresholds) -> list[Alert]:
    return [
        Alert(
            name="CollectorAbsent",
            severity="critical",
            expr=f"absent({series('build', 'value')})",
            for_seconds=t.collector.absent_for,
            summary="Prometheus has no gigawatt series at all.",
            description=(
                "No gigawatt collector has been scraped for "
                f"{t.for_duration(t.collector.absent_for)}: every other gigawatt alert is "
                "blind."
            ),
            words="no gigawatt build series in Prometheus",
        ),
        Alert(
            name="Watchdog",
            severity="none",
            expr="vector(1)",
            for_seconds=0.0,
            summary="Always firing: proves that alerts reach their receiver.",
            description=(
                "This alert always fires. If a receiver stops getting it, the path from "
                "Prometheus through Alertmanager is broken."
            ),
            words="always",
        ),
    ]


def group(t: Thresholds) -> Group:
    series = Series(t)
    return Group(
        "gigawatt-collector", (*_cycles(series, t), *_presence(series, t)), topic="Collector"
    )
