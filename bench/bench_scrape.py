"""Benchmark: one scrape cycle over 2,000 dcgm-exporter targets of 8 GPUs each, on loopback.

    .venv/bin/python bench/bench_scrape.py [--targets 2000] [--cycles 6] [--servers 4]

The payload is built from the families of DataDog's dcgm-exporter capture (a Tesla T4; read in
place from ../shared/fixtures): every family with its HELP and TYPE lines and 8 GPU label sets
(gpu, UUID, device, modelName, Hostname, driver version), a distinct Hostname per target and
distinct UUIDs per GPU. ``--servers`` processes each listen on their share of the targets'
ports (one port per target, so the client sees 2,000 origins, as on a real campus) and answer
every request from bytes prepared in advance, so that serving costs as little CPU as it can.

It prints, side by side:

* the cycle: ``Scraper.scrape`` over every target (the first cycle opens the connections;
  the others reuse them), wall and client CPU seconds, median, min and max;
* the parts, in this process, over the same payloads: HTTP alone (new connections, bodies read
  and dropped) with the scraper's client per origin and with one client for every target,
  ``parse_exposition`` one payload at a time, ``parse_many``, and one
  ``readings_from_exposition`` call over all the parsed samples.

The servers run on the same machine and share its cores with the client; the CPU columns
say what the client itself spent.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import platform
import re
import shlex
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from pathlib import Path

import httpx
import polars as pl

from collector.sources.exporter_maps import readings_from_exposition
from collector.sources.promtext import TEXT_CONTENT_TYPE, parse_exposition
from collector.sources.scrape import ScrapeClients, Scraper, ScrapeTarget, parse_many

ROOT = Path(__file__).resolve().parent.parent
CAPTURE = (
    ROOT.parent / "shared/fixtures/datadog-integrations-core-dcgm/dcgm/tests/fixtures/metrics.txt"
)
GPUS = 8
_SAMPLE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{[^}]*\})? (\S+)$")


# --- payloads ---------------------------------------------------------------------------------


def capture_families(capture: Path) -> list[tuple[str, str, str, str]]:
    """(name, help line, type line, value) of each family in the capture, in its order."""
    families: list[tuple[str, str, str, str]] = []
    help_line = type_line = ""
    for line in capture.read_text(encoding="utf-8").splitlines():
        if line.startswith("# HELP "):
            help_line = line
        elif line.startswith("# TYPE "):
            type_line = line
        elif (match := _SAMPLE.match(line)) and help_line and type_line:
            name, value = match.groups()
            if name == help_line.split()[2]:
                families.append((name, help_line, type_line, value))
                help_line = type_line = ""
    return families


def dcgm_payload(families: Sequence[tuple[str, str, str, str]], target: int) -> bytes:
    """A dcgm-exporter answer for one 8-GPU host: distinct host name and GPU UUIDs."""
    host = f"gpu-node-{target:05d}"
    lines = []
    for name, help_line, type_line, value in families:
        lines += [help_line, type_line]
        for gpu in range(GPUS):
            uuid = f"GPU-{target:08x}-{gpu:04x}-4c1e-9a7d-{target * GPUS + gpu:012x}"
            shown = value
            if name == "DCGM_FI_DEV_POWER_USAGE":
                shown = f"{350 + 40 * gpu + target % 97 / 10:.3f}"
            elif name == "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION":
                shown = str(128996013 + 1_000_003 * gpu + 7919 * target)
            labels = (
                f'gpu="{gpu}",UUID="{uuid}",device="nvidia{gpu}",'
                f'modelName="NVIDIA H100 80GB HBM3",Hostname="{host}",'
                f'DCGM_FI_DRIVER_VERSION="550.54.15"'
            )
            lines.append(f"{name}{{{labels}}} {shown}")
    return ("\n".join(lines) + "\n").encode()


# --- servers ----------------------------------------------------------------------------------


def _response(body: bytes) -> bytes:
    head = (
        "HTTP/1.1 200 OK\r\n"
        f"Content-Type: {TEXT_CONTENT_TYPE}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def serve(first: int, count: int, capture: Path, ready: Connection) -> None:
    """One server process: a listening port per target in [first, first + count)."""

    async def main() -> None:
        families = capture_families(capture)
        ports = []
        for target in range(first, first + count):
            answer = _response(dcgm_payload(families, target))

            async def handle(
                reader: asyncio.StreamReader, writer: asyncio.StreamWriter, answer: bytes = answer
            ) -> None:
                try:
                    while True:
                        await reader.readuntil(b"\r\n\r\n")
                        writer.write(answer)
                        await writer.drain()
                except (asyncio.IncompleteReadError, ConnectionError):
                    pass
                finally:
                    writer.close()

            server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=128)
            ports.append(server.sockets[0].getsockname()[1])
        ready.send(ports)
        await asyncio.Event().wait()

    asyncio.run(main())


# --- measurements -----------------------------------------------------------------------------


def summary(values: Sequence[float]) -> str:
    return (
        f"median {statistics.median(values):6.3f}  min {min(values):6.3f}  max {max(values):6.3f}"
    )


def timed(function: Callable[[], object]) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    function()
    return time.perf_counter() - wall, time.process_time() - cpu


async def fetch_only(targets: Sequence[ScrapeTarget], concurrency: int, shared: bool) -> int:
    """HTTP alone, every body read, nothing parsed: with the scraper's clients (one per
    origin), or with one client for every target (``shared``)."""
    clients = ScrapeClients()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    one_client = httpx.AsyncClient(limits=limits, trust_env=False)
    slots = asyncio.Semaphore(concurrency)

    async def one(target: ScrapeTarget) -> int:
        async with slots:
            client = one_client if shared else clients.client(target)
            response = await client.get(target.url)
            return len(response.content)

    try:
        return sum(await asyncio.gather(*(one(target) for target in targets)))
    finally:
        await clients.aclose()
        await one_client.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=2000)
    parser.add_argument("--cycles", type=int, default=6, help="the first one opens connections")
    parser.add_argument("--servers", type=int, default=4, help="server processes")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--exporter", default="dcgm", help="dcgm or auto")
    parser.add_argument("--batch", type=int, default=128, help="payloads per parse batch")
    parser.add_argument("--workers", type=int, default=None, help="parse threads [2]")
    parser.add_argument("--parts", type=int, default=200, help="payloads for the one-by-one parse")
    args = parser.parse_args()
    if not CAPTURE.is_file():
        sys.exit(f"the dcgm capture is missing: {CAPTURE}")
    print("command:", shlex.join([sys.executable, *sys.argv]))
    print(
        f"machine: {platform.machine()} cpus={os.cpu_count()} python={platform.python_version()} "
        f"polars={pl.__version__} {platform.platform()}"
    )

    context = multiprocessing.get_context("spawn")
    share = -(-args.targets // args.servers)
    processes, ports = [], []
    for first in range(0, args.targets, share):
        receive, send = context.Pipe(duplex=False)
        count = min(share, args.targets - first)
        process = context.Process(target=serve, args=(first, count, CAPTURE, send), daemon=True)
        process.start()
        processes.append((process, receive))
    for _, receive in processes:
        ports += receive.recv()
    targets = [
        ScrapeTarget(url=f"http://127.0.0.1:{port}/metrics", exporter=args.exporter)
        for port in ports
    ]
    families = capture_families(CAPTURE)
    sample = dcgm_payload(families, 0)
    lines = sample.count(b"\n")
    print(
        f"{len(targets):,} targets on {len(processes)} server processes, {GPUS} GPUs each, "
        f"{len(families)} families, {len(sample):,} bytes and {lines:,} lines "
        f"per payload, concurrency {args.concurrency}"
    )

    try:
        walls, cpus = [], []
        with Scraper(
            targets,
            max_concurrency=args.concurrency,
            deadline_seconds=60,
            batch_targets=args.batch,
            parse_workers=args.workers,
        ) as scraper:
            for cycle in range(args.cycles):
                result = None

                def run(cycle: int = cycle) -> None:
                    nonlocal result
                    result = scraper.scrape(1_780_000_000.0 + 10 * cycle)

                wall, cpu = timed(run)
                assert result is not None
                up = int(result.targets.get_column("up").sum())
                print(
                    f"  cycle {cycle}: {wall:6.3f} s wall, {cpu:6.3f} s client CPU, "
                    f"{up:,} up, {result.readings.height:,} readings, "
                    f"{result.problems.height:,} problems"
                )
                if cycle:
                    walls.append(wall)
                    cpus.append(cpu)
        print(f"cycle, connections reused ({len(walls)} cycles):")
        print(f"  wall s        {summary(walls)}")
        print(f"  client CPU s  {summary(cpus)}")

        print("parts, in this process, over the same payloads:")
        for shared, label in ((False, "a client per origin"), (True, "one client for all")):

            def fetch(shared: bool = shared) -> None:
                asyncio.run(fetch_only(targets, args.concurrency, shared))

            http = [timed(fetch) for _ in range(3)]
            print(f"  HTTP alone, {label:<21} wall {summary([w for w, _ in http])}")
        payloads = [dcgm_payload(families, target) for target in range(len(targets))]
        content = [(payload, TEXT_CONTENT_TYPE) for payload in payloads]
        count = min(args.parts, len(payloads))
        one, _ = timed(lambda: [parse_exposition(p, TEXT_CONTENT_TYPE) for p in payloads[:count]])
        print(
            f"  parse_exposition one by one       {one / count * 1e3:6.3f} ms per payload "
            f"= {one / count * len(payloads):6.3f} s for {len(payloads):,}"
        )
        many = [timed(lambda: parse_many(content))[0] for _ in range(3)]
        print(
            f"  parse_many                        {summary(many)}"
            f"  ({statistics.median(many) / len(payloads) * 1e3:.3f} ms per payload)"
        )
        parsed = parse_many(content)
        samples = pl.concat(
            [
                exposition.samples.with_columns(pl.lit(target.url).alias("target"))
                for exposition, target in zip(parsed, targets, strict=True)
            ]
        )
        mapped = [
            timed(lambda: readings_from_exposition(samples, "dcgm", None, 1.0))[0] for _ in range(3)
        ]
        print(
            f"  readings_from_exposition, 1 call  {summary(mapped)}  ({samples.height:,} samples)"
        )
    finally:
        for process, _ in processes:
            process.terminate()
        for process, _ in processes:
            process.join(timeout=5)


if __name__ == "__main__":
    main()
