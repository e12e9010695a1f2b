"""The scenario file: the shape users and tests rely on, durations, and every problem with its
line."""

from __future__ import annotations

from pathlib import Path

import pytest

from collector.scenarios import KINDS, ScenarioError, load_scenario, parse_scenario, seconds_of
from collector.site.model import load_preset
from collector.site.topology import Topology, build_topology

# The example, verbatim: one event of every kind on the demo site.
EXAMPLE = """\
events:
  - {kind: rack_overload, rack: B01-H1-R02-K05, watts: 33000, at: 20s, duration: 10m}
  - {kind: feed_trip, rack: B01-H1-R03-K01, feed: A, at: 20s}       # reads 0 W
  - {kind: pdu_silent, rack: B01-H1-R03-K02, feed: B, at: 20s}      # stops reporting
  - {kind: accelerator_overheat, accelerator: B01-H1-R01-K01-N1-A03, celsius: 97, at: 20s}
  - {kind: accelerator_silent, accelerator: B01-H1-R01-K01-N1-A04, at: 20s}
  - {kind: accelerator_errors, accelerator: B01-H1-R01-K01-N2-A00, per_minute: 5, at: 20s}
  - {kind: straggler, accelerator: B01-H1-R01-K02-N1-A07, power_ratio: 0.5, at: 20s}
  - {kind: cooling_failure, hall: B01-H2, celsius_per_minute: 1.5, at: 20s}
  - {kind: building_outage, building: B01, at: 20s, duration: 2m}
  - {kind: oscillation, meter: poi, frequency_hz: 0.6, peak_to_peak_watts: 40000, at: 20s}
  - {kind: load_step, meter: poi, delta_watts: -300000, at: 20s}
  - {kind: site_surge, ratio: 1.6, at: 20s}                         # all load scaled
  - {kind: bmc_overreport, node: B01-H1-R01-K03-N1, ratio: 1.3, at: 20s}
  - {kind: source_down, source: simulated, at: 20s, duration: 1m}
  - {kind: cycle_overrun, seconds: 12, at: 20s}
"""


@pytest.fixture(scope="module")
def demo() -> Topology:
    return build_topology(load_preset("demo"))


def test_the_example_has_every_kind_and_resolves_its_entities(demo: Topology) -> None:
    scenario = parse_scenario(EXAMPLE, demo, ["simulated"])
    assert [event.kind for event in scenario.events] == list(KINDS)
    by_kind = {event.kind: event for event in scenario.events}
    # B01-H1-R02-K05: row 2 of hall 1, rack 5 -> the 13th rack of the site.
    assert demo.racks["rack"][by_kind["rack_overload"].target] == "B01-H1-R02-K05"
    feed = demo.feeds.row(by_kind["feed_trip"].target, named=True)
    assert (demo.racks["rack"][feed["rack_index"]], feed["feed"]) == ("B01-H1-R03-K01", "A")
    # Accelerator 3 of the first server.
    assert by_kind["accelerator_overheat"].target == 3
    assert by_kind["accelerator_errors"].target == 16  # first chip of the second server
    assert demo.halls["hall"][by_kind["cooling_failure"].target] == "B01-H2"
    assert demo.nodes["node"][by_kind["bmc_overreport"].target] == "B01-H1-R01-K03-N1"
    assert by_kind["oscillation"].target == 0  # poi
    overload = by_kind["rack_overload"]
    assert (overload.start, overload.end) == (20.0, 620.0)
    assert by_kind["feed_trip"].end is None  # lasts to the end
    assert by_kind["cycle_overrun"].describe() == {
        "kind": "cycle_overrun",
        "seconds": 12.0,
        "at": 20.0,
    }


@pytest.mark.parametrize(
    ("given", "seconds"),
    [
        (45, 45.0),
        (1.5, 1.5),
        ("90s", 90.0),
        ("10m", 600.0),
        ("1h30m", 5400.0),
        ("500ms", 0.5),
        ("2d", 172800.0),
        ("1w", 604800.0),
    ],
)
def test_durations_are_seconds_or_prometheus_durations(given: object, seconds: float) -> None:
    assert seconds_of(given) == seconds


@pytest.mark.parametrize("given", ["soon", "", "10 m", "1.5m", "m", True, None, [1]])
def test_other_durations_are_refused(given: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        seconds_of(given)


def test_an_event_is_active_from_at_until_its_end(demo: Topology) -> None:
    text = "events:\n  - {kind: site_surge, ratio: 2, at: 1m, duration: 30s}\n"
    (event,) = parse_scenario(text, demo, []).events
    assert [event.active(t) for t in (59.9, 60.0, 89.9, 90.0)] == [False, True, True, False]
    assert [event.active_seconds(t) for t in (0.0, 75.0, 500.0)] == [0.0, 15.0, 30.0]


BAD = """\
events:
  - {kind: rack_overload, rack: B01-H9-R02-K05, watts: -3, at: 20s}
  - {kind: feed_trip, rack: B01-H1-R03-K01, feed: C, at: soon}
  - {kind: explode, rack: B01-H1-R01-K01}
  - {kind: straggler, accelerator: B01-H1-R01-K02-N1-A99, power_ratio: 0.5}
  - {kind: source_down, source: redfish, duration: 0}
  - {kind: oscillation, meter: B02-A, frequency_hz: 0.6, peak_to_peak_watts: 40000, color: red}
  - 7
  - {at: 3s}
  - kind: load_step
    meter: poi
    at: yes
extra: 1
"""


def test_a_bad_file_gets_one_problem_per_mistake_each_on_its_line(demo: Topology) -> None:
    with pytest.raises(ScenarioError) as raised:
        parse_scenario(BAD, demo, ["simulated"], "bad.yaml")
    found = [(problem.line, problem.location) for problem in raised.value.problems]
    assert found == [
        (2, "events.0.rack"),
        (2, "events.0.watts"),
        (3, "events.1.at"),
        (3, "events.1.feed"),
        (4, "events.2.kind"),
        (5, "events.3.accelerator"),
        (6, "events.4.duration"),
        (6, "events.4.source"),
        (7, "events.5.color"),
        (7, "events.5.meter"),
        (8, "events.6"),
        (9, "events.7.kind"),
        (10, "events.8.delta_watts"),
        (12, "events.8.at"),
        (13, "extra"),
    ]
    text = str(raised.value)
    assert text.startswith("bad.yaml: 15 problem(s)")
    assert "line 2: events.0.rack: no rack 'B01-H9-R02-K05' in the site" in text
    assert "line 3: events.1.feed: rack 'B01-H1-R03-K01' has no feed 'C'" in text
    assert "line 3: events.1.at: 'soon' is not a duration such as 90s, 10m or 1h30m" in text
    assert "line 6: events.4.source: no source 'redfish' (sources: simulated)" in text
    assert "line 9: events.7.kind: kind is missing; known: rack_overload," in text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("events: [\n", "not valid YAML"),
        ("- 1\n", "the top level must be a mapping"),
        ("events: 3\n", "events: must be a list of events"),
    ],
)
def test_a_file_that_is_no_scenario_says_so(demo: Topology, text: str, message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        parse_scenario(text, demo, [])


def test_an_empty_list_is_a_scenario_with_nothing_to_do(demo: Topology) -> None:
    assert parse_scenario("events: []\n", demo, []).events == ()


def test_a_file_is_loaded_with_its_path_in_every_message(demo: Topology, tmp_path: Path) -> None:
    path = tmp_path / "incident.yaml"
    path.write_text(EXAMPLE, encoding="utf-8")
    assert len(load_scenario(path, demo, ["simulated"]).events) == len(KINDS)
    with pytest.raises(ScenarioError, match=r"missing\.yaml: 1 problem"):
        load_scenario(tmp_path / "missing.yaml", demo, [])
