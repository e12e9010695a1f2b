"""Benchmark: /metrics under concurrent scrapers, and what they cost the cycle.

    .venv/bin/python bench/bench_serve.py [--preset campus] [--interval 5] [--scrapers 10]
                                          [--gzip-scrapers 5] [--seconds 60] [--rounds 2]
                                          [--scrape-interval 0]

It starts the real ``gigawatt serve`` (``--log-level debug``, so every cycle logs its times) and
alternates two phases, ``--rounds`` times each: quiet (nobody scrapes) and loaded
(``--scrapers`` threads scrape /metrics, ``--gzip-scrapers`` of them asking for gzip, each
back to back or every ``--scrape-interval`` seconds). It prints, per phase:

* the cycle as the service logs it: pipeline (read, validate, roll up, grid analysis), render
  and gzip seconds, median with min and max;
* per kind of scraper, the latency of a whole scrape (request sent to last body byte), p50 and
  p99, and the bytes of one body.

The scrapers are plain sockets reading into a buffer allocated once, so that what the client
spends is as little as it can be: they share the machine's cores with the server.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shlex
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
# The gzip part is absent before the cycle made the gzip body (older commits, for comparison).
CYCLE_LINE = re.compile(
    r"cycle (\d+): ([\d.]+) s, render ([\d.]+) s,(?: gzip ([\d.]+) s,)? (\d+) series"
)
STARTUP_SECONDS = 300.0
CHUNK = 1 << 20


@dataclass
class Cycle:
    received: float  # time.monotonic() when its log line came
    pipeline: float
    render: float
    gzip: float
    series: int


@dataclass
class Phase:
    name: str
    started: float
    ended: float = 0.0
    latencies: dict[str, list[float]] = field(default_factory=dict)
    body_bytes: dict[str, int] = field(default_factory=dict)
    reconnects: dict[str, int] = field(default_factory=dict)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


class Server:
    """``gigawatt serve`` in a subprocess; its cycle log lines are collected as they come."""

    def __init__(self, preset: str, interval: float) -> None:
        self.port = free_port()
        command = [
            sys.executable,
            "-m",
            "exporters.cli",
            "serve",
            "--preset",
            preset,
            "--interval",
            str(interval),
            "--port",
            str(self.port),
            "--log-level",
            "debug",
        ]
        self.process = subprocess.Popen(
            command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        self.cycles: list[Cycle] = []
        self.reader = threading.Thread(target=self._read_log, daemon=True)
        self.reader.start()

    def _read_log(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            if match := CYCLE_LINE.search(line):
                _, pipeline, render, gzipped, series = match.groups()
                self.cycles.append(
                    Cycle(
                        time.monotonic(),
                        float(pipeline),
                        float(render),
                        float(gzipped or 0),
                        int(series),
                    )
                )

    def wait_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_SECONDS
        while not self.cycles:
            if self.process.poll() is not None:
                sys.exit(f"gigawatt serve exited with {self.process.returncode}")
            if time.monotonic() > deadline:
                sys.exit(f"gigawatt serve published no cycle in {STARTUP_SECONDS:.0f} s")
            time.sleep(0.2)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)


def read_response(connection: socket.socket, buffer: bytearray) -> tuple[int, str]:
    """Read one HTTP response into ``buffer``; its body length and Content-Encoding."""
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = connection.recv(4096)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        head += chunk
    header, _, rest = head.partition(b"\r\n\r\n")
    lines = header.decode("latin-1").split("\r\n")
    if not lines[0].startswith("HTTP/1.1 200"):
        raise ConnectionError(f"unexpected answer: {lines[0]}")
    fields = {
        name.strip().lower(): value.strip()
        for name, _, value in (line.partition(":") for line in lines[1:])
    }
    length = int(fields["content-length"])
    if len(buffer) < length:
        buffer.extend(bytes(length - len(buffer)))
    view = memoryview(buffer)
    view[: len(rest)] = rest
    received = len(rest)
    while received < length:
        got = connection.recv_into(view[received : min(length, received + CHUNK)])
        if not got:
            raise ConnectionError("the body was cut short")
        received += got
    return length, fields.get("content-encoding", "identity")


def scraper(
    port: int, accept: str, stop: threading.Event, pause: float, phase: Phase, kind: str
) -> None:
    """Scrape until ``stop``, on one keep-alive connection. uvicorn closes a connection that
    stays idle for 5 s after it has handed a response to the socket, and a campus body can
    take longer than that to drain under load: the scraper then connects again and sends the
    request again, within the same timed scrape (as Prometheus would)."""
    buffer = bytearray()
    request = (
        f"GET /metrics HTTP/1.1\r\nHost: {HOST}:{port}\r\nAccept-Encoding: {accept}\r\n\r\n"
    ).encode()
    connection = socket.create_connection((HOST, port))
    try:
        while not stop.is_set():
            began = time.perf_counter()
            for attempt in range(2):
                try:
                    connection.sendall(request)
                    length, encoding = read_response(connection, buffer)
                    break
                except (ConnectionError, OSError):
                    if attempt:
                        raise
                    connection.close()
                    connection = socket.create_connection((HOST, port))
                    phase.reconnects[kind] = phase.reconnects.get(kind, 0) + 1
            elapsed = time.perf_counter() - began
            if encoding != ("gzip" if accept == "gzip" else "identity"):
                raise ConnectionError(f"asked {accept!r}, got {encoding!r}")
            phase.latencies.setdefault(kind, []).append(elapsed)
            phase.body_bytes[kind] = length
            if pause:
                stop.wait(pause)
    finally:
        connection.close()


def run_phase(
    server: Server, name: str, seconds: float, scrapers: int, gzip_scrapers: int, pause: float
) -> Phase:
    phase = Phase(name, time.monotonic())
    stop = threading.Event()
    threads = [
        threading.Thread(
            target=scraper,
            args=(
                server.port,
                "gzip" if number < gzip_scrapers else "identity",
                stop,
                pause,
                phase,
                "gzip" if number < gzip_scrapers else "plain",
            ),
            daemon=True,
        )
        for number in range(scrapers)
    ]
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join(timeout=120)
    phase.ended = time.monotonic()
    return phase


def spread(values: Sequence[float]) -> str:
    if not values:
        return "no values"
    return (
        f"median {statistics.median(values):6.3f}  min {min(values):6.3f}  max {max(values):6.3f}"
    )


def percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="campus")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between cycles")
    parser.add_argument("--scrapers", type=int, default=10)
    parser.add_argument("--gzip-scrapers", type=int, default=5, help="of --scrapers")
    parser.add_argument("--seconds", type=float, default=60.0, help="per phase")
    parser.add_argument("--rounds", type=int, default=2, help="quiet+loaded pairs")
    parser.add_argument(
        "--scrape-interval", type=float, default=0.0, help="pause between scrapes (0: none)"
    )
    args = parser.parse_args()
    print("command:", shlex.join([sys.executable, *sys.argv]))
    print(
        f"machine: {platform.machine()} cpus={os.cpu_count()} python={platform.python_version()} "
        f"polars={pl.__version__} load average {os.getloadavg()[0]:.2f}"
    )
    server = Server(args.preset, args.interval)
    try:
        server.wait_ready()
        phases: list[Phase] = []
        for _ in range(args.rounds):
            phases.append(run_phase(server, "quiet", args.seconds, 0, 0, 0.0))
            phases.append(
                run_phase(
                    server,
                    "loaded",
                    args.seconds,
                    args.scrapers,
                    args.gzip_scrapers,
                    args.scrape_interval,
                )
            )
        print(f"load average at the end {os.getloadavg()[0]:.2f}")
    finally:
        server.stop()

    series = server.cycles[-1].series if server.cycles else 0
    print(
        f"preset {args.preset}, {series:,} series, a cycle every {args.interval:g} s; "
        f"{args.rounds} rounds of {args.seconds:g} s quiet then {args.seconds:g} s with "
        f"{args.scrapers} scrapers ({args.gzip_scrapers} gzip), "
        f"{'back to back' if not args.scrape_interval else f'every {args.scrape_interval:g} s'}"
    )
    for name in ("quiet", "loaded"):
        mine = [phase for phase in phases if phase.name == name]
        cycles = [
            cycle
            for cycle in server.cycles
            for phase in mine
            if phase.started <= cycle.received <= phase.ended
        ]
        print(f"{name}: {len(cycles)} cycles")
        print(f"  pipeline s   {spread([cycle.pipeline for cycle in cycles])}")
        print(f"  render s     {spread([cycle.render for cycle in cycles])}")
        print(f"  gzip s       {spread([cycle.gzip for cycle in cycles])}")
        print(
            f"  cycle s      {spread([c.pipeline + c.render + c.gzip for c in cycles])}"
            "  (pipeline + render + gzip)"
        )
        for kind in ("plain", "gzip"):
            latencies = [value for phase in mine for value in phase.latencies.get(kind, [])]
            if latencies:
                size = max(phase.body_bytes.get(kind, 0) for phase in mine)
                print(
                    f"  /metrics {kind:<5} {len(latencies):5d} scrapes  "
                    f"p50 {percentile(latencies, 0.5):6.3f} s  "
                    f"p99 {percentile(latencies, 0.99):6.3f} s  "
                    f"max {max(latencies):6.3f} s  ({size / 1e6:.1f} MB; "
                    f"{sum(phase.reconnects.get(kind, 0) for phase in mine)} reconnects)"
                )


if __name__ == "__main__":
    main()
