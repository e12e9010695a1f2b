"""The HTTP service: /metrics, health, readiness and a small JSON API, built by a factory.

``create_app(settings, runner)`` serves a cycle runner built elsewhere (by the composition
root, exporters.composition); this module is HTTP only and importing it starts nothing. With
``run_cycles`` the app runs the runner: it starts its cycle thread when the app starts and
stops it and closes its sources when the app stops. Without, the caller drives the runner
(a test calls ``run_once`` with a clock of its own) and keeps its sources.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Annotated, Any, Literal

import polars as pl
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response

from collector.pipeline import Snapshot
from collector.site.topology import Topology
from exporters.exposition import CONTENT_TYPE
from exporters.service import CycleRunner, Published, close_sources
from exporters.version import VERSION

if TYPE_CHECKING:
    from exporters.composition import ServiceSettings


def _runner(request: Request) -> CycleRunner:
    runner: CycleRunner = request.app.state.runner
    return runner


RunnerDep = Annotated[CycleRunner, Depends(_runner)]


def _published(runner: CycleRunner) -> Published:
    latest = runner.latest
    if latest is None:
        raise HTTPException(status_code=503, detail="no cycle has completed yet")
    return latest


def accepts_gzip(header: str) -> bool:
    """Whether an Accept-Encoding header allows gzip: named with a quality above 0, or covered
    by ``*`` with one when gzip is not named (``gzip;q=0`` refuses it, whatever ``*`` says)."""
    wildcard: float | None = None
    for part in header.split(","):
        name, _, params = part.partition(";")
        coding = name.strip().lower()
        if coding not in ("gzip", "x-gzip", "*"):
            continue
        quality = 1.0
        for param in params.split(";"):
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0  # an unreadable quality allows nothing
        if coding != "*":
            return quality > 0
        wildcard = quality
    return wildcard is not None and wildcard > 0


def _json_rows(frame: pl.DataFrame) -> list[dict[str, Any]]:
    """Rows as JSON-safe dicts: non-finite floats become null (missing), never 0."""
    cleaned = frame.with_columns(
        pl.when(pl.col(name).is_finite()).then(pl.col(name)).alias(name)
        for name, dtype in frame.schema.items()
        if dtype.is_float()
    )
    return cleaned.to_dicts()


def _first(frame: pl.DataFrame) -> dict[str, Any]:
    return _json_rows(frame)[0]


LEVEL_FRAMES = {"building": "buildings", "hall": "halls", "row": "rows", "rack": "racks"}
PUBLIC_COLUMNS = (
    "power_watts",
    "capacity_watts",
    "headroom_watts",
    "utilization_ratio",
    "reporting_ratio",
    "accelerator_power_watts",
    "accelerators_reporting_ratio",
    "node_power_watts",
    "nodes_reporting_ratio",
    "unattributed_power_watts",
    "max_temperature_celsius",
    "energy_joules",
)
BUILDING_COLUMNS = (
    "facility_power_watts",
    "non_it_power_watts",
    "pue_ratio",
    "outdoor_temperature_celsius",
)


def _level_view(snapshot: Snapshot, topology: Topology, level: str) -> pl.DataFrame:
    frame: pl.DataFrame = getattr(snapshot, LEVEL_FRAMES[level])
    columns = [*PUBLIC_COLUMNS, *(BUILDING_COLUMNS if level == "building" else ())]
    return pl.concat([topology.names(level), frame.select(columns)], how="horizontal")


def create_app(
    settings: ServiceSettings,
    runner: CycleRunner,
    clock: Callable[[], float] = time.time,
    *,
    run_cycles: bool = False,
) -> FastAPI:
    """The app serving ``runner``'s latest cycle; ``settings`` says when data is stale."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.runner = runner
        if run_cycles:
            runner.start()
        try:
            yield
        finally:
            if run_cycles:
                runner.stop()
                close_sources(runner.pipeline.sources)  # the cycle thread is done with them

    app = FastAPI(
        title="gigawatt",
        version=VERSION,
        summary="Power and telemetry of a gigawatt-scale AI training campus.",
        lifespan=lifespan,
    )

    def topology_of(active: CycleRunner) -> Topology:
        return active.pipeline.topology

    # Both bodies are bytes made by the cycle thread before it published them: a scrape costs
    # a reference lookup and a header check, whatever the body's size. The handler is async
    # and reads the runner without a dependency, so it runs on the event loop without a
    # thread-pool hop.
    @app.get("/metrics", response_class=Response, summary="Prometheus exposition (text 0.0.4)")
    async def metrics(request: Request) -> Response:
        published = _published(request.app.state.runner)
        if accepts_gzip(request.headers.get("accept-encoding", "")):
            return Response(
                published.gzipped,
                media_type=CONTENT_TYPE,
                headers={"Content-Encoding": "gzip", "Vary": "Accept-Encoding"},
            )
        return Response(
            published.rendered.body, media_type=CONTENT_TYPE, headers={"Vary": "Accept-Encoding"}
        )

    @app.get("/healthz", summary="Liveness: the process and its cycle thread are running")
    def healthz(active: RunnerDep) -> JSONResponse:
        # A runner the caller drives by hand has no thread to watch.
        alive = active.alive or not run_cycles
        return JSONResponse(
            {"status": "ok" if alive else "cycle thread stopped"}, status_code=200 if alive else 500
        )

    @app.get("/readyz", summary="Readiness: a full cycle has completed and its data is fresh")
    def readyz(active: RunnerDep) -> JSONResponse:
        latest = active.latest
        if latest is None:
            return JSONResponse({"ready": False, "reason": "no cycle has completed yet"}, 503)
        age = clock() - latest.snapshot.timestamp
        limit = settings.stale_after_intervals * settings.interval_seconds
        if age > limit:
            return JSONResponse(
                {
                    "ready": False,
                    "reason": f"data is {age:.1f} s old (limit {limit:.1f} s)",
                    "age_seconds": age,
                },
                503,
            )
        return JSONResponse({"ready": True, "age_seconds": age, "cycles": latest.snapshot.cycles})

    @app.get("/api/v1/scenario", summary="The incident scenario played: each event, its times")
    def scenario(active: RunnerDep) -> dict[str, Any]:
        """Every event of the scenario with its start and end (Unix seconds; end null: to the
        end of the run) and whether it is under way now; no events without a scenario."""
        if active.scenario is None:
            return {"file": None, "events": []}
        return active.scenario.status(clock())

    @app.get("/api/v1/site", summary="Site summary: power, capacity, contract, PUE, sources")
    def site(active: RunnerDep) -> dict[str, Any]:
        snapshot = _published(active).snapshot
        topology = topology_of(active)
        return {
            "name": topology.site.name,
            "timestamp_seconds": snapshot.timestamp,
            "counts": {
                "buildings": topology.buildings.height,
                "halls": topology.halls.height,
                "rows": topology.rows.height,
                "racks": topology.racks.height,
                "feeds": topology.feeds.height,
                "nodes": topology.nodes.height,
                "accelerators": topology.accelerators.height,
            },
            "power": _first(snapshot.site),
            "sources": _json_rows(snapshot.sources),
            "cycle_seconds": snapshot.cycle_seconds,
        }

    @app.get("/api/v1/power", summary="Power per building, hall, row or rack")
    def power(
        active: RunnerDep,
        level: Literal["building", "hall", "row", "rack"] = "building",
        building: Annotated[str | None, Query(description="only under this building")] = None,
        hall: Annotated[str | None, Query(description="only under this hall")] = None,
        row: Annotated[str | None, Query(description="only under this row")] = None,
        limit: Annotated[int | None, Query(ge=1, description="at most this many items")] = None,
        offset: Annotated[int, Query(ge=0, description="skip this many items first")] = 0,
    ) -> dict[str, Any]:
        snapshot = _published(active).snapshot
        topology = topology_of(active)
        view = _level_view(snapshot, topology, level)
        chosen: list[str] = []
        for parent, wanted in (("building", building), ("hall", hall), ("row", row)):
            if wanted is None:
                continue
            if parent not in view.columns or parent == level:
                raise HTTPException(400, f"{parent} does not contain {level}s")
            known = getattr(topology, f"{parent}s").get_column(parent)
            if not known.is_in([wanted]).any():
                raise HTTPException(404, f"unknown {parent} {wanted!r}")
            view = view.filter(pl.col(parent) == wanted)
            chosen.append(f"{parent} {wanted!r}")
            if view.height == 0:
                raise HTTPException(404, f"{' and '.join(chosen)} have no {level} in common")
        total = view.height
        page = view.slice(offset, limit)
        return {
            "level": level,
            "timestamp_seconds": snapshot.timestamp,
            "total": total,
            "offset": offset,
            "items": _json_rows(page),
        }

    @app.get("/api/v1/racks/{rack}", summary="One rack with its PDU feeds and nodes")
    def rack_detail(rack: str, active: RunnerDep) -> dict[str, Any]:
        snapshot = _published(active).snapshot
        topology = topology_of(active)
        found = topology.racks.filter(pl.col("rack") == rack)
        if found.height == 0:
            raise HTTPException(404, f"unknown rack {rack!r}")
        index = int(found["rack_index"][0])
        view = _level_view(snapshot, topology, "rack").slice(index, 1)
        feeds = pl.concat(
            [topology.names("feed"), snapshot.feeds.drop("lineup_index")], how="horizontal"
        ).filter(pl.col("rack_index") == index)
        nodes = pl.concat(
            [topology.names("node").select("node"), snapshot.nodes], how="horizontal"
        ).filter(pl.col("rack_index") == index)
        return {
            **_first(view),
            "rack_type": found["rack_type"][0],
            "conversion_efficiency": float(found["conversion_efficiency"][0]),
            "timestamp_seconds": snapshot.timestamp,
            "feeds": _json_rows(feeds.drop("rack_index", "feed_index")),
            "nodes": _json_rows(nodes.drop("rack_index", "node_index")),
        }

    return app
