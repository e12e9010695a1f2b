"""The registry of source kinds: a kind written in one module (tests/collector/sources/
fixture_kind.py) and registered with one line is read by ``gigawatt probe`` and built from a
collectors file, with no other module touched."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from collector.collectors import CollectorsError, build_sources, parse_collectors
from collector.pipeline import Pipeline
from collector.site.model import load_preset
from collector.site.topology import Topology, build_topology
from collector.sources import registry
from collector.sources.base import Source
from collector.sources.plugin import BuildContext, SourceKind, SourceSpec
from collector.sources.readings_source import ReadingsSource
from collector.sources.simulated import SimulatedSource
from exporters.cli import app
from tests.collector.sources import fixture_kind
from tests.collector.sources.fixture_kind import FIXTURE_KIND, MeterSpec


@pytest.fixture
def meter_kind() -> Iterator[None]:
    fixture_kind.BUILT.clear()
    registry.register(FIXTURE_KIND)  # the one line a new kind adds to the registry
    try:
        yield
    finally:
        registry.unregister(FIXTURE_KIND.name)


@pytest.fixture(scope="module")
def demo() -> Topology:
    return build_topology(load_preset("demo"))


def gigawatt(*args: str) -> tuple[int, str, str]:
    """The command in this process: exit code, stdout, stderr."""
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200", "NO_COLOR": "1"})
    return result.exit_code, result.stdout, result.stderr


def test_every_kind_is_named_by_its_spec_once() -> None:
    names = registry.names()
    assert len(set(names)) == len(names)
    assert {"prometheus", "redfish", "neuron", "nvml", "sysfs", "simulated"} <= set(names)
    assert "fixture-meter" not in names  # only while a test registers it


def test_a_registered_kind_is_probed_and_its_readings_printed(meter_kind: None) -> None:
    code, out, err = gigawatt("probe", "fixture-meter", "pdu-7=2500.5")
    assert (code, err) == (0, "")
    [reading] = [json.loads(line) for line in out.splitlines()]
    assert reading["type"] == "reading"
    assert (reading["device"], reading["metric"], reading["value"]) == (
        "pdu-7",
        "power_watts",
        2500.5,
    )

    code, out, _ = gigawatt("probe", "fixture-meter", "pdu-7=2500.5", "--format", "table")
    assert code == 0
    assert out.splitlines()[-1] == "1 readings, 0 problems"


def test_a_registered_kinds_probe_errors_and_options_follow_its_declaration(
    meter_kind: None,
) -> None:
    code, out, err = gigawatt("probe", "fixture-meter", "pdu-7")
    assert (code, out) == (2, "")
    assert "gigawatt probe: pdu-7: give DEVICE=WATTS" in err

    code, _, err = gigawatt("probe", "fixture-meter", "pdu-7=1", "--timeout", "2")
    assert code == 0, err  # it declares --timeout
    code, _, err = gigawatt("probe", "fixture-meter", "pdu-7=1", "--exporter", "dcgm")
    assert code == 2
    assert "--exporter applies to prometheus only, not fixture-meter" in err
    code, _, err = gigawatt("probe", "prometheus", "http://127.0.0.1:9/", "--username-env", "U")
    assert "--username-env applies to redfish only, not prometheus" in err

    code, _, err = gigawatt("probe", "fixture-meter")
    assert code == 2
    assert "fixture-meter needs a TARGET" in err  # it declares no default target


def test_a_kind_is_refused_once_unregistered() -> None:
    code, _, err = gigawatt("probe", "fixture-meter", "pdu-7=1")
    assert code == 2
    assert "'fixture-meter' is not one of 'prometheus'" in err


def test_a_registered_kind_is_built_from_a_collectors_file(
    meter_kind: None, demo: Topology, tmp_path: Path
) -> None:
    (tmp_path / "inventory.csv").write_text(
        f"host,device,entity\n{fixture_kind.HOST},pdu-7,B01-H1-R01-K01/A\n", encoding="utf-8"
    )
    collectors = tmp_path / "collectors.yaml"
    collectors.write_text(
        "inventory: inventory.csv\n"
        "sources:\n"
        "  - {kind: fixture-meter, device: pdu-7, watts: 2500.5}\n"
        "  - {kind: simulated}\n",
        encoding="utf-8",
    )
    spec = parse_collectors(collectors.read_text(encoding="utf-8"))
    assert isinstance(spec.sources[0], MeterSpec) and spec.sources[0].watts == 2500.5

    meter, _ = sources = build_sources(collectors, demo)
    assert fixture_kind.BUILT == ["fixture-meter"]
    assert isinstance(meter, ReadingsSource) and meter.name == "fixture-meter"
    snapshot = Pipeline(demo, sources, clock=lambda: 1_000.0).run_cycle()
    # Its reading went through the inventory to the rack feed it names.
    assert snapshot.feeds.item(0, "power_watts") == 2500.5


def test_a_registered_kinds_spec_is_validated_with_the_others(meter_kind: None) -> None:
    with pytest.raises(CollectorsError) as raised:
        parse_collectors(
            "sources:\n"
            "  - {kind: fixture-meter, device: pdu-7, watts: -1}\n"
            "  - {kind: sysfs, max_power_watts: -5}\n"
        )
    assert [str(problem) for problem in raised.value.problems] == [
        "line 2: sources.0.watts: Input should be greater than 0",
        "line 3: sources.1.max_power_watts: Input should be greater than 0",
    ]


def test_a_second_kind_of_the_same_name_is_refused(meter_kind: None) -> None:
    with pytest.raises(ValueError, match="'fixture-meter' is already registered"):
        registry.register(FIXTURE_KIND)


class NamelessSpec(SourceSpec):
    kind: str = "nameless"


def test_a_spec_without_a_one_name_kind_is_refused() -> None:
    with pytest.raises(TypeError, match=r"NamelessSpec\.kind must be Literal"):
        SourceKind(spec=NamelessSpec, build=lambda spec, context: build_simulated(context))


def build_simulated(context: BuildContext) -> Source:
    return SimulatedSource(context.topology)
