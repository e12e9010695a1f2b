"""The metric table: every series gigawatt exposes, its unit, meaning, labels and tier.

Exposition, the API, the docs (docs/metrics.md), the rules and the dashboards all read this
table; a rename is one edit here. Each row says which snapshot frame and column it is read
from, and code outside the contract finds a metric by that key (``name_of(frame, column)``),
never by spelling its name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from collector.schemas import LEVEL_LABELS
from exporters.contract.tiers import TIERS, Tier

NAMESPACE = "gigawatt"
# Series every Prometheus client library exposes under their standard names, not ours.
STANDARD_NAMES = ("process_start_time_seconds",)

# Labels of the frames that are not physical levels.
EXTRA_LABELS: dict[str, tuple[str, ...]] = {
    "anomaly": (*LEVEL_LABELS["accelerator"], "reason"),
    # The anomaly list's chips that a training job holds, named with it.
    "anomaly_job": (*LEVEL_LABELS["accelerator"], "reason", "training_job"),
    "source": ("source", "target"),
    "problem": ("source", "reason"),
    "accepted": ("source", "kind"),
    "rejected": ("source", "kind", "reason"),
    "process": (),
    "build": ("version",),
    # Not "job": Prometheus reserves that label for the scrape job and would rename ours.
    "job": ("training_job",),
    "job_state": ("training_job", "state"),
    "grid_meter": ("meter",),
    "grid_step": ("meter", "direction"),
    "grid_ramp": ("meter", "window"),
    "grid_band": ("meter", "band"),
}

UNIT_SUFFIXES = {
    "watts": "_watts",
    "joules": "_joules_total",
    "celsius": "_celsius",
    "ratio": "_ratio",
    "seconds": "_seconds",
    "amperes": "_amperes",
    "volts": "_volts",
    "bytes": "_bytes",
    "hertz": "_hertz",
    "watts_per_second": "_watts_per_second",
    "": "",
}


@dataclass(frozen=True)
class Metric:
    name: str
    type: Literal["gauge", "counter"]
    unit: str
    help: str
    frame: str  # the snapshot frame (a level, or anomaly/source/accepted/rejected/process/build)
    column: str
    tier: Tier = "site"

    @property
    def labels(self) -> tuple[str, ...]:
        return LEVEL_LABELS.get(self.frame) or EXTRA_LABELS.get(self.frame, ())


def _level_metrics(
    level: str,
    scope: str,
    tier: Tier,
    it: str = "",
    derived_tier: Tier | None = None,
    detail_tier: Tier | None = None,
) -> list[Metric]:
    """The series every level from site to rack shares. ``it`` ("it_" for site and building)
    marks the IT-power series apart from the facility ones those two levels also carry.
    ``derived_tier``, if given, is the tier of headroom and utilization, which PromQL derives
    exactly from power and capacity (capacity - power, power / capacity). ``detail_tier``, if
    given, is the tier of the sums that no alert or dashboard reads at this level: the
    accelerators' own power and the accelerators' and servers' reporting ratios (sums of the
    node series of that tier), and the energy counter (the sum of the feeds' counters)."""
    derived = derived_tier or tier
    detail = detail_tier or tier
    prefix = f"gigawatt_{scope}"
    return [
        Metric(
            f"{prefix}_{it}power_watts",
            "gauge",
            "watts",
            f"IT power of the {scope}, measured at its rack PDUs: the sum of the feeds that "
            "reported (see the reporting ratio).",
            level,
            "power_watts",
            tier,
        ),
        Metric(
            f"{prefix}_{it}capacity_watts",
            "gauge",
            "watts",
            f"IT power the {scope} may carry continuously (its power-chain rating).",
            level,
            "capacity_watts",
            tier,
        ),
        Metric(
            f"{prefix}_{it}headroom_watts",
            "gauge",
            "watts",
            f"Capacity minus IT power of the {scope}; negative when over capacity.",
            level,
            "headroom_watts",
            derived,
        ),
        Metric(
            f"{prefix}_{it}utilization_ratio",
            "gauge",
            "ratio",
            f"IT power of the {scope} over its capacity.",
            level,
            "utilization_ratio",
            derived,
        ),
        Metric(
            f"{prefix}_accelerator_power_watts",
            "gauge",
            "watts",
            f"Power the accelerators of the {scope} report themselves.",
            level,
            "accelerator_power_watts",
            detail,
        ),
        Metric(
            f"{prefix}_reporting_ratio",
            "gauge",
            "ratio",
            f"Share of the {scope}'s PDU feeds that reported this cycle (1 = complete).",
            level,
            "reporting_ratio",
            tier,
        ),
        Metric(
            f"{prefix}_accelerators_reporting_ratio",
            "gauge",
            "ratio",
            f"Share of the {scope}'s accelerators that reported this cycle.",
            level,
            "accelerators_reporting_ratio",
            detail,
        ),
        Metric(
            f"{prefix}_node_power_watts",
            "gauge",
            "watts",
            f"Input power the servers of the {scope} report through their BMCs, summed over "
            "those that reported (see the nodes reporting ratio).",
            level,
            "node_power_watts",
            tier,
        ),
        Metric(
            f"{prefix}_nodes_reporting_ratio",
            "gauge",
            "ratio",
            f"Share of the {scope}'s servers whose BMC reported input power this cycle.",
            level,
            "nodes_reporting_ratio",
            detail,
        ),
        Metric(
            f"{prefix}_unattributed_power_watts",
            "gauge",
            "watts",
            f"PDU power minus the servers' BMC input power, summed over the {scope}'s racks "
            "where every feed and server reported: switches, conversion losses and meter "
            "error; negative means the BMCs claim more than the PDUs delivered.",
            level,
            "unattributed_power_watts",
            tier,
        ),
        Metric(
            f"{prefix}_accelerator_max_temperature_celsius",
            "gauge",
            "celsius",
            f"Hottest accelerator of the {scope}.",
            level,
            "max_temperature_celsius",
            tier,
        ),
        Metric(
            f"{prefix}_{it}energy_joules_total",
            "counter",
            "joules",
            f"IT energy of the {scope}, integrated from its PDU feeds' power.",
            level,
            "energy_joules",
            detail,
        ),
    ]


METRICS: tuple[Metric, ...] = (
    # --- site: always exposed -----------------------------------------------------------------
    Metric(
        "gigawatt_site_facility_power_watts",
        "gauge",
        "watts",
        "Facility power of the site at the point of interconnection: IT plus non-IT load of "
        "the buildings that report it.",
        "site",
        "facility_power_watts",
    ),
    Metric(
        "gigawatt_site_contract_watts",
        "gauge",
        "watts",
        "Contracted power at the point of interconnection.",
        "site",
        "contract_watts",
    ),
    Metric(
        "gigawatt_site_contract_headroom_watts",
        "gauge",
        "watts",
        "Contract minus facility power; negative when the site draws beyond its contract.",
        "site",
        "contract_headroom_watts",
    ),
    Metric(
        "gigawatt_site_contract_utilization_ratio",
        "gauge",
        "ratio",
        "Facility power over the contract.",
        "site",
        "contract_utilization_ratio",
    ),
    Metric(
        "gigawatt_site_pue_ratio",
        "gauge",
        "ratio",
        "Power usage effectiveness of the site: facility over IT power, over the buildings "
        "where both are known.",
        "site",
        "pue_ratio",
    ),
    Metric(
        "gigawatt_site_facility_energy_joules_total",
        "counter",
        "joules",
        "Facility energy of the site: IT energy plus the buildings' non-IT energy.",
        "site",
        "facility_energy_joules",
    ),
    *_level_metrics("site", "site", "site", it="it_"),
    # --- buildings and lineups ---------------------------------------------------------------
    Metric(
        "gigawatt_building_facility_power_watts",
        "gauge",
        "watts",
        "Facility power of the building: IT power plus its non-IT load.",
        "building",
        "facility_power_watts",
        "building",
    ),
    Metric(
        "gigawatt_building_non_it_power_watts",
        "gauge",
        "watts",
        "Non-IT load of the building: cooling, air handlers, pumps, lighting, UPS and "
        "transformer losses.",
        "building",
        "non_it_power_watts",
        "building",
    ),
    Metric(
        "gigawatt_building_pue_ratio",
        "gauge",
        "ratio",
        "Power usage effectiveness of the building: facility over IT power.",
        "building",
        "pue_ratio",
        "building",
    ),
    Metric(
        "gigawatt_building_outdoor_temperature_celsius",
        "gauge",
        "celsius",
        "Outdoor air temperature at the building.",
        "building",
        "outdoor_temperature_celsius",
        "building",
    ),
    Metric(
        "gigawatt_building_facility_energy_joules_total",
        "counter",
        "joules",
        "Facility energy of the building: IT plus non-IT energy.",
        "building",
        "facility_energy_joules",
        "building",
    ),
    *_level_metrics("building", "building", "building", it="it_"),
    Metric(
        "gigawatt_lineup_power_watts",
        "gauge",
        "watts",
        "Power carried by one lineup (the A or B path) of a building: the sum of its "
        "reporting feeds.",
        "lineup",
        "power_watts",
        "building",
    ),
    Metric(
        "gigawatt_lineup_capacity_watts",
        "gauge",
        "watts",
        "Continuous rating of the lineup.",
        "lineup",
        "capacity_watts",
        "building",
    ),
    Metric(
        "gigawatt_lineup_headroom_watts",
        "gauge",
        "watts",
        "Lineup capacity minus the power it carries.",
        "lineup",
        "headroom_watts",
        "building",
    ),
    Metric(
        "gigawatt_lineup_utilization_ratio",
        "gauge",
        "ratio",
        "Lineup power over its rating.",
        "lineup",
        "utilization_ratio",
        "building",
    ),
    Metric(
        "gigawatt_lineup_reporting_ratio",
        "gauge",
        "ratio",
        "Share of the lineup's feeds that reported this cycle.",
        "lineup",
        "reporting_ratio",
        "building",
    ),
    # --- halls, rows, racks -----------------------------------------------------------------------
    *_level_metrics("hall", "hall", "hall"),
    *_level_metrics("row", "row", "row"),
    # Series budget (docs/metrics.md): a rack's headroom and utilization would cost 134,400
    # series at the campus and say nothing power and capacity do not; rules and dashboards
    # compute them, and they are stored from the node tier on. So are four sums no alert or
    # dashboard reads per rack (268,800 series): the accelerators' power and reporting ratio
    # and the servers' reporting ratio, which the node tier has server by server, and the
    # energy counter, the sum of the rack's two feed counters.
    *_level_metrics("rack", "rack", "rack", derived_tier="node", detail_tier="node"),
    Metric(
        "gigawatt_rack_accelerator_ecc_errors_total",
        "counter",
        "",
        "Uncorrected ECC errors of the rack's accelerators: the sum of each one's last known "
        "counter (a silent chip keeps its last count).",
        "rack",
        "accelerator_ecc_errors",
        "rack",
    ),
    Metric(
        "gigawatt_rack_accelerator_xid_errors_total",
        "counter",
        "",
        "XID critical errors of the rack's accelerators: the sum of each one's last known "
        "counter (a silent chip keeps its last count).",
        "rack",
        "accelerator_xid_errors",
        "rack",
    ),
    Metric(
        "gigawatt_feed_power_watts",
        "gauge",
        "watts",
        "Active power of one rack PDU feed.",
        "feed",
        "power_watts",
        "rack",
    ),
    Metric(
        "gigawatt_feed_current_amperes",
        "gauge",
        "amperes",
        "Current of one rack PDU feed (per phase).",
        "feed",
        "current_amps",
        "rack",
    ),
    Metric(
        "gigawatt_feed_voltage_volts",
        "gauge",
        "volts",
        "Voltage of one rack PDU feed (line to line for three-phase).",
        "feed",
        "voltage_volts",
        "rack",
    ),
    Metric(
        "gigawatt_feed_capacity_watts",
        "gauge",
        "watts",
        "Continuous rating of the feed: sqrt(3)·V·I·0.8 for three-phase.",
        "feed",
        "capacity_watts",
        "rack",
    ),
    Metric(
        "gigawatt_feed_utilization_ratio",
        "gauge",
        "ratio",
        "Feed power over its continuous rating (NEC: keep below 0.8 of the breaker, which "
        "the rating already applies).",
        "feed",
        "utilization_ratio",
        "node",  # power / capacity in PromQL; 134,400 series at the campus (series budget)
    ),
    Metric(
        "gigawatt_feed_energy_joules_total",
        "counter",
        "joules",
        "Energy of the feed, integrated by gigawatt from its power.",
        "feed",
        "energy_joules",
        "rack",
    ),
    Metric(
        "gigawatt_feed_meter_energy_joules_total",
        "counter",
        "joules",
        "The PDU's own energy meter for the feed, as read (it may reset).",
        "feed",
        "meter_energy_joules",
        "rack",
    ),
    # --- nodes and accelerators: only when asked ----------------------------------------------
    Metric(
        "gigawatt_node_power_watts",
        "gauge",
        "watts",
        "Input power of the server as its BMC reports it (Redfish chassis power, IPMI DCMI).",
        "node",
        "power_watts",
        "node",
    ),
    Metric(
        "gigawatt_node_cpu_power_watts",
        "gauge",
        "watts",
        "Power of the server's CPU packages (RAPL), summed.",
        "node",
        "cpu_power_watts",
        "node",
    ),
    Metric(
        "gigawatt_node_host_power_watts",
        "gauge",
        "watts",
        "Server input power minus what its accelerators report: CPUs, memory, fans, NICs and "
        "power supply losses. Only when every accelerator of the node reported.",
        "node",
        "host_power_watts",
        "node",
    ),
    Metric(
        "gigawatt_node_accelerator_power_watts",
        "gauge",
        "watts",
        "Power the node's accelerators report, summed.",
        "node",
        "accelerator_power_watts",
        "node",
    ),
    Metric(
        "gigawatt_node_accelerator_capacity_watts",
        "gauge",
        "watts",
        "Sum of the TDP of the node's accelerators.",
        "node",
        "capacity_watts",
        "node",
    ),
    Metric(
        "gigawatt_node_accelerators_reporting_ratio",
        "gauge",
        "ratio",
        "Share of the node's accelerators that reported this cycle.",
        "node",
        "accelerators_reporting_ratio",
        "node",
    ),
    Metric(
        "gigawatt_node_accelerator_max_temperature_celsius",
        "gauge",
        "celsius",
        "Hottest accelerator of the node.",
        "node",
        "max_temperature_celsius",
        "node",
    ),
    Metric(
        "gigawatt_node_accelerator_utilization_ratio",
        "gauge",
        "ratio",
        "Mean busy share of the node's accelerators.",
        "node",
        "accelerator_utilization_ratio",
        "node",
    ),
    Metric(
        "gigawatt_node_accelerator_memory_used_bytes",
        "gauge",
        "bytes",
        "Accelerator memory in use on the node.",
        "node",
        "memory_used_bytes",
        "node",
    ),
    Metric(
        "gigawatt_node_accelerator_energy_joules_total",
        "counter",
        "joules",
        "Energy of the node's accelerators, integrated from their power.",
        "node",
        "accelerator_energy_joules",
        "node",
    ),
    Metric(
        "gigawatt_accelerator_power_watts",
        "gauge",
        "watts",
        "Power of one accelerator.",
        "accelerator",
        "power_watts",
        "accelerator",
    ),
    Metric(
        "gigawatt_accelerator_temperature_celsius",
        "gauge",
        "celsius",
        "Temperature of one accelerator.",
        "accelerator",
        "temperature_celsius",
        "accelerator",
    ),
    Metric(
        "gigawatt_accelerator_utilization_ratio",
        "gauge",
        "ratio",
        "Busy share of one accelerator.",
        "accelerator",
        "utilization_ratio",
        "accelerator",
    ),
    Metric(
        "gigawatt_accelerator_memory_used_bytes",
        "gauge",
        "bytes",
        "Memory in use on one accelerator.",
        "accelerator",
        "memory_used_bytes",
        "accelerator",
    ),
    Metric(
        "gigawatt_accelerator_energy_joules_total",
        "counter",
        "joules",
        "Energy of one accelerator, integrated from its power.",
        "accelerator",
        "energy_joules",
        "accelerator",
    ),
    # --- training jobs: always on (thousands of series, not millions) -------------------------
    Metric(
        "gigawatt_job_power_watts",
        "gauge",
        "watts",
        "IT power of the racks a training job holds, measured at their PDUs (hosts and "
        "conversion losses included).",
        "job",
        "power_watts",
    ),
    Metric(
        "gigawatt_job_energy_joules_total",
        "counter",
        "joules",
        "IT energy of the job's racks while it held them.",
        "job",
        "energy_joules",
    ),
    Metric(
        "gigawatt_job_accelerators",
        "gauge",
        "",
        "Accelerators the job holds.",
        "job",
        "accelerators",
    ),
    Metric(
        "gigawatt_job_reporting_ratio",
        "gauge",
        "ratio",
        "Share of the job's racks' PDU feeds that reported this cycle.",
        "job",
        "reporting_ratio",
    ),
    Metric(
        "gigawatt_job_state",
        "gauge",
        "",
        "Always 1; the state label says what the job is doing: queued, loading, training, "
        "checkpoint, failed or recovering.",
        "job_state",
        "one",
    ),
    Metric(
        "gigawatt_site_job_energy_joules_total",
        "counter",
        "joules",
        "IT energy of racks while a job held them, all jobs together since start.",
        "site",
        "job_energy_joules",
    ),
    Metric(
        "gigawatt_site_unallocated_energy_joules_total",
        "counter",
        "joules",
        "IT energy of racks while no job held them, since start. With the job energy it "
        "adds up to the site's IT energy since start.",
        "site",
        "unallocated_energy_joules",
    ),
    # --- grid-facing dynamics from the fast meters: always on (tens of meters) -----------------
    Metric(
        "gigawatt_grid_power_watts",
        "gauge",
        "watts",
        "Latest fast reading of the meter (meter: poi = point of interconnection, a building, "
        "or a building lineup such as B07-A).",
        "grid_meter",
        "power_watts",
    ),
    Metric(
        "gigawatt_grid_ramp_watts_per_second",
        "gauge",
        "watts_per_second",
        "Strongest ramp since the previous cycle, sign kept: the change of the window's mean "
        "level per second (window: 1s, 60s, as configured).",
        "grid_ramp",
        "watts_per_second",
    ),
    Metric(
        "gigawatt_grid_oscillation_frequency_hertz",
        "gauge",
        "hertz",
        "Dominant oscillation frequency of the meter over the analysis history (Welch PSD).",
        "grid_meter",
        "dominant_frequency_hertz",
    ),
    Metric(
        "gigawatt_grid_oscillation_peak_to_peak_watts",
        "gauge",
        "watts",
        "Peak-to-peak amplitude of the dominant oscillation component.",
        "grid_meter",
        "peak_to_peak_watts",
    ),
    Metric(
        "gigawatt_grid_oscillation_amplitude_watts",
        "gauge",
        "watts",
        "Peak-to-peak amplitude of the strongest component inside the band; absent when the "
        "band is not visible at the meter's sample rate.",
        "grid_band",
        "peak_to_peak_watts",
    ),
    Metric(
        "gigawatt_grid_band_energy_ratio",
        "gauge",
        "ratio",
        "Share of the meter's spectral energy (mean excluded) inside the band.",
        "grid_band",
        "energy_ratio",
    ),
    Metric(
        "gigawatt_grid_band_visibility",
        "gauge",
        "",
        "Whether the band can be seen at the meter's sample rate: 1 visible, 0.5 partly "
        "(near Nyquist or the lowest resolvable frequency), 0 not at all.",
        "grid_band",
        "visibility",
    ),
    Metric(
        "gigawatt_grid_episodes_total",
        "counter",
        "",
        "Oscillation episodes: the band stayed above its energy-share or amplitude "
        "threshold for the configured time. Each counted once.",
        "grid_band",
        "episodes",
    ),
    Metric(
        "gigawatt_grid_episode_active",
        "gauge",
        "",
        "1 while an oscillation episode in the band is under way, else 0.",
        "grid_band",
        "episode_active",
    ),
    Metric(
        "gigawatt_grid_steps_total",
        "counter",
        "",
        "Sustained level shifts above the step threshold within the step time (direction: "
        "up, down). Each counted once.",
        "grid_step",
        "steps",
    ),
    Metric(
        "gigawatt_grid_drops_total",
        "counter",
        "",
        "Candidate uncommanded load drops (a fall above the drop threshold within its "
        "window): each is worth an event record.",
        "grid_meter",
        "drops",
    ),
    Metric(
        "gigawatt_grid_meter_samples_total",
        "counter",
        "",
        "Fast samples taken in for the meter.",
        "grid_meter",
        "samples",
    ),
    Metric(
        "gigawatt_grid_analysis_duration_seconds",
        "gauge",
        "seconds",
        "Time the last fast-path analysis of every meter took.",
        "process",
        "grid_analysis_seconds",
    ),
    # --- the bounded anomaly list: always on ----------------------------------------------------
    Metric(
        "gigawatt_anomalous_accelerator_power_watts",
        "gauge",
        "watts",
        "Power of the accelerators in the bounded anomaly list, at most K per reason: hot = "
        "closest to its temperature limit, power_outlier = furthest from its node's mean, "
        "errors = most ECC and XID errors lately, silent = stopped reporting (most recent "
        "first), straggler_power = lowest power against its job's median, "
        "straggler_temperature = hottest against its job's median.",
        "anomaly",
        "power_watts",
    ),
    Metric(
        "gigawatt_anomalous_accelerator_temperature_celsius",
        "gauge",
        "celsius",
        "Temperature of the accelerators in the bounded anomaly list.",
        "anomaly",
        "temperature_celsius",
    ),
    Metric(
        "gigawatt_anomalous_accelerator_recent_errors",
        "gauge",
        "",
        "Uncorrected ECC plus XID errors the accelerator counted within the error window "
        "(10 min unless configured); reason errors only.",
        "anomaly",
        "recent_errors",
    ),
    Metric(
        "gigawatt_anomalous_accelerator_ecc_errors_total",
        "counter",
        "",
        "Uncorrected ECC errors of the accelerator, as its counter reads; reason errors only.",
        "anomaly",
        "ecc_errors",
    ),
    Metric(
        "gigawatt_anomalous_accelerator_xid_errors_total",
        "counter",
        "",
        "XID critical errors of the accelerator, as its counter reads; reason errors only.",
        "anomaly",
        "xid_errors",
    ),
    Metric(
        "gigawatt_anomalous_accelerator_silent_seconds",
        "gauge",
        "seconds",
        "Seconds since an accelerator that reported before last reported; reason silent only.",
        "anomaly",
        "silent_seconds",
    ),
    Metric(
        "gigawatt_anomalous_accelerator_job_power_ratio",
        "gauge",
        "ratio",
        "Accelerator power over its training job's median (the median of the job's servers' "
        "mean accelerator power); reasons straggler_power and straggler_temperature only.",
        "anomaly_job",
        "job_power_ratio",
    ),
    Metric(
        "gigawatt_anomalous_accelerator_job_temperature_excess_celsius",
        "gauge",
        "celsius",
        "Accelerator temperature minus its training job's median (over the job's servers' "
        "mean accelerator temperature); reasons straggler_power and straggler_temperature only.",
        "anomaly_job",
        "job_temperature_excess_celsius",
    ),
    # --- self-monitoring: always on ----------------------------------------------------------
    Metric(
        "gigawatt_source_up",
        "gauge",
        "",
        "1 when the source's last read of the target succeeded, else 0 (target: a BMC, an "
        "exporter URL, a device; a source without targets of its own is its only target).",
        "source",
        "up",
    ),
    Metric(
        "gigawatt_source_read_duration_seconds",
        "gauge",
        "seconds",
        "Time the source's last read took.",
        "source",
        "read_seconds",
    ),
    Metric(
        "gigawatt_source_last_success_timestamp_seconds",
        "gauge",
        "seconds",
        "Unix time of the source's last successful read.",
        "source",
        "last_success_timestamp_seconds",
    ),
    Metric(
        "gigawatt_source_problems_total",
        "counter",
        "",
        "Problems a source reported, by reason (a dangling Redfish link, a parse error, an "
        "unsupported field, a target that timed out...); each reason is logged once.",
        "problem",
        "problems",
    ),
    Metric(
        "gigawatt_samples_accepted_total",
        "counter",
        "",
        "Sample values accepted, by source and kind (accelerator, feed, building).",
        "accepted",
        "samples",
    ),
    Metric(
        "gigawatt_samples_rejected_total",
        "counter",
        "",
        "Sample values rejected, by source, kind and reason (not_finite, negative, "
        "out_of_range, unknown_entity, duplicate, stale, future, malformed).",
        "rejected",
        "samples",
    ),
    Metric(
        "gigawatt_cycle_duration_seconds",
        "gauge",
        "seconds",
        "Time the last cycle took to read, validate, roll up and integrate.",
        "process",
        "cycle_seconds",
    ),
    Metric(
        "gigawatt_exposition_render_duration_seconds",
        "gauge",
        "seconds",
        "Time the last cycle's exposition took to render.",
        "process",
        "render_seconds",
    ),
    Metric(
        "gigawatt_last_cycle_timestamp_seconds",
        "gauge",
        "seconds",
        "Unix time of the last completed cycle; compare with time() to see staleness.",
        "process",
        "timestamp_seconds",
    ),
    Metric(
        "gigawatt_cycle_failures_total",
        "counter",
        "",
        "Cycles that raised and were skipped; /metrics keeps serving the last good cycle and "
        "/readyz turns stale.",
        "process",
        "failures",
    ),
    Metric(
        "gigawatt_cycles_total", "counter", "", "Cycles completed since start.", "process", "cycles"
    ),
    Metric(
        "gigawatt_cycles_skipped_total",
        "counter",
        "",
        "Cycle slots skipped because the cycle before ran past them: an overrunning cycle is "
        "skipped, never queued.",
        "process",
        "skipped",
    ),
    Metric(
        "process_start_time_seconds",
        "gauge",
        "seconds",
        "Start time of the process since the Unix epoch, as every Prometheus client exposes "
        "it: a restart shows here, while the counters continue from the state directory.",
        "process",
        "start_time_seconds",
    ),
    Metric(
        "gigawatt_exposed_series",
        "gauge",
        "",
        "Series in the last rendered exposition, this one excluded.",
        "process",
        "series",
    ),
    Metric(
        "gigawatt_build_info",
        "gauge",
        "",
        "Always 1; the version label says which gigawatt is running.",
        "build",
        "value",
    ),
)

BY_NAME = {metric.name: metric for metric in METRICS}
BY_SOURCE = {(metric.frame, metric.column): metric for metric in METRICS}


def metric_for(frame: str, column: str) -> Metric:
    """The metric read from ``column`` of snapshot frame ``frame``."""
    try:
        return BY_SOURCE[(frame, column)]
    except KeyError:
        raise KeyError(f"no metric is read from frame {frame!r}, column {column!r}") from None


def name_of(frame: str, column: str) -> str:
    """The series name of the metric read from ``frame``/``column``."""
    return metric_for(frame, column).name


def enabled(tier: Tier) -> tuple[Metric, ...]:
    """The metrics exposed at a tier."""
    level = TIERS.index(tier)
    return tuple(metric for metric in METRICS if TIERS.index(metric.tier) <= level)
