"""The composition root: what ``gigawatt serve`` is told, and the one place the service is
wired from it::

    ServiceSettings -> site -> topology -> sources (the collectors file, else the simulator)
                    -> pipeline (grid config, energy gap policy) -> renderer (tier)
                    -> CycleRunner -> create_app (exporters.api: HTTP only)

``build_runner`` builds everything once and starts nothing; every configuration problem (the
site, the grid config, the collectors file and its inventory) is raised as its ConfigError
before any source is built. ``build_app`` hands that runner to the HTTP app, which starts
its cycle thread and closes its sources when it stops. The CLI and the tests use the same
two functions, so a service is built the same way everywhere.

Options that change what is run (which buildings this process serves, an incident scenario
played on the sources) plug in here: the shard in ``service_shard`` (its topology in
``service_topology``), the scenario in ``service_scenario`` (validated before any source is
built), the sources in ``service_sources``. Sources and scenarios name entities of the whole
site; a shard's sources hand the pipeline its buildings' part (collector.shard).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field, field_validator

from collector.collectors import CollectorsError, build_sources, parse_collectors
from collector.config_errors import read_config
from collector.grid.config import GridConfig, load_grid_config
from collector.pipeline import Pipeline, PipelineConfig
from collector.scenarios import ScenarioRun, load_scenario, play
from collector.shard import ShardPipeline, ShardPlan, ShardSource, ShardSpec
from collector.site.model import Preset, Site, load_preset, load_site
from collector.site.topology import Topology, build_topology
from collector.sources.base import Source
from collector.sources.simulated import SimulatedSource, SimulationConfig
from exporters.api import create_app
from exporters.contract import DEFAULT_TIER, Tier
from exporters.exposition import Renderer
from exporters.service import CycleRunner, close_sources
from exporters.version import VERSION


class ServiceSettings(BaseModel):
    """What ``gigawatt serve`` is told; validated once, here."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    preset: Preset | None = "campus"
    site_file: Path | None = None
    host: str = "127.0.0.1"
    port: int = Field(default=9640, ge=0, le=65535)
    interval_seconds: float = Field(default=10.0, gt=0)
    seed: int = Field(default=0, ge=0)
    expose: Tier = DEFAULT_TIER  # the deepest tier exposed (exporters.contract)
    workload: Literal["jobs", "steady"] = "jobs"
    # Grid thresholds, bands and windows (YAML, see collector/grid/config.py); defaults else.
    grid_config: Path | None = None
    # Real sources and their inventory (YAML, see collector/collectors.py); else the simulator.
    collectors: Path | None = None
    # Incidents played on the sources' reads (YAML, see collector/scenarios/config.py).
    scenario: Path | None = None
    # Data older than this many intervals is stale: /readyz says so.
    stale_after_intervals: float = Field(default=3.0, gt=1)
    top_k_anomalies: int = Field(default=20, ge=0, le=1000)
    # This process's share of the buildings, "I/N" (collector/shard.py); the whole site else.
    shard: ShardSpec | None = None

    @field_validator("shard", mode="before")
    @classmethod
    def _parse_shard(cls, value: object) -> object:
        return ShardSpec.parse(value) if isinstance(value, str) else value


def service_site(settings: ServiceSettings) -> Site:
    return (
        load_site(settings.site_file)
        if settings.site_file
        else load_preset(settings.preset or "campus")
    )


def service_shard(settings: ServiceSettings, site_topology: Topology) -> ShardPlan | None:
    """This process's shard of the site, when it is told one."""
    return None if settings.shard is None else ShardPlan.build(site_topology, settings.shard)


def service_topology(site_topology: Topology, shard: ShardPlan | None) -> Topology:
    """The part of the site this service rolls up: all of it, or its shard's buildings."""
    return site_topology if shard is None else shard.topology


def service_scenario(
    settings: ServiceSettings, topology: Topology, started_at: float
) -> ScenarioRun | None:
    """The incident scenario, if one is given, validated against the site and the names of
    the sources it will play on (read from the collectors file, not built); its times count
    from ``started_at``."""
    if settings.scenario is None:
        return None
    if settings.collectors:
        text = read_config(settings.collectors, CollectorsError)
        names = [item.name for item in parse_collectors(text, str(settings.collectors)).sources]
    else:
        names = [SimulatedSource.name]
    return ScenarioRun(load_scenario(settings.scenario, topology, names), started_at)


def service_sources(
    settings: ServiceSettings,
    topology: Topology,
    scenario: ScenarioRun | None = None,
    shard: ShardPlan | None = None,
) -> list[Source]:
    """The sources the collectors file names, or the simulated campus without one, on the
    whole site's ``topology``; with a scenario, each plays it on its reads; with a shard, each
    hands on the shard's part (the simulator runs the whole site, as the world it stands for
    does, so every shard sees the same campus)."""
    if settings.collectors:
        sources = build_sources(settings.collectors, topology)
    else:
        simulation = SimulationConfig(seed=settings.seed, workload=settings.workload)
        sources = [SimulatedSource(topology, simulation)]
    if scenario is not None:
        sources = play(sources, scenario, topology)
    return sources if shard is None else [ShardSource(source, shard) for source in sources]


def max_energy_gap_seconds(interval_seconds: float) -> float:
    """The longest interval integrated into the energy counters: a few missed cycles are
    bridged, a longer outage is a gap; never under a minute, the pipeline's own default."""
    return max(60.0, 3 * interval_seconds)


def build_runner(settings: ServiceSettings, clock: Callable[[], float] = time.time) -> CycleRunner:
    """The service's cycle runner, built once and not started. Raises the ConfigError of the
    first configuration file with problems; the sources come last, so a bad file leaves
    nothing open."""
    site_topology = build_topology(service_site(settings))
    shard = service_shard(settings, site_topology)
    topology = service_topology(site_topology, shard)
    grid = load_grid_config(settings.grid_config) if settings.grid_config else GridConfig()
    scenario = service_scenario(settings, site_topology, clock())
    sources = service_sources(settings, site_topology, scenario, shard)
    try:
        pipeline = (Pipeline if shard is None else ShardPipeline)(
            topology,
            sources,
            clock=clock,
            config=PipelineConfig(
                grid=grid,
                top_k_anomalies=settings.top_k_anomalies,
                max_energy_gap_seconds=max_energy_gap_seconds(settings.interval_seconds),
            ),
        )
        renderer = Renderer(topology, settings.expose, version=VERSION)
    except BaseException:
        close_sources(sources)
        raise
    return CycleRunner(pipeline, renderer, settings.interval_seconds, scenario=scenario)


def build_app(settings: ServiceSettings, clock: Callable[[], float] = time.time) -> FastAPI:
    """The HTTP service around a runner built once: the app starts the runner's cycle thread
    when it starts and closes its sources when it stops."""
    return create_app(settings, build_runner(settings, clock), clock, run_cycles=True)
