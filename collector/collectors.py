"""The collectors file: which sources ``gigawatt serve --collectors FILE`` reads, and the
inventory that attaches what they see to the site. Without it, the simulator runs.

    inventory: inventory.csv            # relative to this file; see collector/inventory.py
    sources:
      - kind: redfish                   # rack PDUs, BMCs, CDUs
        name: pdus
        max_concurrent_targets: 16
        targets:
          - url: https://10.20.1.15
            credentials: {username_env: PDU_USER, password_env: PDU_PASSWORD}
      - kind: prometheus                # dcgm-exporter, node_exporter, ipmi, neuron, Kepler
        targets:
          - {url: http://gpu-node-017:9400/metrics, exporter: dcgm}
      - kind: nvml                      # this machine's NVIDIA GPUs
        host: gpu-node-017
      - kind: sysfs                     # this machine's CPU packages (RAPL) and hwmon sensors
        host: gpu-node-017
        root: /sys
      - kind: neuron                    # this machine's Trainium/Inferentia devices
        host: trn-node-003
        command: [neuron-monitor, -c, /etc/neuron-monitor.json]   # or file: PATH, or stdin: true
        power: {root: /sys, rated_power_watts: 500}
      - kind: simulated                 # the simulated campus, beside real sources
        workload: jobs

Each entry is the spec of its kind (collector/sources/kinds/, one module per kind, listed in
collector.sources.registry). The file is validated once; every problem is listed with its
location and line. Credentials
are never in the file: it names environment variables or files that hold them. Relative paths
(the inventory, a sysfs root, a followed file) are relative to this file.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, cast

from pydantic import ConfigDict, Field, ValidationError, create_model

from collector.config_errors import (
    ConfigError,
    ConfigModel,
    ConfigProblem,
    line_index,
    located,
    read_config,
    yaml_document,
)
from collector.inventory import Inventory, load_inventory
from collector.site.topology import Topology
from collector.sources import registry
from collector.sources.base import Source
from collector.sources.plugin import BuildContext, SourceSpec


class CollectorsFile(ConfigModel):
    """The file as validated; each source is the spec of its kind (collector.sources.kinds)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    inventory: Path | None = None
    sources: tuple[SourceSpec, ...] = Field(min_length=1)


@functools.cache
def _file_model(specs: tuple[type[SourceSpec], ...]) -> type[CollectorsFile]:
    """CollectorsFile whose sources are the union of ``specs``, told apart by ``kind``; one
    model per set of registered kinds."""
    union: Any = functools.reduce(operator.or_, specs)
    by_kind = Field(discriminator="kind")
    sources: Any = tuple[Annotated[union, by_kind], ...]
    model = create_model(
        "CollectorsFile", __base__=CollectorsFile, sources=(sources, Field(min_length=1))
    )
    return cast(type[CollectorsFile], model)


class CollectorsError(ConfigError):
    """Every problem found in a collectors file, each with its location."""


def parse_collectors(text: str, source: str = "<collectors>") -> CollectorsFile:
    data = yaml_document(text, source, CollectorsError)
    lines = line_index(text)
    try:
        spec = _file_model(tuple(kind.spec for kind in registry.kinds())).model_validate(data)
    except ValidationError as error:
        problems = []
        details = error.errors()
        tags = set(registry.names())
        for detail in details:
            # pydantic names the union member chosen by `kind` in the path: not a YAML key.
            path = tuple(
                part
                for position, part in enumerate(detail["loc"])
                if not (position == 2 and detail["loc"][0] == "sources" and part in tags)
            )
            deeper = [
                d
                for d in details
                if len(d["loc"]) > len(detail["loc"])
                and tuple(d["loc"][: len(detail["loc"])]) == tuple(detail["loc"])
            ]
            if detail["type"] == "too_short" and deeper:
                continue  # "no item left" only echoes the items' own problems, listed anyway
            problems.append(located(lines, path, detail["msg"]))
        raise CollectorsError(source, problems) from None
    names = [item.name for item in spec.sources]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        problem = ConfigProblem("sources", f"names must differ: {', '.join(repeated)}")
        raise CollectorsError(source, [problem])
    return spec


def build_sources(
    path: Path, topology: Topology, environ: Mapping[str, str] | None = None
) -> list[Source]:
    """The sources a collectors file describes, attached through its inventory, each built by
    its kind (collector.sources.registry). Building starts nothing: no connection, process or
    thread until a source is first read."""
    spec = parse_collectors(read_config(path, CollectorsError), str(path))
    inventory = (
        load_inventory(path.parent / spec.inventory, topology)
        if spec.inventory
        else Inventory.empty()
    )
    context = BuildContext(topology, inventory, path.parent, environ)
    sources: list[Source] = []
    try:
        for item in spec.sources:
            sources.append(registry.kind_named(item.kind).build(item, context))
    except BaseException:
        _close(sources)  # those built before the one that failed
        raise
    return sources


def _close(sources: list[Source]) -> None:
    for source in sources:
        close = getattr(source, "close", None)
        if callable(close):
            close()
