"""Source ``prometheus``: scrape Prometheus text and OpenMetrics targets over HTTP(S).

The targets are the exporters an operator already runs: dcgm-exporter, node_exporter,
ipmi_exporter, neuron-monitor's Prometheus companion, Kepler. ``scrape_all(targets, now)`` reads
every target once and hands back ``schemas.READINGS`` and ``schemas.PROBLEMS`` frames (through
``promtext.parse_exposition`` and ``exporter_maps.readings_from_exposition``) and a health frame
with one row per target. From dcgm-exporter's line::

    DCGM_FI_DEV_POWER_USAGE{gpu="0",UUID="GPU-20c5...",Hostname="424773df46e0"} 8.969000

comes the reading, and the target's health row::

    source="prometheus" target="http://10.0.7.21:9400/metrics" host="424773df46e0"
    device="GPU-20c5..." device_kind="accelerator" metric="power_watts" value=8.969
    unit="watts" estimated=false timestamp_seconds=<now>

    target="http://10.0.7.21:9400/metrics" exporter="dcgm" up=1 duration_seconds=0.004
    samples=304 problems=0 last_success_seconds=<now>

Degrade, never die. A target that refuses the connection, times out, answers an HTTP error, a
Content-Type this parser cannot read (protobuf, JSON, HTML) or a body over its size limit costs
only its own data: it is ``up`` 0 with one problem naming the reason, and the call goes on.
Problem reasons from the HTTP side: ``connect_error``, ``tls_error``, ``timeout``,
``read_error`` (the connection broke mid-answer), ``http_status``, ``content_type``,
``too_large``, ``headers_missing`` (an environment variable a header needs is not set),
``scrape_error`` (a bug met on one target; logged with its traceback). After parsing: the
parser's own reasons (location ``line N``; promtext reads leniently, so a bad line costs that
line), the exporter maps' (``not_supported``, ``not_finite``, ``missing_identity``,
``duplicate``), ``unknown_exporter`` (``exporter: auto`` found no known names) and ``parse`` /
``map_error`` (the parser or the map failed on a payload: ``up`` 0, logged).

Time bounds. Each target has ``timeout_seconds`` for its whole request, body included
(``asyncio.timeout``; httpx's own timeouts bound single socket operations, so a server that
drips a byte a second would outlive them). The call has ``deadline_seconds`` for the network
phase: a target still unanswered then is cancelled and reported (``timeout``), and the call
returns with everything else. What arrived is parsed as it arrives (below), so the call ends
shortly after its deadline, however long a target hangs.

HTTP client. At most ``max_concurrency`` targets are read at once (a semaphore), and at most
``max_connections_per_origin`` per origin (an ipmi_exporter serving many ``?target=`` URLs
is one origin). ``ScrapeClients`` keeps one ``httpx.AsyncClient`` per origin and TLS setting;
targets on one origin share its pool and keep-alive connections within a call, and a
``Scraper`` keeps the clients open between calls, so a target's connection is reused from one
cycle to the next, as Prometheus does. One client for all targets would be simpler, but
httpcore's pool scans every connection and queued request at each assignment, which at 64
requests in flight doubles the cost of HTTP (2,000 loopback targets: 4.3 s a cycle against
2.2 s with a client per origin; bench/bench_scrape.py). TLS is
verified unless ``tls_verify`` is false; ``ca_bundle`` names the CA. Proxy variables from the
environment are ignored (exporters sit on the management network). Header values (a bearer
token) come only from environment variables named in ``headers_env``; a URL with user info is
refused.

Throughput. Parsed one call per payload, parsing costs about three times what fetching does
(an 8-GPU dcgm-exporter payload: 3.7 ms against 1.1 ms), and most of a call is fixed cost.
``parse_many`` parses the text payloads that share a skeleton (the same comment lines and
sample names, line by line: one exporter version on one hardware type) in one
``parse_exposition`` call, about four times cheaper per payload, with exactly the result of
one call each (see its docstring). Batches of ``batch_targets`` payloads
are parsed and mapped on worker threads (Polars releases the GIL) while the event loop is
still fetching, and the samples of a batch are mapped in one ``readings_from_exposition``
call per exporter.

``Scraper(targets).scrape(now)`` is the synchronous entry point for the pipeline's thread: it
runs ``scrape_all`` to completion on an event loop of its own (``asyncio.Runner``, which is
``asyncio.run`` with a loop that outlives one call, so that the clients do too) and remembers
each target's last success for the health frame's ``last_success_seconds``.

Layout. ``targets`` validates the configuration, ``fetch`` is the HTTP side, ``batch_parse``
parses payloads of one skeleton together, ``parse_stage`` parses and maps on worker threads
and ``assembly`` builds the call's frames; this module runs a call and keeps a Scraper's state.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

from collector.sources.base import ClosedOnExit
from collector.sources.scrape.assembly import TARGET_HEALTH, ScrapeResult, assemble
from collector.sources.scrape.batch_parse import parse_many
from collector.sources.scrape.fetch import Fetched, ScrapeClients, fetch_one
from collector.sources.scrape.parse_stage import Item, ParseStage
from collector.sources.scrape.targets import AUTO, ScrapeTarget, check_unique_urls

__all__ = [
    "AUTO",
    "DEFAULT_DEADLINE_SECONDS",
    "SOURCE",
    "TARGET_HEALTH",
    "ScrapeClients",
    "ScrapeResult",
    "ScrapeTarget",
    "Scraper",
    "parse_many",
    "scrape_all",
]

SOURCE = "prometheus"
DEFAULT_DEADLINE_SECONDS = 10.0


async def scrape_all(
    targets: Sequence[ScrapeTarget],
    now: float,
    *,
    max_concurrency: int = 64,
    deadline_seconds: float = DEFAULT_DEADLINE_SECONDS,
    clients: ScrapeClients | None = None,
    environ: Mapping[str, str] | None = None,
    last_success: Mapping[str, float] | None = None,
    source: str = SOURCE,
    batch_targets: int = 128,
    parse_workers: int | None = None,
) -> ScrapeResult:
    """Scrape every target once; never raises for what one target does (module docstring).

    ``now`` stamps readings without a timestamp of their own and the health frame.
    ``clients``: open clients to reuse (a Scraper's); by default the call opens and closes its
    own. ``environ`` is where ``headers_env`` names are looked up (default ``os.environ``).
    ``last_success`` (URL -> seconds) fills ``last_success_seconds`` for targets down now.
    ``parse_workers`` threads (default: two, or one on a single core) parse and map batches of
    ``batch_targets`` payloads. Raises ValueError for two targets with one URL or bad limits.
    """
    targets = tuple(targets)
    check_unique_urls(targets)
    if max_concurrency < 1 or batch_targets < 1 or not deadline_seconds > 0:
        raise ValueError("max_concurrency and batch_targets must be >= 1, deadline_seconds > 0")
    own_clients = clients is None
    client_pool = ScrapeClients() if clients is None else clients
    env: Mapping[str, str] = os.environ if environ is None else environ
    workers = parse_workers or min(2, os.cpu_count() or 1)
    fetched: dict[int, Fetched] = {}
    began = time.monotonic()
    try:
        with ThreadPoolExecutor(workers, thread_name_prefix="scrape-parse") as executor:
            stage = ParseStage(executor, now, source, batch_targets)
            slots = asyncio.Semaphore(max_concurrency)
            origin_slots = {
                origin: asyncio.Semaphore(client_pool.max_connections_per_origin)
                for origin in {target.origin for target in targets}
            }

            async def scrape(index: int, target: ScrapeTarget) -> None:
                result = await fetch_one(
                    target, client_pool, slots, origin_slots[target.origin], env
                )
                fetched[index] = result
                if result.body is not None:
                    stage.add(Item(index, target, result.body, result.content_type))

            tasks = [asyncio.create_task(scrape(i, t)) for i, t in enumerate(targets)]
            try:
                async with asyncio.timeout(deadline_seconds):
                    await asyncio.gather(*tasks)
            except TimeoutError:
                pass  # the unfinished tasks were cancelled; they are reported below
            batches = await stage.results()
    finally:
        if own_clients:
            await client_pool.aclose()
    waited = time.monotonic() - began
    return assemble(
        targets, now, fetched, batches, deadline_seconds, waited, last_success or {}, source
    )


class Scraper(ClosedOnExit):
    """Scrapes a fixed set of targets once per ``scrape`` call, from a plain thread.

    Keeps, between calls: the event loop and the HTTP clients (keep-alive connections to every
    target), and the time each target was last up. Calls are serialized by a lock. Use as a
    context manager, or call ``close``.
    """

    def __init__(
        self,
        targets: Sequence[ScrapeTarget],
        *,
        max_concurrency: int = 64,
        deadline_seconds: float = DEFAULT_DEADLINE_SECONDS,
        max_connections_per_origin: int = 4,
        environ: Mapping[str, str] | None = None,
        source: str = SOURCE,
        batch_targets: int = 128,
        parse_workers: int | None = None,
    ) -> None:
        self.targets = tuple(targets)
        check_unique_urls(self.targets)
        self.max_concurrency = max_concurrency
        self.deadline_seconds = deadline_seconds
        self.source = source
        self.batch_targets = batch_targets
        self.parse_workers = parse_workers
        self._environ = environ
        self._max_connections_per_origin = max_connections_per_origin
        self._last_success: dict[str, float] = {}
        self._runner: asyncio.Runner | None = None
        self._clients: ScrapeClients | None = None
        self._lock = threading.Lock()

    @property
    def last_success(self) -> Mapping[str, float]:
        """URL -> the ``now`` of the last call in which that target was up."""
        return dict(self._last_success)

    def scrape(self, now: float) -> ScrapeResult:
        """One call of scrape_all, run to completion; from a thread with no running loop."""
        with self._lock:
            if self._runner is None:
                self._runner = asyncio.Runner()
                self._clients = ScrapeClients(
                    max_connections_per_origin=self._max_connections_per_origin
                )
            result = self._runner.run(
                scrape_all(
                    self.targets,
                    now,
                    max_concurrency=self.max_concurrency,
                    deadline_seconds=self.deadline_seconds,
                    clients=self._clients,
                    environ=self._environ,
                    last_success=self._last_success,
                    source=self.source,
                    batch_targets=self.batch_targets,
                    parse_workers=self.parse_workers,
                )
            )
            for url, up in result.targets.select("target", "up").iter_rows():
                if up:
                    self._last_success[url] = now
            return result

    def close(self) -> None:
        """Close every connection and the event loop; a later ``scrape`` opens new ones."""
        with self._lock:
            runner, clients = self._runner, self._clients
            self._runner = self._clients = None
            if runner is None:
                return
            try:
                if clients is not None:
                    runner.run(clients.aclose())
            finally:
                runner.close()
