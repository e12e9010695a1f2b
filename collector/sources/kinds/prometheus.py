"""Kind ``prometheus``: exporters sites already run (dcgm-exporter, node_exporter,
ipmi_exporter, neuron-monitor's companion, Kepler), scraped once per cycle::

    - kind: prometheus
      targets:
        - {url: http://gpu-node-017:9400/metrics, exporter: dcgm}
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Literal

import polars as pl
from pydantic import Field

from collector.sources.base import Source
from collector.sources.plugin import (
    BuildContext,
    Probe,
    ProbeError,
    ProbeKind,
    ProbeOptions,
    SourceKind,
    SourceSpec,
    first_problem,
    timeout_seconds,
    validation_message,
)
from collector.sources.readings_source import ClosingReader, Reader, ReaderResult, ReadingsSource
from collector.sources.scrape import ScrapeTarget


class PrometheusSpec(SourceSpec):
    kind: Literal["prometheus"]
    name: str = "prometheus"
    targets: tuple[ScrapeTarget, ...] = Field(min_length=1)
    max_concurrency: int = Field(default=64, gt=0)
    deadline_seconds: float = Field(default=10.0, gt=0)


def prometheus_reader(
    targets: Sequence[ScrapeTarget], max_concurrency: int, deadline_seconds: float
) -> Reader:
    """The targets scraped once per call, with connections kept between calls."""
    from collector.sources.scrape import Scraper

    scraper = Scraper(
        list(targets), max_concurrency=max_concurrency, deadline_seconds=deadline_seconds
    )

    def read(now: float) -> ReaderResult:
        result = scraper.scrape(now)
        health = result.targets.select("target", pl.col("up").cast(pl.Float64), "duration_seconds")
        return ReaderResult(result.readings, result.problems, health)

    return ClosingReader(read, scraper.close)


def build(spec: PrometheusSpec, context: BuildContext) -> Source:
    reader = prometheus_reader(spec.targets, spec.max_concurrency, spec.deadline_seconds)
    return ReadingsSource(spec.name, reader, context.inventory)


def probe(target: str, options: ProbeOptions, now: float) -> Probe:
    from collector.sources.exporter_maps import EXPORTERS
    from collector.sources.scrape import AUTO, scrape_all

    exporter = options.exporter if options.exporter is not None else AUTO
    if exporter != AUTO and exporter not in EXPORTERS:
        raise ProbeError(f"--exporter must be {AUTO} or one of {', '.join(EXPORTERS)}")
    try:
        scrape_target = ScrapeTarget(
            url=target,
            exporter=exporter,
            timeout_seconds=timeout_seconds(options),
            tls_verify=not options.insecure,
            ca_bundle=options.ca_bundle,
        )
    except ValueError as error:
        raise ProbeError(f"{target}: {validation_message(error)}") from None
    result = asyncio.run(
        scrape_all([scrape_target], now, deadline_seconds=scrape_target.timeout_seconds + 1)
    )
    unreadable = None if result.targets.item(0, "up") else first_problem(result.problems)
    return Probe(result.readings, result.problems, unreadable)


KIND = SourceKind(
    spec=PrometheusSpec,
    build=build,
    probe=ProbeKind(
        read=probe,
        target_help="an exporter's /metrics URL",
        options=frozenset({"exporter", "timeout", "insecure", "ca_bundle"}),
    ),
)
