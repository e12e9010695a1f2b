"""Exposure tiers: how deep into the site the exposition goes.

A tier is a level of the site (``collector.schemas.Level``); exposing a tier exposes every
metric whose own tier is at or above it. ``site`` metrics (site totals, self-monitoring and
the bounded anomaly list) are always on.
"""

from __future__ import annotations

from typing import TypeAlias

from collector.schemas import ALL_LEVELS, Level

Tier: TypeAlias = Level
TIERS: tuple[Tier, ...] = ALL_LEVELS
# Racks and their feeds: what capacity alerts and the drill-down dashboards need, and what
# one Prometheus holds for the whole campus; nodes and accelerators are opt-in.
DEFAULT_TIER: Tier = "rack"


def tier_exposure(tier: Tier) -> str:
    """How a user turns on the metrics of ``tier``, in words (for the docs)."""
    if tier == TIERS[0]:
        return "always"
    default = " (default)" if tier == DEFAULT_TIER else ""
    deeper = "" if tier == TIERS[-1] else " and deeper"
    return f"`--expose {tier}`{default}{deeper}"
