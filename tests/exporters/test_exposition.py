"""The Prometheus text exposition of a demo snapshot: structure, tiers, values, escaping."""

from __future__ import annotations

import math
import re
import subprocess
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace

import polars as pl
import pytest
from prometheus_client.parser import text_string_to_metric_families

from collector.pipeline import Pipeline, PipelineConfig, Snapshot
from collector.site.model import load_preset
from collector.site.topology import Topology, build_topology
from collector.sources.base import SampleBatch, Source
from collector.sources.simulated import SimulatedSource, SimulationConfig
from exporters import contract
from exporters.contract import BY_NAME
from exporters.exposition import CONTENT_TYPE, Rendered, Renderer, label_column

START = 1_700_000_000.0
INTERVAL = 10.0
ANOMALY_FAMILIES = {
    metric.name for metric in contract.METRICS if metric.frame in ("anomaly", "anomaly_job")
}
ANOMALY_TEMPERATURE = "gigawatt_anomalous_accelerator_temperature_celsius"
# The demo with the job model on, so the job families have series too.
JOBS = SimulationConfig(workload="jobs")
SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?P<labels>\{.*\})? (?P<value>\S+)$")


# --- helpers ---------------------------------------------------------------------------------


@dataclass
class Exposition:
    """An exposition read back with prometheus_client, keyed by sample name."""

    text: str
    samples: dict[str, list[tuple[dict[str, str], float]]] = field(default_factory=dict)

    @classmethod
    def parse(cls, body: bytes | memoryview) -> Exposition:
        text = bytes(body).decode("utf-8")
        parsed = cls(text)
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                parsed.samples.setdefault(sample.name, []).append(
                    (dict(sample.labels), sample.value)
                )
        return parsed

    def series(self, name: str) -> list[tuple[dict[str, str], float]]:
        return self.samples.get(name, [])

    def value(self, name: str, **labels: str) -> float | None:
        found = [value for got, value in self.series(name) if got == labels]
        assert len(found) <= 1, f"{name}{labels} appears {len(found)} times"
        return found[0] if found else None


def clock_from(times: list[float]) -> Callable[[], float]:
    return lambda: times[0]


def run_cycles(
    topology: Topology,
    sources: Sequence[Source],
    cycles: int = 2,
    config: PipelineConfig | None = None,
) -> Snapshot:
    """Run a pipeline for a few cycles INTERVAL apart; return the last snapshot."""
    now = [START]
    pipeline = Pipeline(topology, sources, clock=clock_from(now), config=config)
    snapshot = pipeline.run_cycle()
    for _ in range(cycles - 1):
        now[0] += INTERVAL
        snapshot = pipeline.run_cycle()
    return snapshot


def render(topology: Topology, snapshot: Snapshot, tier: str) -> Rendered:
    """Render twice, as the runner does from the second cycle on, so every family has data."""
    renderer = Renderer(topology, tier, version="9.9.9-test")
    return renderer.render(snapshot, renderer.render(snapshot))


def within_sig_figs(got: float, expected: float, digits: int = 7) -> bool:
    """Whether got is expected rounded to `digits` significant digits (half a unit in the
    last digit, with a little slack for the binary representation)."""
    if expected == 0:
        return got == 0
    unit = 10.0 ** (math.floor(math.log10(abs(expected))) - digits + 1)
    return abs(got - expected) <= unit / 2 * (1 + 1e-9)


def scalar(frame: pl.DataFrame, column: str, row: int = 0) -> float:
    value = frame.get_column(column)[row]
    assert value is not None
    return float(value)


class Dropping:
    """The demo simulator with some feeds (by index) or all building samples silent."""

    name = "simulated"

    def __init__(
        self, topology: Topology, feeds: Iterable[int] = (), drop_buildings: bool = False
    ) -> None:
        self.inner = SimulatedSource(topology, JOBS)
        self.feeds = list(feeds)
        self.drop_buildings = drop_buildings

    def read(self, now: float) -> SampleBatch:
        batch = self.inner.read(now)
        feeds = batch.feeds.filter(~pl.col("feed_index").is_in(self.feeds))
        buildings = batch.buildings.clear() if self.drop_buildings else batch.buildings
        return replace(batch, feeds=feeds, buildings=buildings)


class Renamed:
    """The demo simulator under a name that needs escaping in a label value."""

    name = 'sim"ul\\ated\nsource'

    def __init__(self, topology: Topology) -> None:
        self.inner = SimulatedSource(topology)

    def read(self, now: float) -> SampleBatch:
        return self.inner.read(now)


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def topology() -> Topology:
    return build_topology(load_preset("demo"))


@pytest.fixture(scope="module")
def snapshot(topology: Topology) -> Snapshot:
    return run_cycles(topology, [SimulatedSource(topology, JOBS)])


@pytest.fixture(scope="module")
def rendered(topology: Topology, snapshot: Snapshot) -> dict[str, Rendered]:
    return {tier: render(topology, snapshot, tier) for tier in contract.TIERS}


@pytest.fixture(scope="module")
def parsed(rendered: dict[str, Rendered]) -> dict[str, Exposition]:
    return {tier: Exposition.parse(out.body) for tier, out in rendered.items()}


# --- structure -------------------------------------------------------------------------------


@pytest.mark.parametrize("tier", contract.TIERS)
def test_every_family_has_one_help_and_one_type_before_its_samples(
    tier: str, rendered: dict[str, Rendered]
) -> None:
    helps: Counter[str] = Counter()
    types: Counter[str] = Counter()
    current: str | None = None  # the family whose HELP and TYPE came last
    previous_line = ""
    sample_lines = 0
    families_in_order: list[str] = []
    for line in rendered[tier].text().splitlines():
        if line.startswith("# HELP "):
            name, text = line[len("# HELP ") :].split(" ", 1)
            helps[name] += 1
            assert name in BY_NAME, f"unknown family {name}"
            assert text == BY_NAME[name].help.replace("\\", "\\\\")
            current = None
            families_in_order.append(name)
        elif line.startswith("# TYPE "):
            name, kind = line[len("# TYPE ") :].split(" ")
            types[name] += 1
            assert previous_line.startswith(f"# HELP {name} "), f"TYPE {name} not after its HELP"
            assert kind == BY_NAME[name].type
            current = name
        else:
            match = SAMPLE.match(line)
            assert match, f"malformed sample line {line!r}"
            name = match["name"]
            assert name in BY_NAME, f"sample {name} is not in the metric table"
            assert name == current, f"sample of {name} outside its family ({current})"
            value = float(match["value"])
            assert math.isfinite(value), line
            sample_lines += 1
        previous_line = line
    assert all(count == 1 for count in helps.values()), helps
    assert all(count == 1 for count in types.values()), types
    assert families_in_order == [metric.name for metric in contract.enabled(tier)]
    # The series count the renderer reports is every sample but its own gauge's.
    assert rendered[tier].series == sample_lines - 1


@pytest.mark.parametrize("tier", contract.TIERS)
def test_samples_carry_the_table_labels_and_are_unique(
    tier: str, parsed: dict[str, Exposition]
) -> None:
    for name, series in parsed[tier].samples.items():
        metric = BY_NAME[name]
        keys = [tuple(sorted(labels.items())) for labels, _ in series]
        assert len(keys) == len(set(keys)), f"{name} has duplicate series"
        for labels, _ in series:
            assert tuple(labels) == metric.labels, f"{name}: {tuple(labels)} != {metric.labels}"
            assert all(value != "" for value in labels.values()), f"{name}: empty label value"


def test_content_type_is_prometheus_text_0_0_4() -> None:
    assert CONTENT_TYPE == "text/plain; version=0.0.4; charset=utf-8"


# --- tiers -----------------------------------------------------------------------------------


def families(exposition: Exposition) -> set[str]:
    return set(exposition.samples)


def test_rack_tier_has_racks_and_feeds_but_no_nodes_or_accelerators(
    topology: Topology, parsed: dict[str, Exposition]
) -> None:
    exposition = parsed["rack"]
    assert not {n for n in families(exposition) if n.startswith("gigawatt_node_")}
    assert not {n for n in families(exposition) if n.startswith("gigawatt_accelerator_")}
    for name, series in exposition.samples.items():
        if any("node" in labels or "accelerator" in labels for labels, _ in series):
            assert name in ANOMALY_FAMILIES, f"{name} has node/accelerator series at rack tier"
    assert len(exposition.series("gigawatt_rack_power_watts")) == topology.racks.height
    assert len(exposition.series("gigawatt_feed_power_watts")) == topology.feeds.height
    # Headroom and utilization of racks and feeds are derived in PromQL (series budget):
    # stored from the node tier on, one series per rack or feed.
    derived = {
        "gigawatt_rack_headroom_watts": topology.racks.height,
        "gigawatt_rack_utilization_ratio": topology.racks.height,
        "gigawatt_feed_utilization_ratio": topology.feeds.height,
    }
    assert not families(exposition) & set(derived)
    for name, count in derived.items():
        assert len(parsed["node"].series(name)) == count
    racks = {labels["rack"] for labels, _ in exposition.series("gigawatt_rack_capacity_watts")}
    assert racks == set(topology.racks["rack"].to_list())


class SilentChipsAndServers:
    """The demo simulator with some accelerators and some servers' BMCs silent."""

    name = "simulated"

    def __init__(self, topology: Topology, chips: Iterable[int], servers: Iterable[int]) -> None:
        self.inner = SimulatedSource(topology, JOBS)
        self.chips = list(chips)
        self.servers = list(servers)

    def read(self, now: float) -> SampleBatch:
        batch = self.inner.read(now)
        return replace(
            batch,
            accelerators=batch.accelerators.filter(~pl.col("accelerator_index").is_in(self.chips)),
            nodes=batch.nodes.filter(~pl.col("node_index").is_in(self.servers)),
        )


def test_the_rack_sums_left_out_of_the_default_tier_are_what_the_docs_sum(
    topology: Topology,
) -> None:
    """The four rack sums the default tier leaves out (docs/metrics.md, "Left out too") are
    stored at the node tier, and equal the sums the docs give of the series beneath them,
    with chips and servers missing in some racks."""
    first_node_chips = range(int(topology.nodes["first_accelerator_index"][1]))
    silent = SilentChipsAndServers(topology, [*first_node_chips, 40, 41, 42], servers=[1, 7])
    snapshot = run_cycles(topology, [silent])
    rack_tier = Exposition.parse(render(topology, snapshot, "rack").body)
    node_tier = Exposition.parse(render(topology, snapshot, "node").body)
    left_out = {
        "gigawatt_rack_accelerator_power_watts",
        "gigawatt_rack_accelerators_reporting_ratio",
        "gigawatt_rack_nodes_reporting_ratio",
        "gigawatt_rack_energy_joules_total",
    }
    assert not families(rack_tier) & left_out
    assert left_out <= families(node_tier)

    def by_rack(name: str, exposition: Exposition) -> dict[str, list[float]]:
        grouped: dict[str, list[float]] = defaultdict(list)
        for labels, value in exposition.series(name):
            grouped[labels["rack"]].append(value)
        return grouped

    chip_power = by_rack("gigawatt_node_accelerator_power_watts", node_tier)
    chip_share = by_rack("gigawatt_node_accelerators_reporting_ratio", node_tier)
    servers_reporting = by_rack("gigawatt_node_power_watts", node_tier)
    servers = by_rack("gigawatt_node_accelerator_capacity_watts", node_tier)
    feed_energy = by_rack("gigawatt_feed_energy_joules_total", rack_tier)
    expected = {
        "gigawatt_rack_accelerator_power_watts": {r: sum(v) for r, v in chip_power.items()},
        "gigawatt_rack_accelerators_reporting_ratio": {
            r: sum(v) / len(v) for r, v in chip_share.items()
        },
        "gigawatt_rack_nodes_reporting_ratio": {
            r: len(servers_reporting.get(r, [])) / len(v) for r, v in servers.items()
        },
        "gigawatt_rack_energy_joules_total": {r: sum(v) for r, v in feed_energy.items()},
    }
    first_rack = topology.racks["rack"][0]
    assert expected["gigawatt_rack_accelerators_reporting_ratio"][first_rack] < 1
    assert expected["gigawatt_rack_nodes_reporting_ratio"][first_rack] < 1
    for name, per_rack in expected.items():
        stored = {labels["rack"]: value for labels, value in node_tier.series(name)}
        assert stored.keys() == per_rack.keys(), name
        for rack, value in per_rack.items():
            assert math.isclose(stored[rack], value, rel_tol=1e-6), (name, rack)


def test_building_tier_has_no_hall_row_or_rack_series(
    topology: Topology, parsed: dict[str, Exposition]
) -> None:
    exposition = parsed["building"]
    for prefix in ("gigawatt_hall_", "gigawatt_row_", "gigawatt_rack_", "gigawatt_feed_"):
        assert not {n for n in families(exposition) if n.startswith(prefix)}, prefix
    for name, series in exposition.samples.items():
        if any({"hall", "row", "rack"} & set(labels) for labels, _ in series):
            assert name in ANOMALY_FAMILIES, f"{name} has hall/row/rack series at building tier"
    buildings = topology.buildings.height
    assert len(exposition.series("gigawatt_building_it_power_watts")) == buildings
    assert len(exposition.series("gigawatt_building_pue_ratio")) == buildings
    assert len(exposition.series("gigawatt_lineup_power_watts")) == topology.lineups.height


def test_site_tier_is_site_and_self_monitoring_only(parsed: dict[str, Exposition]) -> None:
    always = {metric.name for metric in contract.enabled("site")}
    assert families(parsed["site"]) <= always
    assert "gigawatt_site_it_power_watts" in families(parsed["site"])
    assert "gigawatt_building_it_power_watts" not in families(parsed["site"])


def test_accelerator_tier_has_one_series_per_accelerator(
    topology: Topology, snapshot: Snapshot, parsed: dict[str, Exposition]
) -> None:
    exposition = parsed["accelerator"]
    series = exposition.series("gigawatt_accelerator_power_watts")
    assert topology.accelerator_count == 2048  # the demo site: 64 racks x 2 nodes x 16
    assert len(series) == topology.accelerator_count
    names = {labels["accelerator"] for labels, _ in series}
    assert len(names) == topology.accelerator_count
    for labels, _ in series:
        assert labels["accelerator"].startswith(labels["node"] + "-A")
        assert labels["node"].startswith(labels["rack"] + "-N")
    assert len(exposition.series("gigawatt_node_accelerator_power_watts")) == (
        topology.nodes.height
    )
    # One accelerator's values, looked up through its labels.
    first = topology.names("accelerator").row(0, named=True)
    power = exposition.value("gigawatt_accelerator_power_watts", **first)
    assert power is not None
    expected_power = scalar(
        snapshot.accelerators.filter(pl.col("accelerator_index") == 0), "power_watts"
    )
    assert within_sig_figs(power, expected_power)
    energy = exposition.value("gigawatt_accelerator_energy_joules_total", **first)
    assert energy == float(snapshot.accelerator_energy_joules[0])
    assert energy > 0


# --- anomaly list ----------------------------------------------------------------------------


def per_reason(exposition: Exposition, name: str) -> Counter[str]:
    return Counter(labels["reason"] for labels, _ in exposition.series(name))


def test_anomaly_list_is_bounded_by_top_k_per_reason(
    topology: Topology, parsed: dict[str, Exposition]
) -> None:
    default = PipelineConfig().top_k_anomalies
    # In a healthy demo with jobs, nothing is silent or erring: the reasons seen are the
    # ones that always rank someone, and each family shows the reasons it explains.
    stragglers = {"straggler_power", "straggler_temperature"}
    for name in ANOMALY_FAMILIES:
        counts = per_reason(parsed["rack"], name)
        if BY_NAME[name].frame == "anomaly_job":
            assert set(counts) == stragglers, name
        elif name in ("gigawatt_anomalous_accelerator_power_watts", ANOMALY_TEMPERATURE):
            assert set(counts) == {"hot", "power_outlier", *stragglers}, name
        else:
            assert not counts, name
        assert all(0 < count <= default for count in counts.values()), counts

    top_k = 3
    snapshot = run_cycles(
        topology,
        [SimulatedSource(topology)],
        cycles=1,
        config=PipelineConfig(top_k_anomalies=top_k),
    )
    exposition = Exposition.parse(render(topology, snapshot, "rack").body)
    for name in ("gigawatt_anomalous_accelerator_power_watts", ANOMALY_TEMPERATURE):
        assert per_reason(exposition, name) == {"hot": top_k, "power_outlier": top_k}
    # The hottest chip of the demo heads the "hot" list.
    hot = [
        value
        for labels, value in exposition.series("gigawatt_anomalous_accelerator_temperature_celsius")
        if labels["reason"] == "hot"
    ]
    hottest = max(hot)
    assert within_sig_figs(hottest, scalar(snapshot.site, "max_temperature_celsius"))

    none = run_cycles(
        topology, [SimulatedSource(topology)], cycles=1, config=PipelineConfig(top_k_anomalies=0)
    )
    exposition = Exposition.parse(render(topology, none, "rack").body)
    assert not exposition.series("gigawatt_anomalous_accelerator_power_watts")


def test_anomaly_labels_name_the_accelerator(
    topology: Topology, snapshot: Snapshot, parsed: dict[str, Exposition]
) -> None:
    names = topology.names("accelerator").with_row_index("accelerator_index")
    by_name = {row["accelerator"]: row for row in names.iter_rows(named=True)}
    power = dict(
        zip(
            snapshot.accelerators["accelerator_index"].to_list(),
            snapshot.accelerators["power_watts"].to_list(),
            strict=True,
        )
    )
    series = parsed["rack"].series("gigawatt_anomalous_accelerator_power_watts")
    assert series
    for labels, value in series:
        row = by_name[labels["accelerator"]]
        for level in ("building", "hall", "row", "rack", "node"):
            assert labels[level] == row[level]
        assert within_sig_figs(value, power[row["accelerator_index"]])


# --- missing values --------------------------------------------------------------------------


def test_a_silent_feed_has_no_series_and_nothing_else_is_lost(topology: Topology) -> None:
    feeds = topology.feeds
    rack0 = topology.racks.row(0, named=True)
    rack1 = topology.racks.row(1, named=True)
    rack0_feeds = feeds.filter(pl.col("rack_index") == 0)
    rack1_feeds = feeds.filter(pl.col("rack_index") == 1)
    assert rack0_feeds.height == 2 and rack1_feeds.height == 2
    silent_feed = rack0_feeds.row(0, named=True)
    live_feed = rack0_feeds.row(1, named=True)
    dropped = [silent_feed["feed_index"], *rack1_feeds["feed_index"].to_list()]

    snapshot = run_cycles(topology, [Dropping(topology, feeds=dropped)])
    silent_power = snapshot.feeds.filter(pl.col("feed_index").is_in(dropped))["power_watts"]
    assert silent_power.null_count() == len(dropped), "the snapshot should hold nulls"
    # The node tier: it also stores the racks' and feeds' headroom and utilization.
    exposition = Exposition.parse(render(topology, snapshot, "node").body)
    names = topology.names("feed").with_columns(feed_index=feeds["feed_index"])
    silent_labels = names.row(silent_feed["feed_index"], named=True)
    assert silent_labels.pop("feed_index") == silent_feed["feed_index"]
    live_labels = dict(silent_labels, feed=live_feed["feed"])

    for name in (
        "gigawatt_feed_power_watts",
        "gigawatt_feed_current_amperes",
        "gigawatt_feed_voltage_volts",
        "gigawatt_feed_utilization_ratio",
        "gigawatt_feed_meter_energy_joules_total",
    ):
        assert exposition.value(name, **silent_labels) is None, f"{name} of a silent feed"
        assert exposition.value(name, **live_labels) is not None
        assert len(exposition.series(name)) == feeds.height - len(dropped)
    # Capacity and the integrated counter are known whether or not the feed reported.
    assert exposition.value("gigawatt_feed_capacity_watts", **silent_labels) is not None
    assert len(exposition.series("gigawatt_feed_energy_joules_total")) == feeds.height

    rack0_labels = topology.names("rack").row(0, named=True)
    rack1_labels = topology.names("rack").row(1, named=True)
    assert rack0_labels["rack"] == rack0["rack"]
    # Rack 0 keeps its power: the one feed that reported.
    rack0_power = exposition.value("gigawatt_rack_power_watts", **rack0_labels)
    live_power = exposition.value("gigawatt_feed_power_watts", **live_labels)
    assert rack0_power is not None and live_power is not None
    assert within_sig_figs(rack0_power, scalar(snapshot.racks, "power_watts", 0))
    assert rack0_power == pytest.approx(live_power, rel=1e-6)
    assert exposition.value("gigawatt_rack_reporting_ratio", **rack0_labels) == 0.5
    # Rack 1 has no PDU reading at all: no power, headroom or utilization, and never a 0.
    assert rack1["rack"] == rack1_labels["rack"]
    for name in (
        "gigawatt_rack_power_watts",
        "gigawatt_rack_headroom_watts",
        "gigawatt_rack_utilization_ratio",
    ):
        assert exposition.value(name, **rack1_labels) is None, f"{name} of a silent rack"
        assert len(exposition.series(name)) == topology.racks.height - 1
    assert exposition.value("gigawatt_rack_capacity_watts", **rack1_labels) is not None
    # Its accelerators still report.
    assert exposition.value("gigawatt_rack_accelerator_power_watts", **rack1_labels) is not None
    # The site keeps its IT power: the sum of what reported.
    site_power = exposition.value("gigawatt_site_it_power_watts")
    assert site_power is not None
    assert within_sig_figs(site_power, scalar(snapshot.site, "power_watts"))
    reported = snapshot.feeds["power_watts"].drop_nulls().to_list()
    assert len(reported) == feeds.height - len(dropped)
    assert within_sig_figs(site_power, math.fsum(reported))
    assert exposition.value("gigawatt_site_reporting_ratio") == pytest.approx(
        (feeds.height - len(dropped)) / feeds.height, rel=1e-6
    )


def test_silent_building_meters_drop_facility_series_not_it_series(topology: Topology) -> None:
    snapshot = run_cycles(topology, [Dropping(topology, drop_buildings=True)])
    exposition = Exposition.parse(render(topology, snapshot, "building").body)
    building = topology.names("building").row(0, named=True)
    for name in (
        "gigawatt_building_facility_power_watts",
        "gigawatt_building_non_it_power_watts",
        "gigawatt_building_pue_ratio",
        "gigawatt_building_outdoor_temperature_celsius",
    ):
        assert exposition.value(name, **building) is None, name
    for name in (
        "gigawatt_site_facility_power_watts",
        "gigawatt_site_pue_ratio",
        "gigawatt_site_contract_headroom_watts",
        "gigawatt_site_contract_utilization_ratio",
    ):
        assert exposition.value(name) is None, name
    assert exposition.value("gigawatt_building_it_power_watts", **building) is not None
    assert exposition.value("gigawatt_site_it_power_watts") is not None
    assert exposition.value("gigawatt_site_contract_watts") == topology.site.contract_watts
    for line in exposition.text.splitlines():
        assert not line.endswith((" NaN", " +Inf", " -Inf", " nan", " inf")), line


# --- escaping --------------------------------------------------------------------------------


def test_label_column_escapes_quotes_backslashes_and_newlines() -> None:
    frame = pl.DataFrame(
        {
            "a": ['say "hi"', "C:\\path", "two\nlines", 'all\\"\n', "plain"],
            "b": ["x", "y", "z", "w", "v"],
        }
    )
    got = label_column(frame, ("a", "b")).to_list()
    assert got == [
        '{a="say \\"hi\\"",b="x"}',
        '{a="C:\\\\path",b="y"}',
        '{a="two\\nlines",b="z"}',
        '{a="all\\\\\\"\\n",b="w"}',
        '{a="plain",b="v"}',
    ]
    assert all("\n" not in value for value in got)
    # Each escaped value reads back as the original.
    text = "# TYPE m gauge\n" + "".join(f"m{labels} 1\n" for labels in got)
    [family] = text_string_to_metric_families(text)
    assert [sample.labels["a"] for sample in family.samples] == frame["a"].to_list()


def test_label_column_without_labels_is_empty_strings() -> None:
    frame = pl.DataFrame({"x": [1.0, 2.0, 3.0]})
    assert label_column(frame, ()).to_list() == ["", "", ""]


def test_a_source_name_needing_escapes_round_trips(topology: Topology) -> None:
    source = Renamed(topology)
    snapshot = run_cycles(topology, [source], cycles=1)
    rendered = render(topology, snapshot, "site")
    assert b'source="sim\\"ul\\\\ated\\nsource"' in bytes(rendered.body)
    exposition = Exposition.parse(rendered.body)
    assert exposition.value("gigawatt_source_up", source=source.name, target=source.name) == 1.0


# --- promtool and values ---------------------------------------------------------------------


@pytest.mark.parametrize("tier", ["rack", "accelerator"])
def test_promtool_check_metrics_is_clean(
    tier: str, promtool: str, rendered: dict[str, Rendered]
) -> None:
    result = subprocess.run(
        [promtool, "check", "metrics"],
        input=rendered[tier].body,
        capture_output=True,
        timeout=60,
        check=False,
    )
    output = (result.stdout + result.stderr).decode()
    assert result.returncode == 0, output
    assert output == ""


def test_values_round_trip(
    topology: Topology, snapshot: Snapshot, rendered: dict[str, Rendered]
) -> None:
    exposition = Exposition.parse(rendered["rack"].body)
    site = snapshot.site
    # Gauges in physical units: 7 significant digits.
    for name, column in (
        ("gigawatt_site_it_power_watts", "power_watts"),
        ("gigawatt_site_facility_power_watts", "facility_power_watts"),
        ("gigawatt_site_pue_ratio", "pue_ratio"),
        ("gigawatt_site_it_headroom_watts", "headroom_watts"),
    ):
        got = exposition.value(name)
        assert got is not None
        assert within_sig_figs(got, scalar(site, column)), (name, got, scalar(site, column))
    assert exposition.value("gigawatt_site_contract_watts") == topology.site.contract_watts
    # Counters: every digit.
    it_energy = scalar(site, "energy_joules")
    assert it_energy > 0
    assert exposition.value("gigawatt_site_it_energy_joules_total") == it_energy
    assert exposition.value("gigawatt_site_facility_energy_joules_total") == scalar(
        site, "facility_energy_joules"
    )
    feed = topology.names("feed").row(0, named=True)
    meter = scalar(snapshot.feeds, "meter_energy_joules")
    assert meter != float(f"{meter:.7g}"), "pick a counter that needs more than 7 digits"
    assert exposition.value("gigawatt_feed_meter_energy_joules_total", **feed) == meter
    assert exposition.value("gigawatt_cycles_total") == snapshot.cycles == 2
    assert exposition.value("gigawatt_last_cycle_timestamp_seconds") == snapshot.timestamp
    accepted = {
        (row["source"], row["kind"]): row["samples"] for row in snapshot.accepted.to_dicts()
    }
    for labels, value in exposition.series("gigawatt_samples_accepted_total"):
        assert value == accepted[(labels["source"], labels["kind"])]
    assert exposition.value("gigawatt_source_up", source="simulated", target="simulated") == 1.0
    assert exposition.value("gigawatt_build_info", version="9.9.9-test") == 1.0


def test_every_rack_and_feed_value_lands_on_its_own_labels(
    topology: Topology, snapshot: Snapshot, parsed: dict[str, Exposition]
) -> None:
    """Values are matched to names through the entity index, not through row order."""
    rack_names = topology.racks["rack"]
    expected = {
        rack_names[index]: power
        for index, power in snapshot.racks.select("rack_index", "power_watts").iter_rows()
    }
    series = parsed["rack"].series("gigawatt_rack_power_watts")
    assert len(series) == len(expected) == topology.racks.height
    for labels, value in series:
        assert within_sig_figs(value, expected[labels["rack"]]), labels

    feed_names = topology.names("feed")
    feed_power = {
        tuple(feed_names.row(index)): power
        for index, power in snapshot.feeds.select("feed_index", "power_watts").iter_rows()
    }
    series = parsed["rack"].series("gigawatt_feed_power_watts")
    assert len(series) == len(feed_power) == topology.feeds.height
    for labels, value in series:
        key = tuple(labels[name] for name in feed_names.columns)
        assert within_sig_figs(value, feed_power[key]), labels


def test_gauges_are_rounded_and_counters_are_not(rendered: dict[str, Rendered]) -> None:
    digits: dict[str, int] = defaultdict(int)
    for line in rendered["rack"].text().splitlines():
        if line.startswith("#"):
            continue
        match = SAMPLE.match(line)
        assert match
        mantissa = match["value"].lower().split("e")[0].lstrip("-").replace(".", "")
        digits[match["name"]] = max(digits[match["name"]], len(mantissa.strip("0")))
    for name, most in digits.items():
        metric = BY_NAME[name]
        if metric.type == "gauge" and metric.unit in {"watts", "celsius", "ratio", "volts"}:
            assert most <= 7, f"{name} has {most} significant digits"
    assert digits["gigawatt_feed_meter_energy_joules_total"] > 7


def test_self_monitoring_reflects_the_previous_render(
    topology: Topology, snapshot: Snapshot
) -> None:
    renderer = Renderer(topology, "rack")
    first = renderer.render(snapshot)
    exposition = Exposition.parse(first.body)
    # Nothing to report before a previous render: no line rather than a 0.
    assert exposition.value("gigawatt_exposed_series") is None
    assert exposition.value("gigawatt_exposition_render_duration_seconds") is None
    second = renderer.render(snapshot, first)
    exposition = Exposition.parse(second.body)
    assert exposition.value("gigawatt_exposed_series") == first.series
    assert exposition.value("gigawatt_exposition_render_duration_seconds") == first.seconds
    assert second.series == first.series + 1  # the render-duration gauge joined


def test_job_series(snapshot: Snapshot, parsed: dict[str, Exposition]) -> None:
    exposition = parsed["site"]  # jobs are always on
    jobs = snapshot.jobs
    assert jobs.height > 0, "the job model should run jobs on the demo site"
    power = exposition.series("gigawatt_job_power_watts")
    assert {labels["training_job"] for labels, _ in power} == set(
        jobs.drop_nulls("power_watts")["job"].to_list()
    )
    states = exposition.series("gigawatt_job_state")
    assert sorted((labels["training_job"], labels["state"]) for labels, _ in states) == sorted(
        zip(jobs["job"].to_list(), jobs["state"].to_list(), strict=True)
    )
    assert all(value == 1.0 for _, value in states)
    for row in jobs.iter_rows(named=True):
        accelerators = exposition.value("gigawatt_job_accelerators", training_job=row["job"])
        assert accelerators == row["accelerators"]
    # Attribution: job energy and unallocated energy together are the site's IT energy.
    job = exposition.value("gigawatt_site_job_energy_joules_total")
    unallocated = exposition.value("gigawatt_site_unallocated_energy_joules_total")
    it = exposition.value("gigawatt_site_it_energy_joules_total")
    assert job is not None and unallocated is not None and it is not None
    assert job > 0
    assert job + unallocated == pytest.approx(it, rel=1e-9)
    per_job = sum(value for _, value in exposition.series("gigawatt_job_energy_joules_total"))
    assert per_job <= job * (1 + 1e-9)
