"""Bounded configuration input: every loader refuses what could take the machine down (size,
alias bombs, nesting, a site that expands past its limits) and what is ambiguous (a key given
twice, true for a number, infinities), each as its own ConfigError naming the file and line;
fuzzed, nothing else ever escapes."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector.collectors import CollectorsError, parse_collectors
from collector.config_errors import (
    MAX_ALIAS_EXPANSION,
    MAX_CONFIG_BYTES,
    ConfigError,
    read_config,
    shown,
    yaml_document,
)
from collector.grid.config import GridConfigError, parse_grid_config
from collector.inventory import InventoryError, parse_inventory
from collector.scenarios.config import ScenarioError, parse_scenario
from collector.site.model import SITE_LIMITS, SiteError, load_preset, parse_site, preset_text
from collector.site.topology import Topology, build_topology
from exporters.contract.thresholds import ThresholdsError, parse_thresholds

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def demo() -> Topology:
    return build_topology(load_preset("demo"))


def alias_bomb(levels: int = 9, width: int = 9) -> str:
    """The billion-laughs document of the finding: each level lists the one below 9 times."""
    lines = [f"l0: &l0 [{', '.join(['lol'] * width)}]"]
    for level in range(1, levels):
        lines.append(f"l{level}: &l{level} [{', '.join([f'*l{level - 1}'] * width)}]")
    return "\n".join(lines) + "\n"


def problems_of(error: ConfigError) -> list[str]:
    return [str(problem) for problem in error.problems]


# --- the YAML every loader reads --------------------------------------------------------------


def test_an_alias_bomb_is_refused_before_it_is_expanded() -> None:
    started = time.perf_counter()
    with pytest.raises(SiteError) as raised:
        parse_site(alias_bomb())
    assert time.perf_counter() - started < 2.0
    (problem,) = problems_of(raised.value)
    assert f"over the limit of {MAX_ALIAS_EXPANSION}" in problem


def test_aliases_within_the_bound_still_share_a_template() -> None:
    text = "base: &base {count: 2}\na: *base\nb: {<<: *base, count: 3}\n"
    assert yaml_document(text, "t", ConfigError) == {
        "base": {"count": 2},
        "a": {"count": 2},
        "b": {"count": 3},
    }


def test_an_alias_to_its_own_container_is_refused() -> None:
    with pytest.raises(ConfigError, match="refers to a node that contains it"):
        yaml_document("a: &a [1, *a]\n", "t", ConfigError)


def test_deep_nesting_is_refused_with_a_line() -> None:
    with pytest.raises(ConfigError, match="nested deeper than") as raised:
        yaml_document("[" * 5000 + "]" * 5000, "t", ConfigError)
    assert raised.value.problems[0].line == 1


def test_a_key_given_twice_is_refused_with_both_lines() -> None:
    text = "name: a\ncontract_watts: 1.0e6\nname: b\n"
    with pytest.raises(SiteError) as raised:
        parse_site(text, "site.yaml")
    assert problems_of(raised.value) == [
        "line 3: (file): key 'name' appears twice in one mapping (first on line 1)"
    ]


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (("tdp_watts: 500", "tdp_watts: true"), "accelerator_types.trainium2.tdp_watts"),
        (("count: 30", "count: yes"), "buildings.0.count"),
        (("phases: 3, breaker_amps: 60}", "phases: true, breaker_amps: 60}"), "phases"),
        (("tdp_watts: 500", "tdp_watts: .inf"), "accelerator_types.trainium2.tdp_watts"),
        (("contract_watts: 2.25e9", "contract_watts: .nan"), "contract_watts"),
    ],
)
def test_a_number_is_never_a_boolean_or_infinite(change: tuple[str, str], where: str) -> None:
    text = preset_text("campus").replace(*change, 1)
    assert text != preset_text("campus")
    with pytest.raises(SiteError) as raised:
        parse_site(text)
    assert any(where in problem for problem in problems_of(raised.value))


def test_collectors_refuse_an_infinite_timeout_and_a_boolean_concurrency() -> None:
    text = (
        "sources:\n"
        "  - kind: prometheus\n"
        "    max_concurrency: true\n"
        "    targets:\n"
        "      - {url: 'http://127.0.0.1:9/metrics', exporter: dcgm, timeout_seconds: .inf}\n"
    )
    with pytest.raises(CollectorsError) as raised:
        parse_collectors(text)
    found = problems_of(raised.value)
    assert any("max_concurrency" in problem and "not true or false" in problem for problem in found)
    assert any("timeout_seconds" in problem and "finite" in problem for problem in found)


def test_grid_config_bounds_the_sample_rate() -> None:
    with pytest.raises(GridConfigError, match=r"sample_rate_hz: Input should be less than or"):
        parse_grid_config("sample_rate_hz: 1.0e12\n")


# --- files ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "error", [SiteError, GridConfigError, CollectorsError, InventoryError, ThresholdsError]
)
def test_a_file_that_is_not_utf8_names_the_byte_offset(
    tmp_path: Path, error: type[ConfigError]
) -> None:
    path = tmp_path / "config"
    path.write_bytes(b"name: campus\nbad: caf\xe9\n")
    with pytest.raises(error) as raised:
        read_config(path, error)
    assert str(raised.value).startswith(str(path))
    assert problems_of(raised.value) == [
        "line 2: (file): not UTF-8 text: byte 0xe9 at byte offset 21"
    ]


def test_a_file_over_the_size_limit_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_bytes(b"#" * (MAX_CONFIG_BYTES + 1))
    with pytest.raises(SiteError, match=f"larger than the limit of {MAX_CONFIG_BYTES} bytes"):
        read_config(path, SiteError)


def test_an_endless_file_is_read_no_further_than_the_limit() -> None:
    with pytest.raises(SiteError, match="larger than the limit"):
        read_config(Path("/dev/zero"), SiteError)


def test_shown_values_are_cut_short() -> None:
    assert shown("x" * 10) == repr("x" * 10)
    long = shown("\x00" * 5000)
    assert len(long) < 100 and "characters" in long


# --- what a site expands to -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "what"),
    [
        (("count: 30", "count: 1000000000"), "buildings"),
        (("racks_per_row: 20", "racks_per_row: 1000000000"), "racks"),
        (("accelerators: 16", "accelerators: 1000000"), "accelerators"),
    ],
)
def test_a_site_past_its_limits_is_refused_before_anything_is_built(
    change: tuple[str, str], what: str
) -> None:
    started = time.perf_counter()
    with pytest.raises(SiteError) as raised:
        parse_site(preset_text("campus").replace(*change, 1))
    assert time.perf_counter() - started < 2.0
    assert any(
        f"{what}, over the limit of {SITE_LIMITS[what]:,}" in problem
        for problem in problems_of(raised.value)
    )


# --- the inventory ----------------------------------------------------------------------------


def test_two_devices_for_one_accelerator_are_flagged(demo: Topology) -> None:
    text = (
        "host,device,entity\n"
        ",GPU-1,B01-H1-R01-K01-N1-A00\n"
        ",GPU-2,B01-H1-R01-K01-N1-A00\n"
        ",GPU-3,B01-H1-R01-K01-N1-A01\n"
    )
    with pytest.raises(InventoryError) as raised:
        parse_inventory(text, demo)
    assert problems_of(raised.value) == [
        "line 3: accelerator 'B01-H1-R01-K01-N1-A00' is already the entity of line 2: "
        "one device per entity"
    ]


def test_an_inventory_field_past_the_csv_limit_is_its_error(demo: Topology) -> None:
    with pytest.raises(InventoryError, match="not CSV: field larger than field limit"):
        parse_inventory("host,device,entity\n," + "x" * 200_000 + ",y\n", demo)


def test_a_binary_inventory_gives_a_short_error(demo: Topology) -> None:
    text = "host,device,entity\n" + ",dev," + "\x01\x02" * 4000 + "\n"
    with pytest.raises(InventoryError) as raised:
        parse_inventory(text, demo)
    assert len(str(raised.value)) < 300


# --- fuzzing: nothing but the loader's own error escapes ----------------------------------------

# YAML-shaped values: what a careless or hostile file can hold.
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
)
VALUES = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.text(max_size=12), children, max_size=4),
    ),
    max_leaves=20,
)
KEYS_OF_SITES = st.sampled_from(
    ["name", "contract_watts", "accelerator_types", "node_types", "rack_types", "buildings"]
)


def parsers(demo: Topology) -> dict[str, tuple[Callable[[str], object], type[ConfigError]]]:
    return {
        "site": (parse_site, SiteError),
        "grid": (parse_grid_config, GridConfigError),
        "collectors": (parse_collectors, CollectorsError),
        "thresholds": (parse_thresholds, ThresholdsError),
        "scenario": (lambda text: parse_scenario(text, demo, ["simulated"]), ScenarioError),
        "inventory": (lambda text: parse_inventory(text, demo), InventoryError),
    }


LOADERS = ["site", "grid", "collectors", "thresholds", "scenario", "inventory"]


@pytest.mark.parametrize("loader", LOADERS)
@FUZZ
@given(text=st.text(max_size=300))
def test_any_text_gives_the_loaders_own_error_or_a_value(
    demo: Topology, loader: str, text: str
) -> None:
    parse, error = parsers(demo)[loader]
    with contextlib.suppress(error):
        parse(text)


@pytest.mark.parametrize("loader", LOADERS)
@FUZZ
@given(document=st.dictionaries(KEYS_OF_SITES | st.text(max_size=10), VALUES, max_size=6))
def test_any_yaml_document_gives_the_loaders_own_error_or_a_value(
    demo: Topology, loader: str, document: dict[str, object]
) -> None:
    parse, error = parsers(demo)[loader]
    with contextlib.suppress(error):
        parse(yaml.safe_dump(document))


@FUZZ
@given(
    edit=st.tuples(
        st.sampled_from(["30", "20", "28", "16", "2", "4", "500", "415", "60", "0.97"]),
        SCALARS.map(lambda value: yaml.safe_dump(value).split("\n...")[0].strip() or "null"),
    )
)
def test_any_value_in_the_campus_preset_gives_a_site_or_a_site_error(
    edit: tuple[str, str],
) -> None:
    old, new = edit
    with contextlib.suppress(SiteError):
        parse_site(preset_text("campus").replace(f": {old}", f": {new}", 1))


@FUZZ
@given(data=st.binary(max_size=400))
def test_any_bytes_read_as_a_config_give_its_error_or_text(data: bytes) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "config.yaml"
        path.write_bytes(data)
        try:
            text = read_config(path, SiteError)
        except SiteError as error:
            assert "byte offset" in str(error)
        else:
            assert text.encode("utf-8") == data
