"""A faithful, vectorized simulator of the campus: accelerators, PDU feeds and buildings.

Deterministic: the same seed and the same sequence of clock readings give the same samples,
because each cycle draws from a generator seeded by (seed, timestamp in ms). Static traits
(which UltraServers are allocated, each chip's thermal offset, each feed's share of its rack)
come from the seed alone.

The physics follows the shared site model: chips idle at 20-30 % of TDP and train near TDP;
hosts add 3-5.5 kW per server; rack input is the DC load over the conversion efficiency,
shared between the A and B feeds; the non-IT load of a building follows a PUE that moves
between 1.08 (outside air) and 1.25 (evaporative assist on a hot afternoon).

What the chips are doing is a Workload's business. SteadyTraining keeps a fixed share of
UltraServers training; the job model (iteration square waves, checkpoints, failures) plugs
in behind the same ``activity`` call.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Literal, Protocol

import numpy as np
import numpy.typing as npt
import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from collector.site.topology import Topology
from collector.sources.base import SampleBatch
from collector.sources.jobs import STATES, JobConfig, JobModel

FloatArray = npt.NDArray[np.float64]
Float32Array = npt.NDArray[np.float32]


class SimulationConfig(BaseModel):
    """Parameters of the simulated campus; every figure is an assumption to be tuned."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = Field(default=0, ge=0)
    # steady: a fixed share of UltraServers at a steady training level; jobs: the job model
    # (square-wave iterations, checkpoints, failures) with its fast meter path.
    workload: Literal["steady", "jobs"] = "steady"
    jobs: JobConfig = JobConfig()
    meter_noise_ratio: float = Field(default=1e-4, ge=0)
    ultraserver_accelerators: int = Field(default=64, gt=0)
    allocation_ratio: float = Field(default=0.9, ge=0, le=1)
    training_activity: float = Field(default=0.92, ge=0, le=1)  # share of idle->TDP span
    activity_noise: float = Field(default=0.02, ge=0)
    # Thermal: die temperature = inlet + resistance x power, plus a per-chip offset.
    inlet_celsius: float = 27.0
    thermal_resistance_celsius_per_watt: float = Field(default=0.09, gt=0)
    hot_chip_ratio: float = Field(default=0.001, ge=0, le=1)  # chips with a bad heat path
    hot_chip_extra_celsius: float = 12.0
    memory_used_ratio_training: float = Field(default=0.82, ge=0, le=1)
    # Electrical.
    power_factor: float = Field(default=0.98, gt=0, le=1)
    # Each server's BMC reads its input power with a fixed calibration error (PSU meters are
    # specified to a few per cent) plus noise; rack PDU minus the servers' sum is then the
    # conversion loss plus what the meters disagree on, as on a real floor.
    bmc_calibration_spread: float = Field(default=0.015, ge=0, le=0.2)
    bmc_noise_ratio: float = Field(default=0.003, ge=0)
    # The CPU packages' share of what a server draws beyond its accelerators (RAPL's view).
    cpu_share_of_host: float = Field(default=0.3, ge=0, le=1)
    feed_share_spread: float = Field(default=0.03, ge=0)  # static A/B imbalance (relative)
    # Weather and PUE (Indiana-like defaults).
    outdoor_mean_celsius: float = 12.0
    outdoor_seasonal_amplitude_celsius: float = 13.0
    outdoor_daily_amplitude_celsius: float = 6.0
    pue_outside_air: float = Field(default=1.08, ge=1)
    pue_hot: float = Field(default=1.25, ge=1)
    free_cooling_below_celsius: float = 10.0
    full_assist_above_celsius: float = 32.0
    # Sources that drop out, to exercise "missing, never 0".
    accelerator_dropout_ratio: float = Field(default=0.0, ge=0, le=1)
    feed_dropout_ratio: float = Field(default=0.0, ge=0, le=1)
    node_dropout_ratio: float = Field(default=0.0, ge=0, le=1)


class NormalPool:
    """Standard normal noise for one vector a cycle, drawn once.

    Drawing 2 M normals takes about 18 ms of one core, and the campus needs two such vectors a
    cycle. So a pool half as long again as the vector is drawn at start, and each cycle reads
    a window of it at an offset taken from that cycle's generator. Within a cycle the values
    are independent draws; from one cycle to the next a chip gets another of them. Nothing
    that reads the simulator can tell the difference, and the cycle stays deterministic.
    """

    def __init__(self, size: int, rng: np.random.Generator) -> None:
        self.size = size
        self._values = rng.standard_normal(size + size // 2 + 1, dtype=np.float32)

    def draw(self, rng: np.random.Generator) -> Float32Array:
        offset = int(rng.integers(0, self._values.size - self.size + 1))
        window: Float32Array = self._values[offset : offset + self.size]
        return window


class Workload(Protocol):
    def activity(
        self, now: float, rng: np.random.Generator, after: float | None = None
    ) -> Float32Array:
        """Per accelerator, 0 (idle) to 1 (TDP): where each chip sat between idle and TDP,
        on average over (after, now] (meters report interval averages)."""
        ...

    def allocated(self) -> npt.NDArray[np.bool_]:
        """Per accelerator: whether a job holds it (drives memory use and utilization)."""
        ...


class SteadyTraining:
    """A fixed share of UltraServers training at a steady level; the rest idle."""

    def __init__(self, topology: Topology, config: SimulationConfig) -> None:
        count = topology.accelerator_count
        group = np.arange(count, dtype=np.int64) // config.ultraserver_accelerators
        groups = int(group[-1]) + 1 if count else 0
        chosen = np.random.default_rng([config.seed, 1]).random(groups) < config.allocation_ratio
        self._allocated = chosen[group]
        self._level = np.where(self._allocated, config.training_activity, 0.0).astype(np.float32)
        self._normal = NormalPool(count, np.random.default_rng([config.seed, 4]))
        # Idle chips hold still: a quarter of the noise keeps them inside 20-30 % of TDP.
        self._noise = np.where(self._allocated, 1.0, 0.25).astype(np.float32) * np.float32(
            config.activity_noise
        )

    def allocated(self) -> npt.NDArray[np.bool_]:
        return self._allocated

    def activity(
        self, now: float, rng: np.random.Generator, after: float | None = None
    ) -> Float32Array:
        noise = self._normal.draw(rng) * self._noise
        activity: Float32Array = np.clip(self._level + noise, 0.0, 1.0)
        return activity


class JobWorkload:
    """The job model (collector.sources.jobs) driving every accelerator of its slots.

    Keeps the last interval's per-slot samples for the fast meter path, so both paths read
    the very same activity.
    """

    def __init__(self, topology: Topology, config: SimulationConfig) -> None:
        size = config.ultraserver_accelerators
        count = topology.accelerator_count
        if count % size:
            raise ValueError(
                f"the job model needs whole UltraServers: {count} accelerators is not a "
                f"multiple of {size}"
            )
        tdp = topology.accelerators["tdp_watts"].to_numpy()
        idle = topology.accelerators["idle_watts"].to_numpy()
        # One accelerator type per campus is what the model assumes; a mixed site uses means.
        self.model = JobModel(
            count // size, size, config.jobs, config.seed, float(idle.mean()), float(tdp.mean())
        )
        self._slot_of_accelerator = self.model.slots.of_ultraserver[
            np.arange(count, dtype=np.int64) // size
        ]
        slot = self._slot_of_accelerator
        # Per chip, its slot's row in the per-slot means with one idle row appended (-1: no
        # slot), and its noise scale: both fixed by the topology.
        self._mean_row = np.where(slot >= 0, slot, self.model.slots.count.size)
        noise = np.float32(config.activity_noise)
        self._noise_scale = np.where(slot >= 0, noise, noise * np.float32(0.25))
        self._normal = NormalPool(count, np.random.default_rng([config.seed, 4]))
        self._last_state = np.zeros(self.model.slots.count.size, dtype=np.int8)
        self.last_times: FloatArray = np.zeros(0)
        self.last_activity: FloatArray = np.zeros((self.model.slots.count.size, 0))

    def activity(
        self, now: float, rng: np.random.Generator, after: float | None = None
    ) -> Float32Array:
        start = now - 1.0 if after is None or after >= now else after
        self.model.advance(now)
        times = self.model.grid(start, now)
        activity, state = self.model.activity(times)
        if times.size:
            mean = activity.mean(axis=1)
            self._last_state = state[:, -1]
        else:
            mean = self.model.last_activity
        self.last_times, self.last_activity = times, activity
        per_chip = np.append(mean, 0.0).astype(np.float32)[self._mean_row]
        # Chips of one job move together; a little independent noise on top (less when idle).
        per_chip += self._normal.draw(rng) * self._noise_scale
        activity_out: Float32Array = np.clip(per_chip, 0.0, 1.0, out=per_chip)
        return activity_out

    def allocated(self) -> npt.NDArray[np.bool_]:
        slot = self._slot_of_accelerator
        holding = self._last_state != STATES.index("queued")
        allocated: npt.NDArray[np.bool_] = (slot >= 0) & holding[np.maximum(slot, 0)]
        return allocated

    def job_names(self) -> list[str]:
        return [
            f"job-{slot:05d}-{sequence}"
            for slot, sequence in enumerate(self.model.sequence.tolist())
        ]

    def states(self) -> list[str]:
        return [STATES[code] for code in self._last_state.tolist()]


def weighted_count(index: npt.NDArray[np.integer], weights: FloatArray, length: int) -> FloatArray:
    """np.bincount with weights, typed as the float array it returns."""
    return np.bincount(index, weights=weights, minlength=length).astype(np.float64, copy=False)


def outdoor_temperature_celsius(now: float, config: SimulationConfig) -> float:
    """Seasonal and daily cycle: coldest mid-January at 03:00, warmest mid-July at 15:00."""
    moment = datetime.fromtimestamp(now, tz=UTC)
    day_of_year = moment.timetuple().tm_yday + moment.hour / 24.0
    # Local solar time near 87°W is about UTC-6.
    local_hour = (moment.hour + moment.minute / 60.0 - 6.0) % 24.0
    seasonal = -math.cos(2 * math.pi * (day_of_year - 15.0) / 365.25)
    daily = -math.cos(2 * math.pi * (local_hour - 3.0) / 24.0)
    return (
        config.outdoor_mean_celsius
        + config.outdoor_seasonal_amplitude_celsius * seasonal
        + config.outdoor_daily_amplitude_celsius * daily
    )


def pue_for(outdoor_celsius: FloatArray, config: SimulationConfig) -> FloatArray:
    span = config.full_assist_above_celsius - config.free_cooling_below_celsius
    assist = np.clip((outdoor_celsius - config.free_cooling_below_celsius) / span, 0.0, 1.0)
    pue: FloatArray = config.pue_outside_air + (config.pue_hot - config.pue_outside_air) * assist
    return pue


class SimulatedSource:
    """Source ``simulated``: the whole campus, every cycle, from numpy arrays."""

    name = "simulated"

    def __init__(
        self,
        topology: Topology,
        config: SimulationConfig | None = None,
        workload: Workload | None = None,
    ) -> None:
        self.topology = topology
        self.config = config or SimulationConfig()
        if workload is None:
            workload = (
                JobWorkload(topology, self.config)
                if self.config.workload == "jobs"
                else SteadyTraining(topology, self.config)
            )
        self.workload = workload
        self._last_read: float | None = None
        cfg = self.config
        static = np.random.default_rng([cfg.seed, 2])
        accelerators = topology.accelerators
        self._accelerator_index = accelerators["accelerator_index"].to_numpy()
        self._idle = accelerators["idle_watts"].to_numpy().astype(np.float32)
        self._span = (
            accelerators["tdp_watts"].to_numpy() - accelerators["idle_watts"].to_numpy()
        ).astype(np.float32)
        self._memory = accelerators["memory_bytes"].to_numpy()
        offset = static.normal(0.0, 1.5, topology.accelerator_count)
        offset[static.random(topology.accelerator_count) < cfg.hot_chip_ratio] += (
            cfg.hot_chip_extra_celsius
        )
        self._temperature_base = (cfg.inlet_celsius + offset).astype(np.float32)
        self._temperature_noise = NormalPool(
            topology.accelerator_count, np.random.default_rng([cfg.seed, 5])
        )
        allocated = self.workload.allocated()
        self._memory_used = np.where(
            allocated,
            self._memory * cfg.memory_used_ratio_training,
            self._memory * 0.01,
        ) * (1.0 + static.normal(0.0, 0.02, topology.accelerator_count)).clip(0.9, 1.1)
        self._memory_used = np.minimum(self._memory_used, self._memory)

        nodes = topology.nodes
        self._node_first = nodes["first_accelerator_index"].to_numpy().astype(np.int64)
        self._node_count = nodes["accelerator_count"].to_numpy().astype(np.float64)
        self._node_rack = nodes["rack_index"].to_numpy()
        self._host_idle = nodes["host_idle_watts"].to_numpy()
        self._host_span = nodes["host_max_watts"].to_numpy() - self._host_idle
        self._node_index = nodes["node_index"].to_numpy()
        self._bmc_gain = 1.0 + np.clip(
            static.normal(0.0, cfg.bmc_calibration_spread, nodes.height), -0.05, 0.05
        )

        racks = topology.racks
        self._rack_efficiency = racks["conversion_efficiency"].to_numpy()
        self._rack_building = racks["building_index"].to_numpy()

        feeds = topology.feeds
        self._feed_rack = feeds["rack_index"].to_numpy()
        weight = 1.0 + static.normal(0.0, cfg.feed_share_spread, feeds.height)
        weight = np.clip(weight, 0.5, 1.5)
        self._feed_share = (
            weight / weighted_count(self._feed_rack, weight, racks.height)[self._feed_rack]
        )
        self._feed_voltage = feeds["voltage_volts"].to_numpy()
        phase_factor = np.where(feeds["phases"].to_numpy() == 3, math.sqrt(3), 1.0)
        self._volt_amp_factor = phase_factor * cfg.power_factor
        self._feed_building = self._rack_building[self._feed_rack]
        self._meter_joules = static.uniform(1e9, 1e12, feeds.height)
        self._meter_time: float | None = None
        self._building_count = topology.buildings.height
        self._building_offset = static.normal(0.0, 0.3, self._building_count)
        self._weights: tuple[FloatArray, FloatArray, list[str]] | None = None

    def counter_state(self) -> dict[str, FloatArray]:
        """The PDUs' meter readings: a simulated device's meter survives a restart of the
        service, as a real PDU's does (collector.state keeps it)."""
        return {"meter_joules": self._meter_joules.copy()}

    def restore_counter_state(self, stored: Mapping[str, FloatArray]) -> None:
        """Meters continued from a previous run; the downtime is a gap, as for every counter."""
        meters = stored.get("meter_joules")
        if meters is not None and meters.shape == self._meter_joules.shape:
            self._meter_joules = meters.copy()

    def read(self, now: float) -> SampleBatch:
        cfg = self.config
        rng = np.random.default_rng([cfg.seed, 3, round(now * 1000)])
        activity = self.workload.activity(now, rng, after=self._last_read)
        self._last_read = now
        accelerator_power = self._idle + activity * self._span  # float32
        temperature = (
            self._temperature_base
            + np.float32(cfg.thermal_resistance_celsius_per_watt) * accelerator_power
            + self._temperature_noise.draw(rng) * np.float32(0.5)
        )
        allocated = self.workload.allocated()
        utilization = np.where(
            allocated, np.clip(activity * np.float32(1.02), 0.0, 1.0), np.float32(0.0)
        )

        # Rack input power from what its chips and hosts draw (the truth the PDUs measure).
        power64 = accelerator_power.astype(np.float64)
        node_accelerator_power = np.add.reduceat(power64, self._node_first)
        node_activity = np.add.reduceat(activity, self._node_first, dtype=np.float64)
        node_activity /= self._node_count
        host_power = self._host_idle + self._host_span * node_activity
        node_power = node_accelerator_power + host_power
        rack_dc = weighted_count(self._node_rack, node_power, self._rack_efficiency.size)
        rack_input = rack_dc / self._rack_efficiency
        jitter = 1.0 + rng.normal(0.0, 0.002, self._feed_share.size)
        feed_power = rack_input[self._feed_rack] * self._feed_share * jitter
        building_sag = rng.normal(0.0, 0.004, self._building_count)
        feed_voltage = self._feed_voltage * (
            1.0 + building_sag[self._feed_building] + rng.normal(0.0, 0.001, feed_power.size)
        )
        feed_current = feed_power / (feed_voltage * self._volt_amp_factor)
        if self._meter_time is not None and now > self._meter_time:
            self._meter_joules = self._meter_joules + feed_power * (now - self._meter_time)
        self._meter_time = now

        building_it = weighted_count(self._feed_building, feed_power, self._building_count)
        outdoor = outdoor_temperature_celsius(now, cfg) + self._building_offset
        pue = np.clip(
            pue_for(outdoor, cfg) + rng.normal(0.0, 0.003, self._building_count),
            cfg.pue_outside_air,
            cfg.pue_hot,
        )
        non_it = building_it * np.maximum(pue - 1.0, 0.0)

        accelerators = pl.DataFrame(
            {
                "accelerator_index": self._accelerator_index,
                "timestamp_seconds": np.full(activity.size, now),
                "power_watts": power64,
                "temperature_celsius": temperature.astype(np.float64),
                "utilization_ratio": utilization.astype(np.float64),
                "memory_used_bytes": self._memory_used,
            }
        )
        bmc_noise = 1.0 + rng.normal(0.0, cfg.bmc_noise_ratio, node_power.size)
        nodes = pl.DataFrame(
            {
                "node_index": self._node_index,
                "timestamp_seconds": np.full(node_power.size, now),
                "power_watts": node_power * self._bmc_gain * bmc_noise,
                "cpu_power_watts": host_power * cfg.cpu_share_of_host,
            }
        )
        feeds = pl.DataFrame(
            {
                "feed_index": np.arange(feed_power.size, dtype=np.uint32),
                "timestamp_seconds": np.full(feed_power.size, now),
                "power_watts": feed_power,
                "current_amps": feed_current,
                "voltage_volts": feed_voltage,
                "meter_energy_joules": self._meter_joules,
            }
        )
        if cfg.accelerator_dropout_ratio > 0:
            accelerators = accelerators.filter(
                rng.random(accelerators.height) >= cfg.accelerator_dropout_ratio
            )
        if cfg.feed_dropout_ratio > 0:
            feeds = feeds.filter(rng.random(feeds.height) >= cfg.feed_dropout_ratio)
        if cfg.node_dropout_ratio > 0:
            nodes = nodes.filter(rng.random(nodes.height) >= cfg.node_dropout_ratio)
        # A healthy campus: every chip that reports has error counters, and none grows
        # (incident scenarios add errors on top).
        errors = accelerators.select(
            "accelerator_index",
            "timestamp_seconds",
            ecc_errors=pl.lit(0.0),
            xid_errors=pl.lit(0.0),
        )
        buildings = pl.DataFrame(
            {
                "building_index": np.arange(self._building_count, dtype=np.uint32),
                "timestamp_seconds": np.full(self._building_count, now),
                "non_it_power_watts": non_it,
                "outdoor_temperature_celsius": outdoor,
            }
        )
        if not isinstance(self.workload, JobWorkload):
            return SampleBatch(
                accelerators=accelerators,
                nodes=nodes,
                feeds=feeds,
                buildings=buildings,
                accelerator_errors=errors,
            )
        return SampleBatch(
            accelerators=accelerators,
            nodes=nodes,
            feeds=feeds,
            buildings=buildings,
            jobs=self._job_frame(now),
            allocations=self._allocation_frame(),
            meters=self._meter_frame(non_it, rng),
            accelerator_errors=errors,
        )

    # --- the job model's extra outputs ---------------------------------------------------------

    def _job_frame(self, now: float) -> pl.DataFrame:
        assert isinstance(self.workload, JobWorkload)
        model = self.workload.model
        return pl.DataFrame(
            {
                "job": self.workload.job_names(),
                "state": self.workload.states(),
                "accelerators": model.accelerators.astype(np.uint32),
                "timestamp_seconds": np.full(model.accelerators.size, now),
            }
        )

    def _rack_slot(self) -> npt.NDArray[np.int64]:
        """Slot holding each rack (-1: none), from the slot of its first accelerator."""
        assert isinstance(self.workload, JobWorkload)
        first_accelerator = self.topology.nodes["first_accelerator_index"].to_numpy()[
            np.searchsorted(self._node_rack, np.arange(self._rack_efficiency.size))
        ]
        slot: npt.NDArray[np.int64] = self.workload._slot_of_accelerator[first_accelerator]
        return slot

    def _allocation_frame(self) -> pl.DataFrame:
        assert isinstance(self.workload, JobWorkload)
        slot = self._rack_slot()
        names = pl.Series(self.workload.job_names(), dtype=pl.String)
        running = pl.Series([state != "queued" for state in self.workload.states()])
        holding = pl.DataFrame({"slot": slot}).select(
            pl.when((pl.col("slot") >= 0) & pl.lit(running).gather(pl.col("slot").clip(0)))
            .then(pl.lit(names).gather(pl.col("slot").clip(0)))
            .alias("job")
        )
        return pl.DataFrame(
            {"rack_index": np.arange(slot.size, dtype=np.uint32), "job": holding["job"]}
        )

    def _meter_weights(self) -> tuple[FloatArray, FloatArray, list[str]]:
        """Per lineup meter: constant watts and watts per unit of each slot's activity."""
        if self._weights is not None:
            return self._weights
        assert isinstance(self.workload, JobWorkload)
        topology = self.topology
        span = (topology.accelerators["tdp_watts"] - topology.accelerators["idle_watts"]).to_numpy()
        idle = topology.accelerators["idle_watts"].to_numpy()
        racks = self._rack_efficiency.size
        accelerator_rack = topology.accelerators["rack_index"].to_numpy()
        rack_base = weighted_count(accelerator_rack, idle, racks) + weighted_count(
            self._node_rack, self._host_idle, racks
        )
        rack_swing = weighted_count(accelerator_rack, span, racks) + weighted_count(
            self._node_rack, self._host_span, racks
        )
        rack_base /= self._rack_efficiency
        rack_swing /= self._rack_efficiency
        slot = self._rack_slot()
        slots = self.workload.model.slots.count.size
        lineup = topology.feeds["lineup_index"].to_numpy().astype(np.int64)
        lineups = topology.lineups.height
        feed_base = rack_base[self._feed_rack] * self._feed_share
        feed_swing = rack_swing[self._feed_rack] * self._feed_share
        base = weighted_count(lineup, feed_base, lineups)
        feed_slot = slot[self._feed_rack]
        held = feed_slot >= 0
        # Unallocated racks sit at activity 0: their whole draw is the constant part.
        weights = weighted_count(
            lineup[held] * slots + feed_slot[held],
            feed_swing[held],
            lineups * slots,
        ).reshape(lineups, slots)
        names = (
            topology.names("lineup")
            .select(pl.concat_str([pl.col("building"), pl.lit("-"), pl.col("lineup")]))
            .to_series()
            .to_list()
        )
        self._weights = (base, weights, names)
        return self._weights

    def _meter_frame(self, non_it: FloatArray, rng: np.random.Generator) -> pl.DataFrame:
        """Fast meters over the last interval: lineups (IT), buildings (IT + non-IT), POI.

        Cooling does not follow sub-second swings: a building's non-IT load is held at the
        interval's value, so the mean of each fast meter equals the detailed figure.
        """
        assert isinstance(self.workload, JobWorkload)
        times, activity = self.workload.last_times, self.workload.last_activity
        base, weights, lineup_names = self._meter_weights()
        lineup_power = base[:, None] + weights @ activity  # lineups x samples
        lineup_building = self.topology.lineups["building_index"].to_numpy()
        building_power = np.zeros((self._building_count, times.size))
        np.add.at(building_power, lineup_building, lineup_power)
        building_power += non_it[:, None]
        site_power = building_power.sum(axis=0, keepdims=True)
        power = np.vstack([site_power, building_power, lineup_power])
        power *= 1.0 + rng.normal(0.0, self.config.meter_noise_ratio, power.shape)
        meters = ["poi", *self.topology.buildings["building"].to_list(), *lineup_names]
        return pl.DataFrame(
            {
                "meter": pl.Series(meters).gather(np.repeat(np.arange(len(meters)), times.size)),
                "timestamp_seconds": np.tile(times, len(meters)),
                "power_watts": power.ravel(),
            }
        )
