"""Three shards of the six-building preset, scraped by a real Prometheus with the committed
shard scrape configuration and recording rules: the site totals equal one unsharded process's
(same seed, same clock), no building is counted twice or lost, and the totals reach a real
VictoriaMetrics through remote_write. A second pair of Prometheus servers splits the scraping
with the committed hashmod configuration: each target is scraped by exactly one of them."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import ROOT
from tests.deploy.services import Service, site_and_shards
from tests.stack import prometheus, query, victoria_metrics, wait_for

PROMETHEUS = ROOT / "deploy" / "prometheus"
SHARDS = 3
BUILDINGS = 6  # the demo6 preset
TOLERANCE = 0.005  # the 0.5 %
SITE_FACILITY = "site:gigawatt_building_facility_power_watts:sum"
SITE_IT = "site:gigawatt_building_it_power_watts:sum"
BUILDING_RACKS = "building:gigawatt_rack_power_watts:sum"


@pytest.fixture(scope="module")
def services() -> Iterator[tuple[Service, list[Service]]]:
    with site_and_shards("demo6", SHARDS) as running:
        yield running


def committed(name: str) -> dict[str, Any]:
    """A committed Prometheus configuration, its rule file paths made absolute and its
    intervals shortened to 1 s (the services cycle every second)."""
    path = PROMETHEUS / name
    config: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    config["rule_files"] = [
        str((path.parent / pattern).resolve()) for pattern in config.get("rule_files", [])
    ]
    return config


def with_targets(config: dict[str, Any], targets: list[str]) -> dict[str, Any]:
    """``config`` scraping ``targets`` in place of its own, one per static config in order
    (labels kept), or all in its one static config."""
    changed = copy.deepcopy(config)
    (job,) = changed["scrape_configs"]
    statics = job["static_configs"]
    if len(statics) == len(targets):
        for static, target in zip(statics, targets, strict=True):
            static["targets"] = [target]
    else:
        (static,) = statics
        static["targets"] = list(targets)
    return changed


def vector(base_url: str, promql: str) -> dict[str, float]:
    """An instant query's result, by the value of its one label (or "" without labels)."""
    result: dict[str, float] = {}
    for sample in query(base_url, promql):
        labels = [value for name, value in sample["metric"].items() if name != "__name__"]
        result["".join(labels)] = float(sample["value"][1])
    return result


def settled_total(base_url: str, buildings: int) -> dict[str, float]:
    """The site totals from the recording rules, once every building was scraped before an
    evaluation: waits for all of them, then for an evaluation after that moment."""
    seen = wait_for(
        lambda: query(base_url, f"count(gigawatt_building_it_power_watts) == {buildings}"),
        within=60,
        what=f"{buildings} buildings scraped at {base_url}",
    )
    scraped_by = float(seen[0]["value"][0])
    wait_for(
        lambda: [
            sample
            for sample in query(base_url, f"timestamp({SITE_FACILITY})")
            if float(sample["value"][1]) > scraped_by
        ],
        within=30,
        what=f"a rule evaluation after every building was scraped at {base_url}",
    )
    return {
        SITE_FACILITY: vector(base_url, SITE_FACILITY)[""],
        SITE_IT: vector(base_url, SITE_IT)[""],
    }


def test_shards_add_up_to_the_unsharded_site_and_reach_victoria_metrics(
    services: tuple[Service, list[Service]], tmp_path: Path
) -> None:
    whole, shards = services
    sharded_config = with_targets(committed("prometheus-shards.yml"), [s.target for s in shards])
    # One collector, as deploy/prometheus/prometheus.yml scrapes it, with the same rules.
    unsharded_config = with_targets(committed("prometheus.yml"), [whole.target])
    unsharded_config["rule_files"] = sharded_config["rule_files"]
    unsharded_config.pop("remote_write", None)
    with (
        victoria_metrics(tmp_path / "vm", "-search.latencyOffset=0s") as store,
        prometheus(
            tmp_path / "sharded",
            {
                **sharded_config,
                "remote_write": [
                    {
                        "url": f"{store.url}/api/v1/write",
                        "queue_config": {"batch_send_deadline": "1s"},
                    }
                ],
            },
        ) as sharded,
        prometheus(tmp_path / "unsharded", unsharded_config) as unsharded,
    ):
        expected = settled_total(unsharded.url, BUILDINGS)
        totals = settled_total(sharded.url, BUILDINGS)
        for rule, value in expected.items():
            assert totals[rule] == pytest.approx(value, rel=TOLERANCE), rule

        # Each building once, from one shard; together every building of the site.
        per_building = vector(sharded.url, "count by (building) (gigawatt_building_it_power_watts)")
        assert per_building == dict.fromkeys(
            vector(unsharded.url, "count by (building) (gigawatt_building_it_power_watts)"), 1.0
        )
        assert len(per_building) == BUILDINGS
        shard_of = vector(sharded.url, "count by (shard) (gigawatt_building_it_power_watts)")
        assert shard_of == {f"{i}/{SHARDS}": BUILDINGS / SHARDS for i in range(1, SHARDS + 1)}
        racks = "count(count by (rack) (gigawatt_rack_power_watts))"
        assert vector(sharded.url, "count(gigawatt_rack_power_watts)") == vector(
            unsharded.url, racks
        )
        buildings_from_racks = vector(sharded.url, BUILDING_RACKS)
        for building, value in vector(unsharded.url, BUILDING_RACKS).items():
            assert buildings_from_racks[building] == pytest.approx(value, rel=TOLERANCE), building

        # The same total from the long-term store, by PromQL over the raw series and as the
        # recording rule's own series remote-written beside them.
        stored = wait_for(
            lambda: query(
                store.url,
                "sum(gigawatt_building_facility_power_watts)"
                f" and on() (count(gigawatt_building_facility_power_watts) == {BUILDINGS})",
            ),
            within=60,
            what="every building's facility power in VictoriaMetrics",
        )
        assert float(stored[0]["value"][1]) == pytest.approx(expected[SITE_FACILITY], rel=TOLERANCE)
        # The rule's sample from an evaluation after every building was in: one from before
        # may rightly sum the shards scraped so far.
        complete_at = float(stored[0]["value"][0])
        recorded = wait_for(
            lambda: query(
                store.url,
                f"{SITE_FACILITY} and on() (timestamp({SITE_FACILITY}) > {complete_at})",
            ),
            within=60,
            what=f"{SITE_FACILITY} in VM, evaluated after every building was stored",
        )
        assert float(recorded[0]["value"][1]) == pytest.approx(
            expected[SITE_FACILITY], rel=TOLERANCE
        )


def active_targets(base_url: str, expected: int) -> tuple[set[str]] | None:
    """The targets this Prometheus kept, once it has judged all ``expected`` of them (kept
    or dropped by relabelling); None before. A replica may rightly keep none: hashmod of a
    few random ports can send every target to the other one, so the set comes in a
    one-element tuple, which an empty set does not make falsy."""
    answer = httpx.get(f"{base_url}/api/v1/targets", params={"state": "any"}, timeout=10)
    answer.raise_for_status()
    data = answer.json()["data"]
    if len(data["activeTargets"]) + len(data["droppedTargets"]) < expected:
        return None
    return ({target["labels"]["instance"] for target in data["activeTargets"]},)


def test_hashmod_gives_each_target_to_exactly_one_prometheus(
    services: tuple[Service, list[Service]], tmp_path: Path
) -> None:
    _, shards = services
    targets = [shard.target for shard in shards]
    config = with_targets(committed("prometheus-hashmod.yml"), targets)
    config.pop("remote_write")  # the split is what is tested here; the store is above
    servers = []
    for replica in range(2):
        own = copy.deepcopy(config)
        own["global"]["external_labels"]["replica"] = str(replica)
        keep = own["scrape_configs"][0]["relabel_configs"][-1]
        keep["regex"] = str(replica)
        servers.append((replica, own))
    with (
        prometheus(tmp_path / "replica-0", servers[0][1]) as first,
        prometheus(tmp_path / "replica-1", servers[1][1]) as second,
    ):
        # Discovery and relabelling are done once a target is listed, before any scrape.
        kept = [
            wait_for(
                lambda url=server.url: active_targets(url, len(targets)),  # type: ignore[misc]
                within=30,
                what=f"targets discovered by {server.url}",
            )[0]
            for server in (first, second)
        ]
    assert kept[0].isdisjoint(kept[1])
    assert kept[0] | kept[1] == set(targets)
