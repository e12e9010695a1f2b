"""Property-based fuzzing of every payload parser: whatever a target, a device file or a
monitor sends, each gives frames (with problems) or its own documented error, never anything
else."""

from __future__ import annotations

import contextlib

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector.sources.neuron import PowerFileError, parse_power_utilization, parse_report
from collector.sources.promtext import parse_exposition

FUZZ = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Lines that look like an exposition, broken in the ways exporters break them.
EXPOSITION_LINE = st.one_of(
    st.text(max_size=40),
    st.builds(
        lambda name, labels, value: f"{name}{labels} {value}",
        st.from_regex(r"[a-z_:][a-z0-9_:]{0,12}", fullmatch=True),
        st.sampled_from(["", "{}", '{a="1"}', '{a="\\x"}', "{a=1}", '{a="1",}', "{"]),
        st.sampled_from(["1", "NaN", "+Inf", "-1e309", "0x1", "", "1 2 3", "\x00"]),
    ),
    st.sampled_from(
        ["# TYPE x counter", "# HELP x", "# EOF", "# TYPE x histogram", 'x_bucket{le="+Inf"} 1']
    ),
)


@FUZZ
@given(
    lines=st.lists(EXPOSITION_LINE, max_size=12),
    garbage=st.binary(max_size=64),
    form=st.sampled_from(["text", "openmetrics"]),
)
def test_any_exposition_parses_to_samples_and_problems(
    lines: list[str], garbage: bytes, form: str
) -> None:
    payload = "\n".join(lines).encode("utf-8", "surrogatepass") + garbage
    for strict in (False, True):
        parsed = parse_exposition(payload, format=form, strict=strict)  # type: ignore[arg-type]
        assert isinstance(parsed.samples, pl.DataFrame)
        assert isinstance(parsed.problems, pl.DataFrame)


@FUZZ
@given(content_type=st.text(max_size=40), payload=st.binary(max_size=80))
def test_any_content_type_is_parsed_or_refused_as_a_problem(
    content_type: str, payload: bytes
) -> None:
    parsed = parse_exposition(payload, content_type)
    assert isinstance(parsed.problems, pl.DataFrame)


JSON = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=25,
)


@FUZZ
@given(
    text=st.one_of(st.text(max_size=200), JSON.map(lambda value: __import__("json").dumps(value)))
)
def test_any_neuron_monitor_line_gives_frames(text: str) -> None:
    readings, problems = parse_report(text, target="neuron-monitor")
    assert isinstance(readings, pl.DataFrame) and isinstance(problems, pl.DataFrame)


@FUZZ
@given(text=st.text(max_size=80))
def test_any_power_file_gives_values_or_its_error(text: str) -> None:
    with contextlib.suppress(PowerFileError):
        parse_power_utilization(text)
