"""Every panel shows data: a real Prometheus (Debian's) scrapes the real `gigawatt serve
--preset demo` every second with the recording rules loaded, and every panel's queries, their
template variables set to what Prometheus returns for the variable queries (the dashboards'
"All" where they open on it), return data.

The panels that need an incident to show anything (firing alerts, chips with errors or gone
silent, source problems) return nothing in that normal run, and data in a second one that
plays a scenario, reads a dead exporter beside the simulator and loads the alert rules.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from dashboards.boards import dashboards
from dashboards.generate import ALERTS_FILE, RECORDING_FILE, rule_files
from exporters.contract import name_of
from exporters.contract.thresholds import parse_thresholds
from tests.dashboards.grafana_json import label_values, panels, variables
from tests.exporters.test_server import serving
from tests.stack import HOST, prometheus, query, wait_for

# What Grafana would put in for its own variables, for a dashboard opened on the last 30 s
# of a Prometheus scraping every second ($__rate_interval: at least four scrapes).
BUILT_INS = {"__rate_interval": "10s", "__range": "30s", "__interval": "1s"}
HISTORY_SECONDS = 30
# The panels that stay empty until something goes wrong, and what makes them show data.
INCIDENT_PANELS = {
    ("gigawatt-campus", "Firing alerts"): "an alert firing",
    ("gigawatt-accelerators", "Accelerators with recent errors"): "accelerator_errors",
    ("gigawatt-accelerators", "Silent accelerators"): "accelerator_silent",
    ("gigawatt-collector", "Source problems, by reason"): "a dead exporter target",
}
ERRORS_CHIP = "B01-H1-R01-K01-N1-A00"
SILENT_CHIP = "B01-H1-R01-K01-N1-A01"
SCENARIO = f"""
events:
  - {{kind: accelerator_errors, accelerator: {ERRORS_CHIP}, per_minute: 60, at: 0s}}
  - {{kind: accelerator_silent, accelerator: {SILENT_CHIP}, at: 3s}}
"""
DEAD_TARGET = f"http://{HOST}:9/metrics"  # the discard port: nothing listens there
COLLECTORS = f"""
sources:
  - kind: simulated
  - kind: prometheus
    name: exporters
    targets:
      - {{url: "{DEAD_TARGET}", exporter: dcgm}}
"""


@dataclass
class Stack:
    prometheus: str
    boards: dict[str, dict[str, Any]]


def _rules(workdir: Path, with_alerts: bool) -> list[str]:
    """The generated rule files, every group evaluated at the global 1 s interval (the 30-day
    group keeps its expressions; only its 5 min cadence would outlast the test); the alerts
    with their ``for:`` a hundredth as long."""
    files = rule_files(parse_thresholds("for_scale: 0.01"))
    wanted = [RECORDING_FILE, *([ALERTS_FILE] if with_alerts else [])]
    paths = []
    for relative in wanted:
        document = yaml.safe_load(files[relative])
        for group in document["groups"]:
            group.pop("interval", None)
        path = workdir / Path(relative).name
        path.write_text(yaml.safe_dump(document), encoding="utf-8")
        paths.append(str(path))
    return paths


def _config(target: str, rule_paths: list[str]) -> dict[str, Any]:
    return {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": rule_paths,
        "scrape_configs": [
            {"job_name": "gigawatt", "static_configs": [{"targets": [target]}]},
        ],
    }


@pytest.fixture(scope="module")
def stacks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, Stack]]:
    """A normal run and an incident run side by side, each with its Prometheus, once they
    hold enough history for every window the panels use."""
    root = tmp_path_factory.mktemp("live")
    for name in ("normal", "incident", "prometheus-normal", "prometheus-incident"):
        (root / name).mkdir()
    (root / "incident" / "scenario.yaml").write_text(SCENARIO, encoding="utf-8")
    (root / "incident" / "collectors.yaml").write_text(COLLECTORS, encoding="utf-8")
    common = ("--preset", "demo", "--interval", "1", "--expose", "accelerator")
    with ExitStack() as stack:
        normal = stack.enter_context(serving(root / "normal", *common))
        incident = stack.enter_context(
            serving(
                root / "incident",
                *common,
                "--scenario",
                str(root / "incident" / "scenario.yaml"),
                "--collectors",
                str(root / "incident" / "collectors.yaml"),
            )
        )
        proms = []
        for server, workdir, with_alerts in (
            (normal, root / "prometheus-normal", False),
            (incident, root / "prometheus-incident", True),
        ):
            target = server.url.removeprefix("http://")
            config = _config(target, _rules(workdir, with_alerts))
            proms.append(stack.enter_context(prometheus(workdir, config)))
        cycles = name_of("process", "timestamp_seconds")
        # The grid spectrum's figures appear once a meter has a minute of history.
        spectrum = name_of("grid_meter", "dominant_frequency_hertz")
        for prom in proms:
            wait_for(
                lambda url=prom.url: query(url, f"count_over_time({cycles}[1m]) >= 12"),
                within=60,
                what=f"twelve scrapes in {prom.url}",
            )
            wait_for(
                lambda url=prom.url: query(url, spectrum),
                within=120,
                what=f"the grid spectrum in {prom.url}",
            )
        boards = dashboards()
        yield Stack(proms[0].url, boards), Stack(proms[1].url, boards)


def _natural(value: str) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", value)]


def _substitute(expression: str, values: dict[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        name = match[1] or match[2]
        if name not in values:
            raise AssertionError(f"${name} is neither a variable nor a built-in: {expression}")
        return values[name]

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", value, expression)


def _label_values(prometheus_url: str, selector: str, label: str) -> list[str]:
    answer = httpx.get(
        f"{prometheus_url}/api/v1/label/{label}/values",
        params={"match[]": selector, "start": str(time.time() - 60)},
        timeout=10,
    )
    answer.raise_for_status()
    return sorted(answer.json()["data"], key=_natural)


def _variable_values(stack: Stack, board: dict[str, Any]) -> dict[str, str]:
    """The dashboard's variables as it opens: "All" where it opens on All, else the current
    value if Prometheus lists it, else the first one it lists; text boxes their default."""
    values = dict(BUILT_INS)
    for variable in variables(board):
        name = variable["name"]
        if variable["type"] == "textbox":
            values[name] = variable["query"]
            continue
        selector, label = label_values(_substitute(variable["query"], values))
        listed = _label_values(stack.prometheus, selector, label)
        assert listed, f"{board['uid']}: variable {name} lists nothing for {selector}"
        current = variable.get("current", {}).get("value")
        if current == "$__all":
            values[name] = variable["allValue"]
        else:
            values[name] = current if current in listed else listed[0]
    return values


def _returns_data(prometheus_url: str, target: dict[str, Any], expression: str) -> bool:
    if target.get("instant"):
        return bool(query(prometheus_url, expression))
    now = time.time()
    answer = httpx.get(
        f"{prometheus_url}/api/v1/query_range",
        params={"query": expression, "start": now - HISTORY_SECONDS, "end": now, "step": 1},
        timeout=10,
    )
    answer.raise_for_status()
    body = answer.json()
    assert body["status"] == "success", f"{expression}: {body}"
    return any(series["values"] for series in body["data"]["result"])


def _queries(stack: Stack, incident: bool) -> list[tuple[str, dict[str, Any], str]]:
    """(where, target, expression with variables set) of every panel query, the incident
    panels' only or all but them."""
    found = []
    for uid, board in stack.boards.items():
        values = _variable_values(stack, board)
        for panel in panels(board):
            if ((uid, panel["title"]) in INCIDENT_PANELS) != incident:
                continue
            for target in panel["targets"]:
                where = f"{uid} / {panel['title']} / {target['refId']}"
                found.append((where, target, _substitute(target["expr"], values)))
    return found


def _empty(stack: Stack, queries: list[tuple[str, dict[str, Any], str]]) -> list[str]:
    return [
        f"{where}: {expression}"
        for where, target, expression in queries
        if not _returns_data(stack.prometheus, target, expression)
    ]


def _until_all_answer(stack: Stack, queries: list[tuple[str, dict[str, Any], str]]) -> None:
    """Poll until every query returns data (the fast path's spectra and the alerts need some
    history of their own), or fail naming those that never did."""
    still_empty: list[str] = []

    def every_query_answers() -> bool:
        still_empty[:] = _empty(stack, queries)
        return not still_empty

    try:
        wait_for(every_query_answers, within=30, what="every query returning data", every=1)
    except AssertionError:
        pytest.fail("queries that return nothing:\n" + "\n".join(still_empty))


def test_every_panel_returns_data(stacks: tuple[Stack, Stack]) -> None:
    normal, _ = stacks
    queries = _queries(normal, incident=False)
    assert len(queries) > 100
    _until_all_answer(normal, queries)


def test_the_incident_panels_are_empty_without_an_incident(stacks: tuple[Stack, Stack]) -> None:
    normal, _ = stacks
    queries = _queries(normal, incident=True)
    assert {where.rsplit(" / ", 1)[0] for where, _, _ in queries} == {
        f"{uid} / {title}" for uid, title in INCIDENT_PANELS
    }
    assert len(_empty(normal, queries)) == len(queries)


def test_the_incident_panels_show_the_incident(stacks: tuple[Stack, Stack]) -> None:
    _, incident = stacks
    queries = _queries(incident, incident=True)
    _until_all_answer(incident, queries)
    errors_table = next(e for w, _, e in queries if "recent errors / A" in w)
    assert {s["metric"]["accelerator"] for s in query(incident.prometheus, errors_table)} == {
        ERRORS_CHIP
    }
    silent_table = next(e for w, _, e in queries if "Silent accelerators" in w)
    assert SILENT_CHIP in {
        s["metric"]["accelerator"] for s in query(incident.prometheus, silent_table)
    }


def test_firing_alerts_are_annotated_where_they_belong(stacks: tuple[Stack, Stack]) -> None:
    """Every dashboard's annotation shows the alert on the chip with errors: the rack and
    accelerator dashboards open on that chip's rack and on that chip."""
    _, incident = stacks

    def annotated() -> dict[str, set[str]]:
        found = {}
        for uid, board in incident.boards.items():
            values = _variable_values(incident, board)
            (annotation,) = board["annotations"]["list"]
            alerts = query(incident.prometheus, _substitute(annotation["expr"], values))
            found[uid] = {alert["metric"].get("accelerator", "") for alert in alerts}
        return found if all(ERRORS_CHIP in chips for chips in found.values()) else {}

    assert wait_for(annotated, within=30, what="the errors alert on every dashboard", every=1)
