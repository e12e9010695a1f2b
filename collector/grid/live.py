"""The live fast path: fast meter samples -> ring buffers -> grid analysis, every cycle.

Each cycle appends the new samples of every meter (point of interconnection, buildings,
lineups) to its ring and analyses the last ``history_seconds`` with the same functions as
``gigawatt grid analyze`` (collector.grid.analysis). The result is three small frames:

* per meter: latest power, dominant oscillation frequency and peak-to-peak, counters of steps
  (by direction) and uncommanded-drop candidates, each counted once when first seen;
* per meter and ramp window: the strongest ramp since the previous cycle, sign kept;
* per meter and band: energy share, peak-to-peak of the band's strongest component, whether
  the band is visible at the meter's sample rate, episodes counted once each, and whether
  one is under way.

Thresholds all come from the GridConfig; nothing here decides what is too much.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from collector.grid.analysis import GridAnalysis, analyze
from collector.grid.config import GridConfig, scaled_to_rating
from collector.grid.episodes import Episode
from collector.grid.ramps import ramp_rates
from collector.grid.ring import PowerRing

VISIBILITY_VALUE = {"visible": 1.0, "partial": 0.5, "not_visible": 0.0}


@dataclass(frozen=True)
class GridFrames:
    meters: pl.DataFrame  # meter, power_watts, dominant_frequency_hertz, peak_to_peak_watts,
    #                       drops (cumulative), samples (cumulative)
    steps: pl.DataFrame  # meter, direction (up/down), steps (cumulative)
    ramps: pl.DataFrame  # meter, window, watts_per_second
    bands: pl.DataFrame  # meter, band, energy_ratio, peak_to_peak_watts, visibility,
    #                       episodes (cumulative), episode_active
    analysis_seconds: float
    out_of_order: dict[str, int]  # meter -> samples older than what its ring already holds

    @classmethod
    def empty(cls) -> GridFrames:
        return cls(
            meters=pl.DataFrame(
                schema={
                    "meter": pl.String,
                    "power_watts": pl.Float64,
                    "dominant_frequency_hertz": pl.Float64,
                    "peak_to_peak_watts": pl.Float64,
                    "drops": pl.Float64,
                    "samples": pl.Float64,
                }
            ),
            steps=pl.DataFrame(
                schema={"meter": pl.String, "direction": pl.String, "steps": pl.Float64}
            ),
            ramps=pl.DataFrame(
                schema={"meter": pl.String, "window": pl.String, "watts_per_second": pl.Float64}
            ),
            bands=pl.DataFrame(
                schema={
                    "meter": pl.String,
                    "band": pl.String,
                    "energy_ratio": pl.Float64,
                    "peak_to_peak_watts": pl.Float64,
                    "visibility": pl.Float64,
                    "episodes": pl.Float64,
                    "episode_active": pl.Float64,
                }
            ),
            analysis_seconds=0.0,
            out_of_order={},
        )


@dataclass
class _MeterState:
    ring: PowerRing
    last_cycle_end: float = -np.inf
    last_step_at: float = -np.inf
    last_drop_at: float = -np.inf
    steps_up: int = 0
    steps_down: int = 0
    drops: int = 0
    samples: int = 0
    episodes: dict[str, int] = field(default_factory=dict)
    last_episode_end: dict[str, float] = field(default_factory=dict)


def validate_meters(samples: pl.DataFrame) -> tuple[pl.DataFrame, dict[str, int]]:
    """Meter samples that can be analysed, and the others counted by reason
    (not_finite: power or timestamp NaN or infinite; negative: power below zero)."""
    power, stamp = pl.col("power_watts"), pl.col("timestamp_seconds")
    finite = power.is_finite() & stamp.is_finite()
    counts = samples.select(
        (~finite).sum().alias("not_finite"), (finite & (power < 0)).sum().alias("negative")
    ).row(0, named=True)
    rejected = {reason: int(count) for reason, count in counts.items() if count}
    return samples.filter(finite & (power >= 0)), rejected


# A spectrum is published once the meter's history averages this many half-overlapping
# segments (60 s at the default 20 s). Welch's estimate spreads as 1/sqrt(segments): over the
# first seconds after a start the whole record is one short segment, and a slow wander of the
# load leaks into the 0.1 Hz bins as an "oscillation". On the mitigated demo the 0.1-1 Hz
# component read up to 1.2 % of the meter's rating within 30 s of a start and up to 0.8 % from
# 40 s, against a 1 % warning limit; from 60 s, up to 0.7 % (10 start times, 3 min each).
SPECTRUM_MIN_SEGMENTS = 5


def _window_name(seconds: float) -> str:
    return f"{seconds:g}s"


class GridMonitor:
    """Stateful over cycles (rings and counters); the analysis itself is pure."""

    def __init__(
        self,
        config: GridConfig | None = None,
        history_seconds: float = 180.0,
        max_sample_rate_hz: float = 60.0,
        ratings: Mapping[str, float] | None = None,
    ) -> None:
        """``ratings``: watts per meter name; a meter not listed is judged at the config's
        own rating (the point of interconnection's)."""
        self.config = config or GridConfig()
        self._configs = {
            meter: scaled_to_rating(self.config, rating)
            for meter, rating in (ratings or {}).items()
        }
        self.history_seconds = history_seconds
        self._capacity = int(history_seconds * max_sample_rate_hz) + 1
        self._meters: dict[str, _MeterState] = {}

    def update(self, samples: pl.DataFrame) -> GridFrames:
        """Ingest one cycle's meter samples and analyse: ingest() then analyze()."""
        out_of_order = self.ingest(samples)
        frames = self.analyze()
        return GridFrames(
            frames.meters,
            frames.steps,
            frames.ramps,
            frames.bands,
            frames.analysis_seconds,
            out_of_order,
        )

    def ingest(self, samples: pl.DataFrame) -> dict[str, int]:
        """Append validated meter samples (collector.schemas.METER_SAMPLES) to their rings.
        Returns, per meter, the samples refused for being older than what the ring holds."""
        out_of_order: dict[str, int] = {}
        for (meter,), group in samples.partition_by("meter", as_dict=True).items():
            state = self._meters.setdefault(str(meter), _MeterState(PowerRing(self._capacity)))
            ordered = group.sort("timestamp_seconds")
            timestamps = ordered["timestamp_seconds"].to_numpy()
            newest = state.ring.newest_timestamp
            if newest is not None:
                fresh = timestamps > newest
                if not fresh.all():
                    out_of_order[str(meter)] = int((~fresh).sum())
                    ordered = ordered.filter(pl.Series(fresh))
                    timestamps = timestamps[fresh]
            state.ring.append(timestamps, ordered["power_watts"].to_numpy())
            state.samples += timestamps.size
        return out_of_order

    def analyze(self) -> GridFrames:
        """Analyse the last ``history_seconds`` of every meter (the fast path's real work)."""
        if not self._meters:
            return GridFrames.empty()
        started = time.perf_counter()
        meter_rows, step_rows, ramp_rows, band_rows = [], [], [], []
        for meter, state in self._meters.items():
            times, watts = state.ring.last_seconds(self.history_seconds)
            if times.size < 4:
                continue
            config = self._configs.get(meter, self.config)
            analysis = analyze(times, watts, config)
            self._count_events(state, analysis, config.step.level_seconds / 2)
            spectrum = analysis.spectrum
            # The estimates (frequency, peak to peak, energy shares) are missing until the
            # history is long enough; what a band's visibility says holds from the start.
            settled = times[-1] - times[0] >= (
                config.segment_seconds * (SPECTRUM_MIN_SEGMENTS + 1) / 2
            )
            estimate = spectrum if settled else None
            meter_rows.append(
                (
                    meter,
                    float(watts[-1]),
                    estimate.dominant_frequency_hz if estimate else None,
                    estimate.peak_to_peak_watts if estimate else None,
                    float(state.drops),
                    float(state.samples),
                )
            )
            step_rows += [
                (meter, "up", float(state.steps_up)),
                (meter, "down", float(state.steps_down)),
            ]
            for ramp in ramp_rates(
                times, watts, tuple(r.window_seconds for r in self.config.ramps)
            ):
                recent = ramp.timestamps > state.last_cycle_end
                values = ramp.watts_per_second[recent]
                values = values[np.isfinite(values)]
                strongest = float(values[np.argmax(np.abs(values))]) if values.size else None
                ramp_rows.append((meter, _window_name(ramp.window_seconds), strongest))
            active_until = float(times[-1]) - analysis.hop_seconds - 1e-9
            for band in spectrum.bands if spectrum else ():
                name = band.visibility.band
                active = any(
                    e.band == name and e.end_seconds >= active_until for e in analysis.episodes
                )
                band_rows.append(
                    (
                        meter,
                        name,
                        band.energy_share if estimate else None,
                        band.peak_to_peak_watts if estimate else None,
                        VISIBILITY_VALUE[band.visibility.status],
                        float(state.episodes.get(name, 0)),
                        1.0 if active else 0.0,
                    )
                )
            state.last_cycle_end = float(times[-1])
        empty = GridFrames.empty()
        return GridFrames(
            meters=pl.DataFrame(meter_rows, schema=empty.meters.schema, orient="row"),
            steps=pl.DataFrame(step_rows, schema=empty.steps.schema, orient="row"),
            ramps=pl.DataFrame(ramp_rows, schema=empty.ramps.schema, orient="row"),
            bands=pl.DataFrame(band_rows, schema=empty.bands.schema, orient="row"),
            analysis_seconds=time.perf_counter() - started,
            out_of_order={},
        )

    @staticmethod
    def _count_events(state: _MeterState, analysis: GridAnalysis, separation: float) -> None:
        """Each step, drop and episode is counted once: the history overlaps between cycles,
        so only events later than the last one counted are new. A step seen again may be
        placed a little differently; two shifts closer than half the level window cannot be
        told apart anyway, so that is the separation required."""
        for step in analysis.steps:
            if step.at_seconds > state.last_step_at + separation:
                if step.delta_watts > 0:
                    state.steps_up += 1
                else:
                    state.steps_down += 1
                state.last_step_at = step.at_seconds
        for drop in analysis.drops:
            if drop.at_seconds > state.last_drop_at + separation:
                state.drops += 1
                state.last_drop_at = drop.at_seconds
        by_band: dict[str, list[Episode]] = {}
        for episode in analysis.episodes:
            by_band.setdefault(episode.band, []).append(episode)
        for band, episodes in by_band.items():
            last_end = state.last_episode_end.get(band, -np.inf)
            for episode in sorted(episodes, key=lambda e: e.start_seconds):
                if episode.start_seconds > last_end:
                    state.episodes[band] = state.episodes.get(band, 0) + 1
                # An ongoing episode grows from cycle to cycle: remember how far it reached.
                last_end = max(last_end, episode.end_seconds)
            state.last_episode_end[band] = last_end
