"""The READINGS constructor: plain values stand for every row, lists give one value a row,
a frame's own columns fill what is left out, and a wrong column is named in a ValueError."""

from __future__ import annotations

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from collector import schemas
from collector.readings import ReadingColumns, readings_frame


def rapl(**changes: object) -> pl.DataFrame:
    columns: dict[str, object] = {
        "source": "sysfs",
        "target": "/sys",
        "host": "node-7",
        "device": ["intel-rapl:0", "intel-rapl:1"],
        "device_kind": "cpu_package",
        "metric": "energy_joules",
        "value": [1234.5, 99.0],
        "unit": "joules",
    }
    return readings_frame(**(columns | changes))  # type: ignore[arg-type]


def test_plain_values_stand_for_every_row_and_defaults_fill_the_rest() -> None:
    frame = rapl()
    assert frame.schema == pl.Schema(schemas.READINGS)
    assert frame.rows(named=True)[1] == {
        "source": "sysfs",
        "target": "/sys",
        "host": "node-7",
        "device": "intel-rapl:1",
        "device_kind": "cpu_package",
        "metric": "energy_joules",
        "value": 99.0,
        "unit": "joules",
        "estimated": False,
        "timestamp_seconds": None,
    }
    no_host = rapl(host=None, estimated=[True, False], timestamp_seconds=[None, 5.0])
    assert no_host.get_column("host").to_list() == [None, None]  # missing, never made up
    assert no_host.get_column("estimated").to_list() == [True, False]
    assert no_host.get_column("timestamp_seconds").to_list() == [None, 5.0]


def test_no_rows_give_an_empty_frame_of_the_schema() -> None:
    frame = rapl(device=[], value=[])
    assert_frame_equal(frame, schemas.empty(schemas.READINGS))


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"value": ["1234.5", "99"]}, "column value is not Float64"),
        ({"value": [1.0, 2.0, 3.0]}, "columns differ in length (device 2, value 3)"),
        ({"device": pl.col("device")}, "an expression needs a frame"),
    ],
)
def test_a_wrong_column_is_named_in_one_line(changes: dict[str, object], named: str) -> None:
    with pytest.raises(ValueError, match=r"^readings: ") as caught:
        rapl(**changes)
    assert named in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_column_with_no_value_is_refused() -> None:
    with pytest.raises(ValueError, match=r"no value for column\(s\) device, unit$"):
        readings_frame(
            source="nvml", target="t", device_kind="accelerator", metric="up", value=[1.0]
        )


def test_a_frame_fills_what_is_left_out_with_its_own_columns() -> None:
    chosen = pl.DataFrame(
        {
            "target": ["https://bmc-1/redfish/v1"],
            "host": ["bmc-1"],
            "device": ["/redfish/v1/PowerEquipment/RackPDUs/1"],
            "power_watts": [2734.8],
            "rule": ["total_sensor"],
        }
    )
    frame = readings_frame(
        chosen,
        source="redfish",
        device_kind="pdu",
        metric="power_watts",
        value=pl.col("power_watts"),
        unit="watts",
    )
    assert frame.schema == pl.Schema(schemas.READINGS)
    assert frame.row(0) == (
        "redfish",
        "https://bmc-1/redfish/v1",
        "bmc-1",
        "/redfish/v1/PowerEquipment/RackPDUs/1",
        "pdu",
        "power_watts",
        2734.8,
        "watts",
        False,
        None,
    )
    with pytest.raises(ValueError, match=r"no value and no frame column for metric, unit$"):
        readings_frame(chosen, source="redfish", device_kind="pdu", value=pl.col("power_watts"))
    with pytest.raises(ValueError, match="column unit is a list"):
        readings_frame(
            chosen,
            source="redfish",
            device_kind="pdu",
            metric="power_watts",
            value=pl.col("power_watts"),
            unit=["watts"],
        )


def test_reading_columns_gather_rows_for_the_constructor() -> None:
    gathered = ReadingColumns()
    gathered.add("neuron0", "accelerator", "power_utilization_ratio", 0.5, "ratio")
    gathered.add(
        "neuron0",
        "accelerator",
        "power_watts",
        250.0,
        "watts",
        estimated=True,
        timestamp_seconds=7.0,
    )
    frame = gathered.frame(source="neuron", target="/sys", host=None)
    expected = readings_frame(
        source="neuron",
        target="/sys",
        device="neuron0",
        device_kind="accelerator",
        metric=["power_utilization_ratio", "power_watts"],
        value=[0.5, 250.0],
        unit=["ratio", "watts"],
        estimated=[False, True],
        timestamp_seconds=[None, 7.0],
    )
    assert_frame_equal(frame, expected)
    assert frame.height == 2
