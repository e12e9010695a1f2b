"""Grid analytics configuration: bands, windows and thresholds, validated once.

Every number a grid operator might change lives here, never in the analysis code. Defaults
come from docs/site-model.md (shared): section 2 for the dynamics of a synchronous training
job, section 3 for what an operator watches. The tags follow that document: [S] stated by a
public source, [D] derived from one, [A] an assumption with no public source.

A YAML file holds any subset of the fields; the rest keep their defaults. Loading reports every
problem at once, each with its dotted location and line, and hands back a frozen GridConfig.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Annotated

from pydantic import ConfigDict, Field, ValidationError

from collector.config_errors import (
    ConfigError,
    ConfigModel,
    ConfigProblem,
    line_index,
    located,
    read_config,
    validation_problems,
    yaml_mapping,
)

PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegativeFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Ratio = Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)]

# The site's contract at the point of interconnection (site-model.md section 1, [S]): the
# rating that "% of rating" thresholds refer to.
CAMPUS_RATING_WATTS = 2.25e9
# Bounds on what a file may ask of the analysis: PMUs report at up to 120 frames/s and
# point-on-wave recorders are out of scope; windows and levels longer than a day are typos.
MAX_SAMPLE_RATE_HZ = 1000.0
MAX_WINDOW_SECONDS = 86_400.0
Seconds = Annotated[float, Field(gt=0, le=MAX_WINDOW_SECONDS)]


class _Frozen(ConfigModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Band(_Frozen):
    """A frequency band analysed on its own: energy share, strongest component, episodes.

    Amplitude thresholds are peak-to-peak, as a ratio of GridConfig.rating_watts.
    """

    name: str = Field(min_length=1)
    low_hz: NonNegativeFloat
    # None: up to the Nyquist frequency of the data, whatever its sample rate.
    high_hz: PositiveFloat | None = None
    warn_peak_to_peak_ratio: Ratio
    critical_peak_to_peak_ratio: Ratio | None = None


# Forced oscillation in 0.1-3 Hz: > 1 % (22 MW p-p) warn, > 3 % critical ([A], site-model.md
# section 3; inter-area resonance risk). Sub-synchronous 5-45 Hz: coherent component > 0.5 %
# of rating ([A], section 3, after ERCOT's 23 Hz event); no critical level is given there.
# Production spectra concentrate at 0.2-3 Hz and square-wave harmonics reach 1-10 Hz ([S],
# section 2), hence the split at 1, 3 and 10 Hz.
DEFAULT_BANDS: tuple[Band, ...] = (
    Band(
        name="0.1-1 Hz",
        low_hz=0.1,
        high_hz=1.0,
        warn_peak_to_peak_ratio=0.01,
        critical_peak_to_peak_ratio=0.03,
    ),
    Band(
        name="1-3 Hz",
        low_hz=1.0,
        high_hz=3.0,
        warn_peak_to_peak_ratio=0.01,
        critical_peak_to_peak_ratio=0.03,
    ),
    Band(name="3-10 Hz", low_hz=3.0, high_hz=10.0, warn_peak_to_peak_ratio=0.005),
    Band(name="10 Hz-Nyquist", low_hz=10.0, high_hz=None, warn_peak_to_peak_ratio=0.005),
)


class RampLimit(_Frozen):
    """A ramp-rate window: the change of the window's mean level per second, and its limits."""

    window_seconds: Seconds
    warn_watts_per_second: PositiveFloat | None = None
    critical_watts_per_second: PositiveFloat | None = None


# Ramp over 1 min: warn > 100 MW/min, critical > 150 MW/min ([A], site-model.md section 3,
# scaled from a 10 MW/min limit for a 150 MW site). The 1 s ramp has no published limit: it is
# reported, not judged.
DEFAULT_RAMPS: tuple[RampLimit, ...] = (
    RampLimit(window_seconds=1.0),
    RampLimit(
        window_seconds=60.0,
        warn_watts_per_second=100e6 / 60,
        critical_watts_per_second=150e6 / 60,
    ),
)


class StepRule(_Frozen):
    """A sustained level shift that completes within a short transition."""

    # Step within 1 s, not commanded: delta P > 50 MW ([A], site-model.md section 3).
    threshold_watts: PositiveFloat = 50e6
    within_seconds: Seconds = 1.0
    # Levels before and after are fitted over this long ([A]). Longer than the longest
    # training iteration (10 s, site-model.md section 2) so a training square wave averages out
    # and is reported as an oscillation, not as a step every iteration.
    level_seconds: Seconds = 20.0


class GridConfig(_Frozen):
    """Everything the grid analysis needs besides the data."""

    # What "% of rating" refers to: the 2,250 MW contract (site-model.md section 1, [S]).
    rating_watts: PositiveFloat = CAMPUS_RATING_WATTS
    bands: tuple[Band, ...] = Field(default=DEFAULT_BANDS, min_length=1)

    # Sampling. None: analyse at the data's own rate (1 / median interval).
    sample_rate_hz: Annotated[float, Field(gt=0, le=MAX_SAMPLE_RATE_HZ)] | None = None
    # An interval longer than this multiple of the median interval is a gap: reported, never
    # interpolated across; the data on either side is analysed as separate segments ([A]).
    gap_multiple: Annotated[float, Field(gt=1, allow_inf_nan=False)] = 5.0
    # An interval further than this share from the median is counted as irregular ([A]).
    irregular_tolerance_ratio: PositiveFloat = 0.25
    # Meters attenuate content approaching Nyquist (anti-alias and reporting filters; PMUs at
    # 30-60 frames/s under-report above ~10 Hz, PNNL-39191 via site-model.md section 3). A band
    # reaching above this share of Nyquist is reported partially visible ([A]); set it lower
    # for PMU data whose reporting filter passes less.
    trusted_fraction_of_nyquist: Ratio = 0.8

    # Welch's method: Hann segments with 50 % overlap. 20 s segments give 0.05 Hz bins, so a
    # 0.1 Hz component sits two bins from DC, clear of the Hann main lobe around the mean
    # ([D] from the 0.1 Hz lower band edge).
    segment_seconds: Seconds = 20.0
    # A sliding window averages this many half-overlapping segments: 3 -> 40 s windows.
    segments_per_window: Annotated[int, Field(ge=1, le=100)] = 3
    # Windows start this often ([A]); a divisor or multiple of half a segment, so segment
    # spectra are computed once and shared by every window that holds them.
    hop_seconds: Seconds = 5.0

    # Oscillation energy: any band > 20 % of spectral energy, sustained > 30 s ([S] example
    # specification in Choukse et al., site-model.md section 3). Energy excludes the mean.
    energy_share_threshold_ratio: Ratio = 0.2
    # White measurement noise spreads its energy evenly, so a wide band (3-10 Hz holds 70 % of
    # it at 20 Hz) would pass the share test on noise alone. The share test counts only when
    # the band also carries a spectral peak at least this large, peak-to-peak, as a ratio of
    # rating_watts ([A]; 0.1 % = 2.25 MW).
    energy_share_min_peak_to_peak_ratio: Ratio = 0.001
    # Sustained > 30 s (site-model.md section 3).
    episode_min_seconds: Seconds = 30.0

    ramps: tuple[RampLimit, ...] = DEFAULT_RAMPS
    step: StepRule = StepRule()
    # Uncommanded load drop: > 100 MW in < 2 s -> event record ([A], site-model.md section 3).
    drop: StepRule = StepRule(threshold_watts=100e6, within_seconds=2.0)

    @property
    def window_seconds(self) -> float:
        """Length of one sliding window: k half-overlapping segments span (k + 1) halves."""
        return self.segment_seconds * (self.segments_per_window + 1) / 2

    def peak_to_peak_watts(self, ratio: float) -> float:
        return ratio * self.rating_watts


GridConfigProblem = ConfigProblem


class GridConfigError(ConfigError):
    """Every problem found in a grid configuration, each with its location."""


def _is_multiple(larger: float, smaller: float) -> bool:
    ratio = larger / smaller
    return abs(ratio - round(ratio)) < 1e-9 * max(1.0, ratio)


def _cross_field_problems(config: GridConfig) -> Iterable[tuple[tuple[str | int, ...], str]]:
    """Relations between fields that one field's type cannot express."""
    names = [band.name for band in config.bands]
    for index, band in enumerate(config.bands):
        if names.index(band.name) != index:
            yield ("bands", index, "name"), f"band {band.name!r} appears twice"
        if band.high_hz is not None and band.high_hz <= band.low_hz:
            yield ("bands", index, "high_hz"), "must be above low_hz"
        critical = band.critical_peak_to_peak_ratio
        if critical is not None and critical < band.warn_peak_to_peak_ratio:
            yield ("bands", index, "critical_peak_to_peak_ratio"), "is below the warn ratio"
    windows = [ramp.window_seconds for ramp in config.ramps]
    for index, ramp in enumerate(config.ramps):
        if windows.index(ramp.window_seconds) != index:
            yield ("ramps", index, "window_seconds"), "window appears twice"
        warn, critical = ramp.warn_watts_per_second, ramp.critical_watts_per_second
        if warn is not None and critical is not None and critical < warn:
            yield ("ramps", index, "critical_watts_per_second"), "is below the warn rate"
    half_segment = config.segment_seconds / 2
    if not (
        _is_multiple(half_segment, config.hop_seconds)
        or _is_multiple(config.hop_seconds, half_segment)
    ):
        yield (
            ("hop_seconds",),
            f"must divide half a segment ({half_segment:g} s) or be a multiple of it",
        )
    if config.episode_min_seconds < config.hop_seconds:
        yield ("episode_min_seconds",), f"is shorter than hop_seconds ({config.hop_seconds:g})"


def parse_grid_config(text: str, source: str = "<grid config>") -> GridConfig:
    """Parse and validate a grid configuration's YAML; raise GridConfigError listing every
    problem. An empty document gives the defaults."""
    data = yaml_mapping(text, source, GridConfigError, empty_is_defaults=True)
    lines = line_index(text)
    try:
        config = GridConfig.model_validate(data)
    except ValidationError as error:
        raise GridConfigError(source, validation_problems(error, lines)) from None
    cross = [located(lines, path, message) for path, message in _cross_field_problems(config)]
    if cross:
        raise GridConfigError(source, cross)
    return config


def load_grid_config(path: Path) -> GridConfig:
    return parse_grid_config(read_config(path, GridConfigError), str(path))


def scaled_to_rating(config: GridConfig, rating_watts: float) -> GridConfig:
    """The configuration for a meter of another rating: the thresholds are written for the
    point of interconnection (``config.rating_watts``); a building or lineup meter gets every
    absolute threshold (steps, drops, ramp limits) scaled by its share of that rating, and
    ratio thresholds then follow its own rating."""
    factor = rating_watts / config.rating_watts
    if factor == 1.0:
        return config

    def scale(value: float | None) -> float | None:
        return None if value is None else value * factor

    return config.model_copy(
        update={
            "rating_watts": rating_watts,
            "step": config.step.model_copy(
                update={"threshold_watts": config.step.threshold_watts * factor}
            ),
            "drop": config.drop.model_copy(
                update={"threshold_watts": config.drop.threshold_watts * factor}
            ),
            "ramps": tuple(
                ramp.model_copy(
                    update={
                        "warn_watts_per_second": scale(ramp.warn_watts_per_second),
                        "critical_watts_per_second": scale(ramp.critical_watts_per_second),
                    }
                )
                for ramp in config.ramps
            ),
        }
    )
