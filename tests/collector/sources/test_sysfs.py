"""The sysfs source on third-party trees (read in place) and on small trees built per test."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import polars as pl
import pytest

from collector import schemas
from collector.sources import sysfs
from collector.sources.kinds.sysfs import sysfs_reader
from collector.sources.readings_source import ReaderResult
from collector.sources.sysfs import EnergyCounter

NODE_EXPORTER = Path("prometheus-node_exporter/collector/fixtures")
KEPLER_SYS = Path("kepler-device-testdata/internal/device/testdata/sys")
# The fixture README counts the node_exporter extract's symlinks.
NODE_EXPORTER_LINKS = 22

T = TypeVar("T")


@pytest.fixture(scope="module")
def node_sys(shared_fixtures: Path) -> Path:
    return shared_fixtures / NODE_EXPORTER / "sys-extract" / "sys"


@pytest.fixture(scope="module")
def kepler_sys(shared_fixtures: Path) -> Path:
    return shared_fixtures / KEPLER_SYS


def value_of(readings: pl.DataFrame, device: str, metric: str) -> float:
    rows = readings.filter((pl.col("device") == device) & (pl.col("metric") == metric))
    assert rows.height == 1, f"{device} {metric}: {rows.height} rows"
    return float(rows.item(0, "value"))


def reasons_at(problems: pl.DataFrame, suffix: str) -> list[str]:
    return problems.filter(pl.col("location").str.ends_with(suffix))["reason"].to_list()


def within(seconds: float, work: Callable[[], T]) -> T:
    """``work()``'s result, failing (instead of hanging the suite) if it runs past ``seconds``."""
    outcome: list[T] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            outcome.append(work())
        except BaseException as error:  # re-raised in the test's thread
            failure.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still running after {seconds} s: is a link loop followed?"
    if failure:
        raise failure[0]
    return outcome[0]


def write(root: Path, relative: str, text: str) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# --- node_exporter's tree --------------------------------------------------------------------


def test_frames_follow_the_readings_contract(node_sys: Path) -> None:
    readings, problems = sysfs.read(node_sys)
    assert readings.schema == pl.Schema(schemas.READINGS)
    assert problems.schema == pl.Schema(schemas.PROBLEMS)
    assert set(readings["source"]) == {"sysfs"}
    assert readings["timestamp_seconds"].null_count() == readings.height  # sysfs has no clock


def test_rapl_joules_equal_node_exporters_e2e_output(node_sys: Path, shared_fixtures: Path) -> None:
    readings, _ = sysfs.read(node_sys)
    e2e = (shared_fixtures / NODE_EXPORTER / "e2e-output.txt").read_text()
    sample = re.compile(r'^(node_rapl_(\w+)_joules_total)\{[^}]*path="([^"]+)"[^}]*\} (\S+)$')
    expected = {}
    for line in e2e.splitlines():
        match = sample.match(line)
        if match:
            expected[Path(match[3]).name] = (match[2], float(match[4]))
    assert expected == {
        "intel-rapl:0": ("package", 240422.366267),
        "intel-rapl:0:0": ("core", 118821.284256),
    }
    kinds = {"package": "cpu_package", "core": "core"}  # node_exporter's name -> our kind
    energy = readings.filter(pl.col("metric") == "energy_joules")
    assert energy.height == len(expected)
    for zone, (name, joules) in expected.items():
        assert value_of(readings, zone, "energy_joules") == pytest.approx(joules, abs=1e-6)
        row = energy.filter(pl.col("device") == zone)
        assert row.item(0, "device_kind") == kinds[name]


def test_the_zero_byte_limit_file_is_a_problem_and_reading_goes_on(node_sys: Path) -> None:
    readings, problems = sysfs.read(node_sys)
    assert reasons_at(problems, "intel-rapl:0:0/constraint_0_max_power_uw") == ["empty"]
    assert value_of(readings, "intel-rapl:0:0", "energy_joules") == pytest.approx(118821.284256)
    # The package zone's limits: 95 W maximum, 4090 W configured; a 0 maximum is not a reading.
    assert value_of(readings, "intel-rapl:0", "power_limit_long_term_max_watts") == 95.0
    assert value_of(readings, "intel-rapl:0", "power_limit_long_term_watts") == 4090.0
    assert readings.filter(pl.col("metric") == "power_limit_short_term_max_watts").is_empty()


def test_every_problem_names_a_file_under_the_root(node_sys: Path) -> None:
    _, problems = sysfs.read(node_sys)
    assert problems.height > 0
    assert all(location.startswith(str(node_sys)) for location in problems["location"])
    assert set(problems["target"]) == {str(node_sys)}


def replicate_with_links(source: Path, destination: Path) -> int:
    """Copy a fixture tree into tmp_path with its symlinks as real symlinks; count them.

    The shared copy may hold each symlink as a small file whose text is the link target (the
    ttar extract was written without links). Such a file, whose text is a relative path to an
    existing entry of the tree, becomes a symlink again; a real symlink is copied as one.
    """
    links = 0
    source = Path(os.path.realpath(source))  # a shared/ folder reached through a link too
    tree = str(source)
    for directory, folders, files in os.walk(source):
        here = destination / Path(directory).relative_to(source)
        here.mkdir(parents=True, exist_ok=True)
        for name in folders + files:
            origin = Path(directory) / name
            if origin.is_symlink():
                (here / name).symlink_to(os.readlink(origin))
                links += 1
            elif name in files:
                data = origin.read_bytes()
                target = data.decode(errors="replace").strip()
                pointed = os.path.normpath(os.path.join(directory, target))
                stand_in = (
                    target.startswith("../")
                    and "\n" not in target
                    and pointed.startswith(tree)
                    and os.path.lexists(pointed)
                )
                if stand_in:
                    (here / name).symlink_to(target)
                    links += 1
                else:
                    (here / name).write_bytes(data)
        folders[:] = [name for name in folders if not (Path(directory) / name).is_symlink()]
    return links


def test_the_walk_ends_on_the_looping_subsystem_links(node_sys: Path, tmp_path: Path) -> None:
    replica = tmp_path / "sys"
    assert replicate_with_links(node_sys, replica) == NODE_EXPORTER_LINKS
    subsystem = replica / "devices/pci0000:00/0000:00:02.1/0000:01:00.0/nvme/nvme0/hwmon3/subsystem"
    assert subsystem.is_symlink() and subsystem.resolve() == (replica / "class/hwmon").resolve()

    readings, problems = within(10, lambda: sysfs.read(replica))

    assert value_of(readings, "intel-rapl:0", "energy_joules") == pytest.approx(240422.366267)
    assert readings.filter(pl.col("metric") == "power_watts").is_empty()  # no hwmon power here
    # Every class/hwmon link was followed: only the two name-less directories are reported.
    assert "not_a_directory" not in problems["reason"].to_list()
    no_name = problems.filter(pl.col("reason") == "no_name")["location"].to_list()
    assert sorted(Path(location).name for location in no_name) == ["hwmon2", "hwmon4"]


def test_links_are_resolved_and_a_directory_is_read_once(tmp_path: Path) -> None:
    root = tmp_path / "sys"
    chip = root / "devices/platform/chip.0"
    write(chip, "hwmon/hwmon0/name", "chip\n")
    write(chip, "hwmon/hwmon0/power1_input", "2500000\n")
    (chip / "hwmon/hwmon0/device").symlink_to("../..")  # back up to the chip
    (chip / "hwmon/hwmon0/subsystem").symlink_to("../../../../../class/hwmon")
    (chip / "power1_input").write_text("9999999\n")  # old-kernel layout: shadowed by hwmon0's own
    classes = root / "class/hwmon"
    classes.mkdir(parents=True)
    (classes / "hwmon0").symlink_to("../../devices/platform/chip.0/hwmon/hwmon0")
    (classes / "hwmon1").symlink_to("hwmon0")  # an alias of a visited directory
    (classes / "hwmon2").symlink_to("hwmon2")  # a link to itself
    (classes / "hwmon3").symlink_to(tmp_path)  # leaves the root
    (classes / "hwmon4").symlink_to("nowhere")

    readings, problems = within(10, lambda: sysfs.read(root))

    assert readings["device"].to_list() == ["hwmon0/chip/power1"]
    assert readings["value"].to_list() == [2.5]
    found = dict(zip((Path(p).name for p in problems["location"]), problems["reason"], strict=True))
    assert found["hwmon2"] == "link_loop"
    assert found["hwmon3"] == "link_outside_root"
    assert found["hwmon4"] == "not_found"
    assert "hwmon1" not in found  # the same directory again is normal in sysfs: skipped quietly


def test_depth_is_bounded(tmp_path: Path) -> None:
    root = tmp_path / "sys"
    write(root, "class/hwmon/hwmon0/name", "chip")
    write(root, "class/hwmon/hwmon0/power1_input", "1000000")
    write(root, "devices/chip/power2_input", "2000000")
    (root / "class/hwmon/hwmon0/device").symlink_to("../../../devices/chip")

    readings, _ = sysfs.read(root)
    assert sorted(readings["value"]) == [1.0, 2.0]  # device/ holds channels on old kernels

    shallow, problems = sysfs.read(root, max_depth=1)
    assert shallow["value"].to_list() == [1.0]
    assert reasons_at(problems, "hwmon0/device") == ["too_deep"]


# --- Kepler's hand-written tree ---------------------------------------------------------------


def test_kepler_power_channels_each_read_once(kepler_sys: Path) -> None:
    readings, _ = sysfs.read(kepler_sys)
    power = readings.filter(pl.col("metric") == "power_watts")
    assert power["device"].is_unique().all()
    assert dict(zip(power["device"], power["value"], strict=True)) == {
        "hwmon0/k10temp/power1:Package": 45.0,
        "hwmon0/k10temp/power2:Core": 15.0,
        "hwmon1/amdgpu/power1:GPU": 120.0,  # power1_input wins over power1_average (118 W)
        "hwmon2/platform_sensor/power1": 30.0,
        "hwmon_aggregate/multi_sensor/power1:package": 50.0,
        "hwmon_aggregate/multi_sensor/power2:package": 30.0,
        "hwmon_device_path/hwmon_device_path/power1:device_path_test": 25.0,
        "hwmon_dir_fallback/hwmon_dir_fallback/power1:dir_fallback_test": 35.0,
        "hwmon_disabled_power/test_power_chip/power1:PSU_Rail_A": 45.0,
        "hwmon_disabled_power/test_power_chip/power2:PSU_Rail_B": 15.0,
    }
    assert set(power["unit"]) == {"watts"}


def test_kepler_disabled_channels_are_skipped_not_errors(kepler_sys: Path) -> None:
    readings, problems = sysfs.read(kepler_sys)
    assert not readings["device"].str.contains("Rail_C").any()  # power3 and energy3 enable=0
    assert not problems["location"].str.contains("disabled").any()
    energy = readings.filter(pl.col("device").str.starts_with("hwmon_energy_disabled/"))
    assert energy["value"].to_list() == [500.0, 200.0]


def test_kepler_two_package_channels_stay_apart(kepler_sys: Path) -> None:
    readings, _ = sysfs.read(kepler_sys)
    both = readings.filter(pl.col("device").str.starts_with("hwmon_aggregate/"))
    assert both["device"].to_list() == [
        "hwmon_aggregate/multi_sensor/power1:package",
        "hwmon_aggregate/multi_sensor/power2:package",
    ]
    assert both["value"].sum() == 80.0
    assert set(both["device_kind"]) == {"cpu_package"}


def test_kepler_hwmon_energy_is_joules(kepler_sys: Path) -> None:
    readings, _ = sysfs.read(kepler_sys)
    assert value_of(readings, "hwmon_energy/energy_meter/energy1:Total", "energy_joules") == 500.0
    assert value_of(readings, "hwmon_energy_no_label/power_chip/energy1", "energy_joules") == 300.0


def test_kepler_directories_without_name_are_reported(kepler_sys: Path) -> None:
    readings, problems = sysfs.read(kepler_sys)
    no_name = problems.filter(pl.col("reason") == "no_name")
    assert sorted(Path(p).name for p in no_name["location"]) == [
        "hwmon_device_path",
        "hwmon_dir_fallback",
    ]
    assert readings["device"].str.starts_with("hwmon_dir_fallback/").sum() == 1


def test_kepler_mmio_mirror_is_counted_once(kepler_sys: Path) -> None:
    readings, problems = sysfs.read(kepler_sys)
    energy = readings.filter(
        (pl.col("metric") == "energy_joules") & ~pl.col("device").str.starts_with("hwmon")
    )
    assert dict(zip(energy["device"], energy["value"], strict=True)) == {
        "intel-rapl:0": pytest.approx(240422.366267),
        "intel-rapl:0:0": pytest.approx(118821.284256),
    }
    assert not problems["location"].str.contains("mmio").any()  # a mirror is not a fault
    assert reasons_at(problems, "intel-rapl:a") == ["bad_zone_id"]
    zones, _ = sysfs.powercap_zones(kepler_sys)
    assert [zone.device for zone in zones] == ["intel-rapl:0", "intel-rapl:0:0"]


def rapl_zone(root: Path, directory: str, name: str, energy_uj: int) -> None:
    write(root, f"class/powercap/{directory}/name", name)
    write(root, f"class/powercap/{directory}/energy_uj", str(energy_uj))
    write(root, f"class/powercap/{directory}/max_energy_range_uj", "262143328850")


def test_mirror_rule_keeps_msr_and_lone_mmio_zones(tmp_path: Path) -> None:
    rapl_zone(tmp_path, "intel-rapl-mmio:0", "package-0", 10)
    rapl_zone(tmp_path, "intel-rapl-mmio:0:0", "dram", 11)
    rapl_zone(tmp_path, "intel-rapl:0", "package-0", 20)
    rapl_zone(tmp_path, "intel-rapl:0:0", "dram", 21)
    rapl_zone(tmp_path, "intel-rapl-mmio:1", "package-1", 30)  # no MSR twin: kept
    zones, problems = sysfs.powercap_zones(tmp_path)
    assert {zone.device: zone.energy_uj for zone in zones} == {
        "intel-rapl-mmio:1": 30,
        "intel-rapl:0": 20,
        "intel-rapl:0:0": 21,
    }
    assert problems.is_empty()


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("", "empty"),
        ("\n", "empty"),
        ("12abc\n", "garbage"),
        ("\xff", "garbage"),
        ("-5\n", "out_of_range"),
        ("9" * 5000, "too_large"),
    ],
)
def test_bad_counter_files_are_problems(tmp_path: Path, content: str, reason: str) -> None:
    rapl_zone(tmp_path, "intel-rapl:0", "package-0", 1)
    rapl_zone(tmp_path, "intel-rapl:1", "package-1", 2_000_000)
    energy = tmp_path / "class/powercap/intel-rapl:0/energy_uj"
    energy.write_bytes(content.encode("latin-1"))
    readings, problems = sysfs.read(tmp_path)
    assert reasons_at(problems, "intel-rapl:0/energy_uj") == [reason]
    assert readings["device"].to_list() == ["intel-rapl:1"]  # the next zone is still read
    assert readings["value"].to_list() == [2.0]


def test_an_unreadable_file_is_a_problem(tmp_path: Path) -> None:
    write(tmp_path, "class/hwmon/hwmon0/name", "chip")
    (tmp_path / "class/hwmon/hwmon0/power1_input").mkdir()  # reading it fails with EISDIR
    write(tmp_path, "class/hwmon/hwmon0/power2_input", "3000000")
    readings, problems = sysfs.read(tmp_path)
    assert reasons_at(problems, "power1_input") == ["unreadable"]
    assert readings["device"].to_list() == ["hwmon0/chip/power2"]


def test_missing_class_directories_are_reported(tmp_path: Path) -> None:
    readings, problems = sysfs.read(tmp_path)
    assert readings.is_empty()
    assert sorted(Path(p).name for p in problems["location"]) == ["hwmon", "powercap"]
    assert set(problems["reason"]) == {"not_found"}


def test_powercap_zones_feed_an_energy_counter(node_sys: Path) -> None:
    zones, _ = sysfs.powercap_zones(node_sys)
    package = next(zone for zone in zones if zone.name == "package-0")
    counter = EnergyCounter()
    first = counter.update(package.energy_uj, 100.0, package.max_energy_range_uj)
    assert first.energy_joules == pytest.approx(240422.366267)
    assert first.average_power_watts is None
    # 30 s later the counter has wrapped: 262143.328850 J range, 240422.366267 J before.
    later = counter.update(5_000_000_000, 130.0, package.max_energy_range_uj)
    gained = 262143.328850 - 240422.366267 + 5000.0
    assert later.energy_joules == pytest.approx(240422.366267 + gained)
    assert later.average_power_watts == pytest.approx(gained / 30)


# --- EnergyCounter, by hand -------------------------------------------------------------------

RANGE_UJ = 262_143_328_850


def test_counter_without_wrap_gives_joules_and_watts() -> None:
    counter = EnergyCounter()
    assert counter.energy_joules is None
    assert counter.update(1_000_000, 0.0, RANGE_UJ).energy_joules == 1.0
    step = counter.update(3_000_000, 2.0, RANGE_UJ)
    assert (step.energy_joules, step.average_power_watts, step.problem) == (3.0, 1.0, None)


def test_counter_unwraps_one_wrap() -> None:
    counter = EnergyCounter()
    counter.update(262_000_000_000, 0.0, RANGE_UJ)
    step = counter.update(1_000_000_000, 10.0, RANGE_UJ)
    # 1_000_000_000 - 262_000_000_000 + 262_143_328_850 = 1_143_328_850 µJ in 10 s
    assert step.energy_joules == 263_143.32885
    assert step.average_power_watts == pytest.approx(114.332885)
    again = counter.update(2_000_000_000, 20.0, RANGE_UJ)
    assert again.energy_joules == 264_143.32885  # monotonic across the wrap
    assert again.average_power_watts == pytest.approx(100.0)


def test_a_decrease_without_a_range_is_a_problem_and_rebases() -> None:
    counter = EnergyCounter()
    counter.update(1_000, 0.0, None)
    step = counter.update(500, 1.0, None)
    assert (step.energy_joules, step.average_power_watts) == (None, None)
    assert step.problem == "counter_decrease_no_range"
    after = counter.update(1_500, 2.0, None)  # counts from 500: 1000 µJ more
    assert after.energy_joules == pytest.approx(0.002)
    assert after.average_power_watts == pytest.approx(0.001)


def test_more_than_one_possible_wrap_is_ambiguous() -> None:
    counter = EnergyCounter(max_power_watts=100.0)
    counter.update(900_000_000, 0.0, 1_000_000_000)  # a 1000 J range
    # 20 s at up to 100 W is 2000 J: 600 J, 1600 J are both possible. Not guessed.
    step = counter.update(500_000_000, 20.0, 1_000_000_000)
    assert step.problem == "ambiguous_wrap"
    assert step.energy_joules is None
    assert counter.energy_joules == 900.0  # the lost interval is not counted


def test_a_jump_beyond_max_power_is_impossible() -> None:
    counter = EnergyCounter(max_power_watts=100.0)
    counter.update(0, 0.0, RANGE_UJ)
    step = counter.update(500_000_000, 1.0, RANGE_UJ)  # 500 J in 1 s
    assert step.problem == "impossible_jump"
    ok = counter.update(550_000_000, 2.0, RANGE_UJ)  # rebased: 50 J in 1 s is fine
    assert ok.average_power_watts == pytest.approx(50.0)


def test_a_wrap_within_the_bound_is_accepted_with_max_power() -> None:
    counter = EnergyCounter(max_power_watts=100.0)
    counter.update(900_000_000, 0.0, 1_000_000_000)
    step = counter.update(100_000_000, 5.0, 1_000_000_000)  # 200 J in 5 s, one wrap only
    assert step.problem is None
    assert step.average_power_watts == pytest.approx(40.0)


def test_time_must_move_forward() -> None:
    counter = EnergyCounter()
    counter.update(1_000_000, 5.0, RANGE_UJ)
    assert counter.update(2_000_000, 5.0, RANGE_UJ).problem == "time_not_increasing"
    step = counter.update(2_000_000, 6.0, RANGE_UJ)  # the ignored reading left no trace
    assert step.average_power_watts == pytest.approx(1.0)


def test_counter_rejects_a_bad_bound() -> None:
    with pytest.raises(ValueError, match="max_power_watts"):
        EnergyCounter(max_power_watts=0)


# --- the collectors file's sysfs kind (readings_source.sysfs_reader) --------------------------

PACKAGE = "class/powercap/intel-rapl:0"


def rapl_tree(root: Path, energy_uj: int, max_energy_range_uj: int = 10_000_000) -> None:
    write(root, f"{PACKAGE}/name", "package-0\n")
    write(root, f"{PACKAGE}/energy_uj", f"{energy_uj}\n")
    write(root, f"{PACKAGE}/max_energy_range_uj", f"{max_energy_range_uj}\n")
    (root / "class" / "hwmon").mkdir(exist_ok=True)  # present, with no sensor


def power_of(result: ReaderResult) -> pl.DataFrame:
    return result.readings.filter(pl.col("metric") == "power_watts")


def test_the_sysfs_kind_turns_two_reads_into_average_power(tmp_path: Path) -> None:
    rapl_tree(tmp_path, 1_000_000)
    reader = sysfs_reader(tmp_path, host="node-1")
    first = reader(1_000.0)
    assert power_of(first).is_empty()  # one read is no interval: missing, not 0
    assert value_of(first.readings, "intel-rapl:0", "energy_joules") == 1.0
    assert first.targets.rows() == [(f"sysfs://node-1{tmp_path}", 1.0, pytest.approx(0, abs=1))]

    rapl_tree(tmp_path, 6_000_000)
    second = reader(1_010.0)
    (power,) = power_of(second).rows(named=True)
    assert power["value"] == (6_000_000 - 1_000_000) / 1e6 / (1_010.0 - 1_000.0)
    assert power | {"value": None} == {
        "source": "sysfs",
        "target": str(tmp_path),
        "host": "node-1",
        "device": "intel-rapl:0",
        "device_kind": "cpu_package",
        "metric": "power_watts",
        "value": None,
        "unit": "watts",
        "estimated": False,
        "timestamp_seconds": None,
    }
    assert value_of(second.readings, "intel-rapl:0", "energy_joules") == 6.0  # the raw counter

    rapl_tree(tmp_path, 2_000_000)  # wrapped at 10 J: 4 J to the top, then 2 J
    third = reader(1_020.0)
    assert power_of(third)["value"].to_list() == [(10_000_000 - 6_000_000 + 2_000_000) / 1e6 / 10]
    assert third.problems.is_empty()


def test_a_counter_the_sysfs_kind_cannot_trust_is_a_problem_at_its_zone(tmp_path: Path) -> None:
    rapl_tree(tmp_path, 9_000_000)
    reader = sysfs_reader(tmp_path, host="node-1", max_power_watts=1.0)
    reader(0.0)
    rapl_tree(tmp_path, 1_000_000)
    result = reader(100.0)  # 100 s at up to 1 W could hold ten wraps of 10 J
    assert power_of(result).is_empty()
    assert result.problems.select("location", "reason").rows() == [
        (str(tmp_path / PACKAGE), "ambiguous_wrap")
    ]


def test_the_sysfs_kind_reports_a_missing_root_as_down(tmp_path: Path) -> None:
    missing = tmp_path / "no-sys"
    result = sysfs_reader(missing, host="node-1")(0.0)
    assert result.readings.is_empty()
    assert result.problems.select("location", "reason").rows() == [(str(missing), "not_found")]
    assert result.targets.select("target", "up").rows() == [(f"sysfs://node-1{missing}", 0.0)]


def test_the_sysfs_kind_reads_node_exporters_rapl_counters(node_sys: Path) -> None:
    result = sysfs_reader(node_sys, host="node-1")(0.0)
    energy = result.readings.filter(pl.col("metric") == "energy_joules")
    powercap = node_sys / "class" / "powercap"
    expected = {
        zone: int((powercap / zone / "energy_uj").read_text()) / 1e6
        for zone in ("intel-rapl:0", "intel-rapl:0:0")
    }
    assert dict(energy.select("device", "value").rows()) == pytest.approx(expected, rel=1e-15)
    assert result.targets["up"].to_list() == [1.0]
    assert power_of(result).is_empty()
