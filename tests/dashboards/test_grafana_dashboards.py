"""The generated dashboards: fresh, valid against the SDK's dashboard schema, laid out on the
grid, every query identified and reading only series that exist, on the provisioned
datasource, with units, the alert thresholds and links that carry the variables."""

from __future__ import annotations

import json
import re
from itertools import pairwise
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import jsonschema
import pytest
import yaml

from dashboards import panels as house
from dashboards import provisioning
from dashboards.boards import BOARDS, dashboards, generated_files
from dashboards.boards.config import BoardConfig, Prices
from exporters.contract import BY_NAME, DEFAULT_TIER, TIERS
from exporters.contract.thresholds import DEFAULT_THRESHOLDS, Thresholds, parse_thresholds
from tests.dashboards.grafana_json import (
    GRAFANA,
    PROMETHEUS_SERIES,
    ROOT,
    committed,
    expressions,
    label_values,
    metric_names,
    panels,
    recording_rules,
    variables,
)

SCHEMA = json.loads(
    (Path(__file__).parent / "schema" / "dashboard.jsonschema.json").read_text(encoding="utf-8")
)
# Bookmarks and the links between dashboards use these: a rename breaks them.
UIDS = {
    "gigawatt-campus",
    "gigawatt-building",
    "gigawatt-rack",
    "gigawatt-accelerators",
    "gigawatt-grid",
    "gigawatt-jobs",
    "gigawatt-collector",
}
BOARDS_NOW = committed()


def _ids(items: dict[str, Any]) -> list[str]:
    return list(items)


def _panel(board: dict[str, Any], title: str) -> dict[str, Any]:
    found = [panel for panel in panels(board) if panel["title"] == title]
    assert len(found) == 1, f"{len(found)} panels titled {title!r} in {board['uid']}"
    return found[0]


def _steps(panel: dict[str, Any], column: str | None = None) -> list[float]:
    """The threshold values of a panel (or of one table column), its base left out."""
    config = panel["fieldConfig"]
    if column is None:
        thresholds = config["defaults"]["thresholds"]
    else:
        (thresholds,) = (
            prop["value"]
            for override in config["overrides"]
            if override["matcher"]["options"]["names"] == [column]
            for prop in override["properties"]
            if prop["id"] == "thresholds"
        )
    return [step["value"] for step in thresholds["steps"][1:]]


def test_the_committed_files_are_the_generated_ones() -> None:
    files = generated_files()
    for relative, content in files.items():
        path = ROOT / relative
        assert path.exists(), f"{relative} is missing: run `gigawatt generate`"
        assert path.read_text(encoding="utf-8") == content, f"{relative} is stale"
    on_disk = {str(path.relative_to(ROOT)) for path in GRAFANA.glob("*.json")}
    assert on_disk == {name for name in files if name.endswith(".json")}, "a stray dashboard"
    assert generated_files() == files, "two generations differ: something is not stable"


@pytest.mark.parametrize("stem", _ids(BOARDS_NOW))
def test_validates_against_the_sdk_dashboard_schema(stem: str) -> None:
    validator = jsonschema.Draft7Validator(SCHEMA)
    errors = [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message[:200]}"
        for error in validator.iter_errors(BOARDS_NOW[stem])
    ]
    assert errors == []


def test_the_schema_check_can_fail() -> None:
    """A panel with a null threshold step (what Grafana itself saves) fails the schema."""
    board = json.loads(json.dumps(BOARDS_NOW["gigawatt-rack"]))
    stat = next(panel for panel in panels(board) if panel["type"] == "stat")
    stat["fieldConfig"]["defaults"]["thresholds"]["steps"][0]["value"] = None
    assert not jsonschema.Draft7Validator(SCHEMA).is_valid(board)


def test_uids_are_unique_stable_and_name_their_files() -> None:
    uids = [board["uid"] for board in BOARDS_NOW.values()]
    assert len(uids) == len(set(uids)) == len(BOARDS)
    assert set(uids) == UIDS
    for stem, board in BOARDS_NOW.items():
        assert board["uid"] == stem
        assert 8 <= len(stem) <= 40, "Grafana wants UIDs of 8 to 40 characters"
    # Other thresholds or prices change what is drawn, never which dashboard it is.
    prices = BoardConfig(DEFAULT_THRESHOLDS, Prices(100.0, 0.5))
    assert set(dashboards(prices)) == UIDS


@pytest.mark.parametrize("stem", _ids(BOARDS_NOW))
def test_panels_stay_on_the_grid_without_overlapping(stem: str) -> None:
    taken: dict[tuple[int, int], str] = {}
    for panel in BOARDS_NOW[stem]["panels"]:
        position = panel["gridPos"]
        x, y, w, h = position["x"], position["y"], position["w"], position["h"]
        assert x >= 0 and w > 0 and h > 0, panel["title"]
        assert x + w <= 24, f"{panel['title']!r} runs past the grid: x={x}, w={w}"
        if panel["type"] == "row":
            assert (x, w, h) == (0, 24, 1), f"row {panel['title']!r} is not full width"
        for cell in ((column, line) for column in range(x, x + w) for line in range(y, y + h)):
            assert cell not in taken, f"{panel['title']!r} overlaps {taken[cell]!r} at {cell}"
            taken[cell] = panel["title"]


@pytest.mark.parametrize("stem", _ids(BOARDS_NOW))
def test_panel_ids_and_ref_ids_are_set_and_unique(stem: str) -> None:
    board = BOARDS_NOW[stem]
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in panels(board):
        assert panel.get("targets"), f"{panel['title']!r} has no query"
        ref_ids = [target.get("refId") for target in panel["targets"]]
        assert all(ref_ids), f"{panel['title']!r} has a query without refId: {ref_ids}"
        assert len(ref_ids) == len(set(ref_ids)), f"{panel['title']!r}: {ref_ids}"


@pytest.mark.parametrize("stem", _ids(BOARDS_NOW))
def test_every_series_a_query_names_exists(stem: str) -> None:
    known = set(BY_NAME) | recording_rules() | PROMETHEUS_SERIES
    unknown = [
        f"{where}: {name}"
        for where, expression in expressions(BOARDS_NOW[stem])
        for name in sorted(metric_names(expression))
        if name not in known
    ]
    assert unknown == [], "neither in the metric table nor a recording rule"


def test_the_dashboards_read_the_recording_rules() -> None:
    used = {
        name
        for board in BOARDS_NOW.values()
        for _, expression in expressions(board)
        for name in metric_names(expression)
    }
    rules = recording_rules()
    assert rules, "no recording rules found in dashboards/rules"
    # Site totals right under sharding, the hour's PUE, the meters' ratings, 30 days.
    assert len(used & rules) >= 6, sorted(used & rules)


def test_metric_names_sees_what_a_query_reads() -> None:
    expression = (
        'sum by (building) (rate(gigawatt_rack_power_watts{building=~"$building"}[5m]))\n'
        "/ on (meter) group_left site:x:sum * 1e6 offset 5m > bool $tariff"
    )
    assert metric_names(expression) == {"gigawatt_rack_power_watts", "site:x:sum"}
    assert label_values('label_values(up{job=~"$job"}, instance)') == (
        'up{job=~"$job"}',
        "instance",
    )


@pytest.mark.parametrize("stem", _ids(BOARDS_NOW))
def test_everything_uses_the_provisioned_datasource(stem: str) -> None:
    board = BOARDS_NOW[stem]
    expected = {"type": "prometheus", "uid": house.DATASOURCE_UID}
    for panel in panels(board):
        assert panel["datasource"] == expected, panel["title"]
    for variable in variables(board):
        if variable["type"] == "query":
            assert variable["datasource"] == expected, variable["name"]
    for annotation in board["annotations"]["list"]:
        assert annotation["datasource"] == expected


# Grafana's unit for a panel that draws one kind of series untransformed.
UNIT_OF = {
    "watts": "watt",
    "ratio": "percentunit",
    "celsius": "celsius",
    "seconds": "s",
    "hertz": "hertz",
}


@pytest.mark.parametrize("stem", _ids(BOARDS_NOW))
def test_every_panel_has_the_unit_of_what_it_draws(stem: str) -> None:
    for panel in panels(BOARDS_NOW[stem]):
        unit = panel["fieldConfig"]["defaults"].get("unit")
        assert unit, f"{panel['title']!r} has no unit"
        expressions_ = [target["expr"] for target in panel["targets"]]
        if any(re.search(r"[-+*/]|\bincrease\(|\brate\(|\btime\(", e) for e in expressions_):
            continue  # arithmetic changes the unit: energy in Wh, shares of a rating
        units = {
            BY_NAME[name].unit
            for expression in expressions_
            for name in metric_names(expression)
            if name in BY_NAME
        }
        if len(units) == 1 and (only := units.pop()) in UNIT_OF:
            assert unit == UNIT_OF[only], f"{panel['title']!r} draws {only} in {unit}"


def test_power_and_ratios_use_grafanas_scaling_units() -> None:
    drawn = {
        panel["fieldConfig"]["defaults"].get("unit")
        for board in BOARDS_NOW.values()
        for panel in panels(board)
    }
    assert {"watt", "percentunit", "watth"} <= drawn


def _config(yaml_text: str) -> BoardConfig:
    return BoardConfig(parse_thresholds(yaml_text), Prices())


# (dashboard, panel title, table column or None, path to the levels in the thresholds)
THRESHOLD_PANELS = [
    ("gigawatt-campus", "Contract used", None, ("capacity", "contract")),
    ("gigawatt-campus", "PUE, last hour", None, ("capacity", "pue")),
    ("gigawatt-campus", "IT utilization by building", None, ("capacity", "building")),
    ("gigawatt-building", "Lineup utilization", None, ("capacity", "lineup")),
    ("gigawatt-building", "Row utilization", None, ("capacity", "row")),
    ("gigawatt-building", "Racks by loading", "Value #A", ("capacity", "rack")),
    ("gigawatt-rack", "Utilization", None, ("capacity", "rack")),
    ("gigawatt-rack", "Breaker loading", None, ("capacity", "feed")),
    ("gigawatt-rack", "Hottest accelerator", None, ("thermal", "accelerator_celsius")),
    (
        "gigawatt-accelerators",
        "Stragglers by temperature",
        "Value",
        ("accelerators", "straggler_temperature_excess_celsius"),
    ),
    ("gigawatt-grid", "Band energy", None, ("grid", "band_energy_ratio")),
]
OTHER_THRESHOLDS = """
capacity:
  contract: {warning: {value: 0.9}, critical: {value: 0.97}}
  pue: {warning: {value: 1.2}, critical: {value: 1.3}}
  building: {warning: {value: 0.7}, critical: {value: 0.85}}
  lineup: {warning: {value: 0.71}, critical: {value: 0.86}}
  row: {warning: {value: 0.72}, critical: {value: 0.87}}
  rack: {warning: {value: 0.73}, critical: {value: 0.88}}
  feed: {warning: {value: 0.74}, critical: {value: 0.89}}
thermal:
  accelerator_celsius: {warning: {value: 80}, critical: {value: 88}}
accelerators:
  straggler_temperature_excess_celsius: {warning: {value: 12}}
grid:
  band_energy_ratio: {warning: {value: 0.3}}
"""


def _levels(thresholds: Thresholds, path: tuple[str, ...]) -> list[float]:
    levels: Any = thresholds
    for part in path:
        levels = getattr(levels, part)
    return [limit.value for _, limit in levels.limits()]


@pytest.mark.parametrize(("uid", "title", "column", "path"), THRESHOLD_PANELS)
def test_thresholds_are_the_alert_thresholds(
    uid: str, title: str, column: str | None, path: tuple[str, ...]
) -> None:
    assert _steps(_panel(BOARDS_NOW[uid], title), column) == _levels(DEFAULT_THRESHOLDS, path)
    other = parse_thresholds(OTHER_THRESHOLDS)
    redrawn = dashboards(BoardConfig(other, Prices()))[uid]
    assert _steps(_panel(redrawn, title), column) == _levels(other, path)
    assert _levels(other, path) != _levels(DEFAULT_THRESHOLDS, path)


def test_grid_ramp_thresholds_are_scaled_to_the_meters_rating() -> None:
    panel = _panel(BOARDS_NOW["gigawatt-grid"], "Ramp per minute, share of the meter's rating")
    grid = DEFAULT_THRESHOLDS.grid
    expected = [
        pytest.approx(limit.value / grid.reference_rating_watts)
        for _, limit in grid.ramp_watts_per_minute.limits()
    ]
    assert _steps(panel) == expected


def _links(board: dict[str, Any]) -> list[str]:
    urls = [
        link["url"]
        for panel in panels(board)
        for link in panel["fieldConfig"]["defaults"].get("links", [])
    ]
    return urls


def _target(url: str) -> tuple[str, dict[str, str]]:
    parts = urlsplit(url)
    assert parts.path.startswith("/d/"), url
    arguments = dict(parse_qsl(parts.query.replace("${__url_time_range}", "")))
    return parts.path.removeprefix("/d/"), {
        key.removeprefix("var-"): value
        for key, value in arguments.items()
        if key.startswith("var-")
    }


@pytest.mark.parametrize("stem", _ids(BOARDS_NOW))
def test_links_reach_dashboards_and_set_only_their_variables(stem: str) -> None:
    for url in _links(BOARDS_NOW[stem]):
        uid, arguments = _target(url)
        assert uid in BOARDS_NOW, url
        names = {variable["name"] for variable in variables(BOARDS_NOW[uid])}
        assert set(arguments) <= names, f"{url} sets variables {uid} does not have"
        assert "${__url_time_range}" in url, f"{url} does not keep the time range"


def test_three_clicks_from_the_campus_to_one_accelerator() -> None:
    path = ["gigawatt-campus", "gigawatt-building", "gigawatt-rack", "gigawatt-accelerators"]
    carried = {
        "gigawatt-building": {"building"},
        "gigawatt-rack": {"building", "hall", "row", "rack"},
        "gigawatt-accelerators": {"building", "hall", "row", "rack", "accelerator"},
    }
    for here, there in pairwise(path):
        hops = [_target(url) for url in _links(BOARDS_NOW[here])]
        sets = [set(arguments) for uid, arguments in hops if uid == there]
        assert carried[there] in sets, f"no link from {here} to {there} setting {carried[there]}"


@pytest.mark.parametrize("stem", _ids(BOARDS_NOW))
def test_variables_chain_only_to_earlier_ones(stem: str) -> None:
    seen: set[str] = set()
    for variable in variables(BOARDS_NOW[stem]):
        if variable["type"] == "query":
            selector, label = label_values(variable["query"])
            assert label == variable["name"]
            named = set(re.findall(r"\$(\w+)", selector))
            assert named <= seen, f"{variable['name']} reads {named - seen} before they exist"
        seen.add(variable["name"])


@pytest.mark.parametrize("stem", _ids(BOARDS_NOW))
def test_panels_that_read_deeper_tiers_say_which(stem: str) -> None:
    for panel in panels(BOARDS_NOW[stem]):
        tiers = {
            BY_NAME[name].tier
            for target in panel["targets"]
            for name in metric_names(target["expr"])
            if name in BY_NAME
        }
        deeper = {tier for tier in tiers if TIERS.index(tier) > TIERS.index(DEFAULT_TIER)}
        if deeper:
            deepest = max(deeper, key=TIERS.index)
            assert f"--expose {deepest}" in panel["description"], panel["title"]
        else:
            assert "--expose" not in panel["description"], panel["title"]


@pytest.mark.parametrize("stem", _ids(BOARDS_NOW))
def test_firing_alerts_are_marked_on_the_time_series(stem: str) -> None:
    (annotation,) = BOARDS_NOW[stem]["annotations"]["list"]
    assert metric_names(annotation["expr"]) == {"ALERTS"}
    assert 'alertstate="firing"' in annotation["expr"]
    assert annotation["enable"] is True


def test_the_provisioning_files_point_at_the_datasource_and_the_dashboards() -> None:
    datasource = yaml.safe_load((ROOT / provisioning.DATASOURCE_FILE).read_text(encoding="utf-8"))
    (source,) = datasource["datasources"]
    assert source["uid"] == house.DATASOURCE_UID
    assert source["type"] == "prometheus"
    provider = yaml.safe_load((ROOT / provisioning.PROVIDER_FILE).read_text(encoding="utf-8"))
    (files,) = provider["providers"]
    assert files["type"] == "file"
    assert files["folderUid"] == provisioning.FOLDER_UID
    assert files["options"]["path"] == provisioning.DASHBOARDS_MOUNT
