"""neuron-monitor's stream read continuously: real subprocesses (a small script that prints
reports built from the user guide's fragments), real files appended to, a real pipe."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import polars as pl
import pytest

from collector import schemas
from collector.sources.neuron_stream import NeuronStream, StreamCycle
from tests.collector.sources.test_neuron import EXCERPTS, full_report

T = TypeVar("T")
HOST = "trn-a-01"
FULL_REPORT_READINGS = 45  # see test_neuron.test_reports_from_a_subprocess
SMALL_REPORT = '{"system_data": {"memory_info": {"memory_used_bytes": %d, "error": ""}}}\n'

# A stand-in for neuron-monitor: prints the report file's line COUNT times (-1: forever),
# PAUSE seconds apart, says goodbye on stderr and exits with STATUS. IGNORE_TERM=1 makes it
# deaf to SIGTERM, as a wedged monitor would be.
MONITOR = """\
import os, signal, sys, time
if os.environ.get("IGNORE_TERM") == "1":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
line = open(sys.argv[1]).read()
count, pause, status = int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
printed = 0
while count < 0 or printed < count:
    sys.stdout.write(line)
    sys.stdout.flush()
    printed += 1
    time.sleep(pause)
sys.stderr.write("neuron-monitor: lost the driver\\n")
sys.exit(status)
"""


def eventually(condition: Callable[[], T | None], seconds: float = 10.0) -> T:
    """``condition()``'s first truthy value, polled until a deadline (no fixed sleeps)."""
    deadline = time.monotonic() + seconds
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds} s")
        time.sleep(0.01)


class Cycles:
    """Takes from a stream the way cycles do, keeping every problem seen."""

    def __init__(self, stream: NeuronStream, clock: Callable[[], float] = time.time) -> None:
        self.stream = stream
        self.clock = clock
        self.problems: list[dict[str, object]] = []

    def take(self) -> StreamCycle:
        cycle = self.stream.take(self.clock())
        assert cycle.readings.schema == pl.Schema(schemas.READINGS)
        assert cycle.problems.schema == pl.Schema(schemas.PROBLEMS)
        self.problems += cycle.problems.to_dicts()
        return cycle

    def until_up(self) -> StreamCycle:
        def fresh() -> StreamCycle | None:
            cycle = self.take()
            return cycle if cycle.up else None

        return eventually(fresh)

    def until_problem(self, reason: str, count: int = 1) -> list[dict[str, object]]:
        def found() -> list[dict[str, object]]:
            self.take()
            seen = [p for p in self.problems if p["reason"] == reason]
            return seen if len(seen) >= count else []

        return eventually(found)

    def reasons(self) -> list[object]:
        return [problem["reason"] for problem in self.problems]


@pytest.fixture(scope="module")
def report_line(shared_fixtures: Path) -> str:
    return json.dumps(full_report(shared_fixtures / EXCERPTS)) + "\n"


@pytest.fixture
def report_file(tmp_path: Path, report_line: str) -> Path:
    path = tmp_path / "report.jsonl"
    path.write_text(report_line)
    return path


def monitor(tmp_path: Path, report: Path, count: int, pause: float, status: int) -> list[str]:
    script = tmp_path / "monitor.py"
    script.write_text(MONITOR)
    return [sys.executable, str(script), str(report), str(count), str(pause), str(status)]


@pytest.fixture
def streams() -> Iterator[list[NeuronStream]]:
    """Streams a test makes, closed even when it fails."""
    made: list[NeuronStream] = []
    yield made
    for stream in made:
        stream.close()


def gone(process: subprocess.Popen[bytes]) -> bool:
    """Whether the process has exited and been reaped: no child left behind."""
    if process.poll() is None:
        return False
    try:
        os.kill(process.pid, 0)
    except ProcessLookupError:
        return True
    return False  # the pid still exists: a zombie nobody waited for


# --- a monitor subprocess ---------------------------------------------------------------------


def test_a_monitor_subprocess_gives_the_latest_report(
    tmp_path: Path, report_file: Path, streams: list[NeuronStream]
) -> None:
    command = monitor(tmp_path, report_file, count=-1, pause=0.05, status=0)
    stream = NeuronStream(command=command, host=HOST)
    streams.append(stream)
    assert stream.process is None  # building a stream starts nothing
    cycles = Cycles(stream)
    before = time.time()
    cycle = cycles.until_up()
    assert cycle.readings.height == FULL_REPORT_READINGS
    assert set(cycle.readings["host"]) == {HOST}  # configured host, not the instance id
    assert set(cycle.readings["target"]) == {sys.executable}  # argv[0]
    (stamp,) = set(cycle.readings["timestamp_seconds"])
    assert before <= stamp <= time.time()  # when the line was read
    assert cycles.problems == []

    process = eventually(lambda: stream.process)
    stream.close()
    assert gone(process)
    assert not stream.running
    assert "monitor_exited" not in cycles.reasons()  # a stop we asked for is not an exit


def test_a_monitor_that_exits_is_reported_and_restarted(
    tmp_path: Path, report_file: Path, streams: list[NeuronStream]
) -> None:
    command = monitor(tmp_path, report_file, count=1, pause=0.0, status=3)
    stream = NeuronStream(
        command=command, host=HOST, restart_min_seconds=0.02, restart_max_seconds=0.1
    )
    streams.append(stream)
    cycles = Cycles(stream)
    exits = cycles.until_problem("monitor_exited", count=2)
    assert stream.reports >= 2  # each run printed its report: it was started again
    message = str(exits[0]["message"])
    assert "exit status 3" in message
    assert "lost the driver" in message  # the tail of its stderr
    assert str(exits[0]["location"]).endswith(f"{report_file} 1 0.0 3")  # the whole command
    assert cycles.take().readings.height == FULL_REPORT_READINGS  # the last report, still fresh


def test_a_command_that_cannot_start_is_a_problem_not_a_crash(
    tmp_path: Path, streams: list[NeuronStream]
) -> None:
    missing = tmp_path / "bin" / "neuron-monitor"
    stream = NeuronStream(
        command=[str(missing), "-c", "monitor.json"],
        host=HOST,
        restart_min_seconds=0.02,
        restart_max_seconds=0.05,
    )
    streams.append(stream)
    cycles = Cycles(stream)
    (first, *_) = cycles.until_problem("monitor_not_started", count=2)  # and it keeps trying
    assert "No such file" in str(first["message"])
    assert stream.running
    cycle = cycles.take()
    assert not cycle.up
    assert cycle.readings.is_empty()
    stream.close()
    assert not stream.running


def test_close_kills_a_monitor_that_ignores_sigterm(
    tmp_path: Path, report_file: Path, streams: list[NeuronStream], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IGNORE_TERM", "1")
    command = monitor(tmp_path, report_file, count=-1, pause=0.02, status=0)
    stream = NeuronStream(command=command, host=HOST, stop_grace_seconds=0.2)
    streams.append(stream)
    Cycles(stream).until_up()  # the signal handler is set before the first report
    process = eventually(lambda: stream.process)
    stream.close()
    assert gone(process)
    assert process.returncode == -9  # SIGKILL after the grace period


# --- a followed file --------------------------------------------------------------------------


def followed(path: Path, streams: list[NeuronStream], **options: Any) -> NeuronStream:
    stream = NeuronStream(file=path, host=HOST, poll_seconds=0.01, **options)
    streams.append(stream)
    stream.start()
    return stream


def append(path: Path, text: str) -> None:
    with path.open("a") as handle:
        handle.write(text)


def used_memory(cycle: StreamCycle) -> float:
    rows = cycle.readings.filter(pl.col("metric") == "memory_used_bytes")
    return float(rows.item(0, "value"))


def read_offset(path: Path) -> int | None:
    """How far into ``path`` this process has read: the largest offset among its open
    descriptors of the file (Linux's /proc/self/fdinfo); None when none is open."""
    if not Path("/proc/self/fdinfo").is_dir():
        pytest.skip("needs /proc/self/fdinfo to see how far the reader has read")
    target = path.resolve()
    offsets: list[int] = []
    for link in Path("/proc/self/fd").iterdir():
        try:
            if Path(os.readlink(link)) != target:
                continue
            info = (Path("/proc/self/fdinfo") / link.name).read_text()
        except OSError:  # closed since it was listed
            continue
        offsets += [int(line.split()[1]) for line in info.splitlines() if line.startswith("pos:")]
    return max(offsets, default=None)


def test_a_followed_file_gives_lines_appended_after_start(
    tmp_path: Path, report_line: str, streams: list[NeuronStream]
) -> None:
    path = tmp_path / "monitor.jsonl"
    path.write_text(SMALL_REPORT % 1)  # history from before the start: not read
    stream = followed(path, streams)
    cycles = Cycles(stream)
    assert not cycles.take().up
    append(path, report_line)
    cycle = cycles.until_up()
    assert cycle.readings.height == FULL_REPORT_READINGS
    assert set(cycle.readings["target"]) == {str(path)}
    assert stream.reports == 1

    append(path, SMALL_REPORT % 2)
    assert eventually(lambda: used_memory(cycles.take()) == 2)
    assert cycles.problems == []


def test_a_truncated_file_is_read_again_from_its_start(
    tmp_path: Path, report_line: str, streams: list[NeuronStream]
) -> None:
    path = tmp_path / "monitor.jsonl"
    path.write_text("")
    stream = followed(path, streams)
    cycles = Cycles(stream)
    append(path, report_line)
    cycles.until_up()
    path.write_text(SMALL_REPORT % 7)  # truncated (copytruncate), then shorter than before
    assert eventually(lambda: cycles.take().readings.height == 1)
    assert used_memory(cycles.take()) == 7


def test_a_rotated_file_is_reopened(
    tmp_path: Path, report_line: str, streams: list[NeuronStream]
) -> None:
    path = tmp_path / "monitor.jsonl"
    path.write_text("")
    stream = followed(path, streams)
    cycles = Cycles(stream)
    append(path, SMALL_REPORT % 1)
    cycles.until_up()
    path.rename(tmp_path / "monitor.jsonl.1")
    path.write_text(SMALL_REPORT % 2 + report_line)
    assert eventually(lambda: cycles.take().readings.height == FULL_REPORT_READINGS)
    assert stream.reports == 3


def test_a_file_that_does_not_exist_yet_is_waited_for(
    tmp_path: Path, streams: list[NeuronStream]
) -> None:
    path = tmp_path / "later.jsonl"
    stream = followed(path, streams)
    cycles = Cycles(stream)
    (missing,) = cycles.until_problem("not_found")
    assert missing["location"] == str(path)
    path.write_text(SMALL_REPORT % 3)  # created after the start: read from its start
    assert eventually(lambda: cycles.take().up)
    assert cycles.reasons() == ["not_found"]  # reported once, not once per poll


def test_a_garbage_line_is_a_problem_and_the_next_report_is_read(
    tmp_path: Path, streams: list[NeuronStream]
) -> None:
    path = tmp_path / "monitor.jsonl"
    path.write_text("")
    stream = followed(path, streams)
    cycles = Cycles(stream)
    append(path, SMALL_REPORT % 1)
    cycles.until_up()
    append(path, "neuron-monitor: warning, this is not JSON\n")
    (garbage,) = cycles.until_problem("invalid_json")
    assert garbage["location"] == "line 2"
    cycle = cycles.take()
    assert cycle.up and used_memory(cycle) == 1  # a bad line never replaces the last report
    append(path, SMALL_REPORT % 2)
    assert eventually(lambda: used_memory(cycles.take()) == 2)
    assert cycles.reasons() == ["invalid_json"]


def test_long_lines_are_dropped_and_partial_lines_wait_for_their_end(
    tmp_path: Path, streams: list[NeuronStream]
) -> None:
    path = tmp_path / "monitor.jsonl"
    path.write_text("")
    stream = followed(path, streams, max_line_bytes=200)
    cycles = Cycles(stream)
    append(path, "[" * 1000 + "\n")
    (long,) = cycles.until_problem("line_too_long")
    assert long["location"] == "line 1"
    half = len(SMALL_REPORT) // 2
    append(path, (SMALL_REPORT % 4)[:half])
    # Only once the reader has read the half line on its own (its descriptor is at the end of
    # the file) does the rest of this test say anything about partial lines.
    end_of_half = path.stat().st_size
    eventually(lambda: read_offset(path) == end_of_half)
    # Its polls at the end of the file keep finding the half line: for 20 of them, it must be
    # held, neither parsed as a report nor reported as a bad line.
    window_ends = time.monotonic() + 20 * stream.poll_seconds
    while time.monotonic() < window_ends:
        assert not cycles.take().up
        assert cycles.reasons() == ["line_too_long"]
        time.sleep(stream.poll_seconds)
    append(path, (SMALL_REPORT % 4)[half:])
    assert used_memory(cycles.until_up()) == 4
    assert cycles.reasons() == ["line_too_long"]


# --- age -----------------------------------------------------------------------------------


def test_a_report_older_than_the_limit_is_not_used(
    tmp_path: Path, streams: list[NeuronStream]
) -> None:
    path = tmp_path / "monitor.jsonl"
    path.write_text("")
    read_at = 1_000.0
    stream = followed(path, streams, max_report_age_seconds=30.0, clock=lambda: read_at)
    waiting = stream.take(read_at + 10)
    assert not waiting.up and waiting.problems.is_empty()  # waiting for a first report
    none_yet = stream.take(read_at + 31)
    assert none_yet.problems["reason"].to_list() == ["no_report"]

    append(path, SMALL_REPORT % 5)
    eventually(lambda: stream.reports == 1)
    fresh = stream.take(read_at + 30)
    assert fresh.up
    assert fresh.readings["timestamp_seconds"].to_list() == [read_at]
    stale = stream.take(read_at + 31)
    assert not stale.up
    assert stale.readings.is_empty()
    assert stale.problems["reason"].to_list() == ["stale_report"]
    assert "31.0 s ago" in stale.problems.item(0, "message")


# --- a pipe (stdin) ---------------------------------------------------------------------------


def test_a_pipe_is_read_to_its_end(streams: list[NeuronStream]) -> None:
    reading, writing = os.pipe()
    with os.fdopen(reading, "rb") as pipe_out, os.fdopen(writing, "wb") as pipe_in:
        stream = NeuronStream(stdin=pipe_out, host=HOST)
        streams.append(stream)
        cycles = Cycles(stream)
        pipe_in.write(b"not json\n" + (SMALL_REPORT % 6).encode())
        pipe_in.flush()
        assert used_memory(cycles.until_up()) == 6
        pipe_in.close()
        cycles.until_problem("stream_ended")
        assert cycles.reasons() == ["invalid_json", "stream_ended"]
        assert set(cycles.take().readings["target"]) == {"stdin"}


# --- bounds -------------------------------------------------------------------------------


def test_problems_waiting_for_a_cycle_are_bounded(
    tmp_path: Path, streams: list[NeuronStream]
) -> None:
    path = tmp_path / "monitor.jsonl"
    path.write_text("")
    stream = followed(path, streams, max_pending_problems=3)
    append(path, "x\n" * 10 + SMALL_REPORT % 1)
    eventually(lambda: stream.reports == 1)
    cycle = stream.take(time.time())
    assert cycle.problems["reason"].to_list() == ["invalid_json"] * 3 + ["problems_dropped"]
    assert "7 more problems" in cycle.problems.item(3, "message")


def test_a_stream_needs_exactly_one_input(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        NeuronStream(command=["neuron-monitor"], file=tmp_path / "x")
    with pytest.raises(ValueError, match="exactly one"):
        NeuronStream()
    with pytest.raises(ValueError, match="program"):
        NeuronStream(command=[])
