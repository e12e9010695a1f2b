"""neuron-monitor's JSON stream, read continuously: the latest report, ready for each cycle.

neuron-monitor writes one report per period (5 s by default) on stdout and never stops, so a
cycle cannot read "one report" the way it reads a file. ``NeuronStream`` reads the stream in a
daemon thread, parses each line as it arrives (collector.sources.neuron) and keeps the latest
report and the time its line was read. Each cycle, ``take(now)`` returns that report's
readings (stamped with that time) and the problems found since the previous cycle; it never
waits on the stream. Three inputs, exactly one per stream:

* ``command``: neuron-monitor run as a subprocess (an argv list, no shell). When it exits it
  is reported (``monitor_exited``, with its exit status and the tail of its stderr) and
  started again after a backoff that doubles from ``restart_min_seconds`` to
  ``restart_max_seconds``, back to the minimum once a run lasted that long. A command that
  cannot be started is ``monitor_not_started`` and is retried the same way.
* ``file``: a file another process appends to, followed like ``tail -F``: reading starts at
  its end, a partial last line waits for its newline, and a truncated, replaced (rotated) or
  not yet created file is reopened and read from its start.
* ``stdin``: a stream handed in (the service's standard input); its end is reported once
  (``stream_ended``) and the last report ages out.

What ``take`` gives:

* no report yet: no readings and up 0 (after ``max_report_age_seconds`` of waiting, also a
  ``no_report`` problem);
* a report older than ``max_report_age_seconds``: no readings, up 0, ``stale_report``;
* otherwise the latest report's readings and up 1, as often as cycles ask, until a newer
  report or its age replaces it. A line that is not a report (not JSON, not an object, too
  long) is a problem and never replaces the latest report.

Problems wait for the next cycle in a bounded list (``max_pending_problems``); a flood beyond it
is summed up as one ``problems_dropped``. ``start`` is called by the first ``take``, so building
a stream starts nothing; ``close`` stops the thread and ends the subprocess (terminate, a short
wait, kill).

Problem reasons, beyond those of collector.sources.neuron: ``monitor_exited``,
``monitor_not_started``, ``not_found``, ``unreadable``, ``partial_line``, ``stream_ended``,
``reader_failed``, ``no_report``, ``stale_report``, ``problems_dropped``.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import shlex
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import polars as pl

from collector import schemas
from collector.sources import neuron
from collector.sources.base import ClosedOnExit

log = logging.getLogger(__name__)

STDIN_TARGET = "stdin"
# Stderr kept from the current neuron-monitor run, for the monitor_exited message.
STDERR_TAIL_LINES = 5
MAX_STDERR_LINE_BYTES = 512
_DRAIN_CHUNK = 64 * 1024

Row = dict[str, object]


@dataclass(frozen=True)
class StreamCycle:
    """What one cycle takes from the stream."""

    readings: pl.DataFrame  # schemas.READINGS: the latest report, or empty
    problems: pl.DataFrame  # schemas.PROBLEMS found since the previous cycle
    up: bool  # a fresh report is there


class NeuronStream(ClosedOnExit):
    """Reads one neuron-monitor stream (a command, a followed file or stdin); see the module
    docstring. ``target``: the command's argv[0], the file path or ``stdin``."""

    def __init__(
        self,
        *,
        command: Sequence[str] | None = None,
        file: Path | None = None,
        stdin: IO[bytes] | None = None,
        host: str | None = None,
        max_report_age_seconds: float = 30.0,
        max_line_bytes: int = neuron.DEFAULT_MAX_LINE_BYTES,
        restart_min_seconds: float = 1.0,
        restart_max_seconds: float = 30.0,
        poll_seconds: float = 0.25,
        stop_grace_seconds: float = 2.0,
        max_pending_problems: int = 1000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        inputs = [given for given in (command, file, stdin) if given is not None]
        if len(inputs) != 1:
            raise ValueError("give exactly one of command, file and stdin")
        if command is not None and (not command or not command[0]):
            raise ValueError("command needs a program: an argv list such as [neuron-monitor]")
        if not max_report_age_seconds > 0 or not poll_seconds > 0:
            raise ValueError("max_report_age_seconds and poll_seconds must be positive")
        if not 0 < restart_min_seconds <= restart_max_seconds:
            raise ValueError("need 0 < restart_min_seconds <= restart_max_seconds")
        if max_line_bytes < 1 or max_pending_problems < 1:
            raise ValueError("max_line_bytes and max_pending_problems must be positive")
        self.command = tuple(command) if command is not None else None
        self.file = file
        self._stdin = stdin
        if self.command is not None:
            self.target = self.command[0]
        elif file is not None:
            self.target = str(file)
        else:
            self.target = STDIN_TARGET
        self.host = host
        self.max_report_age_seconds = max_report_age_seconds
        self.max_line_bytes = max_line_bytes
        self.restart_min_seconds = restart_min_seconds
        self.restart_max_seconds = restart_max_seconds
        self.poll_seconds = poll_seconds
        self.stop_grace_seconds = stop_grace_seconds
        self.max_pending_problems = max_pending_problems
        self._clock = clock
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._followed: IO[bytes] | None = None  # the file's handle, opened by start()
        self._started_at: float | None = None
        self._latest: pl.DataFrame | None = None
        self._latest_arrival: float | None = None
        self._pending: list[Row] = []
        self._dropped = 0
        self.reports = 0  # reports (JSON objects) read since start, for tests and logs

    # --- the cycle's side ---------------------------------------------------------------------

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        """The neuron-monitor subprocess running now (command input), if any."""
        return self._process

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start reading (once). A followed file is opened here, at its end, so every line
        appended after ``start`` returns is read."""
        with self._lock:
            if self._thread is not None or self._stop.is_set():
                return
            self._started_at = self._clock()
            if self.file is not None:  # (why it cannot be opened, the thread reports)
                self._followed, _ = self._open_followed(at_end=True)
            self._thread = threading.Thread(
                target=self._run, name=f"neuron-stream {self.target}", daemon=True
            )
            self._thread.start()

    def take(self, now: float) -> StreamCycle:
        """The latest report if fresh at ``now``, and the problems since the last take."""
        self.start()
        with self._lock:
            problems, self._pending = self._pending, []
            dropped, self._dropped = self._dropped, 0
            latest, arrival, started = self._latest, self._latest_arrival, self._started_at
        if dropped:
            problems.append(
                self._problem(
                    "stream",
                    "problems_dropped",
                    f"{dropped} more problems since the last cycle were not kept",
                )
            )
        readings = schemas.empty(schemas.READINGS)
        up = False
        if latest is None or arrival is None:
            waited = now - started if started is not None else 0.0
            if waited > self.max_report_age_seconds:
                problems.append(
                    self._problem(
                        "stream", "no_report", f"no report in the {waited:.0f} s since start"
                    )
                )
        elif now - arrival > self.max_report_age_seconds:
            problems.append(
                self._problem(
                    "stream",
                    "stale_report",
                    f"the latest report was read {now - arrival:.1f} s ago, more than "
                    f"{self.max_report_age_seconds} s: not used",
                )
            )
        else:
            readings, up = latest, True
        return StreamCycle(readings, pl.DataFrame(problems, schema=dict(schemas.PROBLEMS)), up)

    def close(self) -> None:
        """Stop the thread and end the subprocess: terminate, wait briefly, kill."""
        self._stop.set()
        with self._lock:
            process, thread, followed = self._process, self._thread, self._followed
        if process is not None:
            _end(process, self.stop_grace_seconds)
        if thread is not None and self._stdin is None:
            # (A thread blocked reading stdin cannot be woken; it is a daemon and holds nothing.)
            thread.join(timeout=self.stop_grace_seconds + self.poll_seconds + 1)
        if followed is not None and (thread is None or not thread.is_alive()):
            followed.close()

    # --- the reading thread -------------------------------------------------------------------

    def _problem(self, location: str, reason: str, message: str) -> Row:
        return {
            "source": neuron.SOURCE,
            "target": self.target,
            "location": location,
            "reason": reason,
            "message": message,
        }

    def _report(self, location: str, reason: str, message: str) -> None:
        self._keep([self._problem(location, reason, message)])

    def _keep(self, problems: list[Row]) -> None:
        with self._lock:
            room = self.max_pending_problems - len(self._pending)
            self._pending.extend(problems[: max(room, 0)])
            self._dropped += max(len(problems) - max(room, 0), 0)

    def _line(self, number: int, text: str) -> None:
        """Parse one line; a report becomes the latest, anything else only a problem."""
        arrival = self._clock()
        try:
            document = json.loads(text)
        except (ValueError, RecursionError):
            # Not JSON: parse_report names why (invalid_json, or a documentation excerpt).
            _, problems = neuron.parse_report(text, target=self.target, line=number)
            self._keep(problems.to_dicts())
            return
        readings, problems = neuron.parse_report_object(
            document, target=self.target, line=number, host=self.host, timestamp_seconds=arrival
        )
        self._keep(problems.to_dicts())
        if isinstance(document, dict):
            with self._lock:
                self._latest, self._latest_arrival = readings, arrival
                self.reports += 1

    def _dropped_line(self, number: int, reason: str, message: str) -> None:
        self._report(f"line {number}", reason, message)

    def _run(self) -> None:
        delay = self.restart_min_seconds
        while not self._stop.is_set():
            began = time.monotonic()
            try:
                if self.command is not None:
                    self._run_command(self.command)
                elif self.file is not None:
                    self._follow(self.file)
                elif self._stdin is not None:
                    self._read_stream(self._stdin)
                    if not self._stop.is_set():
                        self._report(self.target, "stream_ended", "end of input: no more reports")
                    return
            except Exception as error:  # a bug costs this stream's data, never the service
                log.exception("neuron stream %s: reading failed", self.target)
                self._report(self.target, "reader_failed", repr(error))
            if time.monotonic() - began >= self.restart_max_seconds:
                delay = self.restart_min_seconds
            if self._stop.wait(delay):
                return
            delay = min(delay * 2, self.restart_max_seconds)

    def _read_stream(self, stream: IO[bytes]) -> None:
        for line in neuron.iter_report_lines(stream, max_line_bytes=self.max_line_bytes):
            if line.text is None:
                self._dropped_line(line.number, line.problem or "", line.message or "")
            else:
                self._line(line.number, line.text)
            if self._stop.is_set():
                return

    # --- command ------------------------------------------------------------------------------

    def _run_command(self, argv: tuple[str, ...]) -> None:
        """One run of the monitor: start it, read it to its end, report how it ended."""
        where = shlex.join(argv)
        with self._lock:  # close() sees either the stop flag here or the process
            if self._stop.is_set():
                return
            try:
                process: subprocess.Popen[bytes] | None = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                )
            except (OSError, ValueError) as error:
                failure = getattr(error, "strerror", None) or str(error)
                process = None
            self._process = process
        if process is None:
            self._report(where, "monitor_not_started", f"cannot start: {failure}")
            return
        assert process.stdout is not None and process.stderr is not None
        stderr_tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)
        stderr_reader = threading.Thread(
            target=_keep_tail, args=(process.stderr, stderr_tail), daemon=True
        )
        stderr_reader.start()
        try:
            self._read_stream(process.stdout)
        finally:
            # Its output ended: it is exiting (give it a moment) or it closed stdout and hangs.
            status = _end(process, self.stop_grace_seconds, patient=True)
            stderr_reader.join(timeout=self.stop_grace_seconds)
            process.stdout.close()
            process.stderr.close()
            with self._lock:
                self._process = None
        if self._stop.is_set():
            return
        how = f"exit status {status}" if status >= 0 else f"killed by signal {-status}"
        tail = " | ".join(stderr_tail)
        self._report(
            where, "monitor_exited", how + (f"; stderr: {tail}" if tail else "; no stderr")
        )

    # --- followed file ------------------------------------------------------------------------

    def _open_followed(self, *, at_end: bool) -> tuple[IO[bytes] | None, tuple[str, str]]:
        """The followed file, open (at its end or its start); else None and (reason, why)."""
        assert self.file is not None
        try:
            handle = self.file.open("rb")
        except FileNotFoundError:
            return None, ("not_found", "no such file: waiting for it")
        except OSError as error:
            return None, ("unreadable", f"cannot open: {error.strerror or error}: retrying")
        if at_end:
            handle.seek(0, os.SEEK_END)
        return handle, ("", "")

    def _follow(self, path: Path) -> None:
        """Read ``path`` like ``tail -F`` until stopped."""
        with self._lock:
            handle, self._followed = self._followed, None
        outage_reported = False  # one problem per time the file cannot be opened
        number = 0
        pending = b""
        dropping = 0  # bytes of an overlong line read past so far
        try:
            while not self._stop.is_set():
                if handle is None:
                    handle, (reason, message) = self._open_followed(at_end=False)
                    if handle is None:
                        if not outage_reported:
                            self._report(str(path), reason, message)
                            outage_reported = True
                        self._stop.wait(self.poll_seconds)
                        continue
                    outage_reported, number, pending, dropping = False, 0, b"", 0
                limit = _DRAIN_CHUNK if dropping else self.max_line_bytes + 1 - len(pending)
                chunk = handle.readline(limit)
                if chunk:
                    if dropping:
                        dropping += len(chunk)
                        if chunk.endswith(b"\n"):
                            number += 1
                            self._dropped_line(
                                number,
                                "line_too_long",
                                f"{dropping} bytes, more than the {self.max_line_bytes} "
                                "allowed: dropped",
                            )
                            dropping = 0
                        continue
                    pending += chunk
                    if pending.endswith(b"\n"):
                        number += 1
                        self._complete_line(number, pending)
                        pending = b""
                    elif len(pending) > self.max_line_bytes:
                        dropping, pending = len(pending), b""
                    continue
                # At the end for now: was the file replaced or cut while we waited?
                if self._replaced_or_truncated(path, handle):
                    if pending or dropping:
                        self._report(
                            str(path),
                            "partial_line",
                            "the file was truncated or replaced in the middle of a line",
                        )
                    handle.close()
                    handle = None
                    continue
                self._stop.wait(self.poll_seconds)
        finally:
            if handle is not None:
                handle.close()

    def _complete_line(self, number: int, data: bytes) -> None:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as error:
            self._dropped_line(number, "not_utf8", f"not UTF-8: {error.reason}")
            return
        text = text.rstrip("\r\n")
        if text.strip():
            self._line(number, text)

    @staticmethod
    def _replaced_or_truncated(path: Path, handle: IO[bytes]) -> bool:
        try:
            now = os.stat(path)
        except FileNotFoundError:
            return True  # rotated away: wait for the new file
        except OSError:
            return False
        opened = os.fstat(handle.fileno())
        if (now.st_dev, now.st_ino) != (opened.st_dev, opened.st_ino):
            return True
        return now.st_size < handle.tell()


def _keep_tail(stream: IO[bytes], tail: collections.deque[str]) -> None:
    """Read a pipe to its end, keeping its last lines (bounded) and never blocking the writer."""
    while True:
        line = stream.readline(MAX_STDERR_LINE_BYTES)
        if not line:
            return
        text = line.decode("utf-8", errors="replace").strip()
        if text:
            tail.append(text)


def _end(process: subprocess.Popen[bytes], grace_seconds: float, *, patient: bool = False) -> int:
    """The exit status of ``process``, ended if it still runs: terminate, wait, kill.
    ``patient``: first give it ``grace_seconds`` to exit by itself."""
    try:
        return process.wait(timeout=grace_seconds if patient else 0)
    except subprocess.TimeoutExpired:
        pass
    process.terminate()
    try:
        return process.wait(timeout=grace_seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()
