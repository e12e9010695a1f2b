"""Grid and power quality: what the utility sees at the point of interconnection and at the
building and lineup meters: fast power, ramp rates against each meter's rating, steps and
uncommanded drops, oscillation frequency and amplitude, band energy and which bands a meter
can see at all. For the grid interface engineer and the utility liaison."""

from __future__ import annotations

from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models import units

from dashboards import recording
from dashboards.boards.config import BoardConfig
from dashboards.boards.uids import GRID
from dashboards.panels import (
    Color,
    Grid,
    Series,
    Steps,
    above,
    any_of,
    label_variable,
    power_timeseries,
    query,
    rising,
    skeleton,
    state_timeline_panel,
    timeseries_panel,
    unit_of,
    with_panels,
)
from exporters.contract.thresholds import BandLimit


def build(config: BoardConfig) -> model.Dashboard:
    t = config.thresholds
    g = t.grid
    series = Series(t.selector)
    per_rating = f"/ on (meter) group_left {recording.METER_RATING}"

    grid = Grid()
    grid.section("Power at the meters")
    grid.add(
        power_timeseries(
            "Meter power",
            "The latest fast reading of each meter (the point of interconnection, the "
            "buildings, their lineups) at every collector cycle.",
            [query(series("grid_meter", "power_watts", "meter"), "{{meter}}")],
        ),
        24,
        8,
    )

    grid.section("Ramps, steps and drops")
    grid.add(
        timeseries_panel(
            "Ramp rate",
            "The strongest change of each meter's mean level per second since the previous "
            "cycle, over the selected window, sign kept.",
            [
                query(
                    series("grid_ramp", "watts_per_second", "meter", "window"),
                    "{{meter}} over {{window}}",
                )
            ],
            unit_of("grid_ramp", "watts_per_second"),
        ),
        12,
        8,
    )
    reference = g.reference_rating_watts
    ramp_limits = g.ramp_watts_per_minute
    ramp_megawatts = " and ".join(f"{limit.value / 1e6:g}" for _, limit in ramp_limits.limits())
    grid.add(
        timeseries_panel(
            "Ramp per minute, share of the meter's rating",
            "The ramp rate times 60 over the meter's rating. The dashed lines are the ramp "
            f"alert's limits ({ramp_megawatts} MW/min per {reference / 1e6:g} MW of rating, "
            "scaled to each meter), which "
            f"apply to the {g.ramp_window} window.",
            [
                query(
                    f"abs({series('grid_ramp', 'watts_per_second', 'meter', 'window')}) * 60\n"
                    f"{per_rating}",
                    "{{meter}} over {{window}}",
                )
            ],
            units.PercentUnit,
            above(ramp_limits, scale=1 / reference),
        ),
        12,
        8,
    )
    grid.add(
        timeseries_panel(
            "Steps and uncommanded drops",
            "Sustained level shifts (up, down) and candidate uncommanded load drops the "
            "collector counted, per meter; each one is worth an event record.",
            [
                query(
                    "sum by (meter, direction) "
                    f"(increase({series('grid_step', 'steps', 'meter')}[$__rate_interval]))",
                    "{{meter}} step {{direction}}",
                ),
                query(
                    "sum by (meter) "
                    f"(increase({series('grid_meter', 'drops', 'meter')}[$__rate_interval]))",
                    "{{meter}} drop",
                ),
            ],
            units.Short,
            rising(1),
        ),
        24,
        7,
    )

    grid.section("Oscillation")
    grid.add(
        timeseries_panel(
            "Dominant oscillation frequency",
            "The strongest frequency of each meter's power over the analysis history.",
            [query(series("grid_meter", "dominant_frequency_hertz", "meter"), "{{meter}}")],
            units.Hertz,
        ),
        12,
        8,
    )
    grid.add(
        power_timeseries(
            "Dominant oscillation amplitude",
            "Peak-to-peak amplitude of each meter's dominant oscillation component.",
            [query(series("grid_meter", "peak_to_peak_watts", "meter"), "{{meter}}")],
        ),
        12,
        8,
    )
    for (warning, critical), bands in _bands_by_limits(g.oscillation).items():
        amplitude = series(
            "grid_band",
            "peak_to_peak_watts",
            "meter",
            "band",
            matching={"band": any_of(bands)},
        )
        steps: list[tuple[float, Color]] = [] if warning is None else [(warning, "orange")]
        steps += [] if critical is None else [(critical, "red")]
        grid.add(
            timeseries_panel(
                f"Oscillation amplitude in {', '.join(bands)}",
                "Peak-to-peak amplitude of the strongest component inside each band, over the "
                "meter's rating; absent where the band is not visible at the meter's sample "
                "rate. The dashed lines are the oscillation alert's limits for these bands.",
                [query(f"{amplitude}\n{per_rating}", "{{meter}} {{band}}")],
                units.PercentUnit,
                Steps("green", tuple(steps)),
            ),
            12,
            8,
        )
    grid.add(
        timeseries_panel(
            "Band energy",
            "Share of each meter's spectral energy inside each band. The dashed lines are the "
            "band energy alert's limits.",
            [query(series("grid_band", "energy_ratio", "meter", "band"), "{{meter}} {{band}}")],
            units.PercentUnit,
            above(g.band_energy_ratio),
        ),
        12,
        8,
    )
    grid.add(
        state_timeline_panel(
            "Band visibility",
            "Whether each band can be seen at the meter's sample rate: a band a meter cannot "
            "see says nothing about it, whatever its energy.",
            query(series("grid_band", "visibility", "meter", "band"), "{{meter}} {{band}}"),
            {"0": ("not visible", "red"), "0.5": ("partly", "orange"), "1": ("visible", "green")},
        ),
        12,
        8,
    )
    grid.add(
        state_timeline_panel(
            "Oscillation episodes",
            "When a band stayed above its energy-share or amplitude threshold for the "
            "configured time.",
            query(series("grid_band", "episode_active", "meter", "band"), "{{meter}} {{band}}"),
            {"0": ("quiet", "green"), "1": ("episode", "red")},
        ),
        12,
        8,
    )
    grid.add(
        timeseries_panel(
            "Episodes started",
            "Oscillation episodes the collector counted, per meter and band.",
            [
                query(
                    "sum by (meter, band) "
                    f"(increase({series('grid_band', 'episodes', 'meter', 'band')}"
                    "[$__rate_interval]))",
                    "{{meter}} {{band}}",
                )
            ],
            units.Short,
        ),
        12,
        8,
    )

    grid.section("The fast path")
    grid.add(
        timeseries_panel(
            "Fast samples taken in",
            "Fast meter samples per second, per meter: the rate the analysis sees.",
            [
                query(
                    f"rate({series('grid_meter', 'samples', 'meter')}[$__rate_interval])",
                    "{{meter}}",
                )
            ],
            "si:samples/s",
        ),
        12,
        7,
    )
    grid.add(
        timeseries_panel(
            "Analysis duration",
            "Time the last fast-path analysis of every meter took.",
            [query(series("process", "grid_analysis_seconds"), "{{instance}}")],
            units.Seconds,
        ),
        12,
        7,
    )

    board = skeleton(
        GRID,
        "gigawatt / Grid and power quality",
        "Fast power at the point of interconnection, buildings and lineups: ramps, steps, "
        "drops, oscillation and band energy.",
        "meter",
    )
    board = (
        board.with_variable(
            label_variable("meter", series("grid_meter", "power_watts"), multi=True)
        )
        .with_variable(
            label_variable("band", series("grid_band", "visibility", "meter"), multi=True)
        )
        .with_variable(
            label_variable(
                "window",
                series("grid_ramp", "watts_per_second", "meter"),
                title="Ramp window",
                current=g.ramp_window,
            )
        )
    )
    return with_panels(board, grid)


def _bands_by_limits(
    limits: tuple[BandLimit, ...],
) -> dict[tuple[float | None, float | None], list[str]]:
    """The bands grouped by their (warning, critical) amplitude limits, in their order: one
    panel per group, so each draws its own limits."""
    groups: dict[tuple[float | None, float | None], list[str]] = {}
    for limit in limits:
        groups.setdefault((limit.warning_ratio, limit.critical_ratio), []).append(limit.band)
    return groups
