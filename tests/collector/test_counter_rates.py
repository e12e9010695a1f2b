"""Power from energy counters: hand-built readings across cycles."""

from __future__ import annotations

import polars as pl
import pytest

from collector import schemas
from collector.counter_rates import CounterRates

Row = tuple[str, str | None, str, str, float, float | None]


def readings(*rows: Row) -> pl.DataFrame:
    """READINGS from (target, host, device, metric, value, timestamp)."""
    return pl.DataFrame(
        {
            "source": "prometheus",
            "target": [row[0] for row in rows],
            "host": [row[1] for row in rows],
            "device": [row[2] for row in rows],
            "device_kind": "cpu_package",
            "metric": [row[3] for row in rows],
            "value": [row[4] for row in rows],
            "unit": ["joules" if row[3] == "energy_joules" else "watts" for row in rows],
            "estimated": False,
            "timestamp_seconds": [row[5] for row in rows],
        },
        schema=dict(schemas.READINGS),
    )


def rapl(joules: float, at: float | None = None, device: str = "intel-rapl:0") -> Row:
    return ("http://gpu-1:9100/metrics", "gpu-1", device, "energy_joules", joules, at)


def powers(frame: pl.DataFrame) -> dict[str, float]:
    assert frame.schema == pl.Schema(schemas.READINGS)
    assert (frame["metric"] == "power_watts").all()
    return dict(zip(frame["device"].to_list(), frame["value"].to_list(), strict=True))


def test_the_first_reading_is_a_base_and_the_second_a_power() -> None:
    rates = CounterRates()
    first, problems = rates.derive(readings(rapl(240_422.366267)), now=100.0)
    assert first.height == 0  # one value is no rate: missing, not 0
    assert problems.height == 0
    second, _ = rates.derive(readings(rapl(240_422.366267 + 1_500.0)), now=110.0)
    assert powers(second) == {"intel-rapl:0": pytest.approx(150.0)}
    assert second["timestamp_seconds"].to_list() == [110.0]
    assert second["device_kind"].to_list() == ["cpu_package"]


def test_the_readings_own_timestamps_win_over_the_cycle_clock() -> None:
    rates = CounterRates()
    rates.derive(readings(rapl(1_000.0, at=95.0)), now=100.0)
    derived, _ = rates.derive(readings(rapl(1_400.0, at=103.0)), now=110.0)
    assert powers(derived) == {"intel-rapl:0": pytest.approx(50.0)}


def test_a_counter_that_goes_down_is_a_reset_and_the_next_interval_counts_again() -> None:
    rates = CounterRates()
    rates.derive(readings(rapl(5_000.0)), now=100.0)
    derived, problems = rates.derive(readings(rapl(20.0)), now=110.0)
    assert derived.height == 0
    assert problems.schema == pl.Schema(schemas.PROBLEMS)
    assert problems.select("location", "reason").rows() == [("intel-rapl:0", "counter_reset")]
    assert "5000.0 J to 20.0 J" in problems["message"][0]
    derived, problems = rates.derive(readings(rapl(1_020.0)), now=120.0)
    assert powers(derived) == {"intel-rapl:0": pytest.approx(100.0)}
    assert problems.height == 0


def test_a_repeated_scrape_time_yields_nothing_and_keeps_the_base() -> None:
    rates = CounterRates()
    rates.derive(readings(rapl(1_000.0, at=100.0)), now=100.0)
    derived, _ = rates.derive(readings(rapl(1_000.0, at=100.0)), now=105.0)
    assert derived.height == 0
    derived, _ = rates.derive(readings(rapl(2_000.0, at=110.0)), now=110.0)
    assert powers(derived) == {"intel-rapl:0": pytest.approx(100.0)}


def test_devices_with_their_own_power_get_no_derived_figure() -> None:
    rates = CounterRates()
    gpu = ("http://gpu-1:9400/metrics", "gpu-1", "GPU-1", "energy_joules")
    gpu_power = ("http://gpu-1:9400/metrics", "gpu-1", "GPU-1", "power_watts", 300.0, None)
    for now, joules in ((100.0, 0.0), (110.0, 3_000.0)):
        derived, _ = rates.derive(readings((*gpu, joules, None), gpu_power, rapl(joules)), now=now)
    assert powers(derived) == {"intel-rapl:0": pytest.approx(300.0)}


def test_a_counter_silent_longer_than_the_gap_starts_again() -> None:
    rates = CounterRates(max_gap_seconds=60.0)
    rates.derive(readings(rapl(1_000.0)), now=100.0)
    rates.derive(readings(), now=150.0)
    derived, _ = rates.derive(readings(rapl(9_000.0)), now=200.0)
    assert derived.height == 0  # 100 s since the base: a new base, not one flat average
    derived, _ = rates.derive(readings(rapl(9_500.0)), now=210.0)
    assert powers(derived) == {"intel-rapl:0": pytest.approx(50.0)}


def test_a_short_silence_averages_over_the_whole_interval() -> None:
    rates = CounterRates(max_gap_seconds=60.0)
    rates.derive(readings(rapl(1_000.0)), now=100.0)
    rates.derive(readings(), now=110.0)  # the target was down this cycle
    derived, _ = rates.derive(readings(rapl(3_000.0)), now=120.0)
    assert powers(derived) == {"intel-rapl:0": pytest.approx(100.0)}


def test_hosts_and_devices_are_kept_apart() -> None:
    rates = CounterRates()
    other = ("http://gpu-2:9100/metrics", "gpu-2", "intel-rapl:0", "energy_joules")
    rates.derive(
        readings(rapl(0.0), rapl(0.0, device="intel-rapl:1"), (*other, 0.0, None)), now=100.0
    )
    derived, _ = rates.derive(
        readings(rapl(100.0), rapl(200.0, device="intel-rapl:1"), (*other, 300.0, None)),
        now=110.0,
    )
    by_host = {
        (host, device): value
        for host, device, value in derived.select("host", "device", "value").rows()
    }
    assert by_host == {
        ("gpu-1", "intel-rapl:0"): pytest.approx(10.0),
        ("gpu-1", "intel-rapl:1"): pytest.approx(20.0),
        ("gpu-2", "intel-rapl:0"): pytest.approx(30.0),
    }


def test_bad_max_gap_is_refused() -> None:
    with pytest.raises(ValueError, match="max_gap_seconds"):
        CounterRates(max_gap_seconds=0.0)
