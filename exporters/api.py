"""The HTTP service: /metrics, health, readiness and a small JSON API, built by a factory.

``create_app(settings, runner)`` serves a cycle runner built elsewhere (by the composition
root, exporters.composition); this module is HTTP only and importing it starts nothing. With
``run_cycles`` the app runs the runner: it starts its cycle thread when the app starts and
stops it and closes its sources when the app stops. Without, the caller drives the runner
(a test calls ``run_once`` with a clock of its own) and keeps its sources.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Annotated, Any, Literal

import polars as pl
from fastapi import Depends, FastAPI, Header, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel

from collector.pipeline import Snapshot
from collector.site.topology import Topology
from exporters.exposition import CONTENT_TYPE
from exporters.service import CycleRunner, Published, close_sources
from exporters.version import VERSION
from exporters.web_config import BasicAuth, RequestLimits, WebConfig

if TYPE_CHECKING:
    from exporters.composition import ServiceSettings


log = logging.getLogger(__name__)

# The environment variable holding the bearer token of state-changing endpoints, when no
# --api-token-file is given.
API_TOKEN_ENV = "GIGAWATT_API_TOKEN"
# Paging bounds: the largest level (racks) of a site within its limits fits in a few pages.
MAX_PAGE_ITEMS = 100_000
MAX_OFFSET = 10_000_000
MAX_NAME_CHARACTERS = 200
# How long the app waits for its sources to close when it stops (SIGTERM ends within 5 s).
CLOSE_WAIT_SECONDS = 2.0


class Problem(BaseModel):
    """Why a request was refused (400, 404) or could not be answered yet (503)."""

    detail: str


def _answers(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI documentation of the error answers a route gives, besides 200 and 422."""
    meaning = {
        400: "The filters do not fit the level asked for.",
        401: "A bearer token is required.",
        403: "The bearer token is wrong, or none is configured.",
        404: "No such entity in this site.",
        503: "No cycle has completed yet.",
    }
    return {status: {"model": Problem, "description": meaning[status]} for status in statuses}


def require_token(
    request: Request,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> None:
    """The dependency of every state-changing endpoint: ``Authorization: Bearer TOKEN`` with
    the token of --api-token-file or GIGAWATT_API_TOKEN. Without one configured, every such
    request is refused (403): nothing changes state by default."""
    expected: str | None = request.app.state.api_token
    if expected is None:
        raise HTTPException(403, "state-changing endpoints are off: no API token is configured")
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not given:
        raise HTTPException(401, "a bearer token is required", {"WWW-Authenticate": "Bearer"})
    if not hmac.compare_digest(given.strip().encode(), expected.encode()):
        raise HTTPException(403, "wrong bearer token")


TokenDep = Annotated[None, Depends(require_token)]


def _runner(request: Request) -> CycleRunner:
    runner: CycleRunner = request.app.state.runner
    return runner


RunnerDep = Annotated[CycleRunner, Depends(_runner)]


def _published(runner: CycleRunner) -> Published:
    latest = runner.latest
    if latest is None:
        raise HTTPException(status_code=503, detail="no cycle has completed yet")
    return latest


# A body is handed to the server in slices of this size, each once the socket took the one
# before. Handed over whole, the event loop copies what the socket cannot take at once into its
# own buffer (asyncio before Python 3.12), holding the interpreter lock for the copy: ten
# plain scrapes of a campus body are 1.6 GB copied while the cycle thread waits.
BODY_SLICE_BYTES = 1 << 20


def body_response(body: bytes | memoryview, headers: dict[str, str]) -> Response:
    """The exposition as a response: whole when small, else in slices of one view (no copy)
    with its Content-Length, so the client sees one plain body either way."""
    if len(body) <= BODY_SLICE_BYTES:
        return Response(body, media_type=CONTENT_TYPE, headers=headers)
    view = memoryview(body)

    async def slices() -> AsyncIterator[memoryview]:
        for start in range(0, len(view), BODY_SLICE_BYTES):
            yield view[start : start + BODY_SLICE_BYTES]

    return StreamingResponse(
        slices(), media_type=CONTENT_TYPE, headers={**headers, "Content-Length": str(len(view))}
    )


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
    web: WebConfig | None = None,
    api_token: str | None = None,
) -> FastAPI:
    """The app serving ``runner``'s latest cycle; ``settings`` says when data is stale and how
    large a request may be; ``web`` adds basic authentication (TLS is the server's, see
    exporters.cli.serve); ``api_token`` is what TokenDep endpoints require."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.runner = runner
        if run_cycles:
            runner.start()
        try:
            yield
        finally:
            if run_cycles:
                # Off the event loop: a source may run a loop of its own to close, and one
                # that hangs must not hold up the exit.
                await asyncio.to_thread(runner.stop)
                closing = asyncio.to_thread(close_sources, runner.pipeline.sources)
                try:
                    await asyncio.wait_for(closing, CLOSE_WAIT_SECONDS)
                except TimeoutError:
                    log.warning("sources still closing after %g s; exiting", CLOSE_WAIT_SECONDS)
                if runner.state is not None:
                    runner.state.close()

    app = FastAPI(
        title="gigawatt",
        version=VERSION,
        summary="Power and telemetry of a gigawatt-scale AI training campus.",
        lifespan=lifespan,
    )
    app.state.api_token = api_token
    app.state.web_config = web
    app.add_middleware(RequestLimits, max_body_bytes=settings.max_request_bytes)
    if web is not None and web.users:
        bearer = api_token.encode() if api_token else None
        app.add_middleware(BasicAuth, users=web.users, bearer_token=bearer)

    def topology_of(active: CycleRunner) -> Topology:
        return active.pipeline.topology

    # Both bodies are bytes made by the cycle thread before it published them: a scrape costs
    # a reference lookup and a header check, whatever the body's size. The handler is async
    # and reads the runner without a dependency, so it runs on the event loop without a
    # thread-pool hop.
    @app.get(
        "/metrics",
        response_class=Response,
        summary="Prometheus exposition (text 0.0.4)",
        responses=_answers(503),
    )
    async def metrics(request: Request) -> Response:
        published = _published(request.app.state.runner)
        if accepts_gzip(request.headers.get("accept-encoding", "")):
            # A tenth of the plain size: handed over whole, so it never waits in turn behind
            # the slices of plain bodies being sent.
            return Response(
                published.gzipped,
                media_type=CONTENT_TYPE,
                headers={"Content-Encoding": "gzip", "Vary": "Accept-Encoding"},
            )
        return body_response(published.rendered.body, {"Vary": "Accept-Encoding"})

    def stopped(active: CycleRunner) -> str | None:
        """Why the cycles are not running, or None (a runner driven by hand has no thread)."""
        if not run_cycles or active.alive:
            return None
        return f"cycle thread stopped: {active.death or 'not running'}"

    def stalled(active: CycleRunner) -> str | None:
        limit = settings.stale_after_intervals * settings.interval_seconds
        running = active.stalled_for(limit) if run_cycles else None
        if running is None:
            return None
        return f"the cycle under way has run {running:.1f} s (limit {limit:.1f} s)"

    @app.get(
        "/healthz",
        summary="Liveness: the process and its cycle thread are running",
        responses={500: {"description": "The cycle thread stopped; the reason says why."}},
    )
    def healthz(active: RunnerDep) -> JSONResponse:
        reason = stopped(active)
        if reason is not None:
            return JSONResponse({"status": "cycle thread stopped", "reason": reason}, 500)
        slow = stalled(active)  # alive, but readiness says not ready: say why here too
        return JSONResponse({"status": "ok"} if slow is None else {"status": "ok", "stalled": slow})

    @app.get(
        "/readyz",
        summary="Readiness: cycles run, one has completed and its data is fresh",
        responses={503: {"description": "Not ready; the reason says why."}},
    )
    def readyz(active: RunnerDep) -> JSONResponse:
        latest = active.latest
        reason = stopped(active) or stalled(active)
        if reason is not None:
            return JSONResponse({"ready": False, "reason": reason}, 503)
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

    @app.get(
        "/api/v1/site",
        summary="Site summary: power, capacity, contract, PUE, sources",
        responses=_answers(503),
    )
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

    @app.get(
        "/api/v1/power",
        summary="Power per building, hall, row or rack",
        responses=_answers(400, 404, 503),
    )
    def power(
        active: RunnerDep,
        level: Literal["building", "hall", "row", "rack"] = "building",
        building: Annotated[
            str | None,
            Query(
                description="only under this building", min_length=1, max_length=MAX_NAME_CHARACTERS
            ),
        ] = None,
        hall: Annotated[
            str | None,
            Query(description="only under this hall", min_length=1, max_length=MAX_NAME_CHARACTERS),
        ] = None,
        row: Annotated[
            str | None,
            Query(description="only under this row", min_length=1, max_length=MAX_NAME_CHARACTERS),
        ] = None,
        limit: Annotated[
            int | None, Query(ge=1, le=MAX_PAGE_ITEMS, description="at most this many items")
        ] = None,
        offset: Annotated[
            int, Query(ge=0, le=MAX_OFFSET, description="skip this many items first")
        ] = 0,
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

    @app.get(
        "/api/v1/racks/{rack}",
        summary="One rack with its PDU feeds and nodes",
        responses=_answers(404, 503),
    )
    def rack_detail(
        rack: Annotated[str, Path(min_length=1, max_length=MAX_NAME_CHARACTERS)], active: RunnerDep
    ) -> dict[str, Any]:
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
