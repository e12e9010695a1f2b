"""Training jobs: what makes a campus swing by hundreds of MW at 0.2-3 Hz.

Jobs hold whole UltraServers (64 accelerators, 4 servers, 2 racks). The scheduler cuts the
allocated UltraServers into *slots*, contiguous ranges sized by the job mix (one UltraServer
up to the whole campus); each slot runs one job after another, with a queue gap between, so
the campus stays at its configured allocation. A job's chips move together (synchronous
training), so activity is computed per slot, never per accelerator:

* loading (checkpoint load and compilation, minutes) at a low level, then a step to training;
* training: a square wave of iteration period 1-10 s, compute phase then communication
  phase (duty cycle), with slow period jitter that spreads the spectral line;
* checkpoints every interval, a pause at the wait level;
* failures, Poisson per accelerator-hour: the job hangs at wait power until the collective
  timeout fires, tears down at idle, reloads at the load level, then steps back to training.

Mitigations: a power floor holds the wait phases (communication, checkpoint) at a share of
TDP; a ramp limit in W/s per accelerator slews every edge.

Activity is sampled on an absolute time grid (t = n / rate) so every reader, the detailed
path (interval means per accelerator) and the fast meter path (20 Hz), sees the same samples:
the mean of the fast site signal over a cycle equals the detailed site power by construction.
State (current job per slot, failure times) advances with the clock; each slot draws from its
own generator seeded by (seed, slot), so a seed and a clock sequence fix everything.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, model_validator

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

STATES = ("queued", "loading", "training", "checkpoint", "failed", "recovering")


class JobMix(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    share: float = Field(gt=0, le=1)  # share of the allocated UltraServers in jobs of this size
    ultraservers: int = Field(gt=0)  # per job


class JobConfig(BaseModel):
    """The job model's parameters; the defaults follow the shared site model, section 2."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    allocation_ratio: float = Field(default=0.9, ge=0, le=1)
    mix: tuple[JobMix, ...] = (
        JobMix(share=0.4, ultraservers=1024),  # 65,536 chips: a frontier-scale run
        JobMix(share=0.3, ultraservers=128),
        JobMix(share=0.2, ultraservers=16),
        JobMix(share=0.1, ultraservers=1),
    )
    period_seconds: tuple[float, float] = (2.0, 5.0)  # range drawn per job; 1-10 s possible
    duty_cycle: tuple[float, float] = (0.7, 0.9)
    compute_activity: tuple[float, float] = (0.85, 1.0)  # share of the idle->TDP span
    wait_activity: float = Field(default=0.05, ge=0, le=1)  # communication: near idle
    period_jitter_ratio: float = Field(default=0.02, ge=0, le=0.2)
    jitter_cycle_seconds: float = Field(default=97.0, gt=0)
    checkpoint_interval_seconds: float = Field(default=1800.0, gt=0)
    checkpoint_pause_seconds: float = Field(default=30.0, ge=0)
    load_seconds: float = Field(default=180.0, ge=0)
    load_activity: float = Field(default=0.15, ge=0, le=1)
    job_duration_hours: tuple[float, float] = (6.0, 72.0)
    queue_gap_seconds: float = Field(default=600.0, ge=0)
    # 1.97e-5 per accelerator-hour: Llama 3 on H100; unknown for Trainium.
    failure_rate_per_accelerator_hour: float = Field(default=1.97e-5, ge=0)
    hang_detection_seconds: float = Field(default=60.0, ge=0)
    teardown_seconds: float = Field(default=30.0, ge=0)
    # Mitigations: a floor on the wait phases as a share of TDP; a slew limit per accelerator.
    power_floor_ratio: float | None = Field(default=None, ge=0, le=1)
    ramp_limit_watts_per_second: float | None = Field(default=None, gt=0)
    sample_rate_hz: float = Field(default=20.0, gt=0)
    # The job that holds the first slot starts fresh at the first reading (its load phase
    # shows), rather than mid-life: useful to see a start ramp.
    first_job_starts_fresh: bool = False

    @model_validator(mode="after")
    def _ranges_ordered(self) -> JobConfig:
        problems = [
            name
            for name in ("period_seconds", "duty_cycle", "compute_activity", "job_duration_hours")
            if getattr(self, name)[0] > getattr(self, name)[1]
        ]
        if problems:
            raise ValueError(f"ranges must be (low, high): {', '.join(problems)}")
        if sum(entry.share for entry in self.mix) > 1.0 + 1e-9:
            raise ValueError("mix shares add up to more than 1")
        return self


@dataclass(frozen=True)
class Slots:
    """The partition of UltraServers: slot s holds UltraServers [first[s], first[s]+count[s])."""

    first: IntArray
    count: IntArray
    of_ultraserver: IntArray  # slot of each UltraServer, -1 when unallocated


def partition(ultraservers: int, config: JobConfig, seed: int) -> Slots:
    """Cut the allocated UltraServers into slots by the job mix, in a seeded random order,
    with the unallocated ones spread as gaps between slots (so no building is all idle)."""
    allocated = round(ultraservers * config.allocation_ratio)
    sizes: list[int] = []
    carry = 0  # what a size class could not place goes to the next, smaller class
    for entry in config.mix:
        budget = round(allocated * entry.share) + carry
        size = min(entry.ultraservers, max(budget, 1))
        count = budget // size if budget else 0
        sizes += [size] * count
        carry = budget - count * size
    while sum(sizes) > allocated and sizes:
        sizes.pop()
    order = np.random.default_rng([seed, 10]).permutation(len(sizes))
    sizes_in_order = np.asarray(sizes, dtype=np.int64)[order] if sizes else np.zeros(0, np.int64)
    idle = ultraservers - int(sizes_in_order.sum())
    # Idle UltraServers spread as even gaps after each slot (rounded cumulative positions, so
    # no remainder piles up at the end of the campus).
    boundaries = np.round(np.arange(len(sizes) + 1) * idle / max(len(sizes), 1)).astype(np.int64)
    gaps = np.diff(boundaries)
    first = np.cumsum(np.concatenate([[0], (sizes_in_order + gaps)[:-1]])).astype(np.int64)
    of_ultraserver = np.full(ultraservers, -1, dtype=np.int64)
    for slot, (start, size) in enumerate(zip(first.tolist(), sizes_in_order.tolist(), strict=True)):
        of_ultraserver[start : start + size] = slot
    return Slots(first=first, count=sizes_in_order, of_ultraserver=of_ultraserver)


class JobModel:
    """Per-slot job state, advanced with the clock; activity sampled on the absolute grid."""

    def __init__(
        self,
        ultraservers: int,
        accelerators_per_ultraserver: int,
        config: JobConfig,
        seed: int,
        idle_watts: float,
        tdp_watts: float,
    ) -> None:
        self.config = config
        self.seed = seed
        self.slots = partition(ultraservers, config, seed)
        count = self.slots.count.size
        self.accelerators = self.slots.count * accelerators_per_ultraserver
        self._generators = [np.random.default_rng([seed, 11, slot]) for slot in range(count)]
        span = tdp_watts - idle_watts
        floor = config.power_floor_ratio
        self.wait_level = (
            config.wait_activity
            if floor is None
            else max(config.wait_activity, (floor * tdp_watts - idle_watts) / span)
        )
        self.ramp_per_second = (
            None
            if config.ramp_limit_watts_per_second is None
            else config.ramp_limit_watts_per_second / span
        )
        # Current job of each slot (arrays of length `count`).
        self.sequence = np.zeros(count, dtype=np.int64)
        self.start = np.zeros(count)
        self.end = np.zeros(count)
        self.period = np.ones(count)
        self.duty = np.ones(count)
        self.compute = np.ones(count)
        self.checkpoint_offset = np.zeros(count)
        self.last_failure = np.full(count, -np.inf)
        self.next_failure = np.full(count, np.inf)
        self.last_activity = np.zeros(count)
        # The slew limit starts from the first sample's target: the campus was running before
        # it was first observed, and slewing up from idle would be a start-up that never was.
        self._slew_primed = False
        self._initialized = False

    # --- state ---------------------------------------------------------------------------------

    def _draw_job(self, slot: int, start: float, fresh: bool) -> None:
        cfg, rng = self.config, self._generators[slot]
        duration = rng.uniform(*cfg.job_duration_hours) * 3600.0
        self.start[slot] = start if fresh else start - rng.uniform(0.0, duration)
        self.end[slot] = self.start[slot] + duration
        self.period[slot] = rng.uniform(*cfg.period_seconds)
        self.duty[slot] = rng.uniform(*cfg.duty_cycle)
        self.compute[slot] = rng.uniform(*cfg.compute_activity)
        self.checkpoint_offset[slot] = rng.uniform(0.0, cfg.checkpoint_interval_seconds)
        self.last_failure[slot] = -np.inf
        self.next_failure[slot] = self._next_failure_after(slot, max(start, self.start[slot]))

    def _next_failure_after(self, slot: int, when: float) -> float:
        rate = self.config.failure_rate_per_accelerator_hour * self.accelerators[slot] / 3600.0
        if rate <= 0:
            return float("inf")
        return when + float(self._generators[slot].exponential(1.0 / rate))

    def advance(self, until: float) -> None:
        """Move every slot's job and failure timeline up to `until` (loops only over events)."""
        cfg = self.config
        if not self._initialized:
            for slot in range(self.sequence.size):
                self._draw_job(slot, until, fresh=cfg.first_job_starts_fresh and slot == 0)
            self._initialized = True
        for slot in np.flatnonzero(self.end <= until).tolist():
            while self.end[slot] <= until:
                self.sequence[slot] += 1
                self._draw_job(slot, self.end[slot] + cfg.queue_gap_seconds, fresh=True)
        for slot in np.flatnonzero(self.next_failure <= until).tolist():
            while self.next_failure[slot] <= until:
                self.last_failure[slot] = self.next_failure[slot]
                self.next_failure[slot] = self._next_failure_after(slot, self.last_failure[slot])

    # --- activity ------------------------------------------------------------------------------

    def grid(self, after: float, until: float) -> FloatArray:
        """Sample times of the absolute grid in (after, until]."""
        rate = self.config.sample_rate_hz
        first = np.floor(after * rate) + 1
        last = np.floor(until * rate)
        return np.arange(first, last + 1) / rate

    def activity(self, times: FloatArray) -> tuple[FloatArray, npt.NDArray[np.int8]]:
        """Activity (slots x samples, 0 idle .. 1 TDP) and state code at each sample.

        Call advance(times[-1]) first. Samples must follow the previous call's (the ramp
        limit carries its slew state across calls).
        """
        cfg = self.config
        t = times[np.newaxis, :]
        start, end = self.start[:, None], self.end[:, None]
        load_end = start + cfg.load_seconds
        failure = self.last_failure[:, None]
        hang_end = failure + cfg.hang_detection_seconds
        teardown_end = hang_end + cfg.teardown_seconds
        reload_end = teardown_end + cfg.load_seconds
        training_start = np.maximum(load_end, np.where(np.isfinite(failure), reload_end, -np.inf))

        elapsed = t - training_start
        jitter = cfg.period_jitter_ratio * np.sin(2 * np.pi * t / cfg.jitter_cycle_seconds)
        phase = elapsed / self.period[:, None] * (1.0 + jitter)
        in_compute = (phase - np.floor(phase)) < self.duty[:, None]
        checkpointing = (
            (t - self.checkpoint_offset[:, None]) % cfg.checkpoint_interval_seconds
        ) < cfg.checkpoint_pause_seconds

        running = (t >= start) & (t < end)
        state = np.zeros(in_compute.shape, dtype=np.int8)  # queued: between jobs
        target = np.zeros(in_compute.shape)
        training = running & (t >= training_start)
        target = np.where(
            training, np.where(in_compute, self.compute[:, None], self.wait_level), target
        )
        state[training] = STATES.index("training")
        ckpt = training & checkpointing
        target = np.where(ckpt, self.wait_level, target)
        state[ckpt] = STATES.index("checkpoint")
        loading = running & (t < load_end)
        target = np.where(loading, cfg.load_activity, target)
        state[loading] = STATES.index("loading")
        hung = running & (t >= failure) & (t < hang_end)
        target = np.where(hung, self.wait_level, target)
        state[hung] = STATES.index("failed")
        torn = running & (t >= hang_end) & (t < teardown_end)
        target = np.where(torn, 0.0, target)
        state[torn] = STATES.index("failed")
        reloading = running & (t >= teardown_end) & (t < reload_end)
        target = np.where(reloading, cfg.load_activity, target)
        state[reloading] = STATES.index("recovering")
        return self._slew(target), state

    def _slew(self, target: FloatArray) -> FloatArray:
        if self.ramp_per_second is None or target.shape[1] == 0:
            if target.shape[1]:
                self.last_activity = target[:, -1].copy()
            return target
        step = self.ramp_per_second / self.config.sample_rate_hz
        out = np.empty_like(target)
        if not self._slew_primed:
            self.last_activity = target[:, 0].copy()
            self._slew_primed = True
        level = self.last_activity
        for column in range(target.shape[1]):  # over samples; vectorized over slots
            level = level + np.clip(target[:, column] - level, -step, step)
            out[:, column] = level
        self.last_activity = level.copy()
        return out
