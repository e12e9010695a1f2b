"""Kind ``simulated``: the simulated campus, beside real sources::

- kind: simulated
  workload: jobs         # or steady
  seed: 0
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from collector.sources.base import Source
from collector.sources.plugin import BuildContext, SourceKind, SourceSpec
from collector.sources.simulated import SimulatedSource, SimulationConfig


class SimulatedSpec(SourceSpec):
    kind: Literal["simulated"]
    name: str = "simulated"
    workload: Literal["jobs", "steady"] = "jobs"
    seed: int = Field(default=0, ge=0)


def build(spec: SimulatedSpec, context: BuildContext) -> Source:
    return SimulatedSource(
        context.topology, SimulationConfig(seed=spec.seed, workload=spec.workload)
    )


# Nothing to probe: it reads no target.
KIND = SourceKind(spec=SimulatedSpec, build=build)
