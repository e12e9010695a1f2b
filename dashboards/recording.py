"""Recording rules: what Prometheus computes itself, named ``level:metric:operation``.

Site and building totals are summed from the building and rack series, never read from the
site series: a sharded collector exposes only its own buildings plus site partials, and only
a sum over every shard is the site. Energy counters become rates; a rolling hour of energy
gives the PUE; 30 days of energy is recorded every 5 minutes, which is often enough for a
monthly figure and spares Prometheus a 30-day range on every evaluation.

The alerts and the dashboards read these names through the constants below.
"""

from __future__ import annotations

from dashboards.promql import Series, record_name
from dashboards.ruleset import Group, Recording
from exporters.contract.thresholds import Thresholds, format_duration

# Totals from the buildings and racks (right under sharding).
SITE_FACILITY_POWER = record_name("site", "building", "facility_power_watts", "sum")
SITE_IT_POWER = record_name("site", "building", "power_watts", "sum")
SITE_IT_CAPACITY = record_name("site", "building", "capacity_watts", "sum")
SITE_CONTRACT = record_name("site", "site", "contract_watts", "max")
SITE_CONTRACT_UTILIZATION = record_name(
    "site", "site", "contract_utilization_ratio", "sum_buildings"
)
BUILDING_RACK_POWER = record_name("building", "rack", "power_watts", "sum")
HALL_RACK_POWER = record_name("hall", "rack", "power_watts", "sum")
HALL_TEMPERATURE = record_name("hall", "rack", "max_temperature_celsius", "avg")
# What each fast meter's limits are scaled to (see meter_ratings).
METER_RATING = record_name("meter", "grid_meter", "power_watts", "rating")

ENERGY_RATE_WINDOW = 300.0  # 5 minutes: a dashboard's power from energy, smooth and recent
MONTH_SECONDS = 30 * 86400.0
MONTH_INTERVAL_SECONDS = 300.0


def _rate_name(level: str, frame: str, column: str, prefix: str, window: float) -> str:
    return record_name(level, frame, column, f"{prefix}rate{format_duration(window)}")


def building_pue_name(thresholds: Thresholds) -> str:
    window = thresholds.capacity.pue_window
    return record_name("building", "building", "pue_ratio", f"rate{format_duration(window)}")


def site_pue_name(thresholds: Thresholds) -> str:
    window = thresholds.capacity.pue_window
    return record_name("site", "site", "pue_ratio", f"sum_rate{format_duration(window)}")


def totals(series: Series) -> Group:
    building_facility = series("building", "facility_power_watts")
    building_it = series("building", "power_watts")
    rack_power = series("rack", "power_watts")
    return Group(
        "gigawatt-totals",
        (
            Recording(
                SITE_FACILITY_POWER,
                f"sum({building_facility})",
                "Facility power of the site: the buildings' facility power, summed.",
            ),
            Recording(
                SITE_IT_POWER, f"sum({building_it})", "IT power of the site, from its buildings."
            ),
            Recording(
                SITE_IT_CAPACITY,
                f"sum({series('building', 'capacity_watts')})",
                "IT capacity of the site, from its buildings.",
            ),
            # Every shard reads the same site file and reports the whole contract.
            Recording(
                SITE_CONTRACT,
                f"max({series('site', 'contract_watts')})",
                "The site's contract at the point of interconnection (one value whatever the "
                "shards).",
            ),
            Recording(
                SITE_CONTRACT_UTILIZATION,
                f"{SITE_FACILITY_POWER} / {SITE_CONTRACT}",
                "Facility power of the site over its contract.",
            ),
            Recording(
                BUILDING_RACK_POWER,
                f"sum by (building) ({rack_power})",
                "IT power of each building, summed from its racks.",
            ),
            Recording(
                HALL_RACK_POWER,
                f"sum by (building, hall) ({rack_power})",
                "IT power of each hall, summed from its racks.",
            ),
            Recording(
                HALL_TEMPERATURE,
                f"avg by (building, hall) ({series('rack', 'max_temperature_celsius')})",
                "A hall's temperature: the mean of its racks' hottest accelerators (steadier "
                "than the hall's single hottest chip).",
            ),
            _meter_rating(series),
        ),
        topic="Totals",
    )


def _meter_rating(series: Series) -> Recording:
    """The rating each fast meter is judged against, as the collector scales its own grid
    limits (collector.pipeline.meter_ratings): the point of interconnection (meter ``poi``)
    the contract, a building its share of the contract by IT capacity, a lineup (meter
    ``<building>-<lineup>``) its own capacity. After the site totals in the same group, so it
    reads this evaluation's values."""
    building_capacity = series("building", "capacity_watts")
    lineup_capacity = series("lineup", "capacity_watts")
    return Recording(
        METER_RATING,
        f'label_replace({SITE_CONTRACT}, "meter", "poi", "", "")\n'
        "or\n"
        "max by (meter) (\n"
        f'  label_replace({building_capacity}, "meter", "$1", "building", "(.+)")\n'
        f"  * scalar({SITE_CONTRACT} / {SITE_IT_CAPACITY})\n"
        ")\n"
        "or\n"
        f'max by (meter) (label_join({lineup_capacity}, "meter", "-", "building", "lineup"))',
        "The rating each fast meter is judged against: the contract at the point of "
        "interconnection, a building's share of it by IT capacity, a lineup's own capacity.",
    )


def energy(series: Series, thresholds: Thresholds) -> Group:
    window = format_duration(ENERGY_RATE_WINDOW)
    pue_window = format_duration(thresholds.capacity.pue_window)
    facility = series("building", "facility_energy_joules")
    it = series("building", "energy_joules")
    job = series("job", "energy_joules")
    return Group(
        "gigawatt-energy",
        (
            Recording(
                _rate_name("building", "building", "facility_energy_joules", "", 300),
                f"sum by (building) (rate({facility}[{window}]))",
                f"Facility power of each building from its energy counter, over {window}.",
            ),
            Recording(
                _rate_name("building", "building", "energy_joules", "", 300),
                f"sum by (building) (rate({it}[{window}]))",
                f"IT power of each building from its energy counter, over {window}.",
            ),
            Recording(
                _rate_name("site", "building", "facility_energy_joules", "sum_", 300),
                f"sum(rate({facility}[{window}]))",
                f"Facility power of the site from the buildings' energy, over {window}.",
            ),
            Recording(
                _rate_name("site", "building", "energy_joules", "sum_", 300),
                f"sum(rate({it}[{window}]))",
                f"IT power of the site from the buildings' energy, over {window}.",
            ),
            Recording(
                _rate_name("training_job", "job", "energy_joules", "", 300),
                f"sum by (training_job) (rate({job}[{window}]))",
                f"Power of each training job from its energy, over {window}.",
            ),
            Recording(
                building_pue_name(thresholds),
                f"sum by (building) (rate({facility}[{pue_window}]))\n"
                f"/\nsum by (building) (rate({it}[{pue_window}]))",
                f"PUE of each building over a rolling {pue_window}: facility energy over IT "
                "energy.",
            ),
            Recording(
                site_pue_name(thresholds),
                f"sum(rate({facility}[{pue_window}]))\n/\nsum(rate({it}[{pue_window}]))",
                f"PUE of the site over a rolling {pue_window}, from its buildings' energy.",
            ),
        ),
        topic="Energy",
    )


def month(series: Series) -> Group:
    span = format_duration(MONTH_SECONDS)
    facility = series("building", "facility_energy_joules")
    it = series("building", "energy_joules")
    increase = f"increase{span}"
    return Group(
        "gigawatt-energy-30d",
        (
            Recording(
                record_name("building", "building", "facility_energy_joules", increase),
                f"sum by (building) (increase({facility}[{span}]))",
                f"Facility energy of each building over the last {span}.",
            ),
            Recording(
                record_name("site", "building", "facility_energy_joules", f"sum_{increase}"),
                f"sum(increase({facility}[{span}]))",
                f"Facility energy of the site over the last {span}.",
            ),
            Recording(
                record_name("site", "building", "energy_joules", f"sum_{increase}"),
                f"sum(increase({it}[{span}]))",
                f"IT energy of the site over the last {span}.",
            ),
        ),
        interval_seconds=MONTH_INTERVAL_SECONDS,
        topic="Energy over 30 days",
    )


def recording_groups(thresholds: Thresholds) -> tuple[Group, ...]:
    series = Series(thresholds)
    return (
        totals(series),
        energy(series, thresholds),
        month(series),
    )
