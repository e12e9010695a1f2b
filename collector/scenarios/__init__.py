"""Incident scenarios: events played on the campus a source reads, to show every alert fire.

``load_scenario`` validates a scenario file against the site and the sources (config),
``Incidents`` is what the events do to a batch (effects, a pure transform), and ``play``
wraps the sources so that every read goes through it (source).
"""

from collector.scenarios.config import (
    KINDS,
    Event,
    Scenario,
    ScenarioError,
    load_scenario,
    parse_scenario,
    seconds_of,
)
from collector.scenarios.effects import Incidents
from collector.scenarios.source import ScenarioRun, ScenarioSource, ScenarioSourceDown, play

__all__ = [
    "KINDS",
    "Event",
    "Incidents",
    "Scenario",
    "ScenarioError",
    "ScenarioRun",
    "ScenarioSource",
    "ScenarioSourceDown",
    "load_scenario",
    "parse_scenario",
    "play",
    "seconds_of",
]
