"""The demo exposition, byte for byte, against tests/exporters/golden/demo.prom.

What ``gigawatt serve --preset demo`` would expose after its third cycle, made repeatable: the
demo preset, the simulator at seed 0 with the job workload (serve's defaults), a clock fixed at
START and stepped by INTERVAL_SECONDS, and the renderer at the default tier, each render fed
the previous one as the service does (so the series-count gauge is there too). The build info
carries the renderer's default version, so a release does not rewrite the file.

Four values are wall-clock durations that the pipeline and the renderer time themselves with
``time.perf_counter``, which no seed or injected clock fixes: the cycle's, the render's and the
grid analysis's durations, and each source's read duration (WALL_CLOCK_COLUMNS). Their lines
stay in the comparison (name, labels, that they are there at all); only their values are
replaced by ``WALL_CLOCK``, in the output and in the golden file alike. Every other byte counts.

After a change of the exposition that is meant, rewrite the golden file and review its diff::

    .venv/bin/pytest tests/exporters/test_golden.py --update-golden
"""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest

from collector.pipeline import Pipeline
from collector.site.model import load_preset
from collector.site.topology import build_topology
from collector.sources.simulated import SimulatedSource, SimulationConfig
from exporters import contract
from exporters.exposition import Rendered, Renderer

GOLDEN = Path(__file__).parent / "golden" / "demo.prom"
START = 1_750_000_000.0  # 2025-06-15 15:06:40 UTC: a fixed afternoon, for the weather and PUE
INTERVAL_SECONDS = 10.0  # serve's default interval
CYCLES = 3  # enough for energy counters, rates and a previous render to feed the next
SEED = 0

# (frame, column) of each value measured with the wall clock; see the module docstring.
WALL_CLOCK_COLUMNS = (
    ("process", "cycle_seconds"),
    ("process", "render_seconds"),
    ("process", "grid_analysis_seconds"),
    ("source", "read_seconds"),
)
WALL_CLOCK_METRICS = frozenset(
    contract.name_of(frame, column) for frame, column in WALL_CLOCK_COLUMNS
)
WALL_CLOCK = "WALL_CLOCK"
DIFF_LINES = 60  # of a failure's unified diff: enough to see what moved, short enough to read


class SteppedClock:
    """A clock that reads ``now`` until the test moves it: however often it is asked."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def demo_exposition() -> bytes:
    """The default-tier exposition after CYCLES cycles of the demo site (see the docstring)."""
    topology = build_topology(load_preset("demo"))
    clock = SteppedClock(START)
    simulator = SimulatedSource(topology, SimulationConfig(seed=SEED, workload="jobs"))
    pipeline = Pipeline(topology, [simulator], clock=clock)
    renderer = Renderer(topology, contract.DEFAULT_TIER)
    rendered: Rendered | None = None
    for cycle in range(CYCLES):
        clock.now = START + cycle * INTERVAL_SECONDS
        rendered = renderer.render(pipeline.run_cycle(), rendered)
    assert rendered is not None
    return bytes(rendered.body)


def normalised(body: bytes) -> bytes:
    """``body`` with the value of every wall-clock series replaced by WALL_CLOCK."""
    lines = []
    for line in body.decode("utf-8").splitlines(keepends=True):
        series, _, _ = line.rpartition(" ")
        if not line.startswith("#") and series.split("{", 1)[0] in WALL_CLOCK_METRICS:
            line = f"{series} {WALL_CLOCK}\n"
        lines.append(line)
    return "".join(lines).encode("utf-8")


@pytest.fixture(scope="module")
def exposition() -> bytes:
    return normalised(demo_exposition())


def test_the_demo_exposition_matches_its_golden_file(
    exposition: bytes, request: pytest.FixtureRequest
) -> None:
    if request.config.getoption("--update-golden"):
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_bytes(exposition)
        return
    if not GOLDEN.is_file():
        pytest.fail(f"{GOLDEN} is missing: write it with --update-golden and review it")
    expected = GOLDEN.read_bytes()
    if exposition != expected:
        diff = difflib.unified_diff(
            expected.decode("utf-8").splitlines(),
            exposition.decode("utf-8").splitlines(),
            fromfile=str(GOLDEN),
            tofile="rendered now",
            lineterm="",
        )
        shown = "\n".join(line for _, line in zip(range(DIFF_LINES), diff, strict=False))
        pytest.fail(
            f"the demo exposition differs from {GOLDEN.name}; if the change is meant, rerun "
            f"with --update-golden and review the diff:\n{shown}"
        )


def test_only_the_wall_clock_values_are_normalised(exposition: bytes) -> None:
    """Each wall-clock metric has its line (one per source for read durations), and no other
    series lost its value to the normalisation."""
    normalised_series = [
        line.rpartition(" ")[0].split("{", 1)[0]
        for line in exposition.decode("utf-8").splitlines()
        if line.endswith(f" {WALL_CLOCK}")
    ]
    assert sorted(normalised_series) == sorted(WALL_CLOCK_METRICS)
