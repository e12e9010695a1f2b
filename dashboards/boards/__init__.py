"""The dashboards, one module each, and the thin assembler that turns them into the JSON
committed under dashboards/grafana/ and pushed to Grafana.

The assembler numbers panels, gives every query its refId (A, B, ...), notes on a panel that
reads node or accelerator series which ``--expose`` tier it needs, and writes JSON with sorted
keys, so a regeneration that changes nothing changes no byte.
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Callable
from typing import Any

from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as model

from dashboards import provisioning
from dashboards.boards import (
    accelerators,
    building,
    campus,
    collector,
    grid,
    jobs,
    rack,
)
from dashboards.boards.config import BoardConfig
from exporters.contract import BY_NAME, DEFAULT_TIER, NAMESPACE, TIERS

FOLDER = "dashboards/grafana"

# In the order of the drill-down: campus -> building -> rack -> accelerator, then the topics.
BOARDS: tuple[Callable[[BoardConfig], model.Dashboard], ...] = (
    campus.build,
    building.build,
    rack.build,
    accelerators.build,
    grid.build,
    jobs.build,
    collector.build,
)

_METRIC = re.compile(rf"\b{NAMESPACE}_[a-z0-9_]+\b")


def dashboards(config: BoardConfig | None = None) -> dict[str, dict[str, Any]]:
    """Every dashboard as Grafana's JSON model, by UID."""
    config = config or BoardConfig()
    built = {}
    for build in BOARDS:
        document = json.loads(JSONEncoder().encode(build(config)))
        _number_panels(document)
        built[document["uid"]] = document
    return built


def dashboard_json(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def file_name(uid: str) -> str:
    return f"{FOLDER}/{uid}.json"


def generated_files(config: BoardConfig | None = None) -> dict[str, str]:
    """Relative path -> content of every dashboard file and of Grafana's provisioning files,
    for ``gigawatt generate``."""
    files = {
        file_name(uid): dashboard_json(document) for uid, document in dashboards(config).items()
    }
    return {**files, **provisioning.generated_files()}


def _number_panels(document: dict[str, Any]) -> None:
    for number, panel in enumerate(document.get("panels", []), start=1):
        panel["id"] = number
        targets = panel.get("targets", [])
        for letter, target in zip(string.ascii_uppercase, targets, strict=False):
            target["refId"] = target.get("refId") or letter
        tier = _deepest_tier(target.get("expr", "") for target in targets)
        if TIERS.index(tier) > TIERS.index(DEFAULT_TIER):
            deeper = "" if tier == TIERS[-1] else " or a deeper tier"
            panel["description"] = (
                f"{panel.get('description', '')} Shown when gigawatt serve runs with "
                f"--expose {tier}{deeper}."
            ).strip()


def _deepest_tier(expressions: Any) -> str:
    tiers = [
        BY_NAME[name].tier
        for expression in expressions
        for name in _METRIC.findall(expression)
        if name in BY_NAME
    ]
    return max(tiers, key=TIERS.index, default=TIERS[0])
