"""The generated rule files: fresh, clean for promtool, complete in their labels and
annotations, reading only series that exist at the default tier, each alert with its
runbook; and the same generator renders them with short durations."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from dashboards.generate import ALERTS_FILE, RECORDING_FILE, generated_files, rule_files
from exporters.contract import BY_NAME, DEFAULT_TIER, enabled
from exporters.contract.thresholds import DEFAULT_THRESHOLDS, Thresholds, parse_duration
from tests.conftest import ROOT

RUNBOOKS = ROOT / "docs" / "runbooks"
# The value of these alerts says nothing a person needs (a rating, 1, 0): their description
# names the entity and the duration instead.
NO_VALUE_IN_DESCRIPTION = {"FeedNotReporting", "SourceDown", "CollectorAbsent", "Watchdog"}


def _rules(text: str) -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(text)["groups"] for rule in group["rules"]]


def _alert_rules() -> list[dict[str, Any]]:
    return _rules((ROOT / ALERTS_FILE).read_text(encoding="utf-8"))


def _recording_rules() -> list[dict[str, Any]]:
    return _rules((ROOT / RECORDING_FILE).read_text(encoding="utf-8"))


def test_generated_files_are_fresh() -> None:
    stale = [
        path
        for path, text in generated_files().items()
        if not (ROOT / path).is_file() or (ROOT / path).read_text(encoding="utf-8") != text
    ]
    assert not stale, f"out of date (run `gigawatt generate`): {stale}"


def test_promtool_finds_the_rule_files_clean(promtool: str) -> None:
    result = subprocess.run(
        [promtool, "check", "rules", str(ROOT / RECORDING_FILE), str(ROOT / ALERTS_FILE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == 2, result.stdout


def test_every_alert_has_a_severity_a_summary_a_description_and_a_runbook() -> None:
    for rule in _alert_rules():
        name = rule["alert"]
        severity = rule["labels"]["severity"]
        assert severity in ({"none"} if name == "Watchdog" else {"warning", "critical"}), name
        annotations = rule["annotations"]
        assert set(annotations) == {"summary", "description", "runbook_url"}, name
        assert annotations["runbook_url"] == f"docs/runbooks/{name}.md"
        assert "{{" not in annotations["summary"], f"{name}: the summary is fixed text"
        shows_value = "$value" in annotations["description"]
        assert shows_value != (name in NO_VALUE_IN_DESCRIPTION), name
        if shows_value:
            assert re.search(r"\$value \| (humanize|printf)", annotations["description"]), name


def test_every_alert_has_a_runbook_and_every_runbook_an_alert() -> None:
    alerts = {rule["alert"] for rule in _alert_rules()}
    runbooks = {path.stem for path in RUNBOOKS.glob("*.md")}
    assert alerts - runbooks == set(), "alerts without a runbook"
    assert runbooks - alerts == set(), "runbooks without an alert"
    for name in runbooks:
        text = (RUNBOOKS / f"{name}.md").read_text(encoding="utf-8")
        assert text.startswith(f"# {name}\n"), name
        for heading in ("## What it means", "## Check first", "## What to do"):
            assert heading in text, f"{name}: no {heading!r}"


# --- the series the rules read ---------------------------------------------------------------

_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset"}
_OPERATORS = {"and", "or", "unless"}


def identifiers(expr: str) -> set[str]:
    """The series names a PromQL expression reads: identifiers that are not functions,
    keywords, label names (in matchers or grouping lists), durations or strings."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|`[^`]*`', '""', expr)  # strings
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges
    text = re.sub(r"\boffset\s+-?[0-9a-z]+", "", text)  # offsets (10m)
    grouping = r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)"
    text = re.sub(grouping, "", text)
    found = set()
    for match in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", text):
        name = match.group(0)
        follows = text[match.end() :].lstrip()
        if follows.startswith("(") or name in _KEYWORDS | _OPERATORS:
            continue
        if re.fullmatch(r"\d*e\d*|inf|nan", name, re.IGNORECASE):
            continue
        found.add(name)
    return found


def test_the_scan_finds_the_series_an_expression_reads() -> None:
    expr = (
        'sum by (building) (rate(foo_total{job="x",band=~`a|b`}[5m])) / on (meter) '
        'group_left label_replace(bar:baz:sum, "meter", "$1", "building", "(.+)") > 1e6 '
        "and on (x) qux unless abs(deriv(quux[10m])) * 600 < 0.05 and on (x) corge offset 10m"
    )
    assert identifiers(expr) == {"foo_total", "bar:baz:sum", "qux", "quux", "corge"}


def test_rules_read_only_metrics_of_the_table_and_recording_rules() -> None:
    records = {rule["record"] for rule in _recording_rules()}
    known = set(BY_NAME) | records
    unknown = {
        rule.get("alert") or rule["record"]: sorted(identifiers(rule["expr"]) - known)
        for rule in _recording_rules() + _alert_rules()
    }
    assert {name: names for name, names in unknown.items() if names} == {}


def test_alerts_work_at_the_default_tier() -> None:
    """Every table metric an alert reads, directly or through a recording rule, is exposed
    at the default tier."""
    exposed = {metric.name for metric in enabled(DEFAULT_TIER)}
    read_by_record = {rule["record"]: identifiers(rule["expr"]) for rule in _recording_rules()}

    def table_metrics(names: set[str]) -> set[str]:
        found = names & set(BY_NAME)
        for name in names & set(read_by_record):
            found |= table_metrics(read_by_record[name])
        return found

    beyond = {
        rule["alert"]: sorted(table_metrics(identifiers(rule["expr"])) - exposed)
        for rule in _alert_rules()
    }
    assert {name: names for name, names in beyond.items() if names} == {}


def test_recording_rules_are_named_level_metric_operation() -> None:
    levels = {"site", "building", "hall", "meter", "training_job"}
    for rule in _recording_rules():
        level, metric, operation = rule["record"].split(":")
        assert level in levels, rule["record"]
        assert metric in BY_NAME or f"{metric}_total" in BY_NAME, rule["record"]
        assert re.fullmatch(r"[a-z0-9_]+", operation), rule["record"]


def test_runbooks_name_only_series_that_exist() -> None:
    known = set(BY_NAME) | {rule["record"] for rule in _recording_rules()}
    named = {
        f"{path.name}: {token}"
        for path in RUNBOOKS.glob("*.md")
        for token in re.findall(
            r"\b(?:[a-z_]+:)?gigawatt_[a-z0-9_]+(?::[a-z0-9_]+)?", path.read_text("utf-8")
        )
        if token not in known and not token.endswith("_")
    }
    assert named == set()


# --- the same generator, other thresholds ------------------------------------------------------


def test_short_durations_render_the_same_rules(promtool: str, tmp_path: Path) -> None:
    short = Thresholds(for_scale=0.01, window_scale=0.05, min_window=30)
    default_rules = {
        (rule.get("alert") or rule["record"], rule.get("labels", {}).get("severity")): rule
        for text in rule_files(DEFAULT_THRESHOLDS).values()
        for rule in _rules(text)
    }
    short_rules = {
        (rule.get("alert") or rule["record"], rule.get("labels", {}).get("severity")): rule
        for text in rule_files(short).values()
        for rule in _rules(text)
    }
    assert short_rules.keys() == default_rules.keys()
    for key, rule in short_rules.items():
        held = parse_duration(default_rules[key].get("for", "0s"))
        assert parse_duration(rule.get("for", "0s")) == pytest.approx(held * 0.01, abs=1e-3)
        for window in re.findall(r"\[(\w+)\]", rule["expr"]):
            assert parse_duration(window) >= 30, (key, window)
    # A 3 h NEC wait becomes 1m48s; a 5 min smoothing window is floored at 30 s.
    rack = short_rules[("RackLoadHigh", "warning")]
    assert rack["for"] == "108s"
    assert "[30s]" in rack["expr"]
    for relative, text in rule_files(short).items():
        (tmp_path / Path(relative).name).write_text(text, encoding="utf-8")
    result = subprocess.run(
        [promtool, "check", "rules", *map(str, sorted(tmp_path.glob("*.yml")))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _generate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dashboards.generate", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )


def test_the_generator_renders_a_thresholds_file(tmp_path: Path) -> None:
    thresholds = tmp_path / "short.yml"
    thresholds.write_text("for_scale: 0.01\nselector: 'job=\"gigawatt\"'\n", encoding="utf-8")
    result = _generate("--thresholds", str(thresholds), "--out", str(tmp_path / "rules"))
    assert result.returncode == 0, result.stderr
    written = {
        path.name: path.read_text(encoding="utf-8") for path in (tmp_path / "rules").iterdir()
    }
    assert set(written) == {Path(ALERTS_FILE).name, Path(RECORDING_FILE).name}
    rules = [rule for text in written.values() for rule in _rules(text)]
    assert next(r for r in rules if r.get("alert") == "RackLoadHigh")["for"] == "108s"
    # Every series of the table, wherever a rule reads it, carries the selector.
    reads = [
        (rule.get("alert") or rule["record"], name, match.group(1))
        for rule in rules
        for name in identifiers(rule["expr"]) & set(BY_NAME)
        for match in re.finditer(rf"\b{name}(\{{[^}}]*\}})?(?![\w:])", rule["expr"])
    ]
    assert reads
    assert [read for read in reads if 'job="gigawatt"' not in (read[2] or "")] == []


def test_the_generator_lists_every_problem_of_a_bad_thresholds_file(tmp_path: Path) -> None:
    thresholds = tmp_path / "bad.yml"
    thresholds.write_text(
        "capacity:\n  smoothing: 5x\n  rack: {critical: {value: 0.9}, warning: {value: 1.0}}\n"
        "for_scale: -1\n",
        encoding="utf-8",
    )
    result = _generate("--thresholds", str(thresholds), "--out", str(tmp_path / "rules"))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "3 problem(s)" in result.stderr
    assert "line 2: capacity.smoothing:" in result.stderr
    assert "line 3: capacity.rack.critical: is below the warning value (1)" in result.stderr
    assert "line 4: for_scale:" in result.stderr
    assert not (tmp_path / "rules").exists()
