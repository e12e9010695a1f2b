"""Lint of the metric table, its link to the snapshot, and the freshness of docs/metrics.md."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import get_args

import polars as pl
import pytest
from pydantic import TypeAdapter, ValidationError

from collector.pipeline import Pipeline, Snapshot
from collector.scenarios.config import parse_scenario
from collector.scenarios.source import ScenarioRun, play
from collector.schemas import LEVEL_LABELS
from collector.site.model import load_preset
from collector.site.topology import Topology, build_topology
from collector.sources.base import SampleBatch
from collector.sources.simulated import SimulatedSource, SimulationConfig
from exporters import contract, docs
from exporters.contract import BY_NAME, METRICS, TIERS
from exporters.contract.metrics import STANDARD_NAMES
from exporters.exposition import Rendered, Renderer

ROOT = Path(__file__).resolve().parents[2]

# The naming contract, written out here rather than read from the module under test.
UNIT_SUFFIXES = {
    "watts": "_watts",
    "joules": "_joules_total",
    "celsius": "_celsius",
    "ratio": "_ratio",
    "seconds": "_seconds",
    "amperes": "_amperes",
    "volts": "_volts",
    "bytes": "_bytes",
    "hertz": "_hertz",
    "watts_per_second": "_watts_per_second",
    "": "",
}
FORBIDDEN_UNITS = ("kilowatt", "megawatt", "gigawatts", "percent", "millisecond", "kwh", "mwh")
SNAKE_CASE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")

# Series the issue names, with the labels each must carry.
REQUIRED: dict[str, tuple[str, ...]] = {
    "gigawatt_site_facility_power_watts": (),
    "gigawatt_site_it_power_watts": (),
    "gigawatt_site_contract_watts": (),
    "gigawatt_building_it_power_watts": ("building",),
    "gigawatt_building_facility_power_watts": ("building",),
    "gigawatt_building_pue_ratio": ("building",),
    "gigawatt_rack_power_watts": ("building", "hall", "row", "rack"),
    "gigawatt_rack_capacity_watts": ("building", "hall", "row", "rack"),
    "gigawatt_rack_headroom_watts": ("building", "hall", "row", "rack"),
    # Self-monitoring.
    "gigawatt_cycle_duration_seconds": (),
    "gigawatt_samples_accepted_total": ("source", "kind"),
    "gigawatt_samples_rejected_total": ("source", "kind", "reason"),
    "gigawatt_source_up": ("source", "target"),
}

IDS = [metric.name for metric in METRICS]


class OneBadFeed:
    """The simulator running jobs, with one feed reading NaN: every frame the table reads,
    the job frames and the rejections included, has rows."""

    name = "simulated"

    def __init__(self, topology: Topology) -> None:
        self.inner = SimulatedSource(topology, SimulationConfig(workload="jobs"))

    def read(self, now: float) -> SampleBatch:
        batch = self.inner.read(now)
        feeds = batch.feeds.with_columns(
            power_watts=pl.when(pl.col("feed_index") == 0)
            .then(float("nan"))
            .otherwise(pl.col("power_watts"))
        )
        return replace(batch, feeds=feeds)


@pytest.fixture(scope="module")
def demo() -> tuple[Topology, Snapshot]:
    topology = build_topology(load_preset("demo"))
    now = [1_700_000_000.0]

    def clock() -> float:
        return now[0]

    # A forced oscillation at the point of interconnection, so that the grid spectrum has a
    # component to report (the demo's own load wanders below the band's lowest bins), and
    # 70 s of fast meter history: the spectrum's figures appear from 60 s on.
    oscillation = parse_scenario(
        "events: [{kind: oscillation, meter: poi, frequency_hz: 0.5, "
        "peak_to_peak_watts: 200000, at: 0s}]",
        topology,
        ["simulated"],
    )
    sources = play([OneBadFeed(topology)], ScenarioRun(oscillation, now[0]), topology)
    pipeline = Pipeline(topology, sources, clock=clock)
    snapshot = pipeline.run_cycle()
    for _ in range(7):
        now[0] += 10.0
        snapshot = pipeline.run_cycle()
    return topology, snapshot


@pytest.mark.parametrize("metric", METRICS, ids=IDS)
def test_name_is_namespaced_snake_case_without_forbidden_units(
    metric: contract.Metric,
) -> None:
    if metric.name in STANDARD_NAMES:  # process_start_time_seconds, as every client names it
        return
    assert metric.name.startswith(f"{contract.NAMESPACE}_")
    assert metric.name.startswith("gigawatt_")
    assert SNAKE_CASE.match(metric.name), metric.name
    for forbidden in FORBIDDEN_UNITS:
        assert forbidden not in metric.name.removeprefix("gigawatt_"), metric.name
    words = metric.name.split("_")
    assert not {"ms", "kw", "mw", "pct"} & set(words), metric.name


def test_names_are_unique() -> None:
    repeated = [name for name, count in Counter(IDS).items() if count > 1]
    assert repeated == []
    assert len(BY_NAME) == len(METRICS)


@pytest.mark.parametrize("metric", METRICS, ids=IDS)
def test_type_and_unit_suffix(metric: contract.Metric) -> None:
    assert metric.type in ("gauge", "counter")
    if metric.type == "counter":
        assert metric.name.endswith("_total"), f"counter {metric.name} must end in _total"
    else:
        assert not metric.name.endswith("_total"), f"gauge {metric.name} ends in _total"
    assert metric.unit in UNIT_SUFFIXES, f"{metric.name}: unknown unit {metric.unit!r}"
    suffix = UNIT_SUFFIXES[metric.unit]
    if metric.type == "counter" and not suffix.endswith("_total"):
        suffix += "_total"
    assert metric.name.endswith(suffix), f"{metric.name} should end in {suffix}"
    if metric.unit == "":
        stem = metric.name.removesuffix("_total")
        others = [s.removesuffix("_total") for s in UNIT_SUFFIXES.values() if s]
        assert not any(stem.endswith(other) for other in others), (
            f"{metric.name} has no unit but its name ends with a unit suffix"
        )


def test_the_module_unit_table_matches_the_contract() -> None:
    assert contract.UNIT_SUFFIXES == UNIT_SUFFIXES


@pytest.mark.parametrize("metric", METRICS, ids=IDS)
def test_help_tier_and_labels(metric: contract.Metric) -> None:
    assert metric.help.strip(), f"{metric.name} has no help"
    assert metric.help == metric.help.strip()
    assert "\n" not in metric.help
    assert metric.tier in TIERS
    assert metric.frame in LEVEL_LABELS or metric.frame in contract.EXTRA_LABELS
    assert len(set(metric.labels)) == len(metric.labels)
    for label in metric.labels:
        assert SNAKE_CASE.match(label) and not label.startswith("__"), label
        assert label not in ("le", "quantile", "job", "instance"), label


@pytest.mark.parametrize(("name", "labels"), REQUIRED.items(), ids=list(REQUIRED))
def test_required_metric_exists_with_labels(name: str, labels: tuple[str, ...]) -> None:
    assert name in BY_NAME, f"{name} is missing from the metric table"
    assert BY_NAME[name].labels == labels


def test_self_monitoring_is_always_on() -> None:
    always = {metric.name for metric in contract.enabled("site")}
    for name in (
        "gigawatt_cycle_duration_seconds",
        "gigawatt_samples_accepted_total",
        "gigawatt_samples_rejected_total",
        "gigawatt_source_up",
        "gigawatt_site_it_power_watts",
        "gigawatt_site_facility_power_watts",
    ):
        assert name in always
    assert BY_NAME["gigawatt_cycle_duration_seconds"].unit == "seconds"
    assert BY_NAME["gigawatt_samples_accepted_total"].type == "counter"
    assert BY_NAME["gigawatt_samples_rejected_total"].type == "counter"


def test_tiers_nest() -> None:
    assert contract.DEFAULT_TIER in TIERS
    previous: set[str] = set()
    for tier in TIERS:
        names = {metric.name for metric in contract.enabled(tier)}
        assert previous < names, f"tier {tier} adds nothing or drops a metric"
        for metric in contract.enabled(tier):
            assert TIERS.index(metric.tier) <= TIERS.index(tier)
        previous = names
    assert previous == set(BY_NAME)
    # The one check of a tier is at the boundary (the service settings' type): nothing deeper
    # needs to check it again.
    with pytest.raises(ValidationError, match="literal_error"):
        TypeAdapter(contract.Tier).validate_python("datacenter")


# Series that exist only once a source has reported a problem.
ONLY_WHEN_SOMETHING_GOES_WRONG = {
    "gigawatt_source_problems_total",
    # accelerators whose error counters grew, or that stopped reporting (pinned in
    # tests/collector/test_pipeline.py and tests/collector/test_scenario.py)
    "gigawatt_anomalous_accelerator_recent_errors",
    "gigawatt_anomalous_accelerator_ecc_errors_total",
    "gigawatt_anomalous_accelerator_xid_errors_total",
    "gigawatt_anomalous_accelerator_silent_seconds",
}


@pytest.mark.parametrize("metric", METRICS, ids=IDS)
def test_column_exists_in_the_frame_the_renderer_reads(
    metric: contract.Metric, demo: tuple[Topology, Snapshot]
) -> None:
    topology, snapshot = demo
    renderer = Renderer(topology, "accelerator")
    previous = Rendered(body=memoryview(b""), series=1, seconds=0.1)
    frames = renderer._frames(snapshot, previous, process_start_seconds=1.7e9)
    labelled = renderer._labelled(metric.frame, frames.get(metric.frame, pl.DataFrame()), snapshot)
    assert metric.column in labelled.columns, (
        f"{metric.name}: column {metric.column!r} not in frame {metric.frame!r} "
        f"({', '.join(labelled.columns)})"
    )
    assert labelled.schema[metric.column].is_numeric()
    if metric.name in ONLY_WHEN_SOMETHING_GOES_WRONG:
        return  # pinned by tests that make it go wrong (tests/collector/test_pipeline.py)
    assert labelled.height > 0, f"{metric.name}: frame {metric.frame!r} is empty in a demo cycle"
    assert labelled.get_column(metric.column).is_not_null().any(), f"{metric.name}: all null"


def test_docs_are_fresh() -> None:
    text = (ROOT / "docs" / "metrics.md").read_text(encoding="utf-8")
    assert text == docs.metrics_markdown(), "docs/metrics.md is stale: run `gigawatt generate`"
    for metric in METRICS:
        assert f"`{metric.name}`" in text
    assert docs.generated_files() == {"docs/metrics.md": docs.metrics_markdown()}


def _generate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "exporters.cli", "generate", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_generate_check_passes_on_the_repository() -> None:
    result = _generate("--check")
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""


def test_generate_check_fails_on_a_modified_copy(tmp_path: Path) -> None:
    assert _generate("--root", str(tmp_path)).returncode == 0  # every generated file
    copy = tmp_path / "docs" / "metrics.md"
    shutil.copyfile(ROOT / "docs" / "metrics.md", copy)
    assert _generate("--check", "--root", str(tmp_path)).returncode == 0

    copy.write_text(copy.read_text(encoding="utf-8") + "| hand edit |\n", encoding="utf-8")
    result = _generate("--check", "--root", str(tmp_path))
    assert result.returncode == 1
    assert "docs/metrics.md" in result.stderr
    assert copy.read_text(encoding="utf-8").endswith("| hand edit |\n"), "--check must not write"

    written = _generate("--root", str(tmp_path))
    assert written.returncode == 0, written.stderr
    assert copy.read_text(encoding="utf-8") == docs.metrics_markdown()


def test_generate_check_fails_when_the_file_is_missing(tmp_path: Path) -> None:
    result = _generate("--check", "--root", str(tmp_path))
    assert result.returncode == 1
    assert "docs/metrics.md" in result.stderr
    assert not (tmp_path / "docs" / "metrics.md").exists()


# --- one contract: nothing outside it spells what it defines ----------------------------------

PRODUCT_CODE = ("collector", "exporters", "dashboards")
CONTRACT = ROOT / "exporters" / "contract"


def _product_modules() -> list[Path]:
    return [
        path
        for folder in PRODUCT_CODE
        for path in sorted((ROOT / folder).rglob("*.py"))
        if CONTRACT not in path.parents
    ]


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the string nodes that are docstrings: they may show a line of exposition."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def _strings(path: Path) -> list[tuple[int, str]]:
    """(line, text) of every string literal in a module that is not a docstring; f-strings
    give their literal parts."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _docstrings(tree)
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip
    ]


def test_no_metric_name_is_spelled_outside_the_contract() -> None:
    names = set(BY_NAME)
    word = re.compile(r"\b[a-z_:]+\b")
    spelled = [
        f"{path.relative_to(ROOT)}:{line}: {token}"
        for path in _product_modules()
        for line, text in _strings(path)
        for token in word.findall(text)
        if token in names
    ]
    assert _product_modules(), "no product code found"
    assert not spelled, "look metric names up with contract.name_of(frame, column):\n" + "\n".join(
        spelled
    )


def _tier_lists(path: Path) -> list[int]:
    """Lines of literal sequences that list the tiers (site ... accelerator) again."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        elements: list[ast.expr] = []
        if isinstance(node, ast.Tuple | ast.List | ast.Set):
            elements = list(node.elts)
        values = {e.value for e in elements if isinstance(e, ast.Constant)}
        if {"site", "accelerator"} <= values and len(values & set(TIERS)) >= 5:
            found.append(node.lineno)
    return found


def test_the_tier_list_is_spelled_once() -> None:
    places = {
        str(path.relative_to(ROOT)): lines
        for path in [*_product_modules(), *sorted(CONTRACT.rglob("*.py"))]
        if (lines := _tier_lists(path))
    }
    # The one Literal: the levels of the site, which the tiers are.
    assert places == {"collector/schemas.py": places.get("collector/schemas.py", [])}
    assert len(places["collector/schemas.py"]) == 1, places
    assert get_args(contract.Tier) == TIERS


def test_the_checks_above_see_a_spelled_name(tmp_path: Path) -> None:
    """The scanners find what they look for: a spelled name in code, not in a docstring."""
    module = tmp_path / "m.py"
    some = METRICS[0].name
    tiers = ", ".join(repr(tier) for tier in TIERS)
    module.write_text(f'"""{some} in a docstring is fine."""\nX = "{some}"\nT = ({tiers})\n')
    assert next(text for _, text in _strings(module)) == some
    assert _tier_lists(module) == [3]


def test_importing_the_contract_pulls_in_no_web_stack() -> None:
    code = (
        "import sys, exporters.contract; "
        "print(','.join(m for m in ('fastapi', 'starlette', 'uvicorn', 'httpx', 'niquests') "
        "if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def test_every_metric_is_found_by_its_frame_and_column() -> None:
    for metric in METRICS:
        assert contract.metric_for(metric.frame, metric.column) is metric
        assert contract.name_of(metric.frame, metric.column) == metric.name
    with pytest.raises(KeyError, match="no metric is read from frame 'rack', column 'nope'"):
        contract.metric_for("rack", "nope")
