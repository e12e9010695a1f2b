"""The state directory: counters saved atomically and continued after a restart; a file of
another site, another format or a corrupt one set aside, never trusted; one process per
folder."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector.pipeline import Pipeline
from collector.site.model import load_preset
from collector.site.topology import Topology, build_topology
from collector.sources.simulated import SimulatedSource, SimulationConfig
from collector.state import (
    STATE_FILE,
    STATE_FORMAT,
    Counters,
    Identity,
    StateError,
    StateStore,
    default_state_dir,
)

START = 1_760_000_000.0


@pytest.fixture(scope="module")
def demo() -> Topology:
    return build_topology(load_preset("demo"))


def identity(topology: Topology, site: str | None = None) -> Identity:
    sizes = {
        "accelerator": topology.accelerators.height,
        "feed": topology.feeds.height,
        "building": topology.buildings.height,
        "rack": topology.racks.height,
    }
    names = topology.buildings.get_column("building").to_list()
    return Identity.of(site or topology.site.name, names, sizes)


def pipeline(topology: Topology, clock: list[float]) -> Pipeline:
    source = SimulatedSource(topology, SimulationConfig(seed=1))
    return Pipeline(topology, [source], clock=lambda: clock[0])


def run(cycles: int, flow: Pipeline, clock: list[float]) -> None:
    for _ in range(cycles):
        flow.run_cycle(analyze_grid=False)
        clock[0] += 10.0


def test_restored_counters_continue_and_the_downtime_is_a_gap(
    demo: Topology, tmp_path: Path
) -> None:
    clock = [START]
    first = pipeline(demo, clock)
    run(3, first, clock)
    stored = first.counters()
    with StateStore(tmp_path, identity(demo), "test").open() as store:
        assert store.save(stored)
        assert not list(tmp_path.glob(f"{STATE_FILE}.tmp-*"))  # renamed into place
        loaded = store.load()
    assert loaded is not None
    for kind in ("accelerator", "feed", "building"):
        np.testing.assert_array_equal(loaded.energy_joules[kind], stored.energy_joules[kind])
    assert loaded.accepted == stored.accepted

    clock[0] += 3600.0  # an hour down
    second = pipeline(demo, clock)
    second.restore(loaded)
    run(1, second, clock)  # the first cycle after the restart integrates nothing
    after_first = second.counters().energy_joules["feed"]
    np.testing.assert_array_equal(after_first, stored.energy_joules["feed"])
    run(1, second, clock)  # then it goes on from the stored values
    after_second = second.counters().energy_joules["feed"]
    assert np.all(after_second >= stored.energy_joules["feed"])
    assert after_second.sum() > stored.energy_joules["feed"].sum()
    # Never the energy of the hour down: at most a cycle's worth at the feeds' capacity.
    assert after_second.sum() - stored.energy_joules["feed"].sum() < 10.0 * float(
        demo.feeds["capacity_watts"].sum()
    )
    accepted_before = sum(stored.accepted.values())
    assert sum(second.counters().accepted.values()) > accepted_before


def set_aside(tmp_path: Path) -> list[Path]:
    return sorted(tmp_path.glob(f"{STATE_FILE}.set-aside-*"))


def test_a_state_of_another_site_is_set_aside(demo: Topology, tmp_path: Path) -> None:
    clock = [START]
    flow = pipeline(demo, clock)
    run(2, flow, clock)
    with StateStore(tmp_path, identity(demo, site="elsewhere"), "test").open() as other:
        other.save(flow.counters())
    with StateStore(tmp_path, identity(demo), "test").open() as store:
        assert store.load() is None
    assert len(set_aside(tmp_path)) == 1 and not (tmp_path / STATE_FILE).exists()


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data[: len(data) // 2],  # cut short
        lambda data: b"\x00" * len(data),
        lambda data: b"",
    ],
    ids=["truncated", "zeroed", "empty"],
)
def test_a_corrupt_state_is_set_aside(demo: Topology, tmp_path: Path, damage: object) -> None:
    clock = [START]
    flow = pipeline(demo, clock)
    run(2, flow, clock)
    with StateStore(tmp_path, identity(demo), "test").open() as store:
        store.save(flow.counters())
        path = tmp_path / STATE_FILE
        path.write_bytes(damage(path.read_bytes()))  # type: ignore[operator]
        assert store.load() is None
    assert len(set_aside(tmp_path)) == 1


def test_a_state_of_another_format_is_set_aside(demo: Topology, tmp_path: Path) -> None:
    clock = [START]
    flow = pipeline(demo, clock)
    run(2, flow, clock)
    with StateStore(tmp_path, identity(demo), "test").open() as store:
        store.save(flow.counters())
        path = tmp_path / STATE_FILE
        with np.load(path) as stored:
            arrays = {name: stored[name] for name in stored.files}
        header = bytes(arrays["header"]).replace(
            f'"format": {STATE_FORMAT}'.encode(), b'"format": 99'
        )
        arrays["header"] = np.frombuffer(header, dtype=np.uint8)
        with path.open("wb") as stream:
            np.savez(stream, **arrays)
        assert store.load() is None
    assert len(set_aside(tmp_path)) == 1


def test_one_process_per_state_directory(demo: Topology, tmp_path: Path) -> None:
    with (
        StateStore(tmp_path, identity(demo), "test").open(),
        pytest.raises(StateError, match="in use by another gigawatt process"),
    ):
        StateStore(tmp_path, identity(demo), "test").open()
    StateStore(tmp_path, identity(demo), "test").open().close()  # released on close


def test_the_default_state_directory_follows_xdg() -> None:
    assert default_state_dir("demo", {"XDG_STATE_HOME": "/x"}) == Path("/x/gigawatt/demo")
    assert default_state_dir("a/b c", {"XDG_STATE_HOME": "/x"}) == Path("/x/gigawatt/a_b_c")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=2000), keep=st.integers(min_value=0, max_value=4000))
def test_any_bytes_in_the_state_file_are_read_or_set_aside(data: bytes, keep: int) -> None:
    topology_sizes = {"accelerator": 2, "feed": 2, "building": 1, "rack": 1}
    ident = Identity.of("fuzz", ["B01"], topology_sizes)
    with tempfile.TemporaryDirectory() as folder:
        store = StateStore(Path(folder), ident, "test").open()
        try:
            good = Counters(
                energy_joules={
                    k: np.ones(topology_sizes[k]) for k in ("accelerator", "feed", "building")
                },
                rack_energy_joules=np.ones(1),
            )
            store.save(good)
            whole = (Path(folder) / STATE_FILE).read_bytes()
            (Path(folder) / STATE_FILE).write_bytes(whole[:keep] + data)
            loaded = store.load()
            assert loaded is None or loaded.energy_joules["feed"].size == 2
        finally:
            store.close()
