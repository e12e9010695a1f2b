"""ReadingsSource: a reader's readings attached through the inventory, its per-target health
and problems handed on, power derived from bare energy counters, and the reader closed with
the source. Readers here are small real functions returning real frames."""

from __future__ import annotations

import polars as pl
import pytest

from collector import schemas
from collector.inventory import Inventory, parse_inventory
from collector.pipeline import Pipeline
from collector.site.model import load_preset
from collector.site.topology import Topology, build_topology
from collector.sources.readings_source import ClosingReader, ReaderResult, ReadingsSource

NOW = 1_000.0
GPU_HOST = "gpu-1"
INVENTORY = (
    "host,device,entity\n"
    f"{GPU_HOST},GPU-a,B01-H1-R01-K01-N1-A02\n"
    f"{GPU_HOST},*,B01-H1-R01-K01-N1\n"
    "pdu-1,/pdu/1,B01-H1-R01-K01/A\n"
)

Row = tuple[str, str, str, str, float]  # (host, device, device_kind, metric, value)


@pytest.fixture(scope="module")
def demo() -> Topology:
    return build_topology(load_preset("demo"))


@pytest.fixture(scope="module")
def inventory(demo: Topology) -> Inventory:
    return parse_inventory(INVENTORY, demo)


def readings(target: str, rows: list[Row]) -> pl.DataFrame:
    """READINGS of one target from (host, device, device_kind, metric, value)."""
    return pl.DataFrame(
        {
            "source": "test",
            "target": target,
            "host": [row[0] for row in rows],
            "device": [row[1] for row in rows],
            "device_kind": [row[2] for row in rows],
            "metric": [row[3] for row in rows],
            "value": [row[4] for row in rows],
            "unit": "x",
            "estimated": False,
            "timestamp_seconds": None,
        },
        schema=dict(schemas.READINGS),
    )


def health(*targets: tuple[str, bool]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "target": [target for target, _ in targets],
            "up": [1.0 if up else 0.0 for _, up in targets],
            "duration_seconds": [0.25] * len(targets),
        },
        schema=dict(schemas.TARGET_HEALTH),
    )


def problem(target: str, reason: str) -> pl.DataFrame:
    return pl.DataFrame(
        [{"source": "test", "target": target, "location": "/", "reason": reason, "message": "m"}],
        schema=dict(schemas.PROBLEMS),
    )


def gpu_reader(now: float) -> ReaderResult:
    """One GPU target that reads, one PDU target that is down with its problem."""
    return ReaderResult(
        readings(
            "http://gpu-1:9400",
            [
                (GPU_HOST, "GPU-a", "accelerator", "power_watts", 410.0),
                (GPU_HOST, "GPU-a", "accelerator", "temperature_celsius", 58.0),
                (GPU_HOST, "GPU-unlisted", "accelerator", "power_watts", 405.0),
                (GPU_HOST, "GPU-unlisted", "accelerator", "temperature_celsius", 57.0),
            ],
        ),
        problem("https://pdu-1", "connect_failed"),
        health(("http://gpu-1:9400", True), ("https://pdu-1", False)),
    )


# --- one read ------------------------------------------------------------------------------


def test_a_read_attaches_readings_and_hands_on_health_and_problems(inventory: Inventory) -> None:
    def reader(now: float) -> ReaderResult:
        result = gpu_reader(now)
        pdu = readings("https://pdu-1", [("pdu-1", "/pdu/1", "pdu", "power_watts", 9_000.0)])
        return ReaderResult(pl.concat([result.readings, pdu]), result.problems, result.targets)

    batch = ReadingsSource("lab", reader, inventory).read(NOW)
    assert batch.accelerators.select("accelerator_index", "power_watts").rows() == [
        (2, 410.0),
        (None, 405.0),  # not in the inventory: kept for validation to count
    ]
    assert batch.feeds.select("feed_index", "power_watts").rows() == [(0, 9_000.0)]
    assert batch.nodes.is_empty()  # no node-level reading came
    assert batch.targets.rows() == [("http://gpu-1:9400", 1.0, 0.25), ("https://pdu-1", 0.0, 0.25)]
    assert batch.problems["reason"].to_list() == ["connect_failed"]
    assert batch.meters.is_empty() and batch.buildings.is_empty()  # none made: empty, not 0


def test_bare_energy_counters_become_cpu_power_from_the_second_read(
    inventory: Inventory,
) -> None:
    """node_exporter's RAPL counters come without power: the source derives it, and a counter
    that goes down is a problem of the source, with no power for that interval."""
    counter_joules = {NOW: 50_000.0, NOW + 10: 52_500.0, NOW + 20: 100.0}

    def reader(now: float) -> ReaderResult:
        rapl = [(GPU_HOST, "intel-rapl:0", "cpu_package", "energy_joules", counter_joules[now])]
        return ReaderResult(
            readings("http://gpu-1:9100", rapl),
            schemas.empty(schemas.PROBLEMS),
            health(("http://gpu-1:9100", True)),
        )

    source = ReadingsSource("node-exporter", reader, inventory)
    batches = [source.read(now) for now in counter_joules]
    assert [batch.nodes["cpu_power_watts"].to_list() for batch in batches] == [[], [250.0], []]
    assert [batch.problems["reason"].to_list() for batch in batches] == [
        [],
        [],
        ["counter_reset"],
    ]
    # A reader that unwraps its own counters asks for no derived rate.
    plain = ReadingsSource("sysfs-like", reader, inventory, derive_rates=False)
    assert [plain.read(now).nodes.height for now in (NOW, NOW + 10)] == [0, 0]


def test_a_reader_frame_that_breaks_the_contract_is_named_in_one_line(
    inventory: Inventory,
) -> None:
    def reader(now: float) -> ReaderResult:
        result = gpu_reader(now)
        return ReaderResult(result.readings, result.problems, result.targets.drop("up"))

    with pytest.raises(ValueError, match=r"^lab targets: missing column\(s\) up$"):
        ReadingsSource("lab", reader, inventory).read(NOW)


# --- in the pipeline -----------------------------------------------------------------------


def test_a_reader_that_raises_costs_only_its_own_data(demo: Topology, inventory: Inventory) -> None:
    def broken(now: float) -> ReaderResult:
        raise ConnectionResetError("the BMC dropped the connection")

    clock = iter([NOW, NOW + 10])
    pipeline = Pipeline(
        demo,
        [ReadingsSource("broken", broken, inventory), ReadingsSource("lab", gpu_reader, inventory)],
        clock=lambda: next(clock),
    )
    for _ in range(2):  # and again: one failure does not stop the next cycle
        snapshot = pipeline.run_cycle()
        assert snapshot.accelerators.select("accelerator_index", "power_watts").rows() == [
            (2, 410.0)
        ]
        node = snapshot.nodes.row(0, named=True)
        assert node["accelerators_reporting"] == 1
        assert node["accelerator_power_watts"] == 410.0
    sources = snapshot.sources.select("source", "target", "up", "last_success_timestamp_seconds")
    assert sorted(sources.rows()) == [
        ("broken", "broken", 0.0, None),  # never read: no last success, not 0
        ("lab", "http://gpu-1:9400", 1.0, NOW + 10),
        ("lab", "https://pdu-1", 0.0, None),
    ]


def test_an_unknown_device_is_counted_among_its_sources_rejections(
    demo: Topology, inventory: Inventory
) -> None:
    pipeline = Pipeline(demo, [ReadingsSource("lab", gpu_reader, inventory)], clock=lambda: NOW)
    snapshot = pipeline.run_cycle()
    unknown = snapshot.rejected.filter(pl.col("reason") == "unknown_entity")
    # GPU-unlisted's power and temperature: two samples, counted, never silently dropped
    assert dict(unknown.filter(pl.col("source") == "lab").select("kind", "samples").rows()) == {
        "accelerator": 2,
        "node": 0,
        "feed": 0,
        "building": 0,
    }
    accepted = snapshot.accepted.filter(pl.col("kind") == "accelerator")
    assert accepted.select("source", "samples").rows() == [("lab", 2)]


# --- closing -------------------------------------------------------------------------------


def test_closing_the_source_closes_a_reader_that_holds_something(inventory: Inventory) -> None:
    closed: list[str] = []
    reader = ClosingReader(gpu_reader, lambda: closed.append("sessions logged out"))
    source = ReadingsSource("lab", reader, inventory)
    assert source.read(NOW).accelerators.height == 2  # a ClosingReader reads like its function
    source.close()
    assert closed == ["sessions logged out"]


def test_a_reader_with_nothing_to_close_closes_quietly(inventory: Inventory) -> None:
    source = ReadingsSource("lab", gpu_reader, inventory)
    source.close()
    assert source.read(NOW).accelerators.height == 2  # a plain function holds nothing
