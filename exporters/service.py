"""The cycle runner: runs the pipeline every interval in a background thread and keeps the
latest snapshot and its rendered exposition for the HTTP layer to serve.

Scrapes never trigger work: every scraper gets the bytes of the last completed cycle, plain
or gzip, both made by the cycle thread before it publishes, so two Prometheus replicas cost
what one does, a slow cycle never makes a scrape slow, and no scrape holds a lock the cycle
waits on (publishing is one reference swap).
"""

from __future__ import annotations

import logging
import math
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
from collector.sources.deadline import cancel_reads
from collector.state import StateStore
from exporters.exposition import Rendered, Renderer

log = logging.getLogger(__name__)

# When this process started (Unix seconds): exposed as the process start time, so a
# restart shows in the exposition even where every counter continued from the state.
PROCESS_START_SECONDS = time.time()
# How long stop() waits for the cycle thread: SIGTERM ends the process within 5 s whatever a
# source is doing (a read still running is in a daemon thread of its own).
STOP_WAIT_SECONDS = 2.0

# Level 1: a campus exposition shrinks about 12x at a fraction of level 6's time.
GZIP_LEVEL = 1
# Pieces compressed side by side: big enough that cutting the deflate history at each
# boundary costs under 0.1 % of the size, small enough to spread a campus body over the cores.
GZIP_PIECE_BYTES = 8 << 20
# The fixed gzip header (RFC 1952): deflate, no name, no time (so equal bodies compress to
# equal bytes), operating system unknown.
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"


def gzip_body(
    body: bytes | memoryview, workers: int | None = None, piece_bytes: int = GZIP_PIECE_BYTES
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
        state: StateStore | None = None,
        state_every_seconds: float = 0.0,
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
        # Cycle slots passed over because the cycle before ran past them: skipped, never
        # queued (catching up would only read the same sources again, late).
        self.skipped = 0
        self.process_start_seconds = PROCESS_START_SECONDS
        # The counters' state directory (collector.state): saved with every cycle (at most
        # every state_every_seconds), and when the runner stops.
        self.state = state
        self.state_every_seconds = state_every_seconds
        self._last_saved: float | None = None
        # Monotonic time the cycle under way started (None between cycles), and why the cycle
        # thread ended if it did: what /readyz and /healthz report.
        self.cycle_started: float | None = None
        self.death: str | None = None

    @property
    def latest(self) -> Published | None:
        return self._latest

    def run_once(self) -> Published:
        snapshot = self.pipeline.run_cycle()
        previous = self._latest.rendered if self._latest else None
        rendered = self.renderer.render(
            snapshot,
            previous,
            self.failures,
            cycles_skipped=self.skipped,
            process_start_seconds=self.process_start_seconds,
        )
        started = time.perf_counter()
        gzipped = gzip_body(rendered.body)
        published = Published(snapshot, rendered, gzipped, time.perf_counter() - started)
        # Saved before it is published: no scraper ever sees a counter the state does not hold,
        # so a kill -9 at any moment never takes a counter backwards.
        self.save_state()
        self._latest = published  # one reference swap: readers see a whole cycle or the last
        return published

    def _loop(self) -> None:
        try:
            self._cycles()
        except BaseException as error:  # recorded for /healthz; /readyz turns 503 at once
            self.death = f"{type(error).__name__}: {error}"
            log.critical("the cycle thread stopped: %s", self.death, exc_info=True)
            raise
        finally:
            self.cycle_started = None

    def _cycles(self) -> None:
        next_start = self._monotonic()
        overrunning = False  # logged when a run of overruns starts, not every cycle
        while not self._stop.is_set():
            self.cycle_started = self._monotonic()
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
            self.cycle_started = None
            next_start += self.interval_seconds
            now = self._monotonic()
            if now > next_start:  # overran: skip the slots it ran into, start at the next one
                missed = math.ceil((now - next_start) / self.interval_seconds)
                self.skipped += missed
                next_start += missed * self.interval_seconds
                if not overrunning:
                    log.warning(
                        "cycle overran its %g s interval: %d cycle(s) skipped; counted among "
                        "the skipped cycles, logged again after a cycle on time",
                        self.interval_seconds,
                        missed,
                    )
                overrunning = True
            else:
                overrunning = False
            self._stop.wait(max(0.0, next_start - self._monotonic()))

    def save_state(self, force: bool = False) -> None:
        """Save the pipeline's counters if a state directory is kept and it is time to."""
        if self.state is None:
            return
        now = self._monotonic()
        due = self._last_saved is None or now - self._last_saved >= self.state_every_seconds
        if force or due:
            self.state.save(self.pipeline.counters())
            self._last_saved = now

    def stalled_for(self, limit_seconds: float) -> float | None:
        """Seconds the cycle under way has run, if more than ``limit_seconds``."""
        started = self.cycle_started
        if started is None:
            return None
        running = self._monotonic() - started
        return running if running > limit_seconds else None

    def start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="gigawatt-cycle", daemon=True
                )
                self._thread.start()

    def stop(self) -> None:
        """Stop cycling within STOP_WAIT_SECONDS, then save the counters one last time (a
        cycle still stuck past that is left to its daemon thread and the state already
        saved)."""
        self._stop.set()
        cancel_reads(self.pipeline.sources)
        if self._thread is not None:
            self._thread.join(timeout=STOP_WAIT_SECONDS)
            if self._thread.is_alive():
                log.warning("a cycle is still running at stop; its counters are not saved")
                return
        if self._thread is not None or self._latest is not None:
            self.save_state(force=True)

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
