"""Playing a scenario: a thin wrapper around each source, and what is under way when.

``play(sources, scenario, topology, started_at)`` wraps every source in a ScenarioSource,
which reads the source as usual and hands the pipeline the batch as the scenario's events
change it (collector.scenarios.effects). The two events that strike the read itself act here:

* ``source_down``: the source is read (the simulated campus runs on regardless, so nothing
  piles up for later) and the read then fails, so the pipeline shows the source down and its
  data missing, as for any dead source;
* ``cycle_overrun``: the first source's read takes ``seconds`` longer, so the cycle overruns.

The wrapper keeps one piece of state besides the previous read's time: the energy the PDUs'
own meters gained or lost because of the events (a tripped feed's meter stands still), so
their counters follow the power they report.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import polars as pl

from collector import arrays
from collector.scenarios.config import CycleOverrun, Scenario, SourceDown
from collector.scenarios.effects import Incidents
from collector.site.topology import Topology
from collector.sources.base import SampleBatch, Source


class ScenarioSourceDown(RuntimeError):
    """A read the scenario made fail."""


@dataclass(frozen=True)
class ScenarioRun:
    """A scenario and when its run started: what is under way at any moment."""

    scenario: Scenario
    started_at: float

    def status(self, now: float) -> dict[str, Any]:
        """Every event with its start and end (Unix seconds; end null: to the end of the
        run) and whether it is under way at ``now``."""
        elapsed = now - self.started_at
        return {
            "file": self.scenario.source,
            "started_at_seconds": self.started_at,
            "elapsed_seconds": elapsed,
            "events": [
                {
                    "number": event.number,
                    "kind": event.kind,
                    "active": event.active(elapsed),
                    "start_seconds": self.started_at + event.start,
                    "end_seconds": None if event.end is None else self.started_at + event.end,
                    "event": event.describe(),
                }
                for event in self.scenario.events
            ],
        }


class ScenarioSource:
    """Source ``inner.name``: the inner source's reads with the scenario played on them."""

    def __init__(
        self,
        inner: Source,
        incidents: Incidents,
        *,
        overruns: bool = False,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.inner = inner
        self.incidents = incidents
        self.overruns = overruns  # whether cycle_overrun events slow this source's reads
        self._sleep = sleep
        self._since: float | None = None
        self._meter_offset = np.zeros(incidents.topology.feeds.height)
        self._last_meter_energy = np.full(incidents.topology.feeds.height, np.nan)

    @property
    def name(self) -> str:
        return self.inner.name

    def read(self, now: float) -> SampleBatch:
        scenario = self.incidents.scenario
        elapsed = now - self.incidents.started_at
        if self.overruns:
            delay = sum(
                event.spec.seconds
                for event in scenario.events
                if isinstance(event.spec, CycleOverrun) and event.active(elapsed)
            )
            if delay > 0:
                self._sleep(delay)
        batch = self.inner.read(now)
        since, self._since = self._since, now
        for event in scenario.events:
            if (
                isinstance(event.spec, SourceDown)
                and event.spec.source == self.name
                and event.active(elapsed)
            ):
                raise ScenarioSourceDown(
                    f"source {self.name} is down: scenario event {event.number}"
                )
        played = self.incidents.apply(batch, now, since)
        return self._with_meter_energy(batch, played, now, since)

    def _with_meter_energy(
        self, raw: SampleBatch, played: SampleBatch, now: float, since: float | None
    ) -> SampleBatch:
        """The PDUs' own energy meters, moved by the power the events added or removed.

        Each interval's energy is the raw meter's gain scaled by the played power over the
        raw power, so a meter only ever counts up and a tripped feed's meter stands exactly
        still (a power reading and the meter's gain need not agree to the joule, and a
        meter pulled back by their difference would read as a reset)."""
        feeds = self._meter_offset.size
        energy = arrays.dense(raw.feeds, "feed_index", "meter_energy_joules", feeds)
        gained = energy - self._last_meter_energy
        self._last_meter_energy = energy
        if played.feeds is raw.feeds and not self._meter_offset.any():
            return played
        before = arrays.dense(raw.feeds, "feed_index", "power_watts", feeds)
        after = arrays.dense(played.feeds, "feed_index", "power_watts", feeds)
        if since is not None and now > since:
            with np.errstate(invalid="ignore", divide="ignore"):
                ratio = np.where(before > 0, after / before, 1.0)
            counted = np.isfinite(gained) & (gained >= 0) & np.isfinite(ratio)
            self._meter_offset += np.where(counted, gained * (ratio - 1.0), 0.0)
        offset = pl.Series(self._meter_offset).gather(played.feeds["feed_index"])
        return replace(
            played,
            feeds=played.feeds.with_columns(pl.col("meter_energy_joules") + offset),
        )

    def close(self) -> None:
        close = getattr(self.inner, "close", None)
        if callable(close):
            close()


def play(
    sources: Sequence[Source],
    run: ScenarioRun,
    topology: Topology,
    sleep: Callable[[float], None] = time.sleep,
) -> list[Source]:
    """Every source wrapped to play the scenario; the first one carries the cycle overruns."""
    incidents = Incidents(topology, run.scenario, run.started_at)
    return [
        ScenarioSource(source, incidents, overruns=position == 0, sleep=sleep)
        for position, source in enumerate(sources)
    ]
