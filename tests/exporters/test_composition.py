"""The composition root: the service is built once, from its settings, by the functions
``gigawatt serve`` uses; configuration problems come out before any source is built."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from collector.grid.config import GridConfigError
from collector.inventory import InventoryError
from collector.scenarios import ScenarioError
from collector.sources import registry
from exporters.api import create_app
from exporters.composition import ServiceSettings, build_app, build_runner
from exporters.service import CycleRunner
from tests.collector.sources import fixture_kind
from tests.collector.sources.fixture_kind import FIXTURE_KIND

START = 1_776_000_000.0


@pytest.fixture
def meter_kind() -> Iterator[None]:
    fixture_kind.BUILT.clear()
    fixture_kind.CLOSED.clear()
    registry.register(FIXTURE_KIND)
    try:
        yield
    finally:
        registry.unregister(FIXTURE_KIND.name)


def meters(tmp_path: Path, inventory_entity: str = "B01-H1-R01-K01/A") -> Path:
    (tmp_path / "inventory.csv").write_text(
        f"host,device,entity\n{fixture_kind.HOST},pdu-7,{inventory_entity}\n", encoding="utf-8"
    )
    collectors = tmp_path / "collectors.yaml"
    collectors.write_text(
        "inventory: inventory.csv\n"
        "sources:\n"
        "  - {kind: fixture-meter, name: a, device: pdu-7, watts: 2500}\n"
        "  - {kind: fixture-meter, name: b, device: pdu-8, watts: 1500}\n",
        encoding="utf-8",
    )
    return collectors


def test_the_service_builds_each_source_once_and_closes_it_when_it_stops(
    meter_kind: None, tmp_path: Path
) -> None:
    settings = ServiceSettings(preset="demo", collectors=meters(tmp_path), interval_seconds=0.05)
    app = build_app(settings)
    assert fixture_kind.BUILT == ["a", "b"]  # built before the app starts, not again after
    with TestClient(app) as client:
        runner: CycleRunner = client.app.state.runner  # type: ignore[attr-defined]
        assert [source.name for source in runner.pipeline.sources] == ["a", "b"]
        deadline = time.monotonic() + 10
        while client.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, "no cycle within 10 s"
            time.sleep(0.01)
        assert fixture_kind.CLOSED == []
    assert fixture_kind.BUILT == ["a", "b"]
    assert fixture_kind.CLOSED == ["a", "b"]


def test_a_bad_grid_config_is_refused_before_any_source_is_built(
    meter_kind: None, tmp_path: Path
) -> None:
    grid = tmp_path / "grid.yaml"
    grid.write_text("rating_watts: -5\n", encoding="utf-8")
    settings = ServiceSettings(preset="demo", collectors=meters(tmp_path), grid_config=grid)
    with pytest.raises(GridConfigError, match="line 1: rating_watts"):
        build_runner(settings)
    assert fixture_kind.BUILT == []


def test_a_bad_inventory_is_refused_before_any_source_is_built(
    meter_kind: None, tmp_path: Path
) -> None:
    settings = ServiceSettings(preset="demo", collectors=meters(tmp_path, "B99-H1-R01-K01/A"))
    with pytest.raises(InventoryError, match="unknown rack feed 'B99-H1-R01-K01/A'"):
        build_runner(settings)
    assert fixture_kind.BUILT == []


def test_the_tier_is_checked_once_by_the_settings() -> None:
    with pytest.raises(ValidationError) as raised:
        ServiceSettings(expose="cabinet")
    [problem] = raised.value.errors()
    assert problem["loc"] == ("expose",)
    runner = build_runner(ServiceSettings(preset="demo", expose="node"))
    assert runner.renderer.tier == "node"


def test_a_bad_scenario_is_refused_before_any_source_is_built(
    meter_kind: None, tmp_path: Path
) -> None:
    scenario = tmp_path / "incident.yaml"
    # Sources are named in the collectors file: "a" is one, "simulated" is not here.
    scenario.write_text(
        "events:\n  - {kind: source_down, source: a}\n  - {kind: source_down, source: simulated}\n",
        encoding="utf-8",
    )
    settings = ServiceSettings(preset="demo", collectors=meters(tmp_path), scenario=scenario)
    with pytest.raises(ScenarioError, match=r"line 3: events\.1\.source: no source 'simulated'"):
        build_runner(settings)
    assert fixture_kind.BUILT == []


def test_the_scenario_is_played_and_the_api_says_what_is_under_way(tmp_path: Path) -> None:
    scenario = tmp_path / "incident.yaml"
    scenario.write_text(
        "events:\n"
        "  - {kind: feed_trip, rack: B01-H1-R03-K01, feed: A, at: 10s, duration: 1m}\n"
        "  - {kind: site_surge, ratio: 1.5, at: 2m}\n",
        encoding="utf-8",
    )
    times = iter([START, START + 20.0, START + 20.0])  # build, one cycle, the API's now
    settings = ServiceSettings(preset="demo", scenario=scenario)
    runner = build_runner(settings, clock=lambda: next(times))
    assert [type(source).__name__ for source in runner.pipeline.sources] == ["ScenarioSource"]
    snapshot = runner.run_once().snapshot
    tripped = snapshot.feeds.filter(pl.col("rack_index") == 16)["power_watts"].to_list()
    assert tripped[0] == 0.0 and tripped[1] > 0
    with TestClient(create_app(settings, runner, clock=lambda: next(times))) as client:
        status = client.get("/api/v1/scenario").json()
    assert status["file"] == str(scenario)
    assert status["elapsed_seconds"] == 20.0
    assert [(e["kind"], e["active"]) for e in status["events"]] == [
        ("feed_trip", True),
        ("site_surge", False),
    ]
    trip = status["events"][0]
    assert (trip["start_seconds"], trip["end_seconds"]) == (START + 10.0, START + 70.0)
    assert status["events"][1]["end_seconds"] is None


def test_without_a_scenario_the_api_lists_no_events() -> None:
    runner = build_runner(ServiceSettings(preset="demo"))
    assert runner.scenario is None
    with TestClient(create_app(ServiceSettings(preset="demo"), runner)) as client:
        assert client.get("/api/v1/scenario").json() == {"file": None, "events": []}
