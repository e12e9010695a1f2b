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

import logging
import os
import time
from collections.abc import Callable, Mapping
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
from collector.sources.deadline import with_deadlines
from collector.sources.jobs import JobConfig
from collector.sources.simulated import SimulatedSource, SimulationConfig
from collector.state import Identity, StateError, StateStore
from exporters.api import API_TOKEN_ENV, create_app
from exporters.contract import DEFAULT_TIER, Tier
from exporters.exposition import Renderer
from exporters.service import CycleRunner, close_sources
from exporters.version import VERSION
from exporters.web_config import load_web_config

log = logging.getLogger(__name__)

# A bearer token shorter than this is guessable.
MIN_TOKEN_CHARACTERS = 16


class ServiceSettings(BaseModel):
    """What ``gigawatt serve`` is told; validated once, here."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    preset: Preset | None = "campus"
    site_file: Path | None = None
    host: str = "127.0.0.1"
    port: int = Field(default=9640, ge=0, le=65535)
    # From a fast test's 50 ms to an hour: shorter only spins, longer is not monitoring.
    interval_seconds: float = Field(default=10.0, ge=0.05, le=3600, allow_inf_nan=False)
    seed: int = Field(default=0, ge=0)
    expose: Tier = DEFAULT_TIER  # the deepest tier exposed (exporters.contract)
    workload: Literal["jobs", "steady"] = "jobs"
    # The job model's mitigations (collector.sources.jobs.JobConfig): the wait phases' floor
    # as a share of TDP, and the slew limit per chip in W/s. None: unmitigated.
    power_floor: float | None = Field(default=None, ge=0, le=1, allow_inf_nan=False)
    ramp_limit: float | None = Field(default=None, gt=0, le=1e6, allow_inf_nan=False)
    # Grid thresholds, bands and windows (YAML, see collector/grid/config.py); defaults else.
    grid_config: Path | None = None
    # Real sources and their inventory (YAML, see collector/collectors.py); else the simulator.
    collectors: Path | None = None
    # Incidents played on the sources' reads (YAML, see collector/scenarios/config.py).
    scenario: Path | None = None
    # Data older than this many intervals is stale: /readyz says so.
    stale_after_intervals: float = Field(default=3.0, gt=1, le=1000, allow_inf_nan=False)
    top_k_anomalies: int = Field(default=20, ge=0, le=1000)
    # Where the counters survive a restart (collector.state); None: kept in memory only. The
    # CLI gives the user's state directory unless told --no-state.
    state_dir: Path | None = None
    # TLS and basic auth (exporters.web_config, exporter-toolkit's file shape).
    web_config: Path | None = None
    # The bearer token state-changing endpoints require: a file holding it, else the
    # environment variable exporters.api.API_TOKEN_ENV; without either they answer 403.
    api_token_file: Path | None = None
    # What one client can make the service read and how many requests it answers at once
    # (more get 503 at once rather than queueing).
    max_request_bytes: int = Field(default=64 * 1024, ge=0, le=64 * 1024 * 1024)
    max_concurrent_requests: int = Field(default=64, ge=1, le=10_000)
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
        simulation = SimulationConfig(
            seed=settings.seed,
            workload=settings.workload,
            jobs=JobConfig(
                power_floor_ratio=settings.power_floor,
                ramp_limit_watts_per_second=settings.ramp_limit,
            ),
        )
        sources = [SimulatedSource(topology, simulation)]
    # Each source's own reads under the cycle's budget (collector.sources.deadline); a
    # scenario's effects and a shard's cut act on what arrives, in the cycle itself.
    sources = with_deadlines(sources, read_budget_seconds(settings.interval_seconds))
    if scenario is not None:
        sources = play(sources, scenario, topology)
    return sources if shard is None else [ShardSource(source, shard) for source in sources]


def max_energy_gap_seconds(interval_seconds: float) -> float:
    """The longest interval integrated into the energy counters: a few missed cycles are
    bridged, a longer outage is a gap; never under a minute, the pipeline's own default."""
    return max(60.0, 3 * interval_seconds)


def read_budget_seconds(interval_seconds: float) -> float:
    """How long a cycle waits for its sources (collector.sources.deadline): most of the
    interval, leaving the rest for the roll-ups and the exposition."""
    return 0.8 * interval_seconds


def service_state(settings: ServiceSettings, topology: Topology) -> StateStore | None:
    """The state directory's store, opened (locked), or None: no state asked for, or the
    folder is held by another process (then this one runs without, and says so)."""
    if settings.state_dir is None:
        return None
    sizes = {
        "accelerator": topology.accelerators.height,
        "feed": topology.feeds.height,
        "building": topology.buildings.height,
        "rack": topology.racks.height,
    }
    buildings = topology.buildings.get_column("building").to_list()
    identity = Identity.of(topology.site.name, buildings, sizes)
    store = StateStore(settings.state_dir, identity, VERSION)
    try:
        return store.open()
    except StateError as error:
        log.warning("%s; running without a state directory", error)
        return None


def build_runner(settings: ServiceSettings, clock: Callable[[], float] = time.time) -> CycleRunner:
    """The service's cycle runner, built once and not started. Raises the ConfigError of the
    first configuration file with problems; the sources come last, so a bad file leaves
    nothing open. With a state directory, the counters continue from what it holds."""
    site_topology = build_topology(service_site(settings))
    shard = service_shard(settings, site_topology)
    topology = service_topology(site_topology, shard)
    grid = load_grid_config(settings.grid_config) if settings.grid_config else GridConfig()
    scenario = service_scenario(settings, site_topology, clock())
    sources = service_sources(settings, site_topology, scenario, shard)
    state: StateStore | None = None
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
        state = service_state(settings, topology)
        stored = state.load() if state is not None else None
        if state is not None and stored is not None:
            pipeline.restore(stored)
            log.info("counters continued from %s", state.path)
    except BaseException:
        close_sources(sources)
        if state is not None:
            state.close()
        raise
    return CycleRunner(
        pipeline, renderer, settings.interval_seconds, scenario=scenario, state=state
    )


class TokenError(Exception):
    """An API token file that cannot be used; the message names it."""


def service_api_token(
    settings: ServiceSettings, environ: Mapping[str, str] | None = None
) -> str | None:
    """The bearer token of state-changing endpoints: the first line of --api-token-file, else
    the environment's API_TOKEN_ENV, else None (those endpoints then answer 403)."""
    if settings.api_token_file is not None:
        try:
            text = settings.api_token_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            reason = getattr(error, "strerror", None) or type(error).__name__
            raise TokenError(f"{settings.api_token_file}: cannot read: {reason}") from None
        token = text.strip().splitlines()[0].strip() if text.strip() else ""
    else:
        token = (os.environ if environ is None else environ).get(API_TOKEN_ENV, "").strip()
        if not token:
            return None
    if len(token) < MIN_TOKEN_CHARACTERS:
        where = settings.api_token_file or API_TOKEN_ENV
        raise TokenError(f"{where}: a token has at least {MIN_TOKEN_CHARACTERS} characters")
    return token


def build_app(settings: ServiceSettings, clock: Callable[[], float] = time.time) -> FastAPI:
    """The HTTP service around a runner built once: the app starts the runner's cycle thread
    when it starts and closes its sources when it stops. The web configuration and the API
    token are checked before anything is built (WebConfigError, TokenError)."""
    web = load_web_config(settings.web_config) if settings.web_config else None
    token = service_api_token(settings)
    return create_app(
        settings, build_runner(settings, clock), clock, run_cycles=True, web=web, api_token=token
    )
