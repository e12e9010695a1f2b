"""gigawatt's renderer against prometheus_client's standard path, timed in the same run.

The one timing assertion of the suite, and a ratio: both render the same snapshot of one
campus building type four times over (about 220,000 series at the default tier), alternately,
a few times, so that
load on the machine falls on both alike, and compared by the fastest render of each, since
load only ever adds time. Measured on a quiet machine the ratio is far above
the bar (docs/performance.md); the bar catches a renderer that lost its bulk path.
"""

from __future__ import annotations

from collections import Counter

from bench.baseline import alternate, prometheus_client_render, scaled_site
from collector.pipeline import Pipeline
from collector.site.topology import build_topology
from collector.sources.simulated import SimulatedSource, SimulationConfig
from exporters.exposition import Renderer

MINIMUM_RATIO = 10.0
# Five buildings (about 234,000 series at the default tier), not one: at one building (47,000
# series) fixed costs hold the ratio near 10x, and load on a 2-core machine pushed it to
# 9.1-9.9x; from about 220,000 series the ratio is well clear.
BUILDINGS = 5
PAIRS = 4


def sample_counts(body: bytes | memoryview) -> Counter[str]:
    """Sample lines per series name."""
    return Counter(
        line.partition(b" ")[0].partition(b"{")[0].decode()
        for line in bytes(body).splitlines()
        if not line.startswith(b"#")
    )


def test_render_is_ten_times_faster_than_prometheus_client() -> None:
    topology = build_topology(scaled_site("campus", BUILDINGS))
    timestamps = iter(1_780_000_000.0 + 10.0 * n for n in range(10))
    pipeline = Pipeline(
        topology,
        [SimulatedSource(topology, SimulationConfig(workload="jobs"))],
        clock=lambda: next(timestamps),
    )
    renderer = Renderer(topology)
    pipeline.run_cycle(analyze_grid=False)
    snapshot = pipeline.run_cycle(analyze_grid=False)

    # The two render the same series: the comparison is like for like.
    ours = sample_counts(renderer.render(snapshot).body)
    assert sum(ours.values()) > 200_000
    assert ours == sample_counts(prometheus_client_render(renderer, snapshot))

    alternated = alternate(renderer, snapshot, PAIRS)
    assert alternated.best_ratio >= MINIMUM_RATIO, (
        f"gigawatt {min(alternated.gigawatt):.3f} s against prometheus_client "
        f"{min(alternated.prometheus_client):.3f} s (fastest of {PAIRS} alternated renders "
        f"each): {alternated.best_ratio:.1f}x, below {MINIMUM_RATIO:g}x"
    )
