"""Which power reading wins, on hand-built readings: a PDU's input figures checked against its
branches and outlets, and a chassis' PowerControl members (the crawled mockups' choices are
pinned in test_redfish)."""

from __future__ import annotations

from typing import Any

import polars as pl

from collector.sources.redfish_power_choice import (
    PowerDistributionLayout,
    chassis_power_frame,
    choose_pdu_power,
)
from tests.frames import power_readings


def _frame(target: str, power: dict[str, float]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "target": [target] * len(power),
            "device": list(power),
            "metric": ["power_watts"] * len(power),
            "value": list(power.values()),
        }
    )


def _layout(**parts: Any) -> PowerDistributionLayout:
    fields: dict[str, Any] = {
        "target": "t",
        "device": "/pdu",
        "equipment_type": "RackPDU",
        "mains": (),
        "branches": (),
        "outlets": (),
        "metrics": None,
        "total_sensors": (),
    }
    return PowerDistributionLayout(**(fields | parts))


def test_pdu_power_prefers_the_input_meter_when_it_agrees() -> None:
    layout = _layout(mains=("/m",), branches=("/b1", "/b2"), metrics="/metrics")
    readings = _frame("t", {"/m": 1030.0, "/b1": 500.0, "/b2": 500.0, "/metrics": 990.0})
    choice = choose_pdu_power(readings, layout)
    assert (choice.rule, choice.power_watts) == ("mains", 1030.0)


def test_pdu_power_falls_back_to_complete_sums_and_never_to_zero() -> None:
    branches_only = _layout(branches=("/b1", "/b2"), outlets=("/o1", "/o2"))
    readings = _frame("t", {"/b1": 400.0, "/b2": 600.0, "/o1": 390.0})
    choice = choose_pdu_power(readings, branches_only)
    assert (choice.rule, choice.power_watts) == ("branches", 1000.0)
    nothing = choose_pdu_power(_frame("t", {"/o1": 390.0}), branches_only)
    assert (nothing.rule, nothing.power_watts) == (None, None)
    other_target = choose_pdu_power(_frame("u", {"/b1": 1.0, "/b2": 2.0}), branches_only)
    assert other_target.power_watts is None


def test_pdu_power_takes_the_first_input_figure_when_nothing_can_check_it() -> None:
    layout = _layout(metrics="/metrics", total_sensors=("/total",), outlets=("/o1", "/o2"))
    readings = _frame("t", {"/metrics": 6438.0, "/total": 2734.8, "/o1": 100.0})
    choice = choose_pdu_power(readings, layout)
    assert (choice.rule, choice.power_watts) == ("metrics", 6438.0)


def test_chassis_power_takes_the_lowest_power_control_and_never_a_psu() -> None:
    chassis = "/redfish/v1/Chassis/A"
    readings = power_readings(
        [
            ("bmc", "10.0.0.1", f"{chassis}/Power#/PowerControl/1", "chassis", 80.0),
            ("bmc", "10.0.0.1", f"{chassis}/Power#/PowerControl/0", "chassis", 500.0),
            ("bmc", "10.0.0.1", f"{chassis}/Power#/PowerSupplies/0", "psu", 900.0),
            # a PSU alone is no chassis figure; a chassis figure with no value is no choice
            ("bmc", "10.0.0.1", "/redfish/v1/Chassis/B/Power#/PowerSupplies/0", "psu", 300.0),
            ("bmc", "10.0.0.1", "/redfish/v1/Chassis/C/EnvironmentMetrics", "chassis", None),
        ]
    )
    chosen = chassis_power_frame(readings)
    assert chosen.select("device", "power_watts", "rule").rows() == [
        (chassis, 500.0, "power_control")
    ]
