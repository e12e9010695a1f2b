"""Benchmark: what a tier costs a real Prometheus, the whole campus scraped by one server.

    .venv/bin/python bench/bench_prometheus.py [--preset campus] [--scrapes 6] [--interval 10]
                                               [--tier rack] [--with-families a,b,...]
                                               [--gomemlimit 3GiB]

The exposition of ``--tier`` (and, as a second configuration in the same run, the same tier
with the metrics named by ``--with-families`` added back, as ``frame.column``) is rendered
from simulated cycles and served from memory on loopback, plain or gzip as asked, a new
cycle's body every scrape. Debian's ``prometheus`` scrapes it every ``--interval`` seconds
with that interval as its timeout, and scrapes itself. After ``--scrapes`` scrapes it prints,
per configuration: the series exposed and what Prometheus holds in its head, its resident
memory now and at its peak (``VmRSS``, ``VmHWM``), and each scrape's duration and whether it
fitted in the interval. With ``--gomemlimit``, every configuration is measured a second time
with Prometheus' Go runtime given that soft memory limit (the GOMEMLIMIT environment
variable), as a deployment can set it. Then the series per family of the exposition, the
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
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import polars as pl

from collector.pipeline import Pipeline
from collector.site.model import load_preset
from collector.site.topology import build_topology
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


def render_bodies(preset: str, metrics: tuple[contract.Metric, ...]) -> list[tuple[bytes, bytes]]:
    """(plain, gzip) bodies of BODIES consecutive cycles."""
    topology = build_topology(load_preset(preset))
    timestamps = iter(1_780_000_000.0 + 10.0 * n for n in range(100))
    source = SimulatedSource(topology, SimulationConfig(workload="jobs"))
    pipeline = Pipeline(topology, [source], clock=lambda: next(timestamps))
    renderer = Renderer(topology, metrics=metrics)
    bodies = []
    previous = None
    for _ in range(BODIES):
        previous = renderer.render(pipeline.run_cycle(analyze_grid=False), previous)
        bodies.append((previous.body, gzip_body(previous.body)))
    return bodies


@contextmanager
def exposition_server(bodies: list[tuple[bytes, bytes]]) -> Iterator[tuple[str, list[int]]]:
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
    bodies: list[tuple[bytes, bytes]],
    scrapes: int,
    interval: float,
    gomemlimit: str | None = None,
) -> dict[str, Any]:
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        sys.exit("prometheus not found on PATH (Debian: apt-get install prometheus)")
    with exposition_server(bodies) as (target, hung_up), tempfile.TemporaryDirectory() as workdir:
        port = free_port()
        config = {
            "global": {"scrape_interval": f"{interval:g}s", "scrape_timeout": f"{interval:g}s"},
            "scrape_configs": [
                {"job_name": "gigawatt", "static_configs": [{"targets": [target]}]},
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
        durations: dict[float, float] = {}
        try:
            deadline = time.monotonic() + interval * (scrapes + 6) + 120
            while len(durations) < scrapes:
                if process.poll() is not None or time.monotonic() > deadline:
                    sys.exit(f"{name}: prometheus gave {len(durations)} of {scrapes} scrapes")
                try:  # a range selector gives every scrape's own sample and time
                    found = query(base, 'scrape_duration_seconds{job="gigawatt"}[1h]')
                    if found:
                        durations = {float(t): float(v) for t, v in found[0]["values"]}
                except (httpx.HTTPError, KeyError, ValueError):
                    pass
                time.sleep(interval / 2)
            head = query(base, "prometheus_tsdb_head_series")
            samples = query(base, 'scrape_samples_scraped{job="gigawatt"}')
            memory = memory_kib(process.pid)
        finally:
            process.terminate()
            process.wait(timeout=60)
            log.close()
    series = sum(1 for line in bodies[-1][0].splitlines() if line and not line.startswith(b"#"))
    return {
        "name": name,
        "series": series,
        "bytes": len(bodies[-1][0]),
        "gzip_bytes": len(bodies[-1][1]),
        "head_series": int(float(head[0]["value"][1])) if head else None,
        "samples_scraped": int(float(samples[0]["value"][1])) if samples else None,
        "rss_gib": memory.get("VmRSS", 0) / 1024**2,
        "peak_rss_gib": memory.get("VmHWM", 0) / 1024**2,
        "durations": [durations[stamp] for stamp in sorted(durations)],
        "hung_up": hung_up[0],
    }


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
    results = []
    for name, metrics in configurations:
        bodies = render_bodies(args.preset, metrics)
        results.append(measure(name, bodies, args.scrapes, args.interval))
        print(f"measured {name}", flush=True)
        if args.gomemlimit:
            limited = f"{name}, GOMEMLIMIT={args.gomemlimit}"
            results.append(measure(limited, bodies, args.scrapes, args.interval, args.gomemlimit))
            print(f"measured {limited}", flush=True)
    print(f"preset {args.preset}, a scrape every {args.interval:g} s, {args.scrapes} scrapes:")
    for result in results:
        durations = result["durations"]
        inside = sum(1 for value in durations if value < args.interval)
        print(
            f"  {result['name']}:\n"
            f"    {result['series']:,} series, {result['bytes'] / 1e6:.1f} MB "
            f"({result['gzip_bytes'] / 1e6:.1f} MB gzip); Prometheus head "
            f"{result['head_series']:,} series\n"
            f"    Prometheus RSS {result['rss_gib']:.2f} GiB, peak {result['peak_rss_gib']:.2f} GiB"
            f"\n    scrape durations (s): {', '.join(f'{v:.2f}' for v in durations)}; "
            f"{inside} of {len(durations)} inside the interval; Prometheus dropped "
            f"{result['hung_up']} connection(s) mid-scrape"
        )
    print("series per family, the widest configuration, biggest first:")
    bodies = render_bodies(args.preset, configurations[-1][1])
    for family, count in family_table(bodies[-1][0])[:30]:
        print(f"  {count:>9,}  {family}")


if __name__ == "__main__":
    main()
