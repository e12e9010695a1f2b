"""The cycle runner: runs the pipeline every interval in a background thread and keeps the
latest snapshot and its rendered exposition for the HTTP layer to serve.

Scrapes never trigger work: every scraper gets the bytes of the last completed cycle, plain
or gzip, both made by the cycle thread before it publishes, so two Prometheus replicas cost
what one does, a slow cycle never makes a scrape slow, and no scrape holds a lock the cycle
waits on (publishing is one reference swap).
"""

from __future__ import annotations

import logging
import os
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from collector.pipeline import Pipeline, Snapshot
from collector.scenarios import ScenarioRun
from exporters.exposition import Rendered, Renderer

log = logging.getLogger(__name__)

# Level 1: a campus exposition shrinks about 12x at a fraction of level 6's time.
GZIP_LEVEL = 1
# Pieces compressed side by side: big enough that cutting the deflate history at each
# boundary costs under 0.1 % of the size, small enough to spread a campus body over the cores.
GZIP_PIECE_BYTES = 8 << 20
# The fixed gzip header (RFC 1952): deflate, no name, no time (so equal bodies compress to
# equal bytes), operating system unknown.
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"


def gzip_body(
    body: bytes, workers: int | None = None, piece_bytes: int = GZIP_PIECE_BYTES
) -> bytes:
    """``body`` as one gzip member, its pieces deflated in parallel threads.

    zlib releases the GIL while it compresses, so on a campus body (over 200 MB) this takes
    about 1/cores of ``gzip.compress``. Each piece but the last ends with a sync flush, which
    byte-aligns the stream so the raw deflate pieces concatenate into one valid stream (as
    pigz does); any gzip reader decodes it as one member.
    """
    view = memoryview(body)
    pieces = [view[start : start + piece_bytes] for start in range(0, len(body), piece_bytes)]
    if not pieces:
        pieces = [view]
    last = len(pieces) - 1

    def deflate(index: int) -> bytes:
        compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)
        end = zlib.Z_FINISH if index == last else zlib.Z_SYNC_FLUSH
        return compressor.compress(pieces[index]) + compressor.flush(end)

    threads = min(workers or os.cpu_count() or 1, len(pieces))
    if threads > 1:
        with ThreadPoolExecutor(threads, thread_name_prefix="gigawatt-gzip") as pool:
            deflated = list(pool.map(deflate, range(len(pieces))))
    else:
        deflated = [deflate(index) for index in range(len(pieces))]
    trailer = struct.pack("<II", zlib.crc32(body), len(body) & 0xFFFFFFFF)
    return b"".join([_GZIP_HEADER, *deflated, trailer])


@dataclass(frozen=True)
class Published:
    """One completed cycle as served: the snapshot, its exposition and that exposition gzipped
    (made before publishing, so every gzip scraper gets the same bytes and none compresses)."""

    snapshot: Snapshot
    rendered: Rendered
    gzipped: bytes
    gzip_seconds: float


class CycleRunner:
    def __init__(
        self,
        pipeline: Pipeline,
        renderer: Renderer,
        interval_seconds: float,
        monotonic: Callable[[], float] = time.monotonic,
        scenario: ScenarioRun | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.scenario = scenario  # the incident scenario its sources play, if any
        self.renderer = renderer
        self.interval_seconds = interval_seconds
        self._monotonic = monotonic
        self._latest: Published | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.failures = 0

    @property
    def latest(self) -> Published | None:
        return self._latest

    def run_once(self) -> Published:
        snapshot = self.pipeline.run_cycle()
        previous = self._latest.rendered if self._latest else None
        rendered = self.renderer.render(snapshot, previous, self.failures)
        started = time.perf_counter()
        gzipped = gzip_body(rendered.body)
        published = Published(snapshot, rendered, gzipped, time.perf_counter() - started)
        self._latest = published  # one reference swap: readers see a whole cycle or the last
        return published

    def _loop(self) -> None:
        next_start = self._monotonic()
        while not self._stop.is_set():
            try:
                published = self.run_once()
                log.debug(
                    "cycle %d: %.3f s, render %.3f s, gzip %.3f s, %d series",
                    published.snapshot.cycles,
                    published.snapshot.cycle_seconds,
                    published.rendered.seconds,
                    published.gzip_seconds,
                    published.rendered.series,
                )
            except Exception:  # keep serving the last good cycle; readiness goes stale
                self.failures += 1
                log.exception("cycle failed; serving the previous one")
            next_start += self.interval_seconds
            delay = next_start - self._monotonic()
            if delay < 0:  # overran: start again now, and do not try to catch up
                next_start = self._monotonic()
                delay = 0.0
            self._stop.wait(delay)

    def start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="gigawatt-cycle", daemon=True
                )
                self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()


def close_sources(sources: Iterable[object]) -> None:
    """Close every source that has a ``close`` (a subprocess and its thread, connections, NVML);
    one that fails to close is logged and the others are still closed."""
    for source in sources:
        close = getattr(source, "close", None)
        if callable(close):
            try:
                close()
            except Exception:
                log.exception("closing source %s failed", getattr(source, "name", source))
