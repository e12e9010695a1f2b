"""Every recording and alert rule, run by promtool against input series built to sit on each
side of its limit and of its for: (see rule_cases)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

from dashboards.alerts import all_alerts
from dashboards.generate import ALERTS_FILE, RECORDING_FILE
from dashboards.recording import recording_groups
from dashboards.ruleset import Recording
from exporters.contract.thresholds import DEFAULT_THRESHOLDS
from tests.conftest import ROOT
from tests.dashboards.rule_cases import (
    STEP,
    annotation_groups,
    at,
    probe_groups,
    probes,
    recording_group,
    special_groups,
)


def _test_file(tmp_path: Path, groups: list[dict[str, Any]]) -> Path:
    # promtool evaluates groups in no fixed order unless told; Prometheus evaluates them
    # concurrently. Recording rules first, so an alert reads this evaluation's totals.
    order = [
        group["name"]
        for path in (RECORDING_FILE, ALERTS_FILE)
        for group in yaml.safe_load((ROOT / path).read_text(encoding="utf-8"))["groups"]
    ]
    document = {
        "group_eval_order": order,
        "rule_files": [str(ROOT / RECORDING_FILE), str(ROOT / ALERTS_FILE)],
        "evaluation_interval": at(STEP),
        "tests": groups,
    }
    path = tmp_path / "rules_test.yml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def _promtool_test(promtool: str, path: Path) -> None:
    result = subprocess.run(
        [promtool, "test", "rules", str(path)], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-4000:]


def test_every_alert_rule_is_probed_on_both_sides(promtool: str, tmp_path: Path) -> None:
    found = probes(DEFAULT_THRESHOLDS)
    specials = special_groups(DEFAULT_THRESHOLDS)
    rules = {(alert.name, alert.severity) for alert in all_alerts(DEFAULT_THRESHOLDS)}
    covered = {(p.alert, p.severity) for p in found} | {
        rule for special in specials for rule in special.covers
    }
    assert rules - covered == set(), "rules without a promtool case"
    assert covered - rules == set(), "cases for rules that do not exist"

    groups: list[dict[str, Any]] = []
    for probe in found:
        siblings = [other for other in found if other.alert == probe.alert]
        groups += probe_groups(probe, siblings)
    groups += [special.group for special in specials]
    groups += annotation_groups(DEFAULT_THRESHOLDS)
    _promtool_test(promtool, _test_file(tmp_path, groups))


def test_every_recording_rule_computes_its_total_over_shards(promtool: str, tmp_path: Path) -> None:
    group, checked = recording_group()
    records = {
        rule.record
        for recording in recording_groups(DEFAULT_THRESHOLDS)
        for rule in recording.rules
        if isinstance(rule, Recording)
    }
    assert records - checked == set(), "recording rules without a promtool case"
    _promtool_test(promtool, _test_file(tmp_path, [group]))
