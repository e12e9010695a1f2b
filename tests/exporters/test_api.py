"""The HTTP service in process: readiness, /metrics, and the JSON API, on a hand-driven runner."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import polars as pl
import pytest
from fastapi.testclient import TestClient

from collector.site.model import Site, load_preset
from collector.sources.base import SampleBatch
from collector.sources.deadline import DeadlineSource
from collector.sources.simulated import SimulatedSource
from exporters.api import accepts_gzip, create_app
from exporters.composition import ServiceSettings, build_runner
from exporters.exposition import CONTENT_TYPE
from exporters.service import CycleRunner

START = 1_700_000_000.0
INTERVAL = 10.0
STALE_AFTER = 3.0


class FakeClock:
    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Service:
    """A test client on an app whose runner the test drives by hand."""

    def __init__(self, client: TestClient, runner: CycleRunner, clock: FakeClock) -> None:
        self.client = client
        self.runner = runner
        self.clock = clock

    def json(self, path: str, status: int = 200, **params: str) -> Any:
        response = self.client.get(path, params=params)
        assert response.status_code == status, response.text
        assert response.headers["content-type"].startswith("application/json")
        return strict_json(response.text)

    def cycle(self) -> None:
        self.runner.run_once()
        self.clock.now += INTERVAL


def _no_constant(name: str) -> float:
    raise AssertionError(f"JSON contains {name}")


def strict_json(text: str) -> Any:
    """json.loads that fails on NaN and infinities."""
    return json.loads(text, parse_constant=_no_constant)


def settings() -> ServiceSettings:
    return ServiceSettings(
        preset="demo",
        interval_seconds=INTERVAL,
        stale_after_intervals=STALE_AFTER,
        seed=0,
    )


@contextmanager
def open_service(prepare: Callable[[CycleRunner], None] | None = None) -> Iterator[Service]:
    clock = FakeClock()
    config = settings()
    runner = build_runner(config, clock=clock)
    if prepare is not None:
        prepare(runner)
    with TestClient(create_app(config, runner=runner, clock=clock)) as client:
        yield Service(client, runner, clock)


@pytest.fixture
def fresh() -> Iterator[Service]:
    """A service before its first cycle."""
    with open_service() as opened:
        yield opened


@pytest.fixture(scope="module")
def service() -> Iterator[Service]:
    """A service after two cycles (so counters have moved); tests only read it."""
    with open_service() as opened:
        opened.runner.run_once()
        opened.clock.now += INTERVAL
        opened.runner.run_once()
        yield opened


@pytest.fixture(scope="module")
def site() -> Site:
    return load_preset("demo")


def expected_counts(site: Site) -> dict[str, int]:
    """Entity counts from the site file alone, independent of the topology builder."""
    counts = dict.fromkeys(
        ("buildings", "halls", "rows", "racks", "feeds", "nodes", "accelerators"), 0
    )
    for group in site.buildings:
        building = site.building_types[group.type]
        counts["buildings"] += group.count
        for halls in building.halls:
            rack = site.rack_types[halls.rack_type]
            node = site.node_types[rack.node_type]
            racks = group.count * halls.count * halls.rows * halls.racks_per_row
            counts["halls"] += group.count * halls.count
            counts["rows"] += group.count * halls.count * halls.rows
            counts["racks"] += racks
            counts["feeds"] += racks * len(rack.pdus)
            counts["nodes"] += racks * rack.nodes
            counts["accelerators"] += racks * rack.nodes * node.accelerators
    return counts


# --- readiness and /metrics ------------------------------------------------------------------


def test_readyz_and_metrics_wait_for_the_first_cycle(fresh: Service) -> None:
    ready = fresh.client.get("/readyz")
    assert ready.status_code == 503
    assert strict_json(ready.text)["ready"] is False
    assert fresh.client.get("/metrics").status_code == 503
    assert fresh.client.get("/api/v1/site").status_code == 503
    assert fresh.client.get("/api/v1/power").status_code == 503
    assert fresh.client.get("/api/v1/racks/B01-H1-R01-K01").status_code == 503

    fresh.runner.run_once()
    ready = fresh.client.get("/readyz")
    assert ready.status_code == 200
    body = strict_json(ready.text)
    assert body["ready"] is True
    assert body["cycles"] == 1
    assert body["age_seconds"] == 0
    metrics = fresh.client.get("/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"] == CONTENT_TYPE
    assert metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert b"gigawatt_site_it_power_watts " in metrics.content


def test_readyz_turns_503_when_the_data_goes_stale(fresh: Service) -> None:
    fresh.runner.run_once()
    limit = STALE_AFTER * INTERVAL
    fresh.clock.now = START + limit
    assert fresh.client.get("/readyz").status_code == 200
    fresh.clock.now = START + limit + 0.1 * INTERVAL
    stale = fresh.client.get("/readyz")
    assert stale.status_code == 503
    body = strict_json(stale.text)
    assert body["ready"] is False
    assert body["age_seconds"] == pytest.approx(limit + 0.1 * INTERVAL)
    # Stale data is still served: a scrape must not fail because one cycle was late.
    assert fresh.client.get("/metrics").status_code == 200
    # A new cycle makes it ready again.
    fresh.runner.run_once()
    ready = fresh.client.get("/readyz")
    assert ready.status_code == 200
    assert strict_json(ready.text)["cycles"] == 2


def test_healthz(fresh: Service) -> None:
    response = fresh.client.get("/healthz")
    assert response.status_code == 200
    assert strict_json(response.text) == {"status": "ok"}


def test_metrics_serves_the_latest_rendered_body(service: Service) -> None:
    latest = service.runner.latest
    assert latest is not None
    response = service.client.get("/metrics", headers={"Accept-Encoding": "identity"})
    assert response.status_code == 200
    assert "content-encoding" not in response.headers
    assert response.content == latest.rendered.body
    assert b"# TYPE gigawatt_rack_power_watts gauge" in response.content


def test_metrics_gzip(service: Service) -> None:
    latest = service.runner.latest
    assert latest is not None
    with service.client.stream("GET", "/metrics", headers={"Accept-Encoding": "gzip"}) as response:
        raw = b"".join(response.iter_raw())
        assert response.status_code == 200
        assert response.headers["content-encoding"] == "gzip"
        assert response.headers["content-type"] == CONTENT_TYPE
    assert raw[:2] == b"\x1f\x8b"
    assert len(raw) < len(latest.rendered.body)
    assert gzip.decompress(raw) == latest.rendered.body
    # A second scrape of the same cycle gets the same compressed bytes.
    with service.client.stream(
        "GET", "/metrics", headers={"Accept-Encoding": "gzip, deflate"}
    ) as again:
        assert b"".join(again.iter_raw()) == raw


@pytest.mark.parametrize(
    ("header", "gzipped"),
    [
        ("gzip", True),
        ("gzip, deflate, br", True),
        ("deflate, GZIP;q=0.5", True),
        ("*", True),
        ("x-gzip", True),
        ("gzip;q=0", False),
        ("gzip; q=0.0, deflate", False),
        ("*;q=1, gzip;q=0", False),
        ("gzip;q=0, *", False),
        ("*;q=0", False),
        ("identity", False),
        ("deflate", False),
        ("", False),
        ("gzip;q=bogus", False),
    ],
)
def test_accepts_gzip(header: str, gzipped: bool) -> None:
    assert accepts_gzip(header) is gzipped


def test_metrics_refused_gzip_gets_the_plain_body(service: Service) -> None:
    latest = service.runner.latest
    assert latest is not None
    with service.client.stream(
        "GET", "/metrics", headers={"Accept-Encoding": "gzip;q=0, identity"}
    ) as response:
        raw = b"".join(response.iter_raw())
        assert response.status_code == 200
        assert "content-encoding" not in response.headers
    assert raw == latest.rendered.body


def test_metrics_gzip_is_the_body_the_cycle_published(service: Service) -> None:
    """Scrapes do not compress: the gzip bytes served are the ones the cycle made."""
    latest = service.runner.latest
    assert latest is not None
    with service.client.stream("GET", "/metrics", headers={"Accept-Encoding": "gzip"}) as response:
        assert b"".join(response.iter_raw()) == latest.gzipped


# --- JSON API --------------------------------------------------------------------------------


def test_site_summary(service: Service, site: Site) -> None:
    body = service.json("/api/v1/site")
    latest = service.runner.latest
    assert latest is not None
    snapshot = latest.snapshot
    assert body["name"] == site.name
    assert body["counts"] == expected_counts(site)
    assert body["counts"]["racks"] == 64 and body["counts"]["accelerators"] == 2048
    assert body["timestamp_seconds"] == snapshot.timestamp
    power = body["power"]
    row = snapshot.site.row(0, named=True)
    for field in (
        "power_watts",
        "facility_power_watts",
        "capacity_watts",
        "headroom_watts",
        "pue_ratio",
        "contract_headroom_watts",
        "energy_joules",
    ):
        assert power[field] == pytest.approx(row[field], rel=1e-12), field
    assert power["contract_watts"] == site.contract_watts
    assert power["power_watts"] > 0
    assert power["facility_power_watts"] > power["power_watts"]
    assert power["reporting_ratio"] == 1.0
    assert body["sources"] == [
        {
            "source": "simulated",
            "target": "simulated",  # a source without targets of its own is its only target
            "up": 1.0,
            "read_seconds": pytest.approx(body["sources"][0]["read_seconds"]),
            "last_success_timestamp_seconds": snapshot.timestamp,
        }
    ]


def test_power_by_building_is_the_default(service: Service, site: Site) -> None:
    body = service.json("/api/v1/power")
    assert body["level"] == "building"
    assert [item["building"] for item in body["items"]] == [
        name for name, _ in site.building_names()
    ]
    item = body["items"][0]
    assert item["facility_power_watts"] == pytest.approx(item["power_watts"] * item["pue_ratio"])


def test_power_gives_each_rack_its_servers_and_unattributed_power(service: Service) -> None:
    body = service.json("/api/v1/power", level="rack", building="B01", hall="B01-H1")
    for item in body["items"]:
        assert item["nodes_reporting_ratio"] == 1.0
        assert item["unattributed_power_watts"] == pytest.approx(
            item["power_watts"] - item["node_power_watts"]
        )
        # the simulated racks lose 3 % in conversion and each BMC errs by at most 5 %
        share = item["unattributed_power_watts"] / item["power_watts"]
        assert 0.03 - 0.055 < share < 0.03 + 0.055


def test_power_of_one_halls_racks(service: Service, site: Site) -> None:
    [group] = site.buildings
    halls = site.building_types[group.type].halls[0]
    body = service.json("/api/v1/power", level="rack", building="B01", hall="B01-H1")
    items = body["items"]
    assert body["level"] == "rack"
    assert len(items) == halls.rows * halls.racks_per_row
    assert {item["hall"] for item in items} == {"B01-H1"}
    assert {item["building"] for item in items} == {"B01"}
    assert len({item["rack"] for item in items}) == len(items)
    topology = service.runner.pipeline.topology
    latest = service.runner.latest
    assert latest is not None
    power = dict(
        zip(
            topology.racks["rack"].to_list(),
            latest.snapshot.racks["power_watts"].to_list(),
            strict=True,
        )
    )
    for item in items:
        assert item["power_watts"] == pytest.approx(power[item["rack"]], rel=1e-12)
        assert item["headroom_watts"] == pytest.approx(item["capacity_watts"] - item["power_watts"])


def test_power_of_one_rows_racks(service: Service, site: Site) -> None:
    halls = site.building_types[site.buildings[0].type].halls[0]
    body = service.json("/api/v1/power", level="rack", row="B01-H1-R01")
    assert len(body["items"]) == halls.racks_per_row
    assert {item["row"] for item in body["items"]} == {"B01-H1-R01"}


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"level": "rack", "building": "B99"}, 404),
        ({"level": "rack", "building": "B01", "hall": "B01-H9"}, 404),
        ({"level": "bogus"}, 422),
        ({"level": "building", "hall": "B01-H1"}, 400),
        ({"level": "hall", "hall": "B01-H1"}, 400),
        ({"level": "hall", "row": "B01-H1-R01"}, 400),
    ],
    ids=[
        "unknown-building",
        "unknown-hall",
        "bad-level",
        "hall-in-building",
        "self",
        "row-in-hall",
    ],
)
def test_power_rejects_bad_queries(service: Service, params: dict[str, str], status: int) -> None:
    body = service.json("/api/v1/power", status=status, **params)
    assert body["detail"]


def test_rack_detail(service: Service, site: Site) -> None:
    body = service.json("/api/v1/racks/B01-H1-R01-K01")
    rack_type = site.rack_types[body["rack_type"]]
    assert body["rack"] == "B01-H1-R01-K01"
    assert body["row"] == "B01-H1-R01" and body["hall"] == "B01-H1"
    assert len(body["feeds"]) == len(rack_type.pdus) == 2
    assert [feed["feed"] for feed in body["feeds"]] == [pdu.feed for pdu in rack_type.pdus]
    assert len(body["nodes"]) == rack_type.nodes == 2
    assert [node["node"] for node in body["nodes"]] == [
        f"B01-H1-R01-K01-N{n}" for n in range(1, rack_type.nodes + 1)
    ]
    assert sum(feed["power_watts"] for feed in body["feeds"]) == pytest.approx(
        body["power_watts"], rel=1e-12
    )
    assert sum(node["accelerator_power_watts"] for node in body["nodes"]) == pytest.approx(
        body["accelerator_power_watts"], rel=1e-12
    )
    assert body["conversion_efficiency"] == rack_type.conversion_efficiency
    for feed in body["feeds"]:
        assert feed["rack"] == body["rack"]


def test_rack_detail_of_the_last_rack(service: Service) -> None:
    topology = service.runner.pipeline.topology
    last = topology.racks["rack"][-1]
    body = service.json(f"/api/v1/racks/{last}")
    assert body["rack"] == last
    assert {feed["rack"] for feed in body["feeds"]} == {last}
    assert all(node["node"].startswith(f"{last}-N") for node in body["nodes"])


def test_unknown_rack_is_404(service: Service) -> None:
    body = service.json("/api/v1/racks/B01-H9-R99-K99", status=404)
    assert "B01-H9-R99-K99" in body["detail"]


def test_docs_and_openapi(service: Service) -> None:
    docs = service.client.get("/docs")
    assert docs.status_code == 200
    assert "text/html" in docs.headers["content-type"]
    schema = service.json("/openapi.json")
    for path in ("/metrics", "/healthz", "/readyz", "/api/v1/site", "/api/v1/power"):
        assert path in schema["paths"], path
    assert "/api/v1/racks/{rack}" in schema["paths"]


# --- missing data in JSON --------------------------------------------------------------------


class NoBuildingMeters:
    """The simulator without its building (non-IT) samples and with rack K01's feeds silent."""

    name = "simulated"

    def __init__(self, inner: SimulatedSource, silent_feeds: list[int]) -> None:
        self.inner = inner
        self.silent_feeds = silent_feeds

    def read(self, now: float) -> SampleBatch:
        batch = self.inner.read(now)
        return replace(
            batch,
            feeds=batch.feeds.filter(~pl.col("feed_index").is_in(self.silent_feeds)),
            buildings=batch.buildings.clear(),
        )


def test_missing_values_are_null_never_nan_or_zero() -> None:
    def prepare(runner: CycleRunner) -> None:
        [read_under_deadline] = runner.pipeline.sources
        assert isinstance(read_under_deadline, DeadlineSource)
        source = read_under_deadline.inner
        assert isinstance(source, SimulatedSource)
        feeds = runner.pipeline.topology.feeds
        silent = feeds.filter(pl.col("rack_index") == 0)["feed_index"].to_list()
        runner.pipeline.sources[0] = NoBuildingMeters(source, silent)

    with open_service(prepare) as opened:
        opened.cycle()
        opened.cycle()
        latest = opened.runner.latest
        assert latest is not None
        # No finite site PUE exists here (no building reports its non-IT load).
        assert not latest.snapshot.site["pue_ratio"].is_finite().any()

        power = opened.json("/api/v1/site")["power"]
        assert power["pue_ratio"] is None
        assert power["facility_power_watts"] is None
        assert power["power_watts"] > 0
        [building] = opened.json("/api/v1/power")["items"]
        assert building["facility_power_watts"] is None
        assert building["pue_ratio"] is None
        assert building["power_watts"] > 0

        rack = opened.json("/api/v1/racks/B01-H1-R01-K01")
        assert rack["power_watts"] is None
        assert rack["headroom_watts"] is None
        assert rack["reporting_ratio"] == 0
        assert all(feed["power_watts"] is None for feed in rack["feeds"])
        assert rack["accelerator_power_watts"] > 0
        racks = opened.json("/api/v1/power", level="rack")["items"]
        assert [item["rack"] for item in racks if item["power_watts"] is None] == ["B01-H1-R01-K01"]

        metrics = opened.client.get("/metrics").text
        assert "\ngigawatt_site_pue_ratio " not in metrics
        assert "\ngigawatt_site_facility_power_watts " not in metrics
        assert (
            'gigawatt_rack_power_watts{building="B01",hall="B01-H1",row="B01-H1-R01",'
            'rack="B01-H1-R01-K01"}' not in metrics
        )
