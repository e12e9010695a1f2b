"""Every alert end to end: the real `gigawatt serve --preset demo --scenario FILE` scraped by a
real Prometheus (Debian's) that evaluates the generated rules, sending to a real Alertmanager
configured from deploy/alertmanager/alertmanager.yml, which delivers to a webhook receiver on
loopback.

The rules are the generator's own (dashboards.generate.rule_files) for a thresholds file that
scales every ``for:`` by ``FOR_SCALE`` and every look-back window by ``WINDOW_SCALE`` (never
below a minute). Four runs play side by side, each with its own Prometheus, Alertmanager and
receiver, because they would disturb each other: their site-wide sums would add up, and an
outage of B01 in one run would inhibit the alerts of B01 in another:

* ``incidents``: racks, feeds, chips, a hall (scenarios/incidents.yaml);
* ``grid_outage``: a load step and an oscillation at the point of interconnection, then the
  building goes dark (scenarios/grid_outage.yaml);
* ``source_collector``: a site surge, a dead source, overrunning cycles
  (scenarios/source_collector.yaml);
* ``normal``: the same service for as long, no scenario: no warning or critical alert.

Timing: each incident's alert must fire within its ``for:`` plus two evaluation intervals
after its effect is visible in Prometheus (plus the look-back the expression must fill, for
windowed expressions). Both moments are read back from Prometheus' own history (the probe's
first sample, the first sample of ``ALERTS{alertstate="firing"}``), not from a poller's clock.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

from collector.scenarios import KINDS
from dashboards.alerts import INCIDENTS
from dashboards.generate import ALERTS_FILE, RECORDING_FILE, rule_files
from exporters.contract import name_of
from exporters.contract.thresholds import Thresholds, parse_duration, parse_thresholds
from tests.exporters.test_server import serving
from tests.stack import (
    Process,
    WebhookReceiver,
    alertmanager,
    prometheus,
    query,
    wait_for,
)

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = Path(__file__).with_name("scenarios")
ALERTMANAGER_CONFIG = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"

EVALUATION_SECONDS = 1.0  # Prometheus' scrape and evaluation interval, and the collector's
FOR_SCALE = 0.01  # 3 h -> 108 s, 5 min -> 3 s
WINDOW_SCALE = 0.01  # every window -> the one-minute floor (min_window)
# Ages compared inside an expression (silent for, stale after) are thresholds, not for:; they
# are shortened by hand so that the runs stay short. A dead source's SourceDown (for: 0.6 s)
# still comes long before its data counts as stale, as the rules rely on. The cooling trend
# is a slope fitted over its window, and a slope's noise grows as the window shrinks (as
# T^-1.5 for evenly spaced samples): over the 1 min floor a steady hall's temperature trend
# wanders past the 0.5 degC/min that suits 10 min, so its limits are raised with the window
# (the scenario's hall warms at 5 degC/min, twice the critical limit, so its 1 min slope
# crosses it halfway through the window).
SHORT_THRESHOLDS = f"""
for_scale: {FOR_SCALE}
window_scale: {WINDOW_SCALE}
accelerators: {{silent_after: 20s}}
data_quality: {{stale_after: 30s}}
thermal:
  cooling_celsius_per_minute:
    warning: {{value: 1.5, for: 5m}}
    critical: {{value: 2.5, for: 5m}}
"""
# Every run is the demo as a grid-connected site runs it: its training jobs' wait phases held
# at 90 % of TDP and their edges slewed at 50 W/s per chip. Unmitigated, the demo's largest job
# (a third of its chips) swings its 2.5 MW meters by ~3.6 % of rating at 0.1-3 Hz: a real
# forced oscillation that the grid alerts rightly report, not a normal run. Mitigated, its
# worst 0.1-1 Hz component stays near 0.5-0.8 % of rating and its 1 min ramps near 3 %/min
# (limits 1 % and 4.4 %/min), measured over 4 min at seeds 0-2.
MITIGATIONS = ("--power-floor", "0.9", "--ramp-limit", "50")
# How long every run lasts, counted from its service's start: the last events' alerts (the
# load step at 95 s, reported about 55 s later; the cycle overrun at 100 s; the outage at
# 175 s) have fired well before.
RUN_SECONDS = 205.0
# Alertmanager's timers, overridden in the rendered config. The file's group_wait (30 s, 10 s
# for pages) and group_interval (5 min, 1 min) hold back a group's first and later
# notifications for longer than a run lasts; everything else (routes, receivers, grouping,
# inhibitions) is the file's.
GROUP_WAIT = "1s"
GROUP_INTERVAL = "1s"
# The probes are read back with this resolution: a moment is known to within one step.
STEP_SECONDS = 1.0


def _thresholds() -> Thresholds:
    return parse_thresholds(SHORT_THRESHOLDS, "short thresholds")


def _placed(name: str) -> dict[str, str]:
    """The entity labels of a rack, node or accelerator named as the site names them:
    B01-H1-R01-K01-N1-A03 -> building B01, hall B01-H1, row B01-H1-R01, rack B01-H1-R01-K01,
    node B01-H1-R01-K01-N1, accelerator B01-H1-R01-K01-N1-A03."""
    parts = name.split("-")
    levels = ("building", "hall", "row", "rack", "node", "accelerator")
    return {level: "-".join(parts[: depth + 1]) for depth, level in enumerate(levels[: len(parts)])}


def _rule(alert: str, severity: str) -> dict[str, Any]:
    """The rendered rule of ``alert`` at ``severity``."""
    rules = yaml.safe_load(rule_files(_thresholds())[ALERTS_FILE])
    for group in rules["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == alert and rule["labels"]["severity"] == severity:
                found: dict[str, Any] = rule
                return found
    raise AssertionError(f"no {severity} rule named {alert}")


def _for_seconds(alert: str, severity: str) -> float:
    """The ``for:`` of the rendered rule (0 when it has none)."""
    return parse_duration(_rule(alert, severity).get("for", 0))


def _threshold(alert: str, severity: str) -> float:
    """The number the rendered rule compares its expression with (``... > 20``)."""
    return float(_rule(alert, severity)["expr"].rsplit(">", 1)[1])


@dataclass(frozen=True)
class Incident:
    """What one scenario event must raise: the alert, its severity and entity labels, the
    PromQL that shows the event's effect in the scraped data, and the look-back the alert's
    expression must fill after that (0 for instant expressions)."""

    kind: str
    run: str
    alert: str
    severity: str
    labels: dict[str, str]
    visible: str
    lookback_seconds: float = 0.0


def _incidents(t: Thresholds) -> list[Incident]:
    smoothing = parse_duration(t.window(t.capacity.smoothing))
    cooling = parse_duration(t.window(t.thermal.cooling_window))
    # The overrun rule compares counter rates over its window: it needs two published cycles,
    # each now the interval plus the 12 s the scenario adds.
    overrun_cycle = 12.0 + EVALUATION_SECONDS
    overloaded = _placed("B01-H1-R02-K05")
    tripped = _placed("B01-H1-R03-K01")
    silent_feed = _placed("B01-H1-R03-K02")
    hot = _placed("B01-H1-R01-K01-N1-A03")
    silent_chip = _placed("B01-H1-R01-K01-N1-A04")
    failing = _placed("B01-H1-R01-K01-N2-A00")
    straggler = _placed("B01-H1-R01-K02-N1-A07")
    over_reported = _placed("B01-H1-R01-K03")

    def chip(frame: str, column: str, labels: dict[str, str]) -> str:
        return f'{name_of(frame, column)}{{accelerator="{labels["accelerator"]}"}}'

    def rack(frame: str, column: str, labels: dict[str, str], extra: str = "") -> str:
        return f'{name_of(frame, column)}{{rack="{labels["rack"]}"{extra}}}'

    return [
        Incident(
            "rack_overload",
            "incidents",
            "RackLoadHigh",
            "critical",
            overloaded,
            f"{rack('rack', 'power_watts', overloaded)} > 41000",
            smoothing,
        ),
        Incident(
            "feed_trip",
            "incidents",
            "RackFeedLost",
            "critical",
            {**tripped, "feed": "A"},
            rack("feed", "power_watts", tripped, ',feed="A"') + " == 0",
        ),
        Incident(
            "pdu_silent",
            "incidents",
            "FeedNotReporting",
            "warning",
            {**silent_feed, "feed": "B"},
            "absent(" + rack("feed", "power_watts", silent_feed, ',feed="B"') + ")",
        ),
        Incident(
            "accelerator_overheat",
            "incidents",
            "AcceleratorTemperatureHigh",
            "critical",
            hot,
            f"{chip('anomaly', 'temperature_celsius', hot)} > 95",
        ),
        Incident(
            "accelerator_silent",
            "incidents",
            "AcceleratorStoppedReporting",
            "warning",
            silent_chip,
            chip("anomaly", "silent_seconds", silent_chip),
            # The alert's threshold is an age: the chip must have been silent that long.
            _threshold("AcceleratorStoppedReporting", "warning"),
        ),
        Incident(
            "accelerator_errors",
            "incidents",
            "AcceleratorErrorsIncreasing",
            "warning",
            failing,
            f"{chip('anomaly', 'recent_errors', failing)} > 0",
        ),
        Incident(
            "straggler",
            "incidents",
            "AcceleratorStragglerPower",
            "warning",
            straggler,
            f"{chip('anomaly_job', 'job_power_ratio', straggler)} < 0.7",
        ),
        Incident(
            "cooling_failure",
            "incidents",
            "HallCoolingDegraded",
            "critical",
            {"building": "B01", "hall": "B01-H2"},
            # The hall warming: the mean of its racks' hottest chips (what the alert judges)
            # 1 degC above its value 20 s before. The hall's single hottest chip wanders by
            # about 1 degC within 10 s in normal running, so it would show the effect before
            # the event; the mean wanders by about 0.2 degC. The trend then needs its window.
            f'avg({name_of("rack", "max_temperature_celsius")}{{hall="B01-H2"}}) - '
            f'avg({name_of("rack", "max_temperature_celsius")}{{hall="B01-H2"}} offset 20s) > 1',
            cooling,
        ),
        Incident(
            "bmc_overreport",
            "incidents",
            "PowerLayersDisagree",
            "warning",
            over_reported,
            f"{rack('rack', 'unattributed_power_watts', over_reported)} / "
            f"{rack('rack', 'power_watts', over_reported)} < -0.03",
        ),
        Incident(
            "load_step",
            "grid_outage",
            "GridUncommandedLoadDrop",
            "critical",
            {"meter": "poi"},
            f'{name_of("grid_meter", "drops")}{{meter="poi"}} > 0',
        ),
        Incident(
            "oscillation",
            "grid_outage",
            "GridOscillationAmplitudeHigh",
            "warning",
            {"meter": "poi", "band": "0.1-1 Hz"},
            f'{name_of("grid_band", "peak_to_peak_watts")}{{meter="poi",band="0.1-1 Hz"}}'
            " > 0.01 * 2.5e6",
        ),
        Incident(
            "building_outage",
            "grid_outage",
            "BuildingPowerLost",
            "critical",
            {"building": "B01"},
            f'{name_of("building", "reporting_ratio")}{{building="B01"}} == 0',
        ),
        Incident(
            "site_surge",
            "grid_outage",
            "SitePowerNearContract",
            "critical",
            {},
            f"{name_of('site', 'contract_utilization_ratio')} > 1",
        ),
        Incident(
            "source_down",
            "source_collector",
            "SourceDown",
            "warning",
            {"source": "simulated"},
            f'{name_of("source", "up")}{{source="simulated"}} == 0',
        ),
        Incident(
            "cycle_overrun",
            "source_collector",
            "CollectorCycleOverrun",
            "warning",
            {},
            f"{name_of('process', 'skipped')} > 0",
            2 * overrun_cycle,
        ),
    ]


INCIDENT_LIST = _incidents(_thresholds())
RUNS = {
    "incidents": SCENARIOS / "incidents.yaml",
    "grid_outage": SCENARIOS / "grid_outage.yaml",
    "source_collector": SCENARIOS / "source_collector.yaml",
    "normal": None,
}


# --- the stacks -------------------------------------------------------------------------------


def _rule_paths(workdir: Path) -> list[str]:
    """The generated rule files for the short thresholds, every group evaluated at the global
    interval (the 30-day group's 5 min cadence would outlast a run)."""
    paths = []
    for relative, text in rule_files(_thresholds()).items():
        assert relative in (RECORDING_FILE, ALERTS_FILE)
        document = yaml.safe_load(text)
        for group in document["groups"]:
            group.pop("interval", None)
        path = workdir / Path(relative).name
        path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
        paths.append(str(path))
    return paths


def alertmanager_config(receiver_url: str) -> str:
    """deploy/alertmanager/alertmanager.yml with its webhooks pointed at ``receiver_url`` (each
    keeps its path, so the receiver sees which one was called) and short group timers."""
    config = yaml.safe_load(ALERTMANAGER_CONFIG.read_text(encoding="utf-8"))
    for receiver in config["receivers"]:
        for webhook in receiver.get("webhook_configs", []):
            webhook["url"] = receiver_url + urlsplit(webhook["url"]).path
    routes = [config["route"]]
    while routes:
        route = routes.pop()
        for timer, short in (("group_wait", GROUP_WAIT), ("group_interval", GROUP_INTERVAL)):
            if timer in route:
                route[timer] = short
        routes.extend(route.get("routes", []))
    return yaml.safe_dump(config, sort_keys=False)


def _prometheus_config(target: str, rules: list[str], alertmanager_url: str) -> dict[str, Any]:
    interval = f"{EVALUATION_SECONDS:g}s"
    return {
        "global": {
            "scrape_interval": interval,
            "scrape_timeout": interval,
            "evaluation_interval": interval,
        },
        "rule_files": rules,
        "alerting": {
            "alertmanagers": [
                {"static_configs": [{"targets": [alertmanager_url.removeprefix("http://")]}]}
            ]
        },
        "scrape_configs": [{"job_name": "gigawatt", "static_configs": [{"targets": [target]}]}],
    }


@dataclass
class Run:
    name: str
    started: float  # when the service answered ready (Unix seconds)
    prometheus: Process
    alertmanager: Process
    receiver: WebhookReceiver
    service_url: str
    rules_loaded: float = 0.0
    fired: dict[str, float] = field(default_factory=dict)

    def until_end(self) -> float:
        return max(0.0, self.started + RUN_SECONDS - time.time())


@contextmanager
def _stack(root: Path, name: str, scenario: Path | None) -> Iterator[Run]:
    workdir = root / name
    for part in ("serve", "prometheus", "alertmanager"):
        (workdir / part).mkdir(parents=True)
    options = ["--preset", "demo", "--interval", f"{EVALUATION_SECONDS:g}", *MITIGATIONS]
    if scenario is not None:
        options += ["--scenario", str(scenario)]
    with ExitStack() as stack:
        receiver = stack.enter_context(WebhookReceiver())
        manager = stack.enter_context(
            alertmanager(workdir / "alertmanager", alertmanager_config(receiver.url))
        )
        service = stack.enter_context(serving(workdir / "serve", *options))
        started = time.time()
        target = service.url.removeprefix("http://")
        # Prometheus scrapes before it loads the rules, as a running deployment does: loaded
        # before the first scrape, CollectorAbsent (for: 3 s here) would fire on an empty TSDB.
        config = _prometheus_config(target, [], manager.url)
        server = stack.enter_context(prometheus(workdir / "prometheus", config))
        build_info = name_of("build", "value")
        wait_for(lambda: query(server.url, build_info), within=30, what=f"{name}: first scrape")
        config["rule_files"] = _rule_paths(workdir / "prometheus")
        (workdir / "prometheus" / "prometheus.yml").write_text(
            yaml.safe_dump(config), encoding="utf-8"
        )
        httpx.post(f"{server.url}/-/reload", timeout=30).raise_for_status()
        run = Run(name, started, server, manager, receiver, service.url)
        wait_for(lambda: _rule_count(server.url) > 0, within=30, what=f"{name}: rules loaded")
        run.rules_loaded = time.time()
        yield run


def _rule_count(prometheus_url: str) -> int:
    answer = httpx.get(f"{prometheus_url}/api/v1/rules", timeout=10)
    answer.raise_for_status()
    return sum(len(group["rules"]) for group in answer.json()["data"]["groups"])


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Run]]:
    root = tmp_path_factory.mktemp("alerts")
    with ExitStack() as stack:
        yield {
            name: stack.enter_context(_stack(root, name, scenario))
            for name, scenario in RUNS.items()
        }


# --- reading back what happened ---------------------------------------------------------------


def _range(prometheus_url: str, promql: str, start: float, end: float) -> list[dict[str, Any]]:
    answer = httpx.get(
        f"{prometheus_url}/api/v1/query_range",
        params={"query": promql, "start": start, "end": end, "step": STEP_SECONDS},
        timeout=30,
    )
    answer.raise_for_status()
    body = answer.json()
    assert body["status"] == "success", f"{promql}: {body}"
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def _first_time(prometheus_url: str, promql: str, start: float) -> float | None:
    series = _range(prometheus_url, promql, start, time.time())
    times = [float(value[0]) for one in series for value in one["values"]]
    return min(times) if times else None


def _matchers(labels: dict[str, str]) -> str:
    return ",".join(f'{name}="{value}"' for name, value in sorted(labels.items()))


def _alerts_series(alert: str, severity: str, labels: dict[str, str], state: str) -> str:
    wanted = {"alertname": alert, "severity": severity, "alertstate": state, **labels}
    return f"ALERTS{{{_matchers(wanted)}}}"


def _carries(
    alert_labels: dict[str, str], alert: str, severity: str, labels: dict[str, str]
) -> bool:
    wanted = {"alertname": alert, "severity": severity, **labels}
    return all(alert_labels.get(name) == value for name, value in wanted.items())


def _manager_alerts(manager_url: str, alert: str) -> list[dict[str, Any]]:
    answer = httpx.get(
        f"{manager_url}/api/v2/alerts", params={"filter": f'alertname="{alert}"'}, timeout=10
    )
    answer.raise_for_status()
    alerts: list[dict[str, Any]] = answer.json()
    return alerts


def _until_fired(run: Run, firing: str) -> float:
    """When ``firing`` (an ALERTS selector) first fired since the rules loaded, waiting for
    it until the run's end (it may have fired and resolved since)."""
    fired: float = wait_for(
        lambda: _first_time(run.prometheus.url, firing, run.rules_loaded),
        within=run.until_end() + 10,
        what=f"{firing} in {run.name}",
        every=2,
    )
    return fired


# --- the tests --------------------------------------------------------------------------------


def test_every_scenario_kind_has_an_incident_here() -> None:
    """Every kind the scenario file accepts is played and checked below, with the alert
    docs/alerts.md says it raises."""
    assert sorted(incident.kind for incident in INCIDENT_LIST) == sorted(KINDS)
    for incident in INCIDENT_LIST:
        assert incident.alert in INCIDENTS[incident.kind], incident


def test_a_critical_alert_holds_back_the_warning_of_the_same_alert_and_entity(
    runs: dict[str, Run],
) -> None:
    """The overheated chip (97 °C) is above both limits: Prometheus fires the warning and the
    critical; Alertmanager delivers the critical and holds the warning back."""
    run = runs["incidents"]
    hot = _placed("B01-H1-R01-K01-N1-A03")
    for severity in ("warning", "critical"):
        _until_fired(run, _alerts_series("AcceleratorTemperatureHigh", severity, hot, "firing"))

    def warning_inhibited() -> bool:
        return any(
            _carries(alert["labels"], "AcceleratorTemperatureHigh", "warning", hot)
            and alert["status"]["state"] == "suppressed"
            and alert["status"]["inhibitedBy"]
            for alert in _manager_alerts(run.alertmanager.url, "AcceleratorTemperatureHigh")
        )

    wait_for(warning_inhibited, within=30, what="the warning held back by the critical")
    assert not [
        alert
        for alert in run.receiver.alerts()
        if _carries(alert["labels"], "AcceleratorTemperatureHigh", "warning", hot)
    ]
    assert any(
        _carries(alert["labels"], "AcceleratorTemperatureHigh", "critical", hot)
        for alert in run.receiver.alerts()
    )


def _held_back(run: Run, alert: str, labels: dict[str, str]) -> None:
    """``alert`` fires in Prometheus, Alertmanager has it and holds it back, and the receiver
    never gets it."""
    _until_fired(run, _alerts_series(alert, "warning", labels, "firing"))

    def inhibited() -> bool:
        found = [
            one
            for one in _manager_alerts(run.alertmanager.url, alert)
            if _carries(one["labels"], alert, "warning", labels)
        ]
        return bool(found) and all(
            one["status"]["state"] == "suppressed" and one["status"]["inhibitedBy"] for one in found
        )

    wait_for(inhibited, within=30, what=f"{alert} held back by Alertmanager")
    assert not [one for one in run.receiver.alerts() if one["labels"]["alertname"] == alert]


def test_a_dead_source_holds_back_its_stale_data_alerts(runs: dict[str, Run]) -> None:
    run = runs["source_collector"]
    _held_back(run, "SourceDataStale", {"source": "simulated"})
    assert any(alert["labels"]["alertname"] == "SourceDown" for alert in run.receiver.alerts())


def test_a_building_that_lost_power_holds_back_its_rack_alerts(runs: dict[str, Run]) -> None:
    """The dark building's feeds all stop reporting: Prometheus fires FeedNotReporting for
    them, Alertmanager delivers BuildingPowerLost alone."""
    run = runs["grid_outage"]
    _held_back(run, "FeedNotReporting", {"building": "B01", "rack": "B01-H1-R01-K01"})


@pytest.mark.parametrize("incident", INCIDENT_LIST, ids=lambda incident: incident.kind)
def test_the_incident_fires_its_alert_in_time_and_it_is_delivered(
    runs: dict[str, Run], incident: Incident
) -> None:
    run = runs[incident.run]
    firing = _alerts_series(incident.alert, incident.severity, incident.labels, "firing")
    _until_fired(run, firing)
    # When the effect showed and when the alert fired, from Prometheus' own history.
    visible = _first_time(run.prometheus.url, incident.visible, run.rules_loaded)
    fired = _first_time(run.prometheus.url, firing, run.rules_loaded)
    assert visible is not None, f"{incident.kind}: the effect never showed: {incident.visible}"
    assert fired is not None
    allowed = (
        incident.lookback_seconds
        + _for_seconds(incident.alert, incident.severity)
        + 2 * EVALUATION_SECONDS
        + STEP_SECONDS
    )
    assert fired - visible <= allowed, (
        f"{incident.kind}: {incident.alert} fired {fired - visible:.1f} s after its effect "
        f"showed; allowed {allowed:.1f} s"
    )
    # Alertmanager delivers it, to the receiver its severity routes to, with its entity's
    # labels and the annotations every alert has.
    receiver = "/alerts/on-call" if incident.severity == "critical" else "/alerts/operators"

    def delivered() -> dict[str, Any] | None:
        return next(
            (
                alert
                for delivery in list(run.receiver.deliveries)
                if delivery.path == receiver
                for alert in delivery.payload.get("alerts", [])
                if _carries(alert["labels"], incident.alert, incident.severity, incident.labels)
            ),
            None,
        )

    alert = wait_for(delivered, within=30, what=f"{incident.alert} delivered to {receiver}")
    assert alert["annotations"]["runbook_url"] == f"docs/runbooks/{incident.alert}.md"
    assert (ROOT / alert["annotations"]["runbook_url"]).is_file()
    assert alert["annotations"]["summary"] and alert["annotations"]["description"]


def test_a_normal_run_fires_no_warning_or_critical_alert(runs: dict[str, Run]) -> None:
    """The same service for as long as the incident runs, no scenario: Prometheus' history
    holds no warning or critical alert firing at any moment, and the receiver got only the
    Watchdog."""
    run = runs["normal"]
    wait_for(
        lambda: run.until_end() <= 0 or None,
        within=RUN_SECONDS + 10,
        what="the normal run's end",
        every=1,
    )
    fired = _range(
        run.prometheus.url,
        'ALERTS{alertstate="firing",severity=~"warning|critical"}',
        run.rules_loaded,
        time.time(),
    )
    assert not fired, "alerts fired in a normal run:\n" + "\n".join(
        str(series["metric"]) for series in fired
    )
    wait_for(lambda: run.receiver.alerts(), within=30, what="the Watchdog delivered", every=1)
    assert {alert["labels"]["alertname"] for alert in run.receiver.alerts()} == {"Watchdog"}
    assert {delivery.path for delivery in run.receiver.deliveries} == {"/alerts/watchdog"}
