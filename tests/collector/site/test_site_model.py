"""The site file: presets, capacities derived from breakers and lineups, and error reports."""

from __future__ import annotations

import math
from pathlib import Path

import polars as pl
import pytest

from collector.site.model import (
    PRESETS,
    BuildingType,
    PduSpec,
    RackType,
    SiteError,
    SiteProblem,
    feed_power_watts,
    load_preset,
    load_site,
    parse_site,
    preset_text,
)

# A small valid site; tests derive broken variants from it by replacing one line.
GOOD_SITE = """\
name: tiny
contract_watts: 1.0e6
accelerator_types:
  chip:
    tdp_watts: 500
    idle_watts: 125
    memory_bytes: 1000
node_types:
  server:
    accelerator_type: chip
    accelerators: 4
    host_idle_watts: 100
    host_max_watts: 200
rack_types:
  rack:
    node_type: server
    nodes: 2
    pdus:
      - {feed: A, voltage_volts: 415, phases: 3, breaker_amps: 60}
      - {feed: B, voltage_volts: 415, phases: 3, breaker_amps: 60}
building_types:
  hall-building:
    halls:
      - {rows: 1, racks_per_row: 2, rack_type: rack}
    lineups:
      - {name: A, capacity_watts: 1.0e6}
      - {name: B, capacity_watts: 1.0e6}
buildings:
  - {type: hall-building, count: 2, prefix: B, first: 1}
"""

# Five independent mistakes: a negative breaker (schema), idle above TDP, a rack whose PDU
# feed C has no lineup, a hall of an unknown rack type, and two groups both producing B02.
BAD_SITE = """\
name: bad
contract_watts: 1.0e6
accelerator_types:
  chip:
    tdp_watts: 500
    idle_watts: 600
    memory_bytes: 1000
node_types:
  server:
    accelerator_type: chip
    accelerators: 4
    host_idle_watts: 100
    host_max_watts: 200
rack_types:
  rack:
    node_type: server
    nodes: 2
    pdus:
      - {feed: A, voltage_volts: 415, phases: 3, breaker_amps: -60}
      - {feed: C, voltage_volts: 415, phases: 3, breaker_amps: 60}
building_types:
  hall-building:
    halls:
      - {rows: 1, racks_per_row: 2, rack_type: rack}
      - {rows: 1, racks_per_row: 2, rack_type: nosuch}
    lineups:
      - {name: A, capacity_watts: 1.0e6}
      - {name: B, capacity_watts: 1.0e6}
buildings:
  - {type: hall-building, count: 2, prefix: B, first: 1}
  - {type: hall-building, count: 1, prefix: B, first: 2}
"""


def line_of(text: str, fragment: str) -> int:
    """1-based number of the one line of text that contains fragment."""
    hits = [number for number, line in enumerate(text.splitlines(), 1) if fragment in line]
    assert len(hits) == 1, f"{fragment!r} is on lines {hits}"
    return hits[0]


def problems_of(text: str) -> list[SiteProblem]:
    with pytest.raises(SiteError) as caught:
        parse_site(text, "test-site")
    assert caught.value.source == "test-site"
    return caught.value.problems


def by_location(problems: list[SiteProblem]) -> dict[str, SiteProblem]:
    return {problem.location: problem for problem in problems}


# --- presets ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_loads(name: str) -> None:
    site = load_preset(name)
    assert site.name == name
    assert site.contract_watts > 0


def test_campus_preset_names_thirty_buildings_in_order() -> None:
    site = load_preset("campus")
    names = site.building_names()
    assert len(names) == 30
    assert names[0] == ("B01", "trn2-building")
    assert names[-1] == ("B30", "trn2-building")
    assert site.contract_watts == pytest.approx(2.25e9)


def test_campus_preset_hall_layout_multiplies_to_the_published_scale() -> None:
    site = load_preset("campus")
    building = site.building_types["trn2-building"]
    (halls,) = building.halls
    rack = site.rack_types[halls.rack_type]
    node = site.node_types[rack.node_type]
    racks = 30 * halls.count * halls.rows * halls.racks_per_row
    assert racks == 67_200
    assert racks * rack.nodes == 134_400
    assert racks * rack.nodes * node.accelerators == 2_150_400


def test_demo_preset_is_small() -> None:
    site = load_preset("demo")
    assert len(site.building_names()) == 1
    (halls,) = site.building_types["demo-building"].halls
    rack = site.rack_types[halls.rack_type]
    node = site.node_types[rack.node_type]
    racks = halls.count * halls.rows * halls.racks_per_row
    assert racks == 64
    assert racks * rack.nodes * node.accelerators == 2_048


def test_unknown_preset_is_a_site_error() -> None:
    with pytest.raises(SiteError) as caught:
        preset_text("nowhere")
    assert caught.value.problems[0].location == "(preset)"
    with pytest.raises(SiteError):
        load_preset("nowhere")


def test_site_file_loads_from_a_path(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(GOOD_SITE, encoding="utf-8")
    site = load_site(path)
    assert site.name == "tiny"
    assert [name for name, _ in site.building_names()] == ["B01", "B02"]


def test_missing_site_file_is_a_site_error_naming_the_path(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    with pytest.raises(SiteError) as caught:
        load_site(path)
    assert caught.value.source == str(path)
    (problem,) = caught.value.problems
    assert "cannot read" in problem.message


# --- capacities ------------------------------------------------------------------------------


def test_three_phase_pdu_capacity_is_root3_volts_amps_continuous_ratio() -> None:
    pdu = PduSpec(feed="A", voltage_volts=415, phases=3, breaker_amps=60)
    assert pdu.capacity_watts == pytest.approx(math.sqrt(3) * 415 * 60 * 0.8)
    assert pdu.capacity_watts == pytest.approx(34_500, rel=1e-3)


def test_single_phase_pdu_capacity_is_volts_amps_continuous_ratio() -> None:
    pdu = PduSpec(feed="A", voltage_volts=230, phases=1, breaker_amps=32)
    assert pdu.capacity_watts == pytest.approx(230 * 32 * 0.8)


def test_breaker_listed_for_full_load_uses_its_whole_rating() -> None:
    pdu = PduSpec(feed="A", voltage_volts=230, phases=1, breaker_amps=32, continuous_load_ratio=1.0)
    assert pdu.capacity_watts == pytest.approx(230 * 32)


def test_feed_power_of_a_frame_of_feeds_equals_each_feed_alone() -> None:
    feeds = pl.DataFrame(
        {"voltage_volts": [415.0, 230.0], "breaker_amps": [60.0, 32.0], "phases": [3, 1]}
    )
    per_feed = [
        feed_power_watts(row["voltage_volts"], row["breaker_amps"], row["phases"], 1.5)
        for row in feeds.iter_rows(named=True)
    ]
    columns = feed_power_watts(
        pl.col("voltage_volts"), pl.col("breaker_amps"), pl.col("phases"), 1.5
    )
    assert feeds.select(columns).to_series().to_list() == per_feed
    assert per_feed == pytest.approx([math.sqrt(3) * 415 * 60 * 1.5, 230 * 32 * 1.5])


def _rack(*pdus: PduSpec, capacity_watts: float | None = None) -> RackType:
    return RackType(node_type="server", nodes=2, pdus=pdus, capacity_watts=capacity_watts)


def test_rack_capacity_is_n_minus_1_over_its_feeds() -> None:
    big = PduSpec(feed="A", voltage_volts=415, phases=3, breaker_amps=60)
    also_big = PduSpec(feed="B", voltage_volts=415, phases=3, breaker_amps=60)
    small = PduSpec(feed="C", voltage_volts=230, phases=1, breaker_amps=32)
    # Two equal feeds: either one carries the rack alone.
    assert _rack(big, also_big).effective_capacity_watts == pytest.approx(big.capacity_watts)
    # Three feeds: losing the largest leaves the other two.
    assert _rack(big, small, also_big).effective_capacity_watts == pytest.approx(
        big.capacity_watts + small.capacity_watts
    )
    # One feed: nothing to lose, its capacity is the rack's.
    assert _rack(small).effective_capacity_watts == pytest.approx(small.capacity_watts)


def test_explicit_rack_capacity_overrides_the_feeds() -> None:
    pdu = PduSpec(feed="A", voltage_volts=415, phases=3, breaker_amps=60)
    assert _rack(pdu, capacity_watts=12_000.0).effective_capacity_watts == 12_000.0


def test_building_capacity_is_n_minus_1_over_its_lineups_unless_given() -> None:
    halls = [{"rows": 1, "racks_per_row": 1, "rack_type": "rack"}]
    two = BuildingType.model_validate(
        {
            "halls": halls,
            "lineups": [{"name": "A", "capacity_watts": 5e6}, {"name": "B", "capacity_watts": 4e6}],
        }
    )
    assert two.effective_it_capacity_watts == pytest.approx(4e6)
    three = BuildingType.model_validate(
        {
            "halls": halls,
            "lineups": [
                {"name": "A", "capacity_watts": 3e6},
                {"name": "B", "capacity_watts": 3e6},
                {"name": "C", "capacity_watts": 3e6},
            ],
        }
    )
    assert three.effective_it_capacity_watts == pytest.approx(6e6)
    one = BuildingType.model_validate(
        {"halls": halls, "lineups": [{"name": "A", "capacity_watts": 2e6}]}
    )
    assert one.effective_it_capacity_watts == pytest.approx(2e6)
    given = BuildingType.model_validate(
        {
            "halls": halls,
            "lineups": [{"name": "A", "capacity_watts": 5e6}, {"name": "B", "capacity_watts": 5e6}],
            "it_capacity_watts": 4.5e6,
        }
    )
    assert given.effective_it_capacity_watts == pytest.approx(4.5e6)


def test_campus_capacities_follow_from_breakers_and_lineups() -> None:
    site = load_preset("campus")
    assert site.rack_types["trn2-rack"].effective_capacity_watts == pytest.approx(
        math.sqrt(3) * 415 * 60 * 0.8
    )
    assert site.building_types["trn2-building"].effective_it_capacity_watts == pytest.approx(64e6)


# --- problems --------------------------------------------------------------------------------


def test_good_site_has_no_problems() -> None:
    site = parse_site(GOOD_SITE)
    assert site.name == "tiny"


def test_bad_site_file_lists_every_problem_schema_and_cross_reference_alike() -> None:
    problems = by_location(problems_of(BAD_SITE))
    expected = {
        "rack_types.rack.pdus.0.breaker_amps": line_of(BAD_SITE, "breaker_amps: -60"),
        "accelerator_types.chip.idle_watts": line_of(BAD_SITE, "idle_watts: 600"),
        "building_types.hall-building.halls.0.rack_type": line_of(BAD_SITE, "rack_type: rack}"),
        "building_types.hall-building.halls.1.rack_type": line_of(BAD_SITE, "rack_type: nosuch"),
        "buildings": line_of(BAD_SITE, "buildings:"),
    }
    assert sorted(problems) == sorted(expected)
    for location, line in expected.items():
        assert problems[location].line == line, location


def test_schema_problems_are_all_listed_with_their_lines() -> None:
    text = GOOD_SITE.replace("breaker_amps: 60}", "breaker_amps: -60}", 1).replace(
        "phases: 3, breaker_amps: 60}", "phases: 2, breaker_amps: 60}"
    )
    problems = by_location(problems_of(text))
    assert problems["rack_types.rack.pdus.0.breaker_amps"].line == line_of(text, "feed: A,")
    assert problems["rack_types.rack.pdus.1.phases"].line == line_of(text, "feed: B,")


def test_cross_reference_problems_are_all_listed() -> None:
    text = BAD_SITE.replace("breaker_amps: -60", "breaker_amps: 60")
    problems = by_location(problems_of(text))
    assert sorted(problems) == [
        "accelerator_types.chip.idle_watts",
        "building_types.hall-building.halls.0.rack_type",
        "building_types.hall-building.halls.1.rack_type",
        "buildings",
    ]
    assert "tdp_watts" in problems["accelerator_types.chip.idle_watts"].message
    assert "'C'" in problems["building_types.hall-building.halls.0.rack_type"].message
    assert "'nosuch'" in problems["building_types.hall-building.halls.1.rack_type"].message
    assert "'B02'" in problems["buildings"].message


def test_cross_reference_problems_carry_the_line_of_their_location() -> None:
    text = BAD_SITE.replace("breaker_amps: -60", "breaker_amps: 60")
    problems = by_location(problems_of(text))
    assert problems["accelerator_types.chip.idle_watts"].line == line_of(text, "idle_watts: 600")
    assert problems["building_types.hall-building.halls.0.rack_type"].line == line_of(
        text, "rack_type: rack}"
    )
    assert problems["building_types.hall-building.halls.1.rack_type"].line == line_of(
        text, "rack_type: nosuch"
    )
    # The location is the `buildings` key itself, so the line is the key's line.
    assert problems["buildings"].line == line_of(text, "buildings:")


def test_missing_field_is_located_at_the_line_of_its_parent_key() -> None:
    text = GOOD_SITE.replace("    memory_bytes: 1000\n", "")
    (problem,) = problems_of(text)
    assert problem.location == "accelerator_types.chip.memory_bytes"
    # The field is absent, so the nearest place that exists is the `chip:` key.
    assert problem.line == line_of(text, "chip:")


def test_unknown_references_between_templates_are_problems() -> None:
    text = (
        GOOD_SITE.replace("accelerator_type: chip", "accelerator_type: gpu")
        .replace("node_type: server", "node_type: box")
        .replace("type: hall-building, count", "type: warehouse, count")
    )
    problems = by_location(problems_of(text))
    assert "'gpu'" in problems["node_types.server.accelerator_type"].message
    assert "'box'" in problems["rack_types.rack.node_type"].message
    assert "'warehouse'" in problems["buildings.0.type"].message


def test_misspelled_key_is_a_problem_on_its_line() -> None:
    text = GOOD_SITE.replace("host_max_watts: 200", "host_max_wats: 200")
    problems = by_location(problems_of(text))
    assert problems["node_types.server.host_max_wats"].line == line_of(text, "host_max_wats")
    assert "node_types.server.host_max_watts" in problems


def test_invalid_yaml_is_one_problem_with_its_line() -> None:
    text = GOOD_SITE.replace(
        "contract_watts: 1.0e6\n", "contract_watts: 1.0e6\n  stray: indented\n"
    )
    (problem,) = problems_of(text)
    assert problem.location == "(file)"
    assert "not valid YAML" in problem.message
    assert problem.line == line_of(text, "stray: indented")


def test_unclosed_bracket_is_one_problem_at_or_after_its_line() -> None:
    text = GOOD_SITE.replace("  server:\n", "  server:\n    broken: [1, 2\n")
    (problem,) = problems_of(text)
    assert problem.location == "(file)"
    assert "not valid YAML" in problem.message
    # The parser notices on the next token, which may be on a later line.
    assert problem.line is not None
    assert line_of(text, "broken: [1, 2") <= problem.line <= line_of(text, "broken") + 1


@pytest.mark.parametrize("text", ["- just\n- a list\n", "a plain string\n", ""])
def test_top_level_that_is_not_a_mapping_is_one_clear_problem(text: str) -> None:
    (problem,) = problems_of(text)
    assert problem.location == "(file)"
    assert "mapping" in problem.message


def test_site_error_message_lists_every_problem_with_its_line() -> None:
    text = BAD_SITE.replace("breaker_amps: -60", "breaker_amps: 60")
    with pytest.raises(SiteError) as caught:
        parse_site(text, "bad.yaml")
    message = str(caught.value)
    assert message.startswith("bad.yaml: 4 problem(s)")
    assert f"line {line_of(text, 'idle_watts: 600')}: accelerator_types.chip.idle_watts" in message
