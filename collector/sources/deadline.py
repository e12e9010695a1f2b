"""Sources read under a deadline: one slow or hanging source costs its own data for a cycle,
never the cycle.

``with_deadlines(sources, budget_seconds)`` wraps every source in a DeadlineSource sharing
one ReadGroup. The first read of a cycle starts every member's read at once, each in a
thread of its own, and every read is then waited for until the cycle's budget is spent (the
sources run side by side, so the budget is what the slowest may take, not what they take in
turn). A read that has not returned by then is missing for the cycle: the source hands the
pipeline an empty batch with its targets down and one ``deadline_exceeded`` problem, counted
among its problems like any other. The read goes on in its thread; while it has not returned
the source is not read again (no pile-up of stuck reads), and each cycle it misses is
counted the same way.

Reads run in daemon threads, so a read that never returns never holds up the process's
exit; ``cancel()`` wakes every waiting cycle at once (SIGTERM).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import numpy.typing as npt
import polars as pl

from collector import schemas
from collector.sources.base import SampleBatch, Source

DEADLINE_REASON = "deadline_exceeded"
# How often a waiting cycle looks at the cancel flag.
_WAKE_SECONDS = 0.05


class _Read:
    """One read in its thread: its batch or its error once done."""

    def __init__(self, source: Source, now: float) -> None:
        self.now = now
        self.done = threading.Event()
        self.batch: SampleBatch | None = None
        self.error: BaseException | None = None
        self.started = time.monotonic()
        self._thread = threading.Thread(
            target=self._run, args=(source,), name=f"gigawatt-read-{source.name}", daemon=True
        )
        self._thread.start()

    def _run(self, source: Source) -> None:
        try:
            self.batch = source.read(self.now)
        except BaseException as error:  # handed to the cycle, which counts it as a failed read
            self.error = error
        finally:
            self.done.set()


class ReadGroup:
    """The sources of one pipeline: a cycle starts their reads together and waits for them
    until ``budget_seconds`` after it started."""

    def __init__(
        self, budget_seconds: float, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.budget_seconds = budget_seconds
        self.members: list[DeadlineSource] = []
        self._monotonic = monotonic
        self._cycle_now: float | None = None
        self._deadline = 0.0
        self._cancelled = threading.Event()
        self._lock = threading.Lock()

    def cancel(self) -> None:
        """Stop waiting for anything, now and from now on (the service is stopping)."""
        self._cancelled.set()

    def _start_cycle(self, now: float) -> None:
        with self._lock:
            if self._cycle_now == now:
                return
            self._cycle_now = now
            self._deadline = self._monotonic() + self.budget_seconds
            for member in self.members:
                member._start(now)

    def _wait(self, read: _Read) -> bool:
        """Whether ``read`` returned before the cycle's deadline."""
        while not self._cancelled.is_set():
            remaining = self._deadline - self._monotonic()
            if remaining <= 0:
                return read.done.is_set()
            if read.done.wait(min(remaining, _WAKE_SECONDS)):
                return True
        return read.done.is_set()


class DeadlineSource:
    """Source ``inner.name``, read in a thread of its own under its group's deadline."""

    def __init__(self, inner: Source, group: ReadGroup) -> None:
        self.inner = inner
        self.group = group
        self.missed = 0  # reads not returned in time, or skipped because one was still running
        self._read: _Read | None = None
        self._skipped_at: float | None = None
        self._targets: list[str] = []
        group.members.append(self)

    @property
    def name(self) -> str:
        return self.inner.name

    def _start(self, now: float) -> None:
        running = self._read
        if running is not None and not running.done.is_set():
            self._skipped_at = now  # the last cycle's read is still out: do not stack another
            return
        self._skipped_at = None
        self._read = _Read(self.inner, now)

    def read(self, now: float) -> SampleBatch:
        self.group._start_cycle(now)
        read = self._read
        if self._skipped_at == now or read is None:
            self.missed += 1
            return self._missing(now, "the previous read has not returned yet; not read again")
        if not self.group._wait(read):
            self.missed += 1
            return self._missing(
                now,
                f"no answer within the cycle's budget of {self.group.budget_seconds:g} s; "
                "missing for this cycle",
            )
        if read.error is not None:
            raise read.error
        assert read.batch is not None
        if read.batch.targets.height:
            self._targets = read.batch.targets.get_column("target").to_list()
        return read.batch

    def _missing(self, now: float, message: str) -> SampleBatch:
        """No data, every target known from earlier reads down, and one problem."""
        targets = self._targets or [self.name]
        return SampleBatch(
            targets=pl.DataFrame(
                {
                    "target": targets,
                    "up": [0.0] * len(targets),
                    "duration_seconds": [self.group.budget_seconds] * len(targets),
                },
                schema=schemas.TARGET_HEALTH,
            ),
            problems=pl.DataFrame(
                {
                    "source": [self.name],
                    "target": [self.name],
                    "location": [""],
                    "reason": [DEADLINE_REASON],
                    "message": [message],
                },
                schema=schemas.PROBLEMS,
            ),
        )

    def counter_state(self) -> dict[str, npt.NDArray[np.float64]]:
        """The inner source's own counter state, if it keeps any (collector.state)."""
        state = getattr(self.inner, "counter_state", None)
        return dict(state()) if callable(state) else {}

    def restore_counter_state(self, stored: Mapping[str, npt.NDArray[np.float64]]) -> None:
        restore = getattr(self.inner, "restore_counter_state", None)
        if callable(restore):
            restore(stored)

    def close(self) -> None:
        close = getattr(self.inner, "close", None)
        if callable(close):
            close()


def with_deadlines(sources: Sequence[Source], budget_seconds: float) -> list[Source]:
    """``sources``, each read under one shared cycle budget (see the module docstring)."""
    group = ReadGroup(budget_seconds)
    return [DeadlineSource(source, group) for source in sources]


def cancel_reads(sources: Sequence[object]) -> None:
    """Wake every cycle waiting on a read of ``sources`` (those wrapped by with_deadlines)."""
    for outer in sources:
        source: object = outer
        while source is not None:  # under a scenario's or a shard's wrapper
            if isinstance(source, DeadlineSource):
                source.group.cancel()
                break
            source = getattr(source, "inner", None)
