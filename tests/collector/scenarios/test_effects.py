"""What each event does to a batch of the simulated demo: one test per kind, each checking
that the layers (chips, BMCs, PDU feeds, fast meters) tell the same story."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from collector.scenarios import Incidents, Scenario, parse_scenario
from collector.site.model import load_preset
from collector.site.topology import Topology, build_topology
from collector.sources.base import SampleBatch
from collector.sources.simulated import SimulatedSource, SimulationConfig

START = 1_776_000_000.0  # the run starts here
AT = 20.0  # every event starts 20 s into the run
NOW = START + 80.0  # the batch is read 80 s in: events have acted for 60 s
SINCE = NOW - 10.0  # the read before (fast meters: 200 samples each)


@pytest.fixture(scope="module")
def demo() -> Topology:
    return build_topology(load_preset("demo"))


@pytest.fixture(scope="module")
def batch(demo: Topology) -> SampleBatch:
    source = SimulatedSource(demo, SimulationConfig(workload="jobs"))
    source.read(SINCE)
    return source.read(NOW)


def scenario(demo: Topology, event: str) -> Scenario:
    return parse_scenario(f"events:\n  - {event}\n", demo, ["simulated"])


def play(demo: Topology, batch: SampleBatch, event: str, now: float = NOW) -> SampleBatch:
    return Incidents(demo, scenario(demo, event), START).apply(batch, now, SINCE)


def total(frame: pl.DataFrame) -> float:
    return float(frame["power_watts"].sum())


def feed_power(frame: pl.DataFrame, feeds: list[int]) -> list[float]:
    by_index = dict(zip(frame["feed_index"], frame["power_watts"], strict=True))
    return [by_index[feed] for feed in feeds]


def meter_mean(batch: SampleBatch, meter: str) -> float:
    return float(batch.meters.filter(pl.col("meter") == meter)["power_watts"].mean())  # type: ignore[arg-type]


def rack_feeds(demo: Topology, rack: str) -> list[int]:
    index = demo.racks.filter(pl.col("rack") == rack)["rack_index"][0]
    return demo.feeds.filter(pl.col("rack_index") == index)["feed_index"].to_list()


def test_nothing_under_way_leaves_the_batch_as_it_is(demo: Topology, batch: SampleBatch) -> None:
    later = play(demo, batch, "{kind: site_surge, ratio: 2, at: 10m}")
    assert later is batch
    ended = play(demo, batch, "{kind: site_surge, ratio: 2, at: 5s, duration: 10s}")
    assert ended is batch


def test_rack_overload_scales_feeds_and_servers_and_the_meters_follow(
    demo: Topology, batch: SampleBatch
) -> None:
    feeds = rack_feeds(demo, "B01-H1-R02-K05")
    before = sum(feed_power(batch.feeds, feeds))
    after = play(demo, batch, "{kind: rack_overload, rack: B01-H1-R02-K05, watts: 33000, at: 20s}")
    assert sum(feed_power(after.feeds, feeds)) == pytest.approx(33_000.0)
    factor = 33_000.0 / before
    rack = demo.racks.filter(pl.col("rack") == "B01-H1-R02-K05")["rack_index"][0]
    nodes = demo.nodes.filter(pl.col("rack_index") == rack)["node_index"].to_list()
    assert after.nodes["power_watts"].gather(nodes).to_list() == pytest.approx(
        (batch.nodes["power_watts"].gather(nodes) * factor).to_list()
    )
    others = [f for f in range(demo.feeds.height) if f not in feeds]
    assert feed_power(after.feeds, others) == feed_power(batch.feeds, others)
    assert meter_mean(after, "poi") - meter_mean(batch, "poi") == pytest.approx(33_000 - before)
    assert meter_mean(after, "B01") - meter_mean(batch, "B01") == pytest.approx(33_000 - before)
    assert_frame_equal(after.accelerators, batch.accelerators)


def test_a_tripped_feed_reads_zero_and_the_other_carries_the_rack(
    demo: Topology, batch: SampleBatch
) -> None:
    a, b = rack_feeds(demo, "B01-H1-R03-K01")
    power_a, power_b = feed_power(batch.feeds, [a, b])
    after = play(demo, batch, "{kind: feed_trip, rack: B01-H1-R03-K01, feed: A, at: 20s}")
    assert feed_power(after.feeds, [a, b]) == [0.0, pytest.approx(power_a + power_b)]
    current = dict(zip(after.feeds["feed_index"], after.feeds["current_amps"], strict=True))
    assert current[a] == 0.0
    assert current[b] == pytest.approx(
        batch.feeds["current_amps"][b] * (power_a + power_b) / power_b
    )
    # The load moves from lineup A to lineup B; the building and the site see nothing.
    assert meter_mean(after, "B01-A") - meter_mean(batch, "B01-A") == pytest.approx(-power_a)
    assert meter_mean(after, "B01-B") - meter_mean(batch, "B01-B") == pytest.approx(power_a)
    assert meter_mean(after, "poi") == pytest.approx(meter_mean(batch, "poi"))


def test_a_silent_pdu_is_gone_and_nothing_else_changes(demo: Topology, batch: SampleBatch) -> None:
    _, b = rack_feeds(demo, "B01-H1-R03-K02")
    after = play(demo, batch, "{kind: pdu_silent, rack: B01-H1-R03-K02, feed: B, at: 20s}")
    assert after.feeds.height == batch.feeds.height - 1
    assert b not in after.feeds["feed_index"].to_list()
    assert_frame_equal(after.meters, batch.meters)


def test_an_overheating_chip_reads_its_temperature(demo: Topology, batch: SampleBatch) -> None:
    event = "{kind: accelerator_overheat, accelerator: B01-H1-R01-K01-N1-A03, celsius: 97}"
    after = play(demo, batch, event)
    assert after.accelerators["temperature_celsius"][3] == 97.0
    assert (
        after.accelerators["temperature_celsius"][4] == batch.accelerators["temperature_celsius"][4]
    )


def test_a_silent_chip_has_no_rows(demo: Topology, batch: SampleBatch) -> None:
    after = play(demo, batch, "{kind: accelerator_silent, accelerator: B01-H1-R01-K01-N1-A04}")
    assert 4 not in after.accelerators["accelerator_index"].to_list()
    assert 4 not in after.accelerator_errors["accelerator_index"].to_list()
    assert after.accelerators.height == batch.accelerators.height - 1


def test_errors_count_per_minute_from_the_start_and_stay_after_the_end(
    demo: Topology, batch: SampleBatch
) -> None:
    event = "{kind: accelerator_errors, accelerator: B01-H1-R01-K01-N2-A00, per_minute: 5, "
    incidents = Incidents(demo, scenario(demo, event + "at: 20s, duration: 2m}"), START)

    def count(elapsed: float) -> float:
        errors = incidents.apply(batch, START + elapsed, SINCE).accelerator_errors
        return float(errors.filter(pl.col("accelerator_index") == 16)["ecc_errors"][0])

    assert [count(t) for t in (10.0, 20.0, 44.0, 80.0, 140.0, 600.0)] == [0, 0, 2, 5, 10, 10]
    after = incidents.apply(batch, NOW, SINCE).accelerator_errors
    assert after.filter(pl.col("accelerator_index") != 16)["ecc_errors"].sum() == 0
    assert after["xid_errors"].sum() == 0


def test_a_straggler_draws_its_ratio_and_its_server_and_rack_draw_less(
    demo: Topology, batch: SampleBatch
) -> None:
    chip = 32 + 7  # B01-H1-R01-K02-N1-A07: rack 1, node 2
    after = play(
        demo, batch, "{kind: straggler, accelerator: B01-H1-R01-K02-N1-A07, power_ratio: 0.5}"
    )
    power = batch.accelerators["power_watts"][chip]
    assert after.accelerators["power_watts"][chip] == pytest.approx(power / 2)
    lost = power / 2
    assert after.nodes["power_watts"][2] == pytest.approx(batch.nodes["power_watts"][2] - lost)
    feeds = rack_feeds(demo, "B01-H1-R01-K02")
    efficiency = demo.racks["conversion_efficiency"][1]
    assert sum(feed_power(after.feeds, feeds)) == pytest.approx(
        sum(feed_power(batch.feeds, feeds)) - lost / efficiency
    )
    assert meter_mean(after, "poi") - meter_mean(batch, "poi") == pytest.approx(-lost / efficiency)


def test_a_hall_without_cooling_heats_while_its_load_holds(
    demo: Topology, batch: SampleBatch
) -> None:
    after = play(demo, batch, "{kind: cooling_failure, hall: B01-H2, celsius_per_minute: 1.5}")
    hall = demo.racks["hall_index"].gather(demo.accelerators["rack_index"]) == 1
    rise = after.accelerators["temperature_celsius"] - batch.accelerators["temperature_celsius"]
    assert rise.filter(hall).to_list() == pytest.approx([1.5 * 80 / 60] * int(hall.sum()))
    assert rise.filter(~hall).abs().max() == 0.0
    assert_frame_equal(after.feeds, batch.feeds)
    # An hour on, each chip holds 10 °C past its 95 °C limit, where it would trip.
    later = play(
        demo,
        batch,
        "{kind: cooling_failure, hall: B01-H2, celsius_per_minute: 1.5}",
        now=START + 3600.0,
    )
    assert later.accelerators["temperature_celsius"].filter(hall).max() == 105.0


def test_a_building_outage_darkens_its_racks_and_its_meters(
    demo: Topology, batch: SampleBatch
) -> None:
    after = play(demo, batch, "{kind: building_outage, building: B01, at: 20s, duration: 2m}")
    assert (after.feeds.height, after.nodes.height, after.accelerators.height) == (0, 0, 0)
    assert after.accelerator_errors.height == 0
    assert after.buildings["non_it_power_watts"].to_list() == [0.0]
    for meter in ("B01", "B01-A", "B01-B"):
        assert after.meters.filter(pl.col("meter") == meter)["power_watts"].max() == 0.0
    # The point of interconnection loses what the building's meter read (the demo's one
    # building: all but the two meters' own noise).
    poi, building = (
        batch.meters.filter(pl.col("meter") == meter)["power_watts"] for meter in ("poi", "B01")
    )
    assert after.meters.filter(pl.col("meter") == "poi")["power_watts"].to_list() == (
        pytest.approx((poi - building).to_list())
    )


def test_a_load_step_moves_the_meter_from_its_time_and_the_feeds_by_its_mean(
    demo: Topology, batch: SampleBatch
) -> None:
    # At 75 s: the last 5 s of the 10 s interval have it.
    after = play(demo, batch, "{kind: load_step, meter: poi, delta_watts: -300000, at: 75s}")
    times = batch.meters.filter(pl.col("meter") == "poi")["timestamp_seconds"]
    shift = (
        after.meters.filter(pl.col("meter") == "poi")["power_watts"]
        - batch.meters.filter(pl.col("meter") == "poi")["power_watts"]
    )
    stepped = (times - START) >= 75.0
    assert shift.filter(stepped).to_list() == pytest.approx([-300_000.0] * int(stepped.sum()))
    assert shift.filter(~stepped).abs().max() == 0.0
    # The feeds move by the mean of what the meter shows over the interval (101 of its 200
    # samples, 75.00 s to 80.00 s, have the step), so both paths tell the same story.
    mean = -300_000.0 * 101 / 200
    assert float(shift.mean()) == pytest.approx(mean)  # type: ignore[arg-type]
    assert total(after.feeds) - total(batch.feeds) == pytest.approx(mean)
    # The lineups share the step as they share the load.
    lineup_a = meter_mean(after, "B01-A") - meter_mean(batch, "B01-A")
    lineup_b = meter_mean(after, "B01-B") - meter_mean(batch, "B01-B")
    assert lineup_a + lineup_b == pytest.approx(mean)
    assert lineup_a < 0 and lineup_b < 0


def test_an_oscillation_is_a_sine_on_the_meters_and_its_mean_on_the_feeds(
    demo: Topology, batch: SampleBatch
) -> None:
    event = "{kind: oscillation, meter: B01-A, frequency_hz: 0.6, peak_to_peak_watts: 40000}"
    after = play(demo, batch, event)
    poi = batch.meters.filter(pl.col("meter") == "poi")
    added = after.meters.filter(pl.col("meter") == "poi")["power_watts"] - poi["power_watts"]
    relative = poi["timestamp_seconds"] - START
    expected = 20_000.0 * np.sin(2 * np.pi * 0.6 * relative.to_numpy())
    assert added.to_list() == pytest.approx(expected.tolist(), abs=1e-3)
    lineup_b = after.meters.filter(pl.col("meter") == "B01-B")["power_watts"]
    assert_frame_equal(
        pl.DataFrame({"p": lineup_b}),
        pl.DataFrame({"p": batch.meters.filter(pl.col("meter") == "B01-B")["power_watts"]}),
    )
    # The feeds under lineup A gain the mean of the sine over the samples, nothing else.
    assert total(after.feeds) - total(batch.feeds) == pytest.approx(
        float(expected.mean()), abs=1e-6
    )
    lineup_b_feeds = demo.feeds.filter(pl.col("feed") == "B")["feed_index"].to_list()
    assert feed_power(after.feeds, lineup_b_feeds) == feed_power(batch.feeds, lineup_b_feeds)


def test_without_fast_samples_a_meter_event_gives_the_feeds_its_exact_interval_mean(
    demo: Topology, batch: SampleBatch
) -> None:
    steady = replace(batch, meters=batch.meters.clear())
    event = "{kind: oscillation, meter: poi, frequency_hz: 0.6, peak_to_peak_watts: 40000}"
    after = play(demo, steady, event)
    omega = 2 * math.pi * 0.6
    mean = 20_000.0 * (math.cos(omega * 70.0) - math.cos(omega * 80.0)) / omega / 10.0
    assert total(after.feeds) - total(batch.feeds) == pytest.approx(mean, abs=1e-6)


def test_a_site_surge_scales_every_load_but_the_chips_own_reports(
    demo: Topology, batch: SampleBatch
) -> None:
    after = play(demo, batch, "{kind: site_surge, ratio: 1.6}")
    for frame, column in (
        ("feeds", "power_watts"),
        ("feeds", "current_amps"),
        ("nodes", "power_watts"),
        ("buildings", "non_it_power_watts"),
        ("meters", "power_watts"),
    ):
        surged = getattr(after, frame)[column]
        assert surged.to_list() == pytest.approx((getattr(batch, frame)[column] * 1.6).to_list())
    assert_frame_equal(after.accelerators, batch.accelerators)


def test_an_overreporting_bmc_moves_alone(demo: Topology, batch: SampleBatch) -> None:
    after = play(demo, batch, "{kind: bmc_overreport, node: B01-H1-R01-K03-N1, ratio: 1.3}")
    assert after.nodes["power_watts"][4] == pytest.approx(batch.nodes["power_watts"][4] * 1.3)
    assert_frame_equal(after.feeds, batch.feeds)
    assert_frame_equal(after.meters, batch.meters)


def test_the_same_scenario_and_reads_give_the_same_batch(
    demo: Topology, batch: SampleBatch
) -> None:
    text = "\n".join(
        line
        for line in (
            "{kind: straggler, accelerator: B01-H1-R01-K02-N1-A07, power_ratio: 0.5}",
            "{kind: oscillation, meter: poi, frequency_hz: 0.6, peak_to_peak_watts: 40000}",
            "{kind: feed_trip, rack: B01-H1-R03-K01, feed: A}",
        )
    )
    events = parse_scenario(
        "events:\n" + "".join(f"  - {e}\n" for e in text.splitlines()), demo, []
    )
    first = Incidents(demo, events, START).apply(batch, NOW, SINCE)
    second = Incidents(demo, events, START).apply(batch, NOW, SINCE)
    for name in ("accelerators", "nodes", "feeds", "meters"):
        assert_frame_equal(getattr(first, name), getattr(second, name))
