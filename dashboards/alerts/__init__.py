"""Every alert, by topic, built from the metric table and one Thresholds.

``INCIDENTS`` says which alert each incident of the simulator's scenarios (``gigawatt serve
--scenario FILE``) must bring to firing: the end-to-end tests hold the rules to it, and
docs/alerts.md lists it for anyone demonstrating the alerts.
"""

from __future__ import annotations

from dashboards.alerts import accelerators, capacity, collector, data_quality, grid, thermal
from dashboards.ruleset import Alert, Group
from exporters.contract.thresholds import Thresholds

INCIDENTS: dict[str, tuple[str, ...]] = {
    "rack_overload": ("RackLoadHigh",),
    "feed_trip": ("RackFeedLost",),
    "pdu_silent": ("FeedNotReporting",),
    "accelerator_overheat": ("AcceleratorTemperatureHigh",),
    "accelerator_silent": ("AcceleratorStoppedReporting",),
    "accelerator_errors": ("AcceleratorErrorsIncreasing",),
    "straggler": ("AcceleratorStragglerPower",),
    "cooling_failure": ("HallCoolingDegraded",),
    "building_outage": ("BuildingPowerLost",),
    "oscillation": ("GridOscillationAmplitudeHigh",),
    "load_step": ("GridLoadStep", "GridUncommandedLoadDrop"),
    "site_surge": ("SitePowerNearContract",),
    "bmc_overreport": ("PowerLayersDisagree",),
    "source_down": ("SourceDown",),
    "cycle_overrun": ("CollectorCycleOverrun",),
}


def alert_groups(thresholds: Thresholds) -> tuple[Group, ...]:
    return tuple(
        topic.group(thresholds)
        for topic in (capacity, thermal, accelerators, grid, data_quality, collector)
    )


def all_alerts(thresholds: Thresholds) -> tuple[Alert, ...]:
    return tuple(
        rule
        for group in alert_groups(thresholds)
        for rule in group.rules
        if isinstance(rule, Alert)
    )
