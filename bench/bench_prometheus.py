"""Benchmark: what a tier costs a real Prometheus, the whole campus scraped by one server.

    .venv/bin/python bench/bench_prometheus.py [--preset campus] [--scrapes 6] [--interval 10]
                                               [--tier rack] [--with-families a,b,...]
                                               [--gomemlimit 3GiB] [--shards 1]

The exposition of ``--tier`` (and, as a second configuration in the same run, the same tier
with the metrics named by ``--with-families`` added back, as ``frame.column``) is rendered
from simulated cycles and served from memory on loopback, plain or gzip as asked, a new
cycle's body every scrape. Debian's ``prometheus`` scrapes it every ``--interval`` seconds
with that interval as its timeout, and scrapes itself. After ``--scrapes`` scrapes it prints,
per configuration: the series exposed and what Prometheus holds in its head, its resident
memory now and at its peak (``VmRSS``, ``VmHWM``), and each scrape's duration and whether it
fitted in the interval. With ``--gomemlimit``, every configuration is measured a second time
with Prometheus' Go runtime given that soft memory limit (the GOMEMLIMIT environment
variable), as a deployment can set it. With ``--shards N`` the preset's buildings are dealt
to N collectors as ``gigawatt serve --shard I/N`` deals them, each served as its own target,
and every target's scrapes are listed. Then the series per family of the exposition, the
biggest first.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import polars as pl

from collector.pipeline import Pipeline
from collector.shard import deal_buildings
from collector.site.model import load_preset
from collector.site.topology import Topology, build_topology
from collector.sources.simulated import SimulatedSource, SimulationConfig
from exporters import contract
from exporters.exposition import CONTENT_TYPE, Renderer
from exporters.service import gzip_body

HOST = "127.0.0.1"
BODIES = 3  # distinct cycles served in turn, so samples change from scrape to scrape


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


Bodies = list[tuple[bytes, bytes]]  # (plain, gzip) of consecutive cycles of one target


def render_shards(preset: str, metrics: tuple[contract.Metric, ...], shards: int) -> list[Bodies]:
    """Each shard's bodies: the preset's buildings dealt to ``shards`` collectors as
    ``gigawatt serve --shard I/N`` deals them, each simulating and rendering its own."""
    site = load_preset(preset)
    if shards == 1:
        return [render_bodies(build_topology(site), metrics)]
    dealt = deal_buildings(build_topology(site), shards)
    return [render_bodies(build_topology(site, buildings), metrics) for buildings in dealt]


def render_bodies(topology: Topology, metrics: tuple[contract.Metric, ...]) -> Bodies:
    """(plain, gzip) bodies of BODIES consecutive cycles."""
    timestamps = iter(1_780_000_000.0 + 10.0 * n for n in range(100))
    source = SimulatedSource(topology, SimulationConfig(workload="jobs"))
    pipeline = Pipeline(topology, [source], clock=lambda: next(timestamps))
    renderer = Renderer(topology, metrics=metrics)
    bodies = []
    previous = None
    for _ in range(BODIES):
        previous = renderer.render(pipeline.run_cycle(analyze_grid=False), previous)
        bodies.append((bytes(previous.body), gzip_body(previous.body)))
    return bodies


@contextmanager
def exposition_server(bodies: Bodies) -> Iterator[tuple[str, list[int]]]:
    """Serves the bodies in turn on loopback; yields the target and a one-element list
    counting the connections Prometheus dropped (a scrape past its timeout)."""
    served = [0]
    hung_up = [0]

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            plain, gzipped = bodies[served[0] % len(bodies)]
            served[0] += 1
            use_gzip = "gzip" in self.headers.get("Accept-Encoding", "")
            body = gzipped if use_gzip else plain
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPE)
            self.send_header("Content-Length", str(len(body)))
            if use_gzip:
                self.send_header("Content-Encoding", "gzip")
            self.end_headers()
            self.wfile.write(body)

        def handle(self) -> None:
            try:
                super().handle()
            except (ConnectionResetError, BrokenPipeError):
                hung_up[0] += 1

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer((HOST, 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"{HOST}:{server.server_address[1]}", hung_up
    finally:
        server.shutdown()
        server.server_close()


def memory_kib(pid: int) -> dict[str, int]:
    status = Path(f"/proc/{pid}/status").read_text(encoding="utf-8")
    return {
        line.split(":")[0]: int(line.split()[1])
        for line in status.splitlines()
        if line.startswith(("VmRSS", "VmHWM"))
    }


def query(base: str, promql: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{base}/api/v1/query", params={"query": promql}, timeout=30).json()
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result


def measure(
    name: str,
    shards: list[Bodies],
    scrapes: int,
    interval: float,
    gomemlimit: str | None = None,
) -> dict[str, Any]:
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        sys.exit("prometheus not found on PATH (Debian: apt-get install prometheus)")
    with ExitStack() as stack:
        served = [stack.enter_context(exposition_server(bodies)) for bodies in shards]
        targets = [target for target, _ in served]
        workdir = stack.enter_context(tempfile.TemporaryDirectory())
        port = free_port()
        config = {
            "global": {"scrape_interval": f"{interval:g}s", "scrape_timeout": f"{interval:g}s"},
            "scrape_configs": [
                {"job_name": "gigawatt", "static_configs": [{"targets": targets}]},
                {
                    "job_name": "prometheus",
                    "scrape_interval": "5s",
                    "scrape_timeout": "5s",
                    "static_configs": [{"targets": [f"{HOST}:{port}"]}],
                },
            ],
        }
        config_file = Path(workdir) / "prometheus.yml"
        config_file.write_text(json.dumps(config), encoding="utf-8")
        log = (Path(workdir) / "log").open("wb")
        process = subprocess.Popen(
            [
                prometheus,
                f"--config.file={config_file}",
                f"--storage.tsdb.path={Path(workdir) / 'tsdb'}",
                f"--web.listen-address={HOST}:{port}",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "GOMEMLIMIT": gomemlimit} if gomemlimit else None,
        )
        base = f"http://{HOST}:{port}"
        # Per target, each scrape's duration by its time.
        durations: dict[str, dict[float, float]] = {target: {} for target in targets}
        try:
            deadline = time.monotonic() + interval * (scrapes + 6) + 120
            while min(len(seen) for seen in durations.values()) < scrapes:
                if process.poll() is not None or time.monotonic() > deadline:
                    got = min(len(seen) for seen in durations.values())
                    sys.exit(f"{name}: prometheus gave {got} of {scrapes} scrapes")
                try:  # a range selector gives every scrape's own sample and time
                    for found in query(base, 'scrape_duration_seconds{job="gigawatt"}[1h]'):
                        durations[found["metric"]["instance"]] = {
                            float(t): float(v) for t, v in found["values"]
                        }
                except (httpx.HTTPError, KeyError, ValueError):
                    pass
                time.sleep(interval / 2)
            head = query(base, "prometheus_tsdb_head_series")
            memory = memory_kib(process.pid)
        finally:
            process.terminate()
            process.wait(timeout=60)
            log.close()
    last = [bodies[-1] for bodies in shards]
    return {
        "name": name,
        "targets": len(shards),
        "series": sum(series_count(plain) for plain, _ in last),
        "bytes": sum(len(plain) for plain, _ in last),
        "gzip_bytes": sum(len(gzipped) for _, gzipped in last),
        "head_series": int(float(head[0]["value"][1])) if head else None,
        "rss_gib": memory.get("VmRSS", 0) / 1024**2,
        "peak_rss_gib": memory.get("VmHWM", 0) / 1024**2,
        "durations": [
            [seen[stamp] for stamp in sorted(seen)[:scrapes]] for seen in durations.values()
        ],
        "hung_up": sum(hung_up[0] for _, hung_up in served),
    }


def series_count(body: bytes) -> int:
    return sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))


def family_table(body: bytes) -> list[tuple[str, int]]:
    counts = Counter(
        line.partition(b" ")[0].partition(b"{")[0].decode()
        for line in body.splitlines()
        if line and not line.startswith(b"#")
    )
    return counts.most_common()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="campus")
    parser.add_argument("--tier", default=contract.DEFAULT_TIER, choices=contract.TIERS)
    parser.add_argument("--scrapes", type=int, default=6)
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument(
        "--with-families",
        default="",
        help="frame.column of metrics to add to the tier, measured as a second configuration",
    )
    parser.add_argument(
        "--shards",
        type=int,
        default=1,
        help="serve the preset as N shard targets (gigawatt serve --shard I/N), all scraped",
    )
    parser.add_argument(
        "--gomemlimit",
        default=None,
        help="also measure each configuration with Prometheus run under GOMEMLIMIT=VALUE",
    )
    args = parser.parse_args()
    print("command:", shlex.join([sys.executable, *sys.argv]))
    version = subprocess.run(
        ["prometheus", "--version"], capture_output=True, text=True, check=False
    ).stdout.splitlines()
    print(
        f"machine: {platform.machine()} cpus={os.cpu_count()} python={platform.python_version()} "
        f"polars={pl.__version__}; {version[0] if version else 'prometheus ?'}; "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    tier_metrics = contract.enabled(args.tier)
    configurations = [(f"tier {args.tier}", tier_metrics)]
    if args.with_families:
        extra = {contract.metric_for(*item.split(".", 1)) for item in args.with_families.split(",")}
        wider = tuple(m for m in contract.METRICS if m in extra or m in tier_metrics)
        names = ", ".join(sorted(metric.name for metric in extra))
        configurations.append((f"tier {args.tier} + {names}", wider))
    if args.shards > 1:
        configurations = [(f"{name}, {args.shards} shards", m) for name, m in configurations]
    results = []
    for name, metrics in configurations:
        bodies = render_shards(args.preset, metrics, args.shards)
        results.append(measure(name, bodies, args.scrapes, args.interval))
        print(f"measured {name}", flush=True)
        if args.gomemlimit:
            limited = f"{name}, GOMEMLIMIT={args.gomemlimit}"
            results.append(measure(limited, bodies, args.scrapes, args.interval, args.gomemlimit))
            print(f"measured {limited}", flush=True)
    print(f"preset {args.preset}, a scrape every {args.interval:g} s, {args.scrapes} scrapes:")
    for result in results:
        every = [value for target in result["durations"] for value in target]
        inside = sum(1 for value in every if value < args.interval)
        print(
            f"  {result['name']}:\n"
            f"    {result['series']:,} series in {result['targets']} target(s), "
            f"{result['bytes'] / 1e6:.1f} MB ({result['gzip_bytes'] / 1e6:.1f} MB gzip); "
            f"Prometheus head {result['head_series']:,} series\n"
            f"    Prometheus RSS {result['rss_gib']:.2f} GiB, peak {result['peak_rss_gib']:.2f} GiB"
        )
        for number, durations in enumerate(result["durations"], start=1):
            listed = ", ".join(f"{value:.2f}" for value in durations)
            print(f"    target {number} scrape durations (s): {listed}")
        print(
            f"    {inside} of {len(every)} scrapes inside the interval; Prometheus dropped "
            f"{result['hung_up']} connection(s) mid-scrape"
        )
    print("series per family, the widest configuration, whole site, biggest first:")
    bodies = render_bodies(build_topology(load_preset(args.preset)), configurations[-1][1])
    for family, count in family_table(bodies[-1][0])[:30]:
        print(f"  {count:>9,}  {family}")


if __name__ == "__main__":
    main()
