"""What each scenario event does to one source's batch: a pure transform.

``Incidents(topology, scenario, started_at).apply(batch, now, since)`` returns the batch as
it would read with the events under way at ``now`` (``since`` is the previous read, for
interval means), and nothing else: no clock, no state, no randomness, so a scenario run is
as deterministic as the simulator's seed.

The layers tell one story. Power is moved at the PDU feeds and flows up: a straggler's lost
watts leave its server's BMC reading and its rack's feeds too (over the rack's conversion
efficiency); the fast meters (point of interconnection, buildings, lineups) get the same
change as the feeds under them, so the 20 Hz path and the detailed path agree. Meter events
(``load_step``, ``oscillation``) act the other way round: the signal is added sample by
sample to the fast meters and its interval mean to the feeds under the meter, shared by
their power, and on to the servers of those feeds' racks, so the BMCs follow the PDUs.

Effects, in the order they apply:

* ``site_surge``: PDU feeds, servers (BMC and CPU power), buildings' non-IT load and every
  fast meter scale by ``ratio``. The chips' own reports do not: they would pass their TDP.
* ``straggler``: the chip draws ``power_ratio`` of its power; ``accelerator_overheat``: it
  reads ``celsius``; ``cooling_failure``: every chip of the hall heats by
  ``celsius_per_minute`` for as long as the event lasts (held at 10 °C past the chip's limit,
  where it would trip), power unchanged; ``accelerator_errors``: the chip's uncorrected ECC
  counter grows by ``per_minute`` (and keeps its count after the event).
* ``rack_overload``: the rack's feeds and servers scale so that its feeds sum to ``watts``.
* ``feed_trip``: the feed reads 0 W and 0 A, its power moves to the rack's other feeds.
* ``bmc_overreport``: the server's BMC reports ``ratio`` times its input power (the PDUs do
  not follow: the layers disagree).
* ``load_step``, ``oscillation``: see above (feeds never go below 0 W).
* ``building_outage``: the building's feeds, servers and chips stop reporting (no power);
  its non-IT load and its fast meters read 0 W, and the point of interconnection loses it.
* ``pdu_silent``, ``accelerator_silent``: the feed's or chip's rows are gone.

``source_down`` and ``cycle_overrun`` act on the read itself (collector.scenarios.source).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import replace

import numpy as np
import numpy.typing as npt
import polars as pl

from collector.scenarios.config import (
    AcceleratorErrors,
    AcceleratorOverheat,
    BmcOverreport,
    CoolingFailure,
    Event,
    LoadStep,
    Oscillation,
    RackOverload,
    Scenario,
    SiteSurge,
    Straggler,
    meter_names,
)
from collector.site.topology import Topology
from collector.sources.base import SampleBatch

FloatArray = npt.NDArray[np.float64]
IndexArray = npt.NDArray[np.int64]

# How far past its temperature limit a chip of a hall without cooling climbs: there it trips.
TRIP_ABOVE_LIMIT_CELSIUS = 10.0


def _positions(keys: IndexArray, entities: int) -> IndexArray:
    """Row of each entity in a frame keyed by ``keys`` (-1: no row)."""
    position = np.full(entities, -1, dtype=np.int64)
    position[keys] = np.arange(keys.size, dtype=np.int64)
    return position


def _floats(frame: pl.DataFrame, column: str) -> FloatArray:
    values: FloatArray = frame.get_column(column).cast(pl.Float64).fill_null(np.nan).to_numpy()
    return values.copy()


def _meter_signal(event: Event, relative: FloatArray) -> FloatArray:
    """Watts a meter event adds at each time (seconds after the run started)."""
    spec = event.spec
    end = math.inf if event.end is None else event.end
    on = (relative >= event.start) & (relative < end)
    if isinstance(spec, LoadStep):
        return np.where(on, spec.delta_watts, 0.0)
    assert isinstance(spec, Oscillation)
    phase = 2 * np.pi * spec.frequency_hz * (relative - event.start)
    return np.where(on, spec.peak_to_peak_watts / 2 * np.sin(phase), 0.0)


def _meter_mean(event: Event, after: float, until: float) -> float:
    """Mean of the event's signal over (after, until] (seconds after the start)."""
    spec = event.spec
    low = max(after, event.start)
    high = until if event.end is None else min(until, event.end)
    if high <= low or until <= after:
        return 0.0
    if isinstance(spec, LoadStep):
        return spec.delta_watts * (high - low) / (until - after)
    assert isinstance(spec, Oscillation)
    omega = 2 * np.pi * spec.frequency_hz
    integral = (
        spec.peak_to_peak_watts
        / 2
        * (math.cos(omega * (low - event.start)) - math.cos(omega * (high - event.start)))
        / omega
    )
    return integral / (until - after)


class Incidents:
    """The scenario bound to a topology: entity lookups built once, applied per read."""

    def __init__(self, topology: Topology, scenario: Scenario, started_at: float) -> None:
        self.topology = topology
        self.scenario = scenario
        self.started_at = started_at
        racks = topology.racks
        self._rack_building = racks["building_index"].to_numpy().astype(np.int64)
        self._rack_hall = racks["hall_index"].to_numpy().astype(np.int64)
        self._rack_efficiency = racks["conversion_efficiency"].to_numpy()
        feeds = topology.feeds
        self._feed_rack = feeds["rack_index"].to_numpy().astype(np.int64)
        self._feed_lineup = feeds["lineup_index"].to_numpy().astype(np.int64)
        self._feed_building = self._rack_building[self._feed_rack]
        self._node_rack = topology.nodes["rack_index"].to_numpy().astype(np.int64)
        self._chip_rack = topology.accelerators["rack_index"].to_numpy().astype(np.int64)
        self._chip_node = topology.accelerators["node_index"].to_numpy().astype(np.int64)
        self._chip_limit = topology.accelerators["max_temperature_celsius"].to_numpy()
        self._meters = meter_names(topology)
        lineup_building = topology.lineups["building_index"].to_numpy().astype(np.int64)
        buildings = topology.buildings.height
        # Which feeds each meter measures, as an index into _meters: 0 poi, then buildings,
        # then lineups (the order meter_names gives).
        self._meter_of_building = 1 + np.arange(buildings)
        self._meter_of_lineup = 1 + buildings + np.arange(lineup_building.size)
        # The meters a building outage darkens: the building's own and its lineups'.
        self._dark_meters = {
            building: [
                self._meters[1 + building],
                *(
                    self._meters[int(meter)]
                    for meter in self._meter_of_lineup[lineup_building == building]
                ),
            ]
            for building in range(buildings)
        }

    # --- the whole transform -----------------------------------------------------------------

    def apply(self, batch: SampleBatch, now: float, since: float | None = None) -> SampleBatch:
        """The batch as read with the scenario's events at ``now``; ``since`` is the previous
        read (meter events add their mean over the interval to the feeds)."""
        elapsed = now - self.started_at
        active = [event for event in self.scenario.events if event.active(elapsed)]
        errors = [e for e in self.scenario.of_kind("accelerator_errors") if e.start <= elapsed]
        if not active and not errors:
            return batch
        after = elapsed - 1.0 if since is None else since - self.started_at
        batch = self._surge(batch, [e for e in active if isinstance(e.spec, SiteSurge)])
        batch = self._power_and_heat(batch, active, elapsed)
        batch = self._error_counts(batch, errors, elapsed)
        batch = self._meter_events(
            batch, [e for e in self.scenario.of_kind("load_step", "oscillation")], after, elapsed
        )
        batch = self._outages(batch, [e for e in active if e.kind == "building_outage"])
        return self._silences(batch, active)

    # --- steps -------------------------------------------------------------------------------

    def _surge(self, batch: SampleBatch, surges: list[Event]) -> SampleBatch:
        if not surges:
            return batch
        ratio = math.prod(e.spec.ratio for e in surges if isinstance(e.spec, SiteSurge))
        scale = [pl.col(c) * ratio for c in ("power_watts", "current_amps")]
        return replace(
            batch,
            feeds=batch.feeds.with_columns(scale),
            nodes=batch.nodes.with_columns(pl.col("power_watts", "cpu_power_watts") * ratio),
            buildings=batch.buildings.with_columns(pl.col("non_it_power_watts") * ratio),
            meters=batch.meters.with_columns(pl.col("power_watts") * ratio),
        )

    def _power_and_heat(
        self, batch: SampleBatch, active: list[Event], elapsed: float
    ) -> SampleBatch:
        """Chip, server and rack events; the feeds' change goes to the fast meters."""
        chip_kinds = ("straggler", "accelerator_overheat", "cooling_failure")
        rack_kinds = ("rack_overload", "feed_trip", "bmc_overreport")
        if not any(e.kind in chip_kinds + rack_kinds for e in active):
            return batch
        topology = self.topology
        feed_keys = batch.feeds["feed_index"].cast(pl.Int64).to_numpy()
        feed_row = _positions(feed_keys, topology.feeds.height)
        power = _floats(batch.feeds, "power_watts")
        before = power.copy()
        node_keys = batch.nodes["node_index"].cast(pl.Int64).to_numpy()
        node_row = _positions(node_keys, topology.nodes.height)
        node_power = _floats(batch.nodes, "power_watts")
        accelerators = batch.accelerators

        def add_to_rack(rack: int, watts: float) -> None:
            """DC watts drawn in the rack, at its feeds: over the conversion efficiency,
            shared by the feeds' power."""
            rows = feed_row[np.flatnonzero(self._feed_rack == rack)]
            rows = rows[(rows >= 0) & np.isfinite(power[rows])]
            total = power[rows].sum()
            if rows.size and total > 0:
                power[rows] += watts / self._rack_efficiency[rack] * power[rows] / total

        chip_events = [e for e in active if e.kind in chip_kinds]
        if chip_events:
            chip_keys = accelerators["accelerator_index"].cast(pl.Int64).to_numpy()
            chip_row = _positions(chip_keys, topology.accelerator_count)
            chip_power = _floats(accelerators, "power_watts")
            temperature = _floats(accelerators, "temperature_celsius")
            for event in chip_events:
                spec = event.spec
                if isinstance(spec, CoolingFailure):
                    rows = chip_row[
                        np.flatnonzero(self._rack_hall[self._chip_rack] == event.target)
                    ]
                    rows = rows[rows >= 0]
                    rise = spec.celsius_per_minute * event.active_seconds(elapsed) / 60.0
                    chips = chip_keys[rows]
                    temperature[rows] = np.minimum(
                        temperature[rows] + rise, self._chip_limit[chips] + TRIP_ABOVE_LIMIT_CELSIUS
                    )
                    continue
                row = int(chip_row[event.target])
                if row < 0:
                    continue  # the chip did not report: nothing to change
                if isinstance(spec, AcceleratorOverheat):
                    temperature[row] = spec.celsius
                elif isinstance(spec, Straggler) and math.isfinite(chip_power[row]):
                    lost = chip_power[row] * (1.0 - spec.power_ratio)
                    chip_power[row] -= lost
                    node = int(node_row[self._chip_node[event.target]])
                    if node >= 0:
                        node_power[node] -= lost
                    add_to_rack(int(self._chip_rack[event.target]), -lost)
            accelerators = accelerators.with_columns(
                pl.Series("power_watts", chip_power, nan_to_null=True),
                pl.Series("temperature_celsius", temperature, nan_to_null=True),
            )

        for event in active:
            spec = event.spec
            if isinstance(spec, RackOverload):
                rows = feed_row[np.flatnonzero(self._feed_rack == event.target)]
                rows = rows[(rows >= 0) & np.isfinite(power[rows])]
                total = power[rows].sum()
                if not rows.size or total <= 0:
                    continue
                factor = spec.watts / total
                power[rows] *= factor
                servers = node_row[np.flatnonzero(self._node_rack == event.target)]
                node_power[servers[servers >= 0]] *= factor
            elif event.kind == "feed_trip":
                row = int(feed_row[event.target])
                if row < 0 or not math.isfinite(power[row]):
                    continue
                rack = int(self._feed_rack[event.target])
                others = feed_row[np.flatnonzero(self._feed_rack == rack)]
                others = others[(others >= 0) & (others != row) & np.isfinite(power[others])]
                carried = power[row]
                power[row] = 0.0
                if others.size:
                    share = power[others] / power[others].sum()
                    power[others] += carried * share
            elif isinstance(spec, BmcOverreport):
                node = int(node_row[event.target])
                if node >= 0:
                    node_power[node] *= spec.ratio

        feeds = self._with_feed_power(batch.feeds, power, before)
        meters = self._shift_meters(batch.meters, feed_keys, power - before)
        nodes = batch.nodes.with_columns(pl.Series("power_watts", node_power, nan_to_null=True))
        return replace(batch, accelerators=accelerators, feeds=feeds, nodes=nodes, meters=meters)

    def _with_feed_power(
        self, feeds: pl.DataFrame, power: FloatArray, before: FloatArray
    ) -> pl.DataFrame:
        """Feeds with new power, current scaled with it (0 A where the power went to 0)."""
        current = _floats(feeds, "current_amps")
        with np.errstate(invalid="ignore", divide="ignore"):
            scaled = np.where(before > 0, current * power / before, current)
        scaled = np.where(power == 0, 0.0, scaled)
        return feeds.with_columns(
            pl.Series("power_watts", np.maximum(power, 0.0), nan_to_null=True),
            pl.Series("current_amps", np.maximum(scaled, 0.0), nan_to_null=True),
        )

    def _meter_weights(self, feed_keys: IndexArray, share: FloatArray) -> FloatArray:
        """Per meter: the sum of ``share`` over the feeds (of ``feed_keys``) it measures."""
        finite = np.where(np.isfinite(share), share, 0.0)
        per_building = np.bincount(
            self._feed_building[feed_keys], weights=finite, minlength=self._meter_of_building.size
        )
        per_lineup = np.bincount(
            self._feed_lineup[feed_keys], weights=finite, minlength=self._meter_of_lineup.size
        )
        weights: FloatArray = np.concatenate([[finite.sum()], per_building, per_lineup])
        return weights

    def _shift_meters(
        self, meters: pl.DataFrame, feed_keys: IndexArray, delta: FloatArray
    ) -> pl.DataFrame:
        """Fast meters moved by the feeds' change (held over the interval)."""
        if meters.height == 0 or not np.any(np.isfinite(delta) & (delta != 0)):
            return meters
        offset = pl.DataFrame(
            {"meter": self._meters, "offset": self._meter_weights(feed_keys, delta)}
        )
        return (
            meters.join(offset, on="meter", how="left", maintain_order="left")
            .with_columns(pl.col("power_watts") + pl.col("offset").fill_null(0.0))
            .drop("offset")
        )

    def _error_counts(self, batch: SampleBatch, events: list[Event], elapsed: float) -> SampleBatch:
        if not events or batch.accelerator_errors.height == 0:
            return batch
        added: dict[int, int] = {}
        for event in events:
            assert isinstance(event.spec, AcceleratorErrors)
            count = math.floor(event.spec.per_minute * event.active_seconds(elapsed) / 60.0)
            added[event.target] = added.get(event.target, 0) + count
        extra = pl.DataFrame(
            {"accelerator_index": list(added), "added": [float(n) for n in added.values()]},
            schema={"accelerator_index": pl.UInt32, "added": pl.Float64},
        )
        errors = (
            batch.accelerator_errors.join(
                extra, on="accelerator_index", how="left", maintain_order="left"
            )
            .with_columns(pl.col("ecc_errors") + pl.col("added").fill_null(0.0))
            .drop("added")
        )
        return replace(batch, accelerator_errors=errors)

    def _meter_events(
        self, batch: SampleBatch, events: list[Event], after: float, elapsed: float
    ) -> SampleBatch:
        """Signals on the fast meters, their interval means on the feeds under them."""
        touching = [e for e in events if e.start < elapsed and (e.end is None or e.end > after)]
        if not touching or (batch.feeds.height == 0 and batch.meters.height == 0):
            return batch
        feed_keys = batch.feeds["feed_index"].cast(pl.Int64).to_numpy()
        power = _floats(batch.feeds, "power_watts")
        before = power.copy()
        meters = batch.meters
        relative = (
            (meters["timestamp_seconds"].to_numpy() - self.started_at) if meters.height else None
        )
        added = np.zeros(meters.height)
        meter_position = (
            meters.select(
                pl.col("meter").replace_strict(
                    self._meters, list(range(len(self._meters))), default=-1
                )
            )
            .to_series()
            .to_numpy()
            if meters.height
            else np.zeros(0, dtype=np.int64)
        )
        # The fast samples' own times, when there are any: the feeds then get exactly the
        # mean of what the meters show over the interval.
        instants = np.unique(relative) if relative is not None else np.zeros(0)
        for event in touching:
            in_scope = self._feeds_under(event.target, feed_keys) & np.isfinite(power)
            total = power[in_scope].sum()
            share = np.where(in_scope, power / total if total > 0 else 0.0, 0.0)
            mean = (
                float(_meter_signal(event, instants).mean())
                if instants.size
                else _meter_mean(event, after, elapsed)
            )
            power += share * mean
            if relative is not None:
                weights = self._meter_weights(feed_keys, share)
                # A meter outside the site's list (none in the simulator) is left alone.
                weight = np.where(meter_position >= 0, weights[np.maximum(meter_position, 0)], 0.0)
                added += weight * _meter_signal(event, relative)
        feeds = self._with_feed_power(batch.feeds, power, before)
        if meters.height:
            meters = meters.with_columns(pl.col("power_watts") + pl.Series(added))
        nodes = self._shift_servers(batch.nodes, feed_keys, power - before)
        return replace(batch, feeds=feeds, meters=meters, nodes=nodes)

    def _shift_servers(
        self, nodes: pl.DataFrame, feed_keys: IndexArray, feed_delta: FloatArray
    ) -> pl.DataFrame:
        """Servers' BMC power moved with their rack's feeds (the load that moved is theirs):
        the rack's change at its feeds, times its conversion efficiency, shared by the
        servers' power, so PDUs and BMCs keep agreeing."""
        if nodes.height == 0:
            return nodes
        racks = self._rack_efficiency.size
        finite = np.where(np.isfinite(feed_delta), feed_delta, 0.0)
        rack_delta = (
            np.bincount(self._feed_rack[feed_keys], weights=finite, minlength=racks)
            * self._rack_efficiency
        )
        node_rack = self._node_rack[nodes["node_index"].cast(pl.Int64).to_numpy()]
        node_power = _floats(nodes, "power_watts")
        counted = np.where(np.isfinite(node_power) & (node_power > 0), node_power, 0.0)
        rack_total = np.bincount(node_rack, weights=counted, minlength=racks)
        with np.errstate(invalid="ignore", divide="ignore"):
            share = np.where(rack_total[node_rack] > 0, counted / rack_total[node_rack], 0.0)
        shifted = np.maximum(node_power + share * rack_delta[node_rack], 0.0)
        return nodes.with_columns(pl.Series("power_watts", shifted, nan_to_null=True))

    def _feeds_under(self, meter: int, feed_keys: IndexArray) -> npt.NDArray[np.bool_]:
        """Which of the batch's feeds the meter (its index in meter_names) measures."""
        buildings = self._meter_of_building.size
        under: npt.NDArray[np.bool_]
        if meter == 0:
            under = np.ones(feed_keys.size, dtype=bool)
        elif meter <= buildings:
            under = self._feed_building[feed_keys] == meter - 1
        else:
            under = self._feed_lineup[feed_keys] == meter - 1 - buildings
        return under

    def _outages(self, batch: SampleBatch, outages: list[Event]) -> SampleBatch:
        if not outages:
            return batch
        dark = np.array([e.target for e in outages], dtype=np.int64)
        feeds = batch.feeds.filter(
            ~pl.Series(
                np.isin(
                    self._feed_building[batch.feeds["feed_index"].cast(pl.Int64).to_numpy()], dark
                )
            )
        )
        nodes = batch.nodes.filter(
            ~pl.Series(
                np.isin(
                    self._rack_building[
                        self._node_rack[batch.nodes["node_index"].cast(pl.Int64).to_numpy()]
                    ],
                    dark,
                )
            )
        )

        def lit_chips(frame: pl.DataFrame) -> pl.DataFrame:
            keys = frame["accelerator_index"].cast(pl.Int64).to_numpy()
            return frame.filter(
                ~pl.Series(np.isin(self._rack_building[self._chip_rack[keys]], dark))
            )

        buildings = batch.buildings.with_columns(
            pl.when(pl.col("building_index").is_in(dark.tolist()))
            .then(0.0)
            .otherwise(pl.col("non_it_power_watts"))
            .alias("non_it_power_watts")
        )
        meters = batch.meters
        if meters.height:
            for building in dark.tolist():
                own = self._dark_meters[building]
                lost = meters.filter(pl.col("meter") == own[0]).select(
                    "timestamp_seconds", pl.col("power_watts").alias("lost")
                )
                meters = (
                    meters.join(lost, on="timestamp_seconds", how="left", maintain_order="left")
                    .with_columns(
                        pl.when(pl.col("meter").is_in(own))
                        .then(0.0)
                        .when(pl.col("meter") == "poi")
                        .then(pl.col("power_watts") - pl.col("lost").fill_null(0.0))
                        .otherwise(pl.col("power_watts"))
                        .alias("power_watts")
                    )
                    .drop("lost")
                )
        return replace(
            batch,
            feeds=feeds,
            nodes=nodes,
            accelerators=lit_chips(batch.accelerators),
            accelerator_errors=lit_chips(batch.accelerator_errors),
            buildings=buildings,
            meters=meters,
        )

    def _silences(self, batch: SampleBatch, active: Iterable[Event]) -> SampleBatch:
        feeds = [e.target for e in active if e.kind == "pdu_silent"]
        chips = [e.target for e in active if e.kind == "accelerator_silent"]
        if not feeds and not chips:
            return batch
        return replace(
            batch,
            feeds=batch.feeds.filter(~pl.col("feed_index").is_in(feeds)),
            accelerators=batch.accelerators.filter(~pl.col("accelerator_index").is_in(chips)),
            accelerator_errors=batch.accelerator_errors.filter(
                ~pl.col("accelerator_index").is_in(chips)
            ),
        )
