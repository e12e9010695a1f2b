"""The cycle runner: runs the pipeline every interval in a background thread and keeps the
latest snapshot and its rendered exposition for the HTTP layer to serve.

Scrapes never trigger work: every scraper gets the bytes of the last completed cycle, so two
Prometheus replicas cost what one does, and a slow cycle never makes a scrape slow.
"""

from __future__ import annotations

import gzip
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from collector.pipeline import Pipeline, Snapshot
from collector.scenarios import ScenarioRun
from exporters.exposition import Rendered, Renderer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Published:
    """One completed cycle as served: the snapshot and its exposition."""

    snapshot: Snapshot
    rendered: Rendered
    _gzip: list[bytes]  # filled on first gzip request; one compression per cycle

    def gzipped(self) -> bytes:
        if not self._gzip:
            # Level 1: a campus exposition shrinks ~15x at a fraction of level 6's time.
            self._gzip.append(gzip.compress(self.rendered.body, compresslevel=1))
        return self._gzip[0]


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
        published = Published(snapshot, rendered, [])
        self._latest = published  # one reference swap: readers see a whole cycle or the last
        return published

    def _loop(self) -> None:
        next_start = self._monotonic()
        while not self._stop.is_set():
            try:
                published = self.run_once()
                log.debug(
                    "cycle %d: %.3f s, render %.3f s, %d series",
                    published.snapshot.cycles,
                    published.snapshot.cycle_seconds,
                    published.rendered.seconds,
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
