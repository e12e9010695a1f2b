"""Alert thresholds: every selector, threshold, window and ``for:`` duration the rules use.

The rule generator (dashboards/) reads one frozen ``Thresholds``; nothing in it decides what
is too much. Defaults come from docs/site-model.md (shared), section 3 ("What a grid-facing
operator watches") unless said otherwise, and carry that document's tags: [S] stated by a
public source, [D] derived from one, [A] an assumption with no public source.

A YAML file holds any subset of the fields; the rest keep their defaults. Durations take
seconds or Prometheus durations (``90s``, ``10m``, ``3h``). Loading reports every problem at
once, each with its dotted location and line::

    capacity:
      rack: {warning: {value: 1.0, for: 3h}, critical: {value: 1.1875, for: 5m}}
    for_scale: 0.01    # every for: a hundredth as long (tests, demonstrations)

``for_scale`` and ``window_scale`` render the same rules with shorter ``for:`` durations and
look-back windows, so an end-to-end test sees every alert fire within minutes; a scaled window
never drops below ``min_window`` (a window needs a few scrapes to hold any sample). Age limits
compared inside an expression (``stale_after``, ``silent_after``, ``stalled_after``) are
thresholds: a short run sets them itself.
"""

from __future__ import annotations

import math
import re
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from collector.config_errors import (
    ConfigError,
    ConfigModel,
    line_index,
    read_config,
    validation_problems,
    yaml_mapping,
)
from collector.grid.config import GridConfig

_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$")
_UNIT_SECONDS = (86400.0, 3600.0, 60.0, 1.0, 0.001)


def parse_duration(value: object) -> float:
    """Seconds from a number of seconds or a Prometheus duration (``1h30m``, ``90s``)."""
    if isinstance(value, bool):
        raise ValueError("a duration is seconds or a Prometheus duration such as 90s or 10m")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and value and (match := _DURATION.match(value)):
        seconds = sum(
            int(part) * unit
            for part, unit in zip(match.groups(), _UNIT_SECONDS, strict=True)
            if part
        )
    else:
        raise ValueError(
            f"{value!r} is not a duration: give seconds or a Prometheus duration such as "
            "90s, 10m or 3h"
        )
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"{value!r} is not a duration of zero seconds or more")
    return seconds


def format_duration(seconds: float) -> str:
    """A Prometheus duration for ``seconds``, in the largest unit that holds it exactly
    (rounded to the millisecond, Prometheus' resolution): 10800 -> ``3h``, 90 -> ``90s``."""
    millis = round(seconds * 1000)
    if millis == 0:
        return "0s"
    for unit, suffix in ((86_400_000, "d"), (3_600_000, "h"), (60_000, "m"), (1000, "s")):
        if millis and millis % unit == 0:
            return f"{millis // unit}{suffix}"
    return f"{millis}ms"


Duration = Annotated[float, BeforeValidator(parse_duration)]
Finite = Annotated[float, Field(allow_inf_nan=False)]
Ratio = Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)]
PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]

# Label matchers: name, operator, double-quoted value; comma separated.
_MATCHER = r'\s*[a-zA-Z_][a-zA-Z0-9_]*\s*(=|!=|=~|!~)\s*"(?:[^"\\]|\\.)*"\s*'
_MATCHERS = re.compile(rf"^(?:{_MATCHER}(?:,{_MATCHER})*)?$")


def _matchers(value: str) -> str:
    if not _MATCHERS.match(value):
        raise ValueError(
            f'{value!r} is not a list of label matchers such as job="gigawatt" or '
            'job=~"gigawatt-.*",env="prod"'
        )
    return value.strip()


Selector = Annotated[str, AfterValidator(_matchers)]


Severity = Literal["warning", "critical"]


class _Frozen(ConfigModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Limit(_Frozen):
    """A threshold and how long it must hold before the alert fires."""

    value: Finite
    for_: Duration = Field(default=0.0, alias="for")


class _Levels(_Frozen):
    """A warning and a critical limit of one alert; either may be left out."""

    warning: Limit | None = None
    critical: Limit | None = None

    def limits(self) -> list[tuple[Severity, Limit]]:
        """(severity, limit) for the levels that are set, warning first."""
        levels: tuple[tuple[Severity, Limit | None], ...] = (
            ("warning", self.warning),
            ("critical", self.critical),
        )
        return [(severity, limit) for severity, limit in levels if limit is not None]


class Above(_Levels):
    """The alert fires when the value is above the limit; critical is the higher."""

    @field_validator("critical")
    @classmethod
    def _critical_beyond_warning(cls, critical: Limit | None, info: ValidationInfo) -> Limit | None:
        warning = info.data.get("warning")
        if warning and critical and critical.value < warning.value:
            raise ValueError(f"is below the warning value ({warning.value:g})")
        return critical


class Below(_Levels):
    """The alert fires when the value is below the limit; critical is the lower."""

    @field_validator("critical")
    @classmethod
    def _critical_beyond_warning(cls, critical: Limit | None, info: ValidationInfo) -> Limit | None:
        warning = info.data.get("warning")
        if warning and critical and critical.value > warning.value:
            raise ValueError(f"is above the warning value ({warning.value:g})")
        return critical


def _above(
    warning: float | None, warning_for: float, critical: float | None, critical_for: float
) -> Above:
    return Above(
        warning=None if warning is None else Limit(value=warning, for_=warning_for),
        critical=None if critical is None else Limit(value=critical, for_=critical_for),
    )


MINUTE, HOUR = 60.0, 3600.0

# Continuous load, as ratios of each level's capacity series. Those series are already
# continuous ratings: a feed's is sqrt(3)·V·I·0.8, NEC's 80 % of its breaker's nameplate
# ([S] NEC 210.20(A), 215.3; collector/site/model.py), and racks, rows, halls, lineups and
# buildings are rated from their feeds or by the site file's continuous figure. So the 80 %
# is not applied again here. Warning: above 1.00 of the continuous rating for 3 h, which is
# NEC's "above 80 % of nameplate, continuously" (site-model.md sections 1 and 3: feeder,
# busway, PDU loading > 80 %, continuous). Critical: above 1.1875 for 5 min, 95 % of
# nameplate where the continuous rating is 80 % of it (0.95 / 0.8): close enough to the trip
# curve that someone acts now ([A]). A breaker listed for 100 % has its continuous rating at
# nameplate (``continuous_load_ratio: 1``), where 1.1875 would be past nameplate: such a site
# lowers ``critical`` in its thresholds file. Each level is judged against its own rating
# (feeds: the PDU's continuous rating; racks: what one feed can carry, N-1; rows, halls,
# lineups, buildings: their power-chain rating).
NEC_CONTINUOUS = _above(1.00, 3 * HOUR, 1.1875, 5 * MINUTE)


class CapacityThresholds(_Frozen):
    # Loads are averaged over this window before they are compared: a training job's square
    # wave (1-10 s iterations, site-model.md section 2) must not reset a 3 h ``for:`` every
    # time a scrape lands in its communication phase ([A]).
    smoothing: Duration = 5 * MINUTE
    feed: Above = NEC_CONTINUOUS
    rack: Above = NEC_CONTINUOUS
    row: Above = NEC_CONTINUOUS
    hall: Above = NEC_CONTINUOUS
    lineup: Above = NEC_CONTINUOUS
    building: Above = NEC_CONTINUOUS
    # N-1: the rack's load over the rating of its weakest feed. Above 1, losing the other feed
    # overloads the survivor (A/B lineups, site-model.md section 1). 15 min: sustained, not one
    # compute phase ([A]).
    n_minus_one: Limit = Limit(value=1.0, for_=15 * MINUTE)
    # A feed carrying less than this share of its rack's power while its rack draws power:
    # the other feed carries everything ([A]; a healthy A/B pair splits near 50/50).
    feed_lost_share: Limit = Limit(value=0.05, for_=1 * MINUTE)
    # Facility power against the contract at the point of interconnection: > 95 % for 5 min /
    # > 100 % ([A], site-model.md section 3); critical after 1 min so one scrape of a transient
    # does not page ([A]).
    contract: Above = _above(0.95, 5 * MINUTE, 1.00, 1 * MINUTE)
    # PUE over a rolling hour: > 1.25 / > 1.35 ([A], site-model.md section 3, against the
    # 1.15 fleet value); held 15 min so the alert follows the hour, not one scrape ([A]).
    pue: Above = _above(1.25, 15 * MINUTE, 1.35, 15 * MINUTE)
    pue_window: Duration = 1 * HOUR


class ThermalThresholds(_Frozen):
    # Accelerator temperature near its limit: the Trainium2 presets throttle at 95 °C ([A],
    # collector/site/presets); warn 5 °C below it for 5 min (community GPU rules warn at
    # 85 °C for 5 min on a lower limit), critical at the limit for 1 min.
    accelerator_celsius: Above = _above(90.0, 5 * MINUTE, 95.0, 1 * MINUTE)
    # Cooling: a hall's temperature (the mean of its racks' hottest chips) climbing while its
    # load holds. Die temperature follows power at once (site-model.md section 2), so a climb
    # at steady load is the air or water side ([A]: 0.5 °C/min reaches a 95 °C limit from
    # 75 °C in 40 min; 1 °C/min in 20). Both trends are fitted over the window.
    cooling_celsius_per_minute: Above = _above(0.5, 5 * MINUTE, 1.0, 5 * MINUTE)
    cooling_window: Duration = 10 * MINUTE
    # "Load holds": the hall's power trend is below this share of its power per minute (10 %
    # over the 10 min window). A chip warms ~0.45 °C per 1 % more power at its 500 W TDP
    # (0.09 °C/W, [A] the simulator's thermal resistance), so a load within this trend
    # explains at most ~0.45 °C/min, under the warning climb. Per minute, like the climb, so
    # the two keep their relation when windows are scaled. A training job's square wave,
    # sampled at random phases, makes both trends noisy: over 10 min of 15 s scrapes the
    # power trend wanders ~0.3 %/min and the temperature trend ~0.15 °C/min, so a window
    # much shorter than 10 min judges noise.
    cooling_load_change_per_minute: Ratio = 0.01


class AcceleratorThresholds(_Frozen):
    # Uncorrected ECC or XID critical errors counted within the collector's error window
    # (10 min): any is worth a look; community rules page on any XID or double-bit ECC
    # error ([S] operator-anchors.md); critical above 10 in the window ([A]: a chip that
    # keeps failing, not one event).
    recent_errors: Above = _above(0.0, 0.0, 10.0, 0.0)
    # Silent: an accelerator that reported before and has not for this long. Six cycles at
    # the default 10 s interval, so one lost reading is not a page ([A]).
    silent_after: Duration = 1 * MINUTE
    # Stragglers (site-model.md section 2: a slow chip runs at lower clocks or hotter while
    # its peers wait): power below this share of its job's median, or temperature this far
    # above the job's median, for 5 min ([A]). A healthy job's chips sit within ~5 % of its
    # median power; a chip with a poor heat path runs ~12 °C above its peers, plus ~2 °C of
    # noise, and is a maintenance item, not a straggler.
    straggler_power_ratio: Below = Below(warning=Limit(value=0.7, for_=5 * MINUTE))
    straggler_temperature_excess_celsius: Above = _above(20.0, 5 * MINUTE, None, 0.0)


class BandLimit(_Frozen):
    """Peak-to-peak amplitude limits of one band, as a share of the meter's rating."""

    band: str = Field(min_length=1)
    warning_ratio: Ratio | None = None
    critical_ratio: Ratio | None = None

    @field_validator("critical_ratio")
    @classmethod
    def _critical_beyond_warning(cls, critical: float | None, info: ValidationInfo) -> float | None:
        warning = info.data.get("warning_ratio")
        if warning is not None and critical is not None and critical < warning:
            raise ValueError(f"is below warning_ratio ({warning:g})")
        return critical


# The grid limits are the collector's grid defaults (collector/grid/config.py), where each
# carries its basis in site-model.md section 3; they are read from there, never written twice.
_GRID = GridConfig()
_RAMP = next(ramp for ramp in _GRID.ramps if ramp.warn_watts_per_second is not None)


def _per_minute(watts_per_second: float | None) -> float | None:
    return None if watts_per_second is None else watts_per_second * MINUTE


def _default_oscillation() -> tuple[BandLimit, ...]:
    """The collector's bands and limits: 0.1-1 and 1-3 Hz warn at 1 % and page at 3 % of
    rating; 3-10 Hz and above warn at 0.5 %."""
    return tuple(
        BandLimit(
            band=band.name,
            warning_ratio=band.warn_peak_to_peak_ratio,
            critical_ratio=band.critical_peak_to_peak_ratio,
        )
        for band in _GRID.bands
    )


class GridThresholds(_Frozen):
    # The rating the absolute limits below are written for: the 2,250 MW contract ([S]
    # site-model.md section 1). Each meter is judged against its own rating (the point of
    # interconnection: the contract; a building: its share of it; a lineup: its own), every
    # absolute limit scaled by rating / reference, as the collector scales its steps.
    reference_rating_watts: PositiveFloat = _GRID.rating_watts
    # Ramp over 1 min: > 100 / > 150 MW/min ([A], scaled from a 10 MW/min limit for a 150 MW
    # site); the window label the collector gives that ramp.
    ramp_window: str = Field(default=f"{_RAMP.window_seconds:g}s", min_length=1)
    ramp_watts_per_minute: Above = _above(
        _per_minute(_RAMP.warn_watts_per_second),
        0.0,
        _per_minute(_RAMP.critical_watts_per_second),
        0.0,
    )
    # Steps (> 50 MW within 1 s) and uncommanded drops (> 100 MW in < 2 s) are detected and
    # counted by the collector at its grid configuration's thresholds; an alert stays firing
    # this long after one, so a person sees it.
    event_lookback: Duration = 10 * MINUTE
    # Forced oscillation in 0.1-3 Hz: > 1 % / > 3 % of rating peak to peak, sustained; 3 Hz
    # and up: a coherent component > 0.5 % of rating. Band names as the collector's.
    oscillation: tuple[BandLimit, ...] = _default_oscillation()
    # Sustained: as long as the collector's episodes must last (30 s).
    oscillation_for: Duration = _GRID.episode_min_seconds
    # Oscillation energy: any band > 20 % of spectral energy, sustained > 30 s ([S] example
    # specification in Choukse et al.).
    band_energy_ratio: Above = _above(
        _GRID.energy_share_threshold_ratio, _GRID.episode_min_seconds, None, 0.0
    )
    # A band counts only when its strongest component reaches this share of rating peak to
    # peak: 1 %, the forced-oscillation warning amplitude ([A], site-model.md section 3).
    # Some band always holds a fifth of the energy of any signal, so the share alone says
    # little; the collector records episodes from 0.1 % of rating
    # (gigawatt_grid_band_episodes_total), but a training site mitigated to the amplitude
    # limits still shows 0.5-0.8 % at its 0.1-1 Hz line, and that is no incident.
    band_energy_min_peak_to_peak_ratio: Ratio = 0.01


class DataQualityThresholds(_Frozen):
    # A target whose reads fail for this long ([A]: six cycles at the default interval).
    source_down_for: Duration = 1 * MINUTE
    # A target's last successful read older than this: its data is stale ([A]; twice the
    # down time, so a dead target's SourceDown comes first and inhibits it).
    stale_after: Duration = 2 * MINUTE
    # A PDU feed that stops reporting while its rack still exists ([A]).
    feed_silent_for: Duration = 5 * MINUTE
    # Shares of a building's PDU feeds and accelerators reporting ([A]: 95 % still sums to a
    # usable total; below half the totals are guesses).
    building_reporting_ratio: Below = Below(
        warning=Limit(value=0.95, for_=5 * MINUTE), critical=Limit(value=0.5, for_=5 * MINUTE)
    )
    building_accelerators_reporting_ratio: Below = Below(
        warning=Limit(value=0.95, for_=10 * MINUTE)
    )
    # A building that lost power: IT power below this share of its IT capacity, or no feed
    # reporting at all ([A]).
    building_power_lost_ratio: Limit = Limit(value=0.02, for_=1 * MINUTE)
    # Counter-reset storms: more energy-counter resets than this within the window, per
    # source (counters read from devices) or per building (PDU meters) ([A]).
    counter_resets: Limit = Limit(value=3.0, for_=0.0)
    counter_reset_window: Duration = 15 * MINUTE
    # The three layers disagree: PDU power minus the servers' BMC power, over the rack's
    # power, above 8 % or below -3 % for 15 min (issue 4's note: conversion losses and
    # switches make a few percent positive; negative means the BMCs over-report).
    unattributed_above_ratio: Finite = 0.08
    unattributed_below_ratio: Finite = Field(default=-0.03, validate_default=True)
    unattributed_for: Duration = 15 * MINUTE

    @field_validator("unattributed_below_ratio")
    @classmethod
    def _band_not_empty(cls, below: float, info: ValidationInfo) -> float:
        above = info.data.get("unattributed_above_ratio")
        if above is not None and below >= above:
            raise ValueError(f"must be below unattributed_above_ratio ({above:g})")
        return below


class CollectorThresholds(_Frozen):
    # Share of the cycle slots skipped over the window: a cycle that runs past the next
    # slot makes the collector skip it rather than queue it. One slow cycle in five minutes
    # is noise; a tenth of the slots is a collector that cannot keep its interval ([A]).
    skipped_ratio: Limit = Limit(value=0.1, for_=5 * MINUTE)
    skipped_window: Duration = 5 * MINUTE
    # Any failed cycle within the look-back ([A]).
    failures_lookback: Duration = 10 * MINUTE
    # No completed cycle for this long ([A]: twelve cycles at the default interval).
    stalled_after: Duration = 2 * MINUTE
    # Rendering the exposition takes longer than half the 10 s scrape timeout of
    # deploy/prometheus ([A]).
    render_seconds: Limit = Limit(value=5.0, for_=10 * MINUTE)
    # No gigawatt series at all in Prometheus for this long.
    absent_for: Duration = 5 * MINUTE


class Thresholds(_Frozen):
    """Everything the alert and recording rules need besides the metric table."""

    # Label matchers added to every series the rules read, e.g. job="gigawatt".
    selector: Selector = ""
    # Where docs/runbooks/<AlertName>.md is served; runbook_url = base + /<AlertName>.md.
    runbook_base_url: str = Field(default="docs/runbooks", min_length=1)
    for_scale: PositiveFloat = 1.0
    window_scale: PositiveFloat = 1.0
    min_window: Duration = 1 * MINUTE
    capacity: CapacityThresholds = CapacityThresholds()
    thermal: ThermalThresholds = ThermalThresholds()
    accelerators: AcceleratorThresholds = AcceleratorThresholds()
    grid: GridThresholds = GridThresholds()
    data_quality: DataQualityThresholds = DataQualityThresholds()
    collector: CollectorThresholds = CollectorThresholds()

    def for_duration(self, seconds: float) -> str:
        """A rule's ``for:``, scaled by for_scale."""
        return format_duration(seconds * self.for_scale)

    def window(self, seconds: float) -> str:
        """A look-back window, scaled by window_scale and never below min_window."""
        return format_duration(max(seconds * self.window_scale, self.min_window))


DEFAULT_THRESHOLDS = Thresholds()


class ThresholdsError(ConfigError):
    """Every problem found in a thresholds file, each with its location."""


def parse_thresholds(text: str, source: str = "<thresholds>") -> Thresholds:
    """Parse and validate a thresholds YAML document; raise ThresholdsError listing every
    problem. An empty document gives the defaults."""
    data = yaml_mapping(text, source, ThresholdsError, empty_is_defaults=True)
    try:
        return Thresholds.model_validate(data)
    except ValidationError as error:
        problems = [
            replace(problem, message=problem.message.removeprefix("Value error, "))
            for problem in validation_problems(error, line_index(text))
        ]
        raise ThresholdsError(source, problems) from None


def load_thresholds(path: Path) -> Thresholds:
    return parse_thresholds(read_config(path, ThresholdsError), str(path))
