"""`gigawatt site validate|show`, run as a real subprocess."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from collector.site.model import Site, load_preset, preset_text

ROOT = Path(__file__).resolve().parents[3]


def gigawatt(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "exporters.cli", *args],
        cwd=ROOT,
        # Wide and plain, so typer's error panels do not wrap the messages looked for.
        env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def counts(site: Site) -> dict[str, int]:
    """Racks and accelerators from the site file's arithmetic, not from the topology."""
    racks = accelerators = 0
    for group in site.buildings:
        for halls in site.building_types[group.type].halls:
            rack = site.rack_types[halls.rack_type]
            node = site.node_types[rack.node_type]
            these = group.count * halls.count * halls.rows * halls.racks_per_row
            racks += these
            accelerators += these * rack.nodes * node.accelerators
    return {"racks": racks, "accelerators": accelerators}


def shown_count(stdout: str, level: str) -> str:
    """The count column of one level's line in `site show`."""
    match = re.search(rf"^{re.escape(level)}\s+([\d,]+)\s", stdout, flags=re.MULTILINE)
    assert match, f"no {level!r} line in:\n{stdout}"
    return match.group(1)


# --- site validate ---------------------------------------------------------------------------


def test_validate_accepts_a_good_file(tmp_path: Path) -> None:
    good = tmp_path / "site.yaml"
    good.write_text(preset_text("demo"), encoding="utf-8")
    result = gigawatt("site", "validate", str(good))
    assert result.returncode == 0, result.stderr
    assert "valid site 'demo'" in result.stdout
    assert result.stderr == ""


# (text in the demo preset, its replacement, the location the problem must name)
MISTAKES = (
    ("contract_watts: 2.5e6", "contract_watts: -2.5e6", "contract_watts"),
    (
        "memory_bytes: 103079215104",
        "memory_bytes: lots",
        "accelerator_types.trainium2.memory_bytes",
    ),
    (
        "{feed: B, voltage_volts: 415, phases: 3,",
        "{feed: B, voltage_volts: 415, phases: 2,",
        "rack_types.trn2-rack.pdus.1.phases",
    ),
)


def test_validate_lists_every_problem_with_its_line(tmp_path: Path) -> None:
    text = preset_text("demo")
    for old, new, _ in MISTAKES:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    lines = text.splitlines()
    bad = tmp_path / "bad.yaml"
    bad.write_text(text, encoding="utf-8")

    result = gigawatt("site", "validate", str(bad))
    assert result.returncode == 1
    assert f"{bad}: {len(MISTAKES)} problem(s)" in result.stderr
    for _, new, location in MISTAKES:
        [line] = [number for number, line in enumerate(lines, 1) if new in line]
        assert re.search(rf"line {line}: {re.escape(location)}: \S", result.stderr), (
            f"no 'line {line}: {location}' in:\n{result.stderr}"
        )
    assert result.stdout == ""


def test_validate_a_cross_reference_mistake(tmp_path: Path) -> None:
    text = preset_text("demo").replace("node_type: trn2.48xlarge", "node_type: trn3.huge")
    lines = text.splitlines()
    bad = tmp_path / "bad.yaml"
    bad.write_text(text, encoding="utf-8")
    result = gigawatt("site", "validate", str(bad))
    assert result.returncode == 1
    [line] = [n for n, text_line in enumerate(lines, 1) if "trn3.huge" in text_line]
    assert f"line {line}: rack_types.trn2-rack.node_type: unknown node type" in result.stderr


def test_validate_a_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "absent.yaml"
    result = gigawatt("site", "validate", str(missing))
    assert result.returncode == 1
    assert str(missing) in result.stderr
    assert "cannot read" in result.stderr


def test_validate_a_file_that_is_not_yaml(tmp_path: Path) -> None:
    bad = tmp_path / "broken.yaml"
    bad.write_text("name: demo\ncontract_watts: [1, 2\n", encoding="utf-8")
    result = gigawatt("site", "validate", str(bad))
    assert result.returncode == 1
    assert "not valid YAML" in result.stderr
    assert "line " in result.stderr


# --- site show -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("preset", "racks", "accelerators"),
    [("demo", "64", "2,048"), ("campus", "67,200", "2,150,400")],
)
def test_show_prints_counts(preset: str, racks: str, accelerators: str) -> None:
    expected = counts(load_preset(preset))
    assert f"{expected['racks']:,}" == racks
    assert f"{expected['accelerators']:,}" == accelerators
    result = gigawatt("site", "show", "--preset", preset)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"site {preset}: contract ")
    assert shown_count(result.stdout, "racks") == racks
    assert shown_count(result.stdout, "accelerators") == accelerators


def test_show_a_site_file_matches_its_preset(tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    site.write_text(preset_text("demo"), encoding="utf-8")
    from_file = gigawatt("site", "show", "--site", str(site))
    from_preset = gigawatt("site", "show", "--preset", "demo")
    assert from_file.returncode == 0, from_file.stderr
    assert from_file.stdout == from_preset.stdout


def test_show_rejects_preset_and_site_together(tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    site.write_text(preset_text("demo"), encoding="utf-8")
    result = gigawatt("site", "show", "--preset", "demo", "--site", str(site))
    assert result.returncode == 2
    assert "not both" in result.stderr
    assert result.stdout == ""


def test_show_rejects_an_unknown_preset() -> None:
    result = gigawatt("site", "show", "--preset", "bogus")
    assert result.returncode != 0
    assert "unknown preset" in result.stderr
    assert "Traceback" not in result.stderr


def test_show_reports_a_bad_site_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(preset_text("demo").replace("nodes: 2", "nodes: 0"), encoding="utf-8")
    result = gigawatt("site", "show", "--site", str(bad))
    assert result.returncode != 0
    assert "rack_types.trn2-rack.nodes" in result.stderr
