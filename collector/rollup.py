"""Roll-ups: pure functions from validated samples and topology to one frame per level.

Every level frame has exactly one row per entity of that level, in index order, whether or
not it reported: a level whose sources are silent shows null power (missing), never 0.

Semantics, the same at every level from rack to site:

* ``power_watts`` is IT power measured at the rack PDUs: the sum of the feeds that reported.
  ``reporting_ratio`` = feeds reporting / feeds expected says how complete that sum is (0
  when no feed reported, and then the power is null). Headroom and utilization are computed
  from that sum, so on a partly reporting level they are bounds, not readings: read them with
  the ratio.
* ``accelerator_power_watts`` is what the accelerators themselves report, with its own
  ``accelerators_reporting_ratio``. The difference to ``power_watts`` is the hosts, fans,
  network and conversion losses.
* ``node_power_watts`` is what the servers' BMCs report as their input power, with its own
  ``nodes_reporting_ratio``. ``unattributed_power_watts`` = PDU power - node power is what
  no server meters: switches, the rack's AC/DC conversion, and any meter that reads wrong.
  A rack gives it only when every feed and every node of it reported (a partial sum on
  either side would make it a fiction); a parent sums it over those complete racks, as
  site PUE uses only the buildings where both figures are known, so one silent BMC does
  not blank a hall. A negative value means the BMCs claim more than the PDUs delivered: one
  of the meters is off. This is the reconciliation across measurement layers
  (accelerators, BMCs, PDUs) that per-device exporters cannot do.
* ``energy_joules`` and ``accelerator_energy_joules`` sum the leaf counters kept by
  collector.energy over *all* leaves, reporting or not, so they never go backwards and
  children always sum to their parent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import polars as pl

from collector import arrays, schemas
from collector.accelerator_health import RECENT_ERRORS as ERRORS_SCHEMA
from collector.site.topology import Topology

FloatArray = npt.NDArray[np.float64]
IndexArray = npt.NDArray[np.int64]

# Columns a parent gets by summing its children.
ADDITIVE = (
    "power_watts",
    "feeds_reporting",
    "feeds_expected",
    "accelerator_power_watts",
    "accelerators_reporting",
    "accelerators_expected",
    "node_power_watts",
    "nodes_reporting",
    "nodes_expected",
    "unattributed_power_watts",
    "energy_joules",
    "accelerator_energy_joules",
)
# Additive columns that are null, not 0, when no child reported.
MEASURED = (
    "power_watts",
    "accelerator_power_watts",
    "node_power_watts",
    "unattributed_power_watts",
)
# Columns a parent gets as the largest of its children's.
MAXIMAL = ("max_temperature_celsius",)

PARENT_OF = {"rack": "row", "row": "hall", "hall": "building", "building": "site"}


def sum_or_null(column: str) -> pl.Expr:
    """Sum of the non-null values; null (missing) when there are none, never 0."""
    return pl.when(pl.col(column).count() > 0).then(pl.col(column).sum()).alias(column)


def with_derived_ratios(frame: pl.DataFrame) -> pl.DataFrame:
    """Headroom, utilization and reporting ratios from the additive columns and capacity."""
    return frame.with_columns(
        headroom_watts=pl.col("capacity_watts") - pl.col("power_watts"),
        utilization_ratio=pl.col("power_watts") / pl.col("capacity_watts"),
        reporting_ratio=pl.col("feeds_reporting") / pl.col("feeds_expected"),
        accelerators_reporting_ratio=(
            pl.col("accelerators_reporting") / pl.col("accelerators_expected")
        ),
        nodes_reporting_ratio=pl.col("nodes_reporting") / pl.col("nodes_expected"),
    )


def node_frame(
    accelerators: pl.DataFrame,
    node_samples: pl.DataFrame,
    topology: Topology,
    accelerator_energy: FloatArray,
) -> pl.DataFrame:
    """Per node: its accelerators' power, temperature, memory, share reporting and energy,
    beside what its BMC reports (input power, CPU power) and the host's share.

    A node's accelerators are one contiguous index range, so each aggregate is one
    ``reduceat`` over dense arrays rather than a 2 M-row group-by. ``host_power_watts`` is the
    input power minus the accelerators' own reports, given only when every accelerator of
    the node reported.
    """
    count = topology.accelerator_count
    first = topology.first_children("accelerator", "node")

    def column(name: str) -> FloatArray:
        return arrays.dense(accelerators, "accelerator_index", name, count)

    power = column("power_watts")
    utilization = column("utilization_ratio")
    utilization_sum = arrays.sum_by(utilization, first)
    utilization_count = arrays.count_by(utilization, first)
    with np.errstate(invalid="ignore", divide="ignore"):
        utilization_mean = utilization_sum / utilization_count
    return (
        topology.nodes.select(
            "node_index",
            "rack_index",
            "capacity_watts",
            pl.col("accelerator_count").alias("accelerators_expected"),
        )
        .with_columns(
            arrays.series("accelerator_power_watts", arrays.sum_by(power, first)),
            pl.Series("accelerators_reporting", arrays.count_by(power, first), dtype=pl.UInt32),
            arrays.series(
                "max_temperature_celsius", arrays.max_by(column("temperature_celsius"), first)
            ),
            arrays.series("accelerator_utilization_ratio", utilization_mean),
            arrays.series("memory_used_bytes", arrays.sum_by(column("memory_used_bytes"), first)),
            arrays.series("accelerator_energy_joules", np.add.reduceat(accelerator_energy, first)),
        )
        .with_columns(
            arrays.series(
                "power_watts",
                arrays.dense(node_samples, "node_index", "power_watts", topology.nodes.height),
            ),
            arrays.series(
                "cpu_power_watts",
                arrays.dense(node_samples, "node_index", "cpu_power_watts", topology.nodes.height),
            ),
        )
        .with_columns(
            headroom_watts=pl.col("capacity_watts") - pl.col("accelerator_power_watts"),
            utilization_ratio=pl.col("accelerator_power_watts") / pl.col("capacity_watts"),
            accelerators_reporting_ratio=(
                pl.col("accelerators_reporting") / pl.col("accelerators_expected")
            ),
            host_power_watts=pl.when(
                pl.col("accelerators_reporting") == pl.col("accelerators_expected")
            ).then(pl.col("power_watts") - pl.col("accelerator_power_watts")),
        )
    )


def feed_frame(feeds: pl.DataFrame, topology: Topology, feed_energy: FloatArray) -> pl.DataFrame:
    """Per PDU feed: its readings (null when silent), capacity, headroom and energy."""
    return (
        topology.feeds.select("feed_index", "rack_index", "lineup_index", "capacity_watts")
        .join(
            feeds.select(
                "feed_index", "power_watts", "current_amps", "voltage_volts", "meter_energy_joules"
            ),
            on="feed_index",
            how="left",
            maintain_order="left",
        )
        .with_columns(
            headroom_watts=pl.col("capacity_watts") - pl.col("power_watts"),
            utilization_ratio=pl.col("power_watts") / pl.col("capacity_watts"),
            energy_joules=pl.Series(feed_energy),
        )
    )


def rack_frame(nodes: pl.DataFrame, feeds: pl.DataFrame, topology: Topology) -> pl.DataFrame:
    """Per rack: PDU power (the electrical truth) beside its accelerators' own reports.

    ``feeds`` and ``nodes`` hold one row per entity in index order (feed_frame, node_frame),
    and a rack's feeds and nodes are contiguous ranges: each sum is a ``reduceat``."""
    by_feed = topology.first_children("feed", "rack")
    by_node = topology.first_children("node", "rack")

    def column(frame: pl.DataFrame, name: str) -> FloatArray:
        values: FloatArray = frame.get_column(name).cast(pl.Float64).to_numpy()  # null: NaN
        return values

    def total(values: FloatArray, first: IndexArray) -> FloatArray:
        """A sum that counts missing as nothing (energy counters, counts)."""
        summed: FloatArray = np.add.reduceat(np.nan_to_num(values, nan=0.0), first)
        return summed

    def counted(name: str, values: npt.NDArray[np.number]) -> pl.Series:
        return pl.Series(name, values, dtype=pl.UInt32)

    feed_power = column(feeds, "power_watts")
    node_power = column(nodes, "power_watts")
    frame = topology.racks.select(
        "rack_index", "row_index", "hall_index", "building_index", "capacity_watts"
    ).with_columns(
        arrays.series("power_watts", arrays.sum_by(feed_power, by_feed)),
        counted("feeds_reporting", arrays.count_by(feed_power, by_feed)),
        counted("feeds_expected", np.diff(by_feed, append=feeds.height)),
        pl.Series("energy_joules", total(column(feeds, "energy_joules"), by_feed)),
        arrays.series(
            "accelerator_power_watts",
            arrays.sum_by(column(nodes, "accelerator_power_watts"), by_node),
        ),
        counted("accelerators_reporting", total(column(nodes, "accelerators_reporting"), by_node)),
        counted("accelerators_expected", total(column(nodes, "accelerators_expected"), by_node)),
        arrays.series("node_power_watts", arrays.sum_by(node_power, by_node)),
        counted("nodes_reporting", arrays.count_by(node_power, by_node)),
        counted("nodes_expected", np.diff(by_node, append=nodes.height)),
        arrays.series(
            "max_temperature_celsius",
            arrays.max_by(column(nodes, "max_temperature_celsius"), by_node),
        ),
        pl.Series(
            "accelerator_energy_joules",
            total(column(nodes, "accelerator_energy_joules"), by_node),
        ),
    )
    frame = frame.with_columns(
        unattributed_power_watts=pl.when(
            (pl.col("feeds_reporting") == pl.col("feeds_expected"))
            & (pl.col("nodes_reporting") == pl.col("nodes_expected"))
        ).then(pl.col("power_watts") - pl.col("node_power_watts"))
    )
    return with_derived_ratios(frame)


def with_error_counts(
    racks: pl.DataFrame, counts: dict[str, FloatArray], topology: Topology
) -> pl.DataFrame:
    """Add, per rack, the sum of its accelerators' last known error counters
    (``accelerator_ecc_errors``, ``accelerator_xid_errors``): null when none of its chips
    ever reported one. A chip that falls silent keeps its last count, so the sum only goes
    down when a counter is reset, which a Prometheus counter reads as a reset."""
    first = topology.first_children("accelerator", "rack")
    return racks.with_columns(
        arrays.series(f"accelerator_{column}", arrays.sum_by(values, first))
        for column, values in counts.items()
    )


def parent_frame(children: pl.DataFrame, level: str, topology: Topology) -> pl.DataFrame:
    """Roll children up one level (rack→row→hall→building→site); capacity from topology."""
    key = f"{level}_index"
    aggregations = [sum_or_null(c) for c in MEASURED]
    aggregations += [pl.col(c).sum() for c in ADDITIVE if c not in MEASURED]
    aggregations += [pl.col(c).max() for c in MAXIMAL]
    if level == "site":
        summed = children.select(aggregations).with_columns(
            capacity_watts=pl.lit(float(topology.buildings["capacity_watts"].sum()))
        )
        return with_derived_ratios(summed)
    table: pl.DataFrame = getattr(topology, f"{level}s")
    keep = [c for c in table.columns if c.endswith("_index") or c == "capacity_watts"]
    frame = table.select(keep).join(
        children.group_by(key).agg(aggregations), on=key, how="left", maintain_order="left"
    )
    return with_derived_ratios(frame)


def lineup_frame(feeds: pl.DataFrame, topology: Topology) -> pl.DataFrame:
    """Per building lineup (A/B path): the feeds it carries against its capacity."""
    per_lineup = feeds.group_by("lineup_index").agg(
        sum_or_null("power_watts"),
        pl.col("power_watts").count().cast(pl.UInt32).alias("feeds_reporting"),
        pl.len().cast(pl.UInt32).alias("feeds_expected"),
        pl.col("energy_joules").sum(),
    )
    return (
        topology.lineups.select("lineup_index", "building_index", "capacity_watts")
        .join(per_lineup, on="lineup_index", how="left", maintain_order="left")
        .with_columns(
            pl.col("feeds_reporting", "feeds_expected").fill_null(0),
            headroom_watts=pl.col("capacity_watts") - pl.col("power_watts"),
            utilization_ratio=pl.col("power_watts") / pl.col("capacity_watts"),
        )
        .with_columns(
            reporting_ratio=pl.when(pl.col("feeds_expected") > 0).then(
                pl.col("feeds_reporting") / pl.col("feeds_expected")
            )
        )
    )


def with_facility(
    buildings: pl.DataFrame, building_samples: pl.DataFrame, non_it_energy: FloatArray
) -> pl.DataFrame:
    """Add non-IT load, facility power (IT + non-IT), PUE and facility energy per building."""
    return (
        buildings.join(
            building_samples.select(
                "building_index", "non_it_power_watts", "outdoor_temperature_celsius"
            ),
            on="building_index",
            how="left",
            maintain_order="left",
        )
        .with_columns(non_it_energy_joules=pl.Series(non_it_energy))
        .with_columns(
            facility_power_watts=pl.col("power_watts") + pl.col("non_it_power_watts"),
            facility_energy_joules=pl.col("energy_joules") + pl.col("non_it_energy_joules"),
        )
        .with_columns(pue_ratio=pl.col("facility_power_watts") / pl.col("power_watts"))
    )


def site_frame(racks: pl.DataFrame, buildings: pl.DataFrame, topology: Topology) -> pl.DataFrame:
    """The site: IT from all racks, facility at the point of interconnection, contract, PUE.

    Site PUE uses only buildings where both IT and non-IT power are known, so one silent
    building meter does not bend it; facility power sums the buildings that report it.
    """
    site = parent_frame(racks, "site", topology)
    both_known = pl.col("facility_power_watts").is_not_null()
    facility = buildings.select(
        sum_or_null("facility_power_watts"),
        pl.col("facility_energy_joules").sum(),
        pl.col("non_it_energy_joules").sum(),
        pl.when(both_known.any())
        .then(
            pl.col("facility_power_watts").filter(both_known).sum()
            / pl.col("power_watts").filter(both_known).sum()
        )
        .alias("pue_ratio"),
        both_known.cast(pl.UInt32).sum().alias("buildings_facility_reporting"),
        pl.len().cast(pl.UInt32).alias("buildings_expected"),
    )
    contract = topology.site.contract_watts
    return pl.concat([site, facility], how="horizontal").with_columns(
        contract_watts=pl.lit(contract),
        contract_headroom_watts=pl.lit(contract) - pl.col("facility_power_watts"),
        contract_utilization_ratio=pl.col("facility_power_watts") / contract,
    )


ANOMALY_COLUMNS: dict[str, pl.DataType | type[pl.DataType]] = {
    "accelerator_index": pl.UInt32,
    "reason": pl.String,
    "score": pl.Float64,
    "power_watts": pl.Float64,
    "temperature_celsius": pl.Float64,
    "training_job": pl.String,  # the job holding the chip's rack; null when none
    # The columns below explain one reason each and are null on the other reasons' rows.
    "recent_errors": pl.Float64,  # errors: ECC + XID errors within the error window
    "ecc_errors": pl.Float64,  # errors: cumulative uncorrected ECC errors
    "xid_errors": pl.Float64,  # errors: cumulative XID errors
    "silent_seconds": pl.Float64,  # silent: seconds since the chip last reported
    "job_power_ratio": pl.Float64,  # stragglers: power over the job's median
    "job_temperature_excess_celsius": pl.Float64,  # stragglers: above the job's median
}
REASON_COLUMNS = {
    "errors": ("recent_errors", "ecc_errors", "xid_errors"),
    "silent": ("silent_seconds",),
    "straggler_power": ("job_power_ratio", "job_temperature_excess_celsius"),
    "straggler_temperature": ("job_power_ratio", "job_temperature_excess_celsius"),
}


@dataclass(frozen=True)
class _Ranking:
    """One anomaly reason's score: per node the best score of its chips (``node_best``), and
    the score of any chips on demand. Only the chips of the K best nodes are ever scored, so a
    reason whose node best follows from per-node extremes costs no pass over millions of
    chips."""

    node_best: FloatArray
    of_chips: Callable[[IndexArray], FloatArray]


def _chip_ranking(score: FloatArray, first: IndexArray) -> _Ranking:
    """A reason scored on every chip already (a limit that differs between chips)."""
    best: FloatArray = np.fmax.reduceat(np.where(np.isfinite(score), score, np.nan), first)
    return _Ranking(best, lambda chips: score[chips])


def _top_k_by_node(
    ranking: _Ranking, first: IndexArray, ends: IndexArray, top_k: int
) -> tuple[IndexArray, FloatArray]:
    """The (at most) K chips with the highest finite score, best first, and their scores.

    The K best chips lie in at most K nodes, so the nodes are ranked first by their best chip
    and only their chips are scored and ranked: no sort or partition over millions of chips.
    """
    node_best = np.where(np.isfinite(ranking.node_best), ranking.node_best, -np.inf)
    k_nodes = min(top_k, int(np.isfinite(node_best).sum()))
    if k_nodes == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    best_nodes = np.argpartition(-node_best, k_nodes - 1)[:k_nodes]
    chips = np.concatenate([np.arange(first[n], ends[n]) for n in best_nodes.tolist()])
    score = ranking.of_chips(chips)
    finite = np.isfinite(score)
    chips, score = chips[finite], score[finite]
    order = np.argsort(-score, kind="stable")[:top_k]
    return chips[order], score[order]


def _job_of_node(allocations: pl.DataFrame, topology: Topology) -> tuple[IndexArray, list[str]]:
    """Per node, the code of the job holding its rack (-1: none), and the job names."""
    held = allocations.drop_nulls("job")
    if not arrays.strictly_increasing(held.get_column("rack_index")):  # else none repeats
        held = held.unique("rack_index", keep="first", maintain_order=True)
    names = held["job"].unique(maintain_order=True)
    codes = held.join(
        pl.DataFrame({"job": names, "code": np.arange(names.len(), dtype=np.int64)}),
        on="job",
        how="left",
        maintain_order="left",
    )
    rack_code = np.full(topology.racks.height, -1, dtype=np.int64)
    rack_code[codes["rack_index"].to_numpy().astype(np.int64)] = codes["code"].to_numpy()
    node_rack = topology.nodes["rack_index"].to_numpy().astype(np.int64)
    return rack_code[node_rack], names.to_list()


def _job_medians(
    node_values: FloatArray, node_code: npt.NDArray[np.int64], jobs: int
) -> FloatArray:
    """Per job, the median over its nodes of a per-node value (NaN: no node of it has one)."""
    medians = np.full(jobs, np.nan)
    held = (node_code >= 0) & np.isfinite(node_values)
    if held.any():
        per_job = (
            pl.DataFrame({"code": node_code[held], "value": node_values[held]})
            .group_by("code")
            .agg(pl.col("value").median())
        )
        medians[per_job["code"].to_numpy()] = per_job["value"].to_numpy()
    return medians


def anomalous_accelerators(
    accelerators: pl.DataFrame,
    nodes: pl.DataFrame,
    topology: Topology,
    top_k: int,
    *,
    allocations: pl.DataFrame | None = None,
    silent_seconds: FloatArray | None = None,
    recent_errors: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """A bounded list of accelerators worth a look, whatever tier is exposed: at most K per
    reason, best first (columns: ANOMALY_COLUMNS).

    * ``hot``: closest to the chip's temperature limit (score: temperature minus the limit).
    * ``power_outlier``: furthest from its node's mean power, as a share of TDP (in
      synchronous training a chip that differs from its 15 peers is stalled or failing).
    * ``errors``: most ECC + XID errors within the error window (``recent_errors``, from
      collector.accelerator_health); only chips whose counters grew.
    * ``silent``: chips that reported before and not this cycle (``silent_seconds``, per
      accelerator), the most recently silent first, so a new failure is never crowded out by
      chips long dead.
    * ``straggler_power``: lowest power against its job's median (score: 1 - ratio), and
      ``straggler_temperature``: hottest against its job's median (score: the excess in °C).
      A job's median is taken over its servers' mean accelerator power and temperature, so
      one slow chip cannot move it; jobs hold racks (``allocations``, ALLOCATION_SAMPLES).

    The thresholds (how far below its job, how many errors, how long silent) are the alert
    rules' business; each row carries the value its reason is judged on.
    """
    if top_k <= 0:
        return pl.DataFrame(schema=ANOMALY_COLUMNS)
    table = topology.accelerators
    count = topology.accelerator_count
    first = topology.first_children("accelerator", "node")
    ends = np.append(first[1:], count)
    power = arrays.dense(accelerators, "accelerator_index", "power_watts", count)
    temperature = arrays.dense(accelerators, "accelerator_index", "temperature_celsius", count)

    def node_of(chips: IndexArray) -> IndexArray:
        found: IndexArray = np.searchsorted(first, chips, side="right") - 1
        return found

    node_code, job_names = _job_of_node(
        allocations if allocations is not None else schemas.empty(schemas.ALLOCATION_SAMPLES),
        topology,
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        node_mean = (nodes["accelerator_power_watts"] / nodes["accelerators_reporting"]).to_numpy()
        # Each reason's best chip per node follows from the node's extremes (a score rises
        # with temperature, with the distance from the node's mean, with the shortfall under
        # the job's median), where a limit is shared by every chip; else every chip is scored.
        power_max = np.fmax.reduceat(power, first)
        power_min = np.fmin.reduceat(power, first)
        temperature_max = nodes["max_temperature_celsius"].to_numpy()  # node_frame's fmax
        limit = topology.uniform_value("accelerator", "max_temperature_celsius")
        tdp = topology.uniform_value("accelerator", "tdp_watts")
        rankings: dict[str, _Ranking] = {
            "hot": (
                _Ranking(temperature_max - limit, lambda chips: temperature[chips] - limit)
                if limit is not None
                else _chip_ranking(temperature - table["max_temperature_celsius"].to_numpy(), first)
            ),
            "power_outlier": (
                _Ranking(
                    np.fmax(power_max - node_mean, node_mean - power_min) / tdp,
                    lambda chips: np.abs(power[chips] - node_mean[node_of(chips)]) / tdp,
                )
                if tdp is not None
                else _chip_ranking(
                    np.abs(power - np.repeat(node_mean, ends - first))
                    / table["tdp_watts"].to_numpy(),
                    first,
                )
            ),
        }
        median_power = median_temperature = np.zeros(0)
        if job_names:
            node_temperature = arrays.sum_by(temperature, first) / arrays.count_by(
                temperature, first
            )
            median_power = _job_medians(node_mean, node_code, len(job_names))
            median_temperature = _job_medians(node_temperature, node_code, len(job_names))
            in_job = node_code >= 0
            node_power_median = np.where(in_job, median_power[np.maximum(node_code, 0)], np.nan)
            node_temperature_median = np.where(
                in_job, median_temperature[np.maximum(node_code, 0)], np.nan
            )
            # Node means are never negative, so a median is 0 or above; at 0 no ratio exists.
            node_power_median[node_power_median <= 0] = np.nan
            rankings["straggler_power"] = _Ranking(
                1.0 - power_min / node_power_median,
                lambda chips: 1.0 - power[chips] / node_power_median[node_of(chips)],
            )
            rankings["straggler_temperature"] = _Ranking(
                temperature_max - node_temperature_median,
                lambda chips: temperature[chips] - node_temperature_median[node_of(chips)],
            )
    silent = np.full(count, np.nan) if silent_seconds is None else silent_seconds
    if np.isfinite(silent).any():
        rankings["silent"] = _Ranking(
            -np.fmin.reduceat(silent, first), lambda chips: -silent[chips]
        )

    picks: list[tuple[str, IndexArray, FloatArray]] = []
    with np.errstate(invalid="ignore", divide="ignore"):
        for reason, ranking in rankings.items():
            indexes, scores = _top_k_by_node(ranking, first, ends, top_k)
            if indexes.size:
                picks.append((reason, indexes, scores))
    errors = recent_errors if recent_errors is not None else schemas.empty(ERRORS_SCHEMA)
    errors = errors.filter(pl.col("recent_errors") > 0)
    most = errors.sort("recent_errors", "accelerator_index", descending=[True, False]).head(top_k)
    if most.height:
        picks.append(
            (
                "errors",
                most["accelerator_index"].to_numpy().astype(np.int64),
                most["recent_errors"].to_numpy(),
            )
        )
    if not picks:
        return pl.DataFrame(schema=ANOMALY_COLUMNS)
    chosen = np.concatenate([indexes for _, indexes, _ in picks])
    reasons = [reason for reason, indexes, _ in picks for _ in range(indexes.size)]
    names = pl.Series("training_job", job_names, dtype=pl.String)
    codes = node_code[node_of(chosen)]
    job_power_ratio = np.full(chosen.size, np.nan)
    job_excess = np.full(chosen.size, np.nan)
    if job_names:
        in_job = codes >= 0
        safe_code = np.maximum(codes, 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            job_power_ratio = np.where(in_job, power[chosen] / median_power[safe_code], np.nan)
            job_excess = np.where(
                in_job, temperature[chosen] - median_temperature[safe_code], np.nan
            )
    frame = pl.DataFrame(
        {
            "accelerator_index": chosen.astype(np.uint32),
            "reason": reasons,
            "score": np.concatenate([score for _, _, score in picks]),
            "power_watts": power[chosen],
            "temperature_celsius": temperature[chosen],
            "training_job": pl.Series(codes, dtype=pl.Int64),
            "silent_seconds": silent[chosen],
            "job_power_ratio": job_power_ratio,
            "job_temperature_excess_celsius": job_excess,
        },
        nan_to_null=True,
    ).with_columns(
        training_job=pl.when(pl.col("training_job") >= 0).then(
            pl.lit(names).gather(pl.col("training_job").clip(0))
        )
        if job_names
        else pl.lit(None, dtype=pl.String)
    )
    frame = frame.join(
        errors.select("accelerator_index", "recent_errors", "ecc_errors", "xid_errors"),
        on="accelerator_index",
        how="left",
        maintain_order="left",
    )
    return (
        frame.with_columns(
            pl.when(pl.col("reason").is_in(reasons_of(column))).then(pl.col(column)).alias(column)
            for column in dict.fromkeys(c for columns in REASON_COLUMNS.values() for c in columns)
        )
        .select(pl.col(name).cast(dtype) for name, dtype in ANOMALY_COLUMNS.items())
        .sort("reason", "score", descending=[False, True], maintain_order=True)
    )


def reasons_of(column: str) -> list[str]:
    """The anomaly reasons whose rows carry ``column``."""
    return [reason for reason, columns in REASON_COLUMNS.items() if column in columns]


def job_frame(jobs: pl.DataFrame, allocations: pl.DataFrame, racks: pl.DataFrame) -> pl.DataFrame:
    """Per training job: state, accelerators, and IT power of the racks it holds.

    Jobs own whole racks (an UltraServer is two), so a job's power is its racks' PDU power,
    hosts and conversion losses included. Null when none of its racks' feeds reported.
    """
    held = allocations.drop_nulls("job").join(
        racks.select("rack_index", "power_watts", "feeds_reporting", "feeds_expected"),
        on="rack_index",
        how="left",
    )
    per_job = held.group_by("job").agg(
        sum_or_null("power_watts"),
        pl.len().cast(pl.UInt32).alias("racks"),
        (pl.col("feeds_reporting").sum() / pl.col("feeds_expected").sum()).alias("reporting_ratio"),
    )
    return jobs.select("job", "state", "accelerators").join(
        per_job, on="job", how="left", maintain_order="left"
    )


def attribute_energy(
    rack_energy_delta: FloatArray, allocations: pl.DataFrame, racks: int
) -> tuple[pl.DataFrame, float]:
    """Split one interval's rack IT energy between the jobs holding the racks and the rest.

    Returns (job, joules) for this interval and the unallocated joules; together they are
    exactly the interval's IT energy.
    """
    job_of_rack = (
        pl.DataFrame({"rack_index": np.arange(racks, dtype=np.uint32)})
        .join(allocations, on="rack_index", how="left", maintain_order="left")
        .get_column("job")
    )
    frame = pl.DataFrame({"job": job_of_rack, "joules": rack_energy_delta})
    per_job = frame.drop_nulls("job").group_by("job").agg(pl.col("joules").sum())
    unallocated = float(frame.filter(pl.col("job").is_null())["joules"].sum())
    return per_job, unallocated
