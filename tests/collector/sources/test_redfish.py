"""The Redfish source against a real HTTP server on 127.0.0.1 serving third-party payloads in place.

DMTF mockups are served from ../shared/fixtures as they lie; the telegraf Dell and HPE captures
are served through per-path routes to the files themselves. Nothing is copied into the project.
"""

from __future__ import annotations

import json
import math
import shutil
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from pydantic import ValidationError

from collector import schemas
from collector.sources.redfish import (
    FULL_CRAWL,
    TARGET_HEALTH,
    RedfishConfig,
    RedfishCredentials,
    RedfishRead,
    RedfishSource,
    RedfishTarget,
)
from collector.sources.redfish_power_choice import choose_pdu_power
from collector.sources.redfish_resources import (
    KILOWATT_HOUR_JOULES,
    parse_resource,
    readings_from_resource,
)

from .redfish_server import InFlightTracker, PathBehaviour, RedfishServer

PDUS = "/redfish/v1/PowerEquipment/RackPDUs"
PDU = f"{PDUS}/1"
DMTF = "dmtf-redfish-publications"
TELEGRAF = "influxdata-telegraf/plugins/inputs/redfish/testdata"


# --- helpers ---------------------------------------------------------------------------------


def mockup(shared: Path, name: str) -> Path:
    return shared / DMTF / name


def plain(server: RedfishServer, **settings: Any) -> RedfishTarget:
    """A target for a loopback server without auth (tests only: plain http is opt-in)."""
    options: dict[str, Any] = {"auth": "none", "allow_plain_http": True} | settings
    return RedfishTarget(url=server.url, **options)


def read_once(*targets: RedfishTarget, max_concurrent_targets: int = 16) -> RedfishRead:
    config = RedfishConfig(targets=targets, max_concurrent_targets=max_concurrent_targets)
    with RedfishSource(config) as source:
        return source.read_readings(now=1_000.0)


def values(read: RedfishRead, device: str) -> dict[str, float]:
    rows = read.readings.filter(pl.col("device") == device)
    return dict(zip(rows["metric"].to_list(), rows["value"].to_list(), strict=True))


def problems(read: RedfishRead, reason: str) -> pl.DataFrame:
    return read.problems.filter(pl.col("reason") == reason)


def health(read: RedfishRead, name: str) -> dict[str, Any]:
    return read.targets.filter(pl.col("name") == name).row(0, named=True)


def resources_on_disk(root: Path) -> set[str]:
    return {
        "/" + str(folder.relative_to(root))
        for folder in root.rglob("*")
        if (folder / "index.json").is_file()
    }


@pytest.fixture(scope="module")
def public_pdu(shared_fixtures: Path) -> Iterator[tuple[RedfishRead, RedfishTarget]]:
    """One full crawl of public-pdu, shared by the tests that only look at its result."""
    with RedfishServer(mockup(shared_fixtures, "public-pdu")) as server:
        target = plain(server, crawl_prefixes=FULL_CRAWL)
        yield read_once(target), target


# --- crawling --------------------------------------------------------------------------------


def test_full_crawl_of_public_pdu_reads_every_linked_resource(
    public_pdu: tuple[RedfishRead, RedfishTarget], shared_fixtures: Path
) -> None:
    read, target = public_pdu
    root = mockup(shared_fixtures, "public-pdu")
    on_disk = resources_on_disk(root)
    fetched = set(read.fetched[target.key])
    assert len(on_disk) == 251
    # 197 resources are reachable through @odata.id, 199 with DataSourceUri, 250 with the
    # transfer switch's unlinked Sensors collection. The 251st file is named by no resource
    # at all (its collection lists 52 members, not it), so no crawler can reach it.
    orphan = "/redfish/v1/PowerEquipment/TransferSwitches/1/Sensors/PDUPower"
    assert on_disk - fetched == {orphan}
    mentions = [
        path for path in root.rglob("index.json") if orphan in path.read_text(encoding="utf-8")
    ]
    assert mentions == [root / orphan.lstrip("/") / "index.json"]
    assert fetched <= on_disk
    assert len(fetched) == 250
    row = health(read, target.key)
    assert row["up"] and row["complete"]
    assert row["resources"] == 250


def test_dangling_sensor_links_are_problems_not_failures(
    public_pdu: tuple[RedfishRead, RedfishTarget], shared_fixtures: Path
) -> None:
    read, target = public_pdu
    root = mockup(shared_fixtures, "public-pdu")
    cited = {
        uri
        for path in root.rglob("index.json")
        for uri in _data_source_uris(json.loads(path.read_text(encoding="utf-8")))
    }
    missing = {uri for uri in cited if not (root / uri.lstrip("/") / "index.json").is_file()}
    assert (len(cited), len(missing)) == (132, 24)
    dangling = problems(read, "dangling_link")
    assert set(dangling["location"].to_list()) == missing
    assert all("linked from /redfish/v1/" in message for message in dangling["message"])
    assert health(read, target.key)["complete"]
    assert read.readings.height > 250  # the crawl went on past every one of them


def _data_source_uris(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "DataSourceUri" and isinstance(value, str):
                yield value
            else:
                yield from _data_source_uris(value)
    elif isinstance(node, list):
        for value in node:
            yield from _data_source_uris(value)


def test_readings_follow_the_schema_and_are_unique_per_device_and_metric(
    public_pdu: tuple[RedfishRead, RedfishTarget],
) -> None:
    read, target = public_pdu
    assert read.readings.schema == pl.Schema(schemas.READINGS)
    assert read.problems.schema == pl.Schema(schemas.PROBLEMS)
    assert read.targets.schema == pl.Schema(TARGET_HEALTH)
    assert read.readings["source"].unique().to_list() == ["redfish"]
    assert read.readings["target"].unique().to_list() == [target.service_root]
    assert read.readings["host"].unique().to_list() == [target.host]
    assert read.readings.select(pl.struct("device", "metric").is_duplicated().sum()).item() == 0
    assert not read.readings["value"].is_null().any()


def test_outlet_a1_reads_exactly_in_base_units(
    public_pdu: tuple[RedfishRead, RedfishTarget],
) -> None:
    read, _ = public_pdu
    outlet = f"{PDU}/Outlets/A1"
    assert values(read, outlet) == {
        "power_watts": 197.4,
        "current_amps": 1.68,
        "voltage_volts": 117.5,
        "energy_joules": 36166 * KILOWATT_HOUR_JOULES,
    }
    assert values(read, outlet)["energy_joules"] == 130_197_600_000.0
    kinds = read.readings.filter(pl.col("device").str.starts_with(outlet))["device_kind"]
    assert kinds.unique().to_list() == ["pdu_outlet"]


def test_branch_and_metrics_totals_are_kept_as_reported(
    public_pdu: tuple[RedfishRead, RedfishTarget],
) -> None:
    read, _ = public_pdu
    branches = {name: values(read, f"{PDU}/Branches/{name}")["power_watts"] for name in "ABC"}
    assert branches == {"A": 937.4, "B": 977.8, "C": 816.5}
    metrics = values(read, f"{PDU}/Metrics")
    assert metrics["power_watts"] == 6438.0
    assert metrics["energy_joules"] == 56438 * KILOWATT_HOUR_JOULES
    # Disagreeing totals all stay, each with its own device.
    assert values(read, "/redfish/v1/Chassis/PDU/Sensors/PDUPower") == {"power_watts": 2734.8}


def test_mains_gives_its_poly_phase_readings_and_no_made_up_total(
    public_pdu: tuple[RedfishRead, RedfishTarget],
) -> None:
    read, _ = public_pdu
    mains = f"{PDU}/Mains/AC1"
    assert values(read, mains) == {}
    rows = read.readings.filter(pl.col("device").str.starts_with(mains + "#"))
    power = rows.filter(pl.col("metric") == "power_watts")
    assert dict(zip(power["device"], power["value"], strict=True)) == {
        f"{mains}#/PolyPhasePowerWatts/Line1ToLine2": 738.9,
        f"{mains}#/PolyPhasePowerWatts/Line2ToLine3": 748.3,
        f"{mains}#/PolyPhasePowerWatts/Line3ToLine1": 759.6,
        f"{mains}#/PolyPhasePowerWatts/Line1ToNeutral": 198.4,
        f"{mains}#/PolyPhasePowerWatts/Line2ToNeutral": 231.5,
        f"{mains}#/PolyPhasePowerWatts/Line3ToNeutral": 58.1,
    }
    current = rows.filter(pl.col("metric") == "current_amps")
    assert sorted(current["value"].to_list()) == [2.74, 6.91, 8.02, 8.66]
    assert rows.filter(pl.col("metric") == "voltage_volts").height == 6
    assert rows["device_kind"].unique().to_list() == ["pdu_mains"]


def test_unit_mismatch_is_reported_and_read_in_the_schema_unit(
    public_pdu: tuple[RedfishRead, RedfishTarget],
) -> None:
    read, _ = public_pdu
    sensor = "/redfish/v1/Chassis/TransferSwitch1/Sensors/EnergyA1"
    assert sensor in problems(read, "unit_mismatch")["location"].to_list()
    assert values(read, sensor) == {"energy_joules": 7855 * KILOWATT_HOUR_JOULES}


# --- which reading wins ----------------------------------------------------------------------


def test_pdu_power_passes_over_totals_that_contradict_the_branches(
    public_pdu: tuple[RedfishRead, RedfishTarget],
) -> None:
    read, _ = public_pdu
    layout = next(layout for layout in read.power_distribution if layout.device == PDU)
    assert len(layout.outlets) == 11 and len(layout.branches) == 3
    choice = choose_pdu_power(read.readings, layout)
    verdicts = {(c.rule, c.devices[0] if c.devices else None): c.verdict for c in choice.candidates}
    assert verdicts[("mains", f"{PDU}/Mains/AC1")] == "incomplete"  # AC1 has no PowerWatts
    assert verdicts[("metrics", f"{PDU}/Metrics")] == "disagrees"  # 6438 W vs 2731.7 W
    assert verdicts[("outlets", f"{PDU}/Outlets/A1")] == "incomplete"  # A4, A5 un-monitored
    assert choice.rule == "total_sensor"
    assert choice.power_watts == 2734.8
    assert choice.reference_watts == pytest.approx(937.4 + 977.8 + 816.5)
    frame = read.pdu_power().filter(pl.col("device") == PDU)
    assert frame.row(0, named=True)["source_device"] == "/redfish/v1/Chassis/PDU/Sensors/PDUPower"


# --- other mockups ---------------------------------------------------------------------------


def test_legacy_power_and_environment_metrics_are_separate_readings(
    shared_fixtures: Path,
) -> None:
    with RedfishServer(mockup(shared_fixtures, "public-rackmount1")) as server:
        read = read_once(plain(server))
    legacy = values(read, "/redfish/v1/Chassis/1U/Power#/PowerControl/0")
    assert legacy == {"power_watts": 344.0, "capacity_watts": 800.0}
    assert values(read, "/redfish/v1/Chassis/1U/EnvironmentMetrics")["power_watts"] == 374.0
    chassis = read.readings.filter(
        (pl.col("device_kind") == "chassis") & (pl.col("metric") == "power_watts")
    )
    assert sorted(chassis["value"].to_list()) == [344.0, 374.0]
    psu = values(read, "/redfish/v1/Chassis/1U/PowerSubsystem/PowerSupplies/Bay1/Metrics")
    assert psu["power_watts"] == 937.4
    assert values(read, "/redfish/v1/Chassis/1U/PowerSubsystem") == {"capacity_watts": 2000.0}


def test_liquid_cooled_server_environment_metrics(shared_fixtures: Path) -> None:
    with RedfishServer(mockup(shared_fixtures, "public-liquid-cooled-server")) as server:
        read = read_once(plain(server))
    assert values(read, "/redfish/v1/Chassis/1U/EnvironmentMetrics")["power_watts"] == 374.0
    sensor = read.readings.filter(pl.col("device") == "/redfish/v1/Chassis/1U/Sensors/TotalPower")
    assert sensor["value"].to_list() == [374.0]
    assert sensor["timestamp_seconds"][0] is not None  # its ReadingTime


def test_cooling_unit_converts_kw_kpa_and_litres_per_minute(shared_fixtures: Path) -> None:
    with RedfishServer(mockup(shared_fixtures, "public-cooling-unit")) as server:
        read = read_once(plain(server))
    sensors = "/redfish/v1/Chassis/CDU/Sensors"
    assert values(read, f"{sensors}/PrimaryHeatLoad") == {"heat_load_watts": pytest.approx(25480)}
    assert values(read, f"{sensors}/PrimaryDeltaPressure") == {"pressure_pascals": 138_000}
    flow = values(read, f"{sensors}/PrimaryFlow")["flow_cubic_meters_per_second"]
    assert flow == pytest.approx(42 / 60_000)
    connector = "/redfish/v1/ThermalEquipment/CDUs/1/PrimaryCoolantConnectors/1"
    assert values(read, connector) == {
        "heat_load_watts": pytest.approx(25480),
        "flow_cubic_meters_per_second": pytest.approx(0.0007),
    }
    assert values(read, f"{connector}#/SupplyPressurekPa") == {"pressure_pascals": 827_000}
    cdu = read.readings.filter(pl.col("device").str.starts_with(connector))
    assert cdu["device_kind"].unique().to_list() == ["cdu"]
    # SecondaryHeatLoad carries PrimaryHeatLoad's @odata.id: reported, URL kept as identity.
    secondary = f"{sensors}/SecondaryHeatLoad"
    assert problems(read, "odata_id_mismatch")["location"].to_list() == [secondary]
    assert values(read, secondary) == {"heat_load_watts": pytest.approx(25310)}


def test_power_shelf_odata_id_mismatches_keep_their_urls(shared_fixtures: Path) -> None:
    with RedfishServer(mockup(shared_fixtures, "public-power-shelf")) as server:
        read = read_once(plain(server))
    sensors = "/redfish/v1/Chassis/PowerShelf/Sensors"
    assert sorted(problems(read, "odata_id_mismatch")["location"].to_list()) == [
        f"{sensors}/CurrentMains2",
        f"{sensors}/PS1OutputPower",
    ]
    assert f"{sensors}/PS1OutputPower" in read.readings["device"].to_list()


# --- real vendor captures --------------------------------------------------------------------

DELL_CHASSIS = "/redfish/v1/Chassis/System.Embedded.1"
HPE_CHASSIS = "/redfish/v1/Chassis/1"


def dell_routes(shared: Path, **replace: str) -> dict[str, Path]:
    data = shared / TELEGRAF
    files = {
        "/redfish/v1": "base.json",
        "/redfish/v1/Systems": "dell/dell_available_systems.json",
        "/redfish/v1/Systems/System.Embedded.1": "dell/dell_systems.json",
        DELL_CHASSIS: "dell/dell_chassis.json",
        f"{DELL_CHASSIS}/Power": "dell/dell_power.json",
        f"{DELL_CHASSIS}/Thermal": "dell/dell_thermal.json",
    }
    return {path: data / replace.get(path, file) for path, file in files.items()}


def hpe_routes(shared: Path, **replace: str) -> dict[str, Path]:
    data = shared / TELEGRAF
    files = {
        "/redfish/v1": "base.json",
        "/redfish/v1/Systems": "hp/hp_available_systems.json",
        "/redfish/v1/Systems/1": "hp/hp_systems.json",
        HPE_CHASSIS: "hp/hp_chassis.json",
        f"{HPE_CHASSIS}/Power": "hp/hp_power.json",
        f"{HPE_CHASSIS}/Thermal": "hp/hp_thermal.json",
    }
    return {path: data / replace.get(path, file) for path, file in files.items()}


def test_dell_idrac_capture_yields_its_power(shared_fixtures: Path) -> None:
    with RedfishServer(routes=dell_routes(shared_fixtures)) as server:
        read = read_once(plain(server, crawl_prefixes=FULL_CRAWL))
    assert values(read, f"{DELL_CHASSIS}/Power#/PowerControl/0") == {
        "power_watts": 429.0,
        "capacity_watts": 1628.0,
    }
    # 900 W in on a 750 W unit: both kept as reported; judging them is validation's job.
    assert values(read, f"{DELL_CHASSIS}/Power#/PowerSupplies/0") == {
        "power_watts": 900.0,
        "voltage_volts": 206.0,
        "capacity_watts": 750.0,
    }
    assert values(read, f"{DELL_CHASSIS}/Power#/PowerSupplies/0/LastPowerOutputWatts") == {}
    temperatures = read.readings.filter(pl.col("device").str.contains("/Thermal#/Temperatures/"))
    assert temperatures.height > 0
    assert (temperatures["metric"] == "temperature_celsius").all()


def test_hpe_ilo_capture_yields_its_power_and_oem_readings(shared_fixtures: Path) -> None:
    with RedfishServer(routes=hpe_routes(shared_fixtures)) as server:
        read = read_once(plain(server, crawl_prefixes=FULL_CRAWL))
    assert values(read, f"{HPE_CHASSIS}/Power#/PowerControl/0")["power_watts"] == 221.0
    psus = read.readings.filter(
        pl.col("device").str.contains(r"/Power#/PowerSupplies/\d+$")
        & (pl.col("device_kind") == "psu")
    )
    assert psus["device"].unique().len() == 2
    oem = read.readings.filter(pl.col("device").str.contains("/Oem/"))
    assert dict(zip(oem["device"], oem["value"], strict=True)) == {
        f"{HPE_CHASSIS}/Power#/PowerSupplies/0/Oem/Hpe/AveragePowerOutputWatts": 0.0,
        f"{HPE_CHASSIS}/Power#/PowerSupplies/1/Oem/Hpe/AveragePowerOutputWatts": 90.0,
    }
    assert oem["device_kind"].unique().to_list() == ["psu"]


# --- which chassis reading is the server's input power ----------------------------------------


def chosen_chassis(read: RedfishRead) -> dict[str, tuple[float, str, str]]:
    frame = read.chassis_power()
    assert frame.schema == pl.Schema(
        {
            "target": pl.String,
            "device": pl.String,
            "power_watts": pl.Float64,
            "rule": pl.String,
            "source_device": pl.String,
        }
    )
    return {
        row["device"]: (row["power_watts"], row["rule"], row["source_device"])
        for row in frame.rows(named=True)
    }


def test_environment_metrics_wins_over_the_legacy_power_resource(shared_fixtures: Path) -> None:
    with RedfishServer(mockup(shared_fixtures, "public-rackmount1")) as server:
        read = read_once(plain(server))
    # 374 W (EnvironmentMetrics) against 344 W (legacy PowerControl): the current schema wins,
    # the other stays a reading of its own.
    assert chosen_chassis(read) == {
        "/redfish/v1/Chassis/1U": (
            374.0,
            "environment_metrics",
            "/redfish/v1/Chassis/1U/EnvironmentMetrics",
        )
    }


def test_vendor_captures_give_their_chassis_power_from_power_control(
    shared_fixtures: Path,
) -> None:
    with (
        RedfishServer(routes=dell_routes(shared_fixtures)) as dell,
        RedfishServer(routes=hpe_routes(shared_fixtures)) as hpe,
    ):
        dell_read = read_once(plain(dell, crawl_prefixes=FULL_CRAWL))
        hpe_read = read_once(plain(hpe, crawl_prefixes=FULL_CRAWL))
    assert chosen_chassis(dell_read) == {
        DELL_CHASSIS: (429.0, "power_control", f"{DELL_CHASSIS}/Power#/PowerControl/0")
    }
    assert chosen_chassis(hpe_read) == {
        HPE_CHASSIS: (221.0, "power_control", f"{HPE_CHASSIS}/Power#/PowerControl/0")
    }


INVALID = {
    "dell/dell_chassisinvalid.json": ("dell", DELL_CHASSIS),
    "dell/dell_powerinvalid.json": ("dell", f"{DELL_CHASSIS}/Power"),
    "dell/dell_systemsinvalid.json": ("dell", "/redfish/v1/Systems/System.Embedded.1"),
    "dell/dell_thermalinvalid.json": ("dell", f"{DELL_CHASSIS}/Thermal"),
    "hp/hp_powerinvalid.json": ("hp", f"{HPE_CHASSIS}/Power"),
    "hp/hp_systemsinvalid.json": ("hp", "/redfish/v1/Systems/1"),
    "hp/hp_thermalinvalid.json": ("hp", f"{HPE_CHASSIS}/Thermal"),
}


def test_every_invalid_capture_is_listed(shared_fixtures: Path) -> None:
    found = {
        str(path.relative_to(shared_fixtures / TELEGRAF))
        for path in (shared_fixtures / TELEGRAF).rglob("*invalid.json")
    }
    assert found == set(INVALID)


@pytest.mark.parametrize("name", sorted(INVALID))
def test_invalid_capture_is_a_clear_problem_not_a_crash(shared_fixtures: Path, name: str) -> None:
    vendor, path = INVALID[name]
    parsed = parse_resource((shared_fixtures / TELEGRAF / name).read_bytes())
    assert not isinstance(parsed, dict)
    assert parsed.reason == "invalid_json" and "line" in parsed.message

    routes = dell_routes if vendor == "dell" else hpe_routes
    with RedfishServer(routes=routes(shared_fixtures, **{path: name})) as server:
        read = read_once(plain(server, crawl_prefixes=FULL_CRAWL))
    invalid = problems(read, "invalid_json")
    assert invalid["location"].to_list() == [path]
    assert "column" in invalid["message"][0]
    assert read.targets["up"][0]
    (fetched,) = read.fetched.values()
    assert path not in fetched


def test_every_fixture_payload_reads_without_error(shared_fixtures: Path) -> None:
    """Every Redfish payload we hold, read directly: no exception, known metrics, finite values."""
    files = [
        *sorted((shared_fixtures / DMTF).rglob("*.json")),
        *sorted((shared_fixtures / TELEGRAF).rglob("*.json")),
    ]
    read = 0
    for file in files:
        payload = parse_resource(file.read_bytes())
        if not isinstance(payload, dict):
            assert file.name.endswith("invalid.json"), file
            continue
        path = payload.get("@odata.id")
        found, _ = readings_from_resource(path if isinstance(path, str) else "/x", payload)
        for reading in found:
            assert reading.unit and math.isfinite(reading.value), (file, reading)
        read += len(found)
    assert len(files) > 1000 and read > 500


def test_oem_power_is_read_from_known_keys_and_marked_in_its_device() -> None:
    chassis = {
        "@odata.type": "#Chassis.v1_20_0.Chassis",
        "Oem": {"Contoso": {"PowerConsumedWatts": 512, "FanPowerBudgetWatts": 90}},
    }
    found, trouble = readings_from_resource("/redfish/v1/Chassis/1", chassis)
    assert trouble == []
    assert [(r.device, r.device_kind, r.metric, r.value) for r in found] == [
        ("/redfish/v1/Chassis/1#/Oem/Contoso/PowerConsumedWatts", "chassis", "power_watts", 512.0)
    ]


def test_values_may_be_plain_numbers_or_excerpts() -> None:
    plain_numbers = {
        "@odata.type": "#EnvironmentMetrics.v1_3_0.EnvironmentMetrics",
        "PowerWatts": 374,
    }
    excerpt = {
        "@odata.type": "#EnvironmentMetrics.v1_3_0.EnvironmentMetrics",
        "PowerWatts": {"Reading": 374},
    }
    broken = {
        "@odata.type": "#EnvironmentMetrics.v1_3_0.EnvironmentMetrics",
        "PowerWatts": {"Reading": "N/A"},
    }
    path = "/redfish/v1/Chassis/1/EnvironmentMetrics"
    assert (
        readings_from_resource(path, plain_numbers)[0] == readings_from_resource(path, excerpt)[0]
    )
    found, trouble = readings_from_resource(path, broken)
    assert found == [] and [problem.reason for problem in trouble] == ["not_a_number"]
    absent = {"@odata.type": "#EnvironmentMetrics.v1_3_0.EnvironmentMetrics", "PowerWatts": None}
    assert readings_from_resource(path, absent) == ([], [])


# --- client behaviour ------------------------------------------------------------------------


def test_a_hanging_bmc_costs_only_its_own_data(shared_fixtures: Path) -> None:
    hang = {"/redfish/v1/Chassis/PDU": PathBehaviour(delay_seconds=60)}
    with (
        RedfishServer(mockup(shared_fixtures, "public-pdu"), behaviours=hang) as hanging,
        RedfishServer(mockup(shared_fixtures, "public-rackmount1")) as healthy,
    ):
        stuck = plain(hanging, name="stuck", deadline_seconds=2, request_timeout_seconds=30)
        fine = plain(healthy, name="fine")
        started = time.monotonic()
        read = read_once(stuck, fine)
        elapsed = time.monotonic() - started
        assert ("GET", "/redfish/v1/Chassis/PDU") in hanging.requests
    assert elapsed < 3.5
    assert not health(read, "stuck")["complete"]
    deadline = problems(read, "deadline_exceeded")
    assert deadline["target"].to_list() == [stuck.service_root]
    assert deadline["location"].to_list() == ["/redfish/v1/Chassis/PDU"]
    assert health(read, "fine")["complete"]
    assert values(read, "/redfish/v1/Chassis/1U/Power#/PowerControl/0")["power_watts"] == 344.0


def test_a_slow_path_times_out_and_the_crawl_goes_on(shared_fixtures: Path) -> None:
    slow = {"/redfish/v1/Chassis/PDU/Sensors/PDUPower": PathBehaviour(delay_seconds=30)}
    failing = {"/redfish/v1/Chassis/PDU/Sensors/CabTemp": PathBehaviour(status=500)}
    with RedfishServer(mockup(shared_fixtures, "public-pdu"), behaviours=slow | failing) as server:
        read = read_once(plain(server, request_timeout_seconds=0.5))
    assert problems(read, "timeout")["location"].to_list() == [
        "/redfish/v1/Chassis/PDU/Sensors/PDUPower"
    ]
    assert problems(read, "http_error")["message"].to_list() == ["HTTP 500"]
    assert health(read, read.targets["name"][0])["complete"]
    assert values(read, f"{PDU}/Outlets/A1")["power_watts"] == 197.4


def test_an_unreachable_bmc_is_down_quickly() -> None:
    with socket.socket() as probe:  # a port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    target = RedfishTarget(url=f"http://127.0.0.1:{port}", auth="none", allow_plain_http=True)
    started = time.monotonic()
    read = read_once(target)
    assert time.monotonic() - started < 2
    assert not read.targets["up"][0]
    assert problems(read, "connection_error")["location"].to_list() == ["/redfish/v1"]
    assert read.readings.height == 0


def test_max_resources_bounds_the_crawl(shared_fixtures: Path) -> None:
    with RedfishServer(mockup(shared_fixtures, "public-pdu")) as server:
        read = read_once(plain(server, crawl_prefixes=FULL_CRAWL, max_resources=10))
        assert len(server.requests) == 10
    assert len(problems(read, "max_resources")) == 1
    assert not read.targets["complete"][0]


def test_the_session_limit_server_does_reject_overlapping_requests(shared_fixtures: Path) -> None:
    """The 503 rule below would pass vacuously if the server could not see overlaps."""
    with RedfishServer(
        mockup(shared_fixtures, "public-pdu"), response_delay_seconds=0.2, max_in_flight=1
    ) as server:
        statuses: list[int] = []

        def get() -> None:
            try:
                with urllib.request.urlopen(server.url + "/redfish/v1", timeout=5) as response:
                    statuses.append(response.status)
            except urllib.error.HTTPError as error:
                statuses.append(error.code)

        threads = [threading.Thread(target=get) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert sorted(statuses) == [200, 503]


def test_one_request_in_flight_per_bmc_even_for_two_targets_on_it(shared_fixtures: Path) -> None:
    with RedfishServer(
        mockup(shared_fixtures, "public-cooling-unit"),
        response_delay_seconds=0.002,
        max_in_flight=1,
    ) as server:
        read = read_once(plain(server, name="cdu-a"), plain(server, name="cdu-b"))
        assert server.overloads == 0
        assert server.peak_in_flight == 1
    assert read.problems.filter(pl.col("reason") == "http_error").height == 0
    assert read.targets["complete"].all()


def test_different_bmcs_are_read_concurrently_within_the_global_bound(
    shared_fixtures: Path,
) -> None:
    root = mockup(shared_fixtures, "public-cooling-unit")
    thermal = ("/redfish/v1/ThermalEquipment",)
    for bound, expected_peak in ((4, 3), (1, 1)):
        tracker = InFlightTracker()
        with (
            RedfishServer(root, response_delay_seconds=0.01, tracker=tracker) as one,
            RedfishServer(root, response_delay_seconds=0.01, tracker=tracker) as two,
            RedfishServer(root, response_delay_seconds=0.01, tracker=tracker) as three,
        ):
            targets = [plain(server, crawl_prefixes=thermal) for server in (one, two, three)]
            read_once(*targets, max_concurrent_targets=bound)
        assert tracker.peak == expected_peak


def test_paged_collections_are_followed(tmp_path: Path) -> None:
    """Members@odata.nextLink pages are crawled, and a PDU's outlets are counted across them."""
    outlets = f"{PDU}/Outlets"
    documents: dict[str, Any] = {
        "/redfish/v1": {"PowerEquipment": {"@odata.id": "/redfish/v1/PowerEquipment"}},
        "/redfish/v1/PowerEquipment": {"RackPDUs": {"@odata.id": PDUS}},
        PDUS: {"Members": [{"@odata.id": PDU}]},
        PDU: {
            "@odata.type": "#PowerDistribution.v1_6_0.PowerDistribution",
            "Outlets": {"@odata.id": outlets},
        },
        outlets: {
            "Members": [{"@odata.id": f"{outlets}/1"}],
            "Members@odata.nextLink": f"{outlets}?$skip=1",
        },
        f"{outlets}?$skip=1": {"@odata.id": outlets, "Members": [{"@odata.id": f"{outlets}/2"}]},
        f"{outlets}/1": {"@odata.type": "#Outlet.v1_4_4.Outlet", "PowerWatts": {"Reading": 10}},
        f"{outlets}/2": {"@odata.type": "#Outlet.v1_4_4.Outlet", "PowerWatts": 20},
    }
    routes = {}
    for number, (path, document) in enumerate(documents.items()):
        routes[path] = tmp_path / f"{number}.json"
        routes[path].write_text(json.dumps(document))
    with RedfishServer(routes=routes) as server:
        read = read_once(plain(server))
    assert read.targets["complete"][0]
    assert read.problems.height == 0
    (layout,) = read.power_distribution
    assert layout.outlets == (f"{outlets}/1", f"{outlets}/2")
    choice = choose_pdu_power(read.readings, layout)
    assert (choice.rule, choice.power_watts) == ("outlets", 30.0)


USER, PASSWORD = "operator", "s3cret"
ENVIRON = {"BMC_USER": USER, "BMC_PASSWORD": PASSWORD}


def secured(server: RedfishServer, **settings: Any) -> RedfishTarget:
    options: dict[str, Any] = {
        "allow_plain_http": True,
        "credentials": RedfishCredentials(username_env="BMC_USER", password_env="BMC_PASSWORD"),
    } | settings
    return RedfishTarget(url=server.url, **options)


def test_session_token_is_reused_across_cycles_and_logged_out(shared_fixtures: Path) -> None:
    with RedfishServer(
        mockup(shared_fixtures, "public-cooling-unit"), credentials=(USER, PASSWORD)
    ) as server:
        config = RedfishConfig(targets=(secured(server),))
        with RedfishSource(config, environ=ENVIRON) as source:
            first = source.read_readings(now=1.0)
            second = source.read_readings(now=2.0)
            assert server.logins == 1
            assert server.unauthorized == 0
            server.expire_sessions()  # the BMC forgot us: one new login, no lost data
            third = source.read_readings(now=3.0)
            assert server.logins == 2
            assert server.logouts == 0
        assert server.logouts == 1
        assert server.tokens == {}
    for read in (first, second, third):
        assert read.targets["complete"].all()
        assert read.readings.height == first.readings.height > 0


def test_basic_auth_is_a_fallback_only_when_asked_for(shared_fixtures: Path) -> None:
    root = mockup(shared_fixtures, "public-cooling-unit")
    with RedfishServer(
        root, credentials=(USER, PASSWORD), sessions=False, basic_auth=True
    ) as server:
        refused = read_once_with(secured(server), ENVIRON)
        fallback = read_once_with(secured(server, basic_auth_fallback=True), ENVIRON)
        basic = read_once_with(secured(server, auth="basic"), ENVIRON)
    assert not refused.targets["up"][0]
    assert problems(refused, "session_login_failed").height == 1
    assert refused.readings.height == 0
    assert problems(fallback, "session_login_failed").height == 1
    assert fallback.targets["complete"][0] and fallback.readings.height > 0
    assert basic.targets["complete"][0] and basic.readings.height == fallback.readings.height


def read_once_with(target: RedfishTarget, environ: dict[str, str]) -> RedfishRead:
    with RedfishSource(RedfishConfig(targets=(target,)), environ=environ) as source:
        return source.read_readings(now=1.0)


def test_credentials_come_from_files_or_the_environment_only(
    shared_fixtures: Path, tmp_path: Path
) -> None:
    with pytest.raises(ValidationError, match="extra"):
        RedfishCredentials.model_validate({"username_env": "U", "password": "hunter2"})
    with pytest.raises(ValidationError, match="exactly one"):
        RedfishCredentials(username_env="U", password_env="P", password_file=tmp_path / "p")
    with pytest.raises(ValidationError, match="credentials"):
        RedfishTarget(url=f"https://{USER}:{PASSWORD}@10.0.0.1")
    with pytest.raises(ValidationError, match="needs credentials"):
        RedfishTarget(url="https://10.0.0.1")

    (tmp_path / "user").write_text(USER + "\n")
    (tmp_path / "password").write_text(PASSWORD + "\n")
    from_files = RedfishCredentials(
        username_file=tmp_path / "user", password_file=tmp_path / "password"
    )
    root = mockup(shared_fixtures, "public-cooling-unit")
    with RedfishServer(root, credentials=(USER, PASSWORD)) as server:
        read = read_once_with(secured(server, credentials=from_files), {})
        missing = read_once_with(secured(server), {"BMC_USER": USER})
        assert server.logins == 1
    assert read.targets["complete"][0]
    assert problems(missing, "credentials_missing")["message"].to_list() == [
        "password: environment variable BMC_PASSWORD is not set"
    ]
    assert missing.readings.height == 0


def test_tls_is_verified_by_default_and_insecure_only_when_asked() -> None:
    target = RedfishTarget(url="https://10.0.0.1/redfish/v1/", auth="none")
    assert target.tls_verify and target.ca_bundle is None
    assert target.service_root == "https://10.0.0.1/redfish/v1"
    assert RedfishTarget(url="HTTPS://BMC-7:443", auth="none").service_root == (
        "https://bmc-7/redfish/v1"
    )
    with pytest.raises(ValidationError, match="allow_plain_http"):
        RedfishTarget(url="http://10.0.0.1", auth="none")
    with pytest.raises(ValidationError, match="tls_verify is false"):
        RedfishTarget(url="https://10.0.0.1", auth="none", tls_verify=False, ca_bundle=Path("ca"))
    with pytest.raises(ValidationError, match="distinct"):
        RedfishConfig(targets=(target, target))


@pytest.fixture
def self_signed(tmp_path: Path) -> tuple[ssl.SSLContext, Path]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl not found: cannot make a certificate for the TLS test")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context, cert


def test_tls_certificates_are_checked_against_the_configured_ca(
    shared_fixtures: Path, self_signed: tuple[ssl.SSLContext, Path]
) -> None:
    context, cert = self_signed
    root = mockup(shared_fixtures, "public-cooling-unit")
    with RedfishServer(root, tls=context) as server:
        unknown_ca = read_once(RedfishTarget(url=server.url, auth="none"))
        with_ca = read_once(RedfishTarget(url=server.url, auth="none", ca_bundle=cert))
        insecure = read_once(RedfishTarget(url=server.url, auth="none", tls_verify=False))
    assert not unknown_ca.targets["up"][0]
    assert problems(unknown_ca, "tls_error").height == 1
    assert with_ca.targets["complete"][0] and with_ca.readings.height > 0
    assert insecure.readings.height == with_ca.readings.height


def test_environment_proxies_are_not_used(
    shared_fixtures: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("ALL_PROXY", "http://127.0.0.1:9")
    with RedfishServer(mockup(shared_fixtures, "public-cooling-unit")) as server:
        read = read_once(plain(server))
    assert read.targets["complete"][0]
