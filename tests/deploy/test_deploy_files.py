"""The deployment wiring is valid for the real tools that read it."""

from __future__ import annotations

import subprocess

import pytest
import yaml

from dashboards.generate import ALERTS_FILE, RECORDING_FILE
from exporters.contract.thresholds import DEFAULT_THRESHOLDS
from tests.conftest import ROOT
from tests.dashboards.rule_cases import probes, special_groups

PROMETHEUS = ROOT / "deploy" / "prometheus" / "prometheus.yml"
ALERTMANAGER = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def test_prometheus_scrape_config_is_valid(promtool: str) -> None:
    result = _run(promtool, "check", "config", str(PROMETHEUS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_prometheus_loads_the_generated_rules_and_sends_to_alertmanager() -> None:
    config = yaml.safe_load(PROMETHEUS.read_text(encoding="utf-8"))
    loaded = {
        path.resolve().relative_to(ROOT).as_posix()
        for pattern in config["rule_files"]
        for path in PROMETHEUS.parent.glob(pattern)
    }
    assert loaded == {RECORDING_FILE, ALERTS_FILE}
    targets = [
        target
        for manager in config["alerting"]["alertmanagers"]
        for static in manager["static_configs"]
        for target in static["targets"]
    ]
    assert targets == ["127.0.0.1:9093"]


def test_alertmanager_config_is_valid(amtool: str) -> None:
    result = _run(amtool, "check-config", str(ALERTMANAGER))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (("alertname=RackLoadHigh", "severity=critical", "building=B01"), "on-call"),
        (("alertname=RackLoadHigh", "severity=warning", "building=B01"), "operators"),
        (("alertname=GridRampRateHigh", "severity=critical", "meter=poi"), "on-call"),
        (("alertname=Watchdog", "severity=none"), "watchdog"),
    ],
)
def test_alertmanager_routes_by_severity(
    amtool: str, labels: tuple[str, ...], receiver: str
) -> None:
    result = _run(amtool, "config", "routes", "test", f"--config.file={ALERTMANAGER}", *labels)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == receiver


def _inhibitions() -> list[dict[str, list[str]]]:
    config = yaml.safe_load(ALERTMANAGER.read_text(encoding="utf-8"))
    rules: list[dict[str, list[str]]] = config["inhibit_rules"]
    return rules


def test_a_building_without_power_holds_back_its_other_alerts() -> None:
    assert {
        "source_matchers": ['alertname="BuildingPowerLost"'],
        "target_matchers": ['alertname!="BuildingPowerLost"', 'building=~".+"'],
        "equal": ["building"],
    } in _inhibitions()


def test_a_dead_source_holds_back_its_stale_data_alerts() -> None:
    assert {
        "source_matchers": ['alertname="SourceDown"'],
        "target_matchers": ['alertname="SourceDataStale"'],
        "equal": ["source", "target"],
    } in _inhibitions()


def test_critical_holds_back_the_warning_of_the_same_alert_and_entity() -> None:
    """Every label an alert is fired with (its entity and what tells two of its series
    apart) must be compared, or one rack's critical would silence another rack's warning."""
    fired: set[str] = set()
    for probe in probes(DEFAULT_THRESHOLDS):
        fired |= set(probe.labels)
    for special in special_groups(DEFAULT_THRESHOLDS):
        for check in special.group["alert_rule_test"]:
            for alert in check["exp_alerts"]:
                fired |= set(alert["exp_labels"])
    (rule,) = [
        rule
        for rule in _inhibitions()
        if rule["source_matchers"] == ['severity="critical"']
        and rule["target_matchers"] == ['severity="warning"']
    ]
    # job is the scrape job: the same for every series of one Prometheus job.
    assert fired - {"severity", "job"} <= set(rule["equal"]) - {"alertname"}
    assert "alertname" in rule["equal"]


def test_alertmanager_webhooks_stay_on_loopback() -> None:
    config = yaml.safe_load(ALERTMANAGER.read_text(encoding="utf-8"))
    urls = [hook["url"] for receiver in config["receivers"] for hook in receiver["webhook_configs"]]
    assert urls and all(url.startswith("http://127.0.0.1:") for url in urls)
