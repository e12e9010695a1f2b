"""What the dashboards are drawn for: the alert thresholds (the rules' config, so a panel's
colours are the alerts' limits) and the prices that turn energy into cost and carbon."""

from __future__ import annotations

from dataclasses import dataclass, field

from exporters.contract.thresholds import DEFAULT_THRESHOLDS, Thresholds


@dataclass(frozen=True)
class Prices:
    """Energy price and grid carbon intensity: the defaults of the jobs dashboard's text
    boxes, which an operator may change there. Defaults from docs/site-model.md (shared),
    section 3, [S]: Indiana industrial electricity 8.05-9.01 ¢/kWh (EIA 2024-25) and a grid
    intensity of 554-735 gCO2/kWh (state generation mix); the midpoint of each range."""

    dollars_per_megawatt_hour: float = 85.3
    tonnes_co2_per_megawatt_hour: float = 0.6445

    def __post_init__(self) -> None:
        for name in ("dollars_per_megawatt_hour", "tonnes_co2_per_megawatt_hour"):
            value = getattr(self, name)
            if not value >= 0 or value == float("inf"):
                raise ValueError(f"{name} must be a finite number of zero or more, not {value}")


@dataclass(frozen=True)
class BoardConfig:
    thresholds: Thresholds = DEFAULT_THRESHOLDS
    prices: Prices = field(default_factory=Prices)
