"""The strict Prometheus text / OpenMetrics parser against third-party corpora, read in place."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import polars as pl
import pytest

from collector import schemas
from collector.sources.promtext import (
    PARSE_PROBLEMS,
    SAMPLES,
    Exposition,
    Format,
    as_problems,
    format_for_content_type,
    label_value,
    parse_exposition,
)

# Parametrization needs the case names at collection time; the tests themselves still reach
# the files through the shared_fixtures fixture, which skips (or fails under CI) when absent.
FIXTURES = Path(__file__).resolve().parents[3].parent / "shared" / "fixtures"
EXPFMT_CORPUS = Path("prometheus-common-expfmt/expfmt/fuzz/corpus")
EXPFMT_TEXT = Path("prometheus-common-expfmt/expfmt/testdata/text")
OM_SUITE = Path("openmetrics-testsuite/tests/testdata/parsers")
DATADOG = Path("datadog-integrations-core-dcgm/dcgm/tests/fixtures/metrics.txt")
README_EXCERPTS = Path("nvidia-dcgm-exporter/README-excerpts")
NODE_E2E = Path("prometheus-node_exporter/collector/fixtures/e2e-output.txt")


def case_names(folder: Path) -> list[str]:
    found = FIXTURES / folder
    return sorted(entry.name for entry in found.iterdir()) if found.is_dir() else ["absent"]


def samples_of(text: str) -> list[tuple[object, ...]]:
    exposition = parse_exposition(text)
    return exposition.samples.select("name", "labels", "value", "timestamp_seconds").rows()


def reasons(text: str, *, strict: bool = False, format: Format | None = None) -> list[str]:
    exposition = parse_exposition(text, strict=strict, format=format)
    return exposition.problems.get_column("reason").to_list()


# --- third-party corpora ----------------------------------------------------------------------


@pytest.mark.parametrize("name", case_names(EXPFMT_CORPUS))
def test_expfmt_fuzz_corpus_gets_prometheus_verdict(shared_fixtures: Path, name: str) -> None:
    payload = (shared_fixtures / EXPFMT_CORPUS / name).read_bytes()
    exposition = parse_exposition(payload, format="text", strict=True)
    if name.startswith("from_test_parse_error_"):
        assert not exposition.accepted
        assert exposition.samples.height == 0  # strict: a rejected scrape yields nothing
    else:
        assert exposition.accepted, exposition.problems.rows()


def test_expfmt_fuzz_corpus_holds_20_rejections_and_6_acceptances(shared_fixtures: Path) -> None:
    names = [entry.name for entry in (shared_fixtures / EXPFMT_CORPUS).iterdir()]
    rejected = [name for name in names if name.startswith("from_test_parse_error_")]
    assert (len(rejected), len(names) - len(rejected)) == (20, 6)


@pytest.mark.parametrize("case", case_names(OM_SUITE))
def test_openmetrics_suite_verdict(shared_fixtures: Path, case: str) -> None:
    folder = shared_fixtures / OM_SUITE / case
    expected = json.loads((folder / "test.json").read_text())
    payload = (folder / expected["file"]).read_bytes()
    exposition = parse_exposition(payload, format="openmetrics", strict=True)
    assert exposition.accepted is expected["shouldParse"], exposition.problems.rows()


def test_openmetrics_suite_has_44_good_and_167_bad_cases(shared_fixtures: Path) -> None:
    verdicts = [
        json.loads((folder / "test.json").read_text())["shouldParse"]
        for folder in (shared_fixtures / OM_SUITE).iterdir()
    ]
    assert (verdicts.count(True), verdicts.count(False)) == (44, 167)


def test_expfmt_self_scrape_parses_completely(shared_fixtures: Path) -> None:
    exposition = parse_exposition((shared_fixtures / EXPFMT_TEXT).read_bytes(), strict=True)
    assert exposition.accepted
    assert exposition.samples.height == 248
    assert exposition.samples.get_column("family").n_unique() == 37
    assert exposition.families.height == 37
    assert exposition.samples.schema == pl.Schema(SAMPLES)
    summary = exposition.samples.filter(
        pl.col("name") == "http_request_duration_microseconds_count"
    )
    assert set(summary.get_column("family")) == {"http_request_duration_microseconds"}
    assert set(summary.get_column("type")) == {"summary"}


def test_node_exporter_e2e_output_parses_completely(shared_fixtures: Path) -> None:
    exposition = parse_exposition((shared_fixtures / NODE_E2E).read_bytes(), strict=True)
    assert exposition.accepted
    assert exposition.samples.height == 3027
    package = exposition.samples.filter(pl.col("name") == "node_rapl_package_joules_total")
    assert package.get_column("value").to_list() == [240422.366267]
    assert package.select(label_value("index")).item() == "0"


# --- the trailing newline ---------------------------------------------------------------------


def test_datadog_capture_without_final_newline_is_rejected_when_strict(
    shared_fixtures: Path,
) -> None:
    payload = (shared_fixtures / DATADOG).read_bytes()
    assert not payload.endswith(b"\n")
    exposition = parse_exposition(payload, "text/plain; version=0.0.4", strict=True)
    assert not exposition.accepted
    assert exposition.problems.get_column("reason").to_list() == ["missing_final_newline"]
    assert exposition.samples.height == 0


def test_datadog_capture_parses_leniently_with_the_newline_reported(shared_fixtures: Path) -> None:
    exposition = parse_exposition((shared_fixtures / DATADOG).read_bytes())
    assert exposition.samples.height == 38
    assert exposition.samples.get_column("family").n_unique() == 38
    assert exposition.problems.rows() == [
        (
            exposition.problems.item(0, "line"),
            "missing_final_newline",
            "the last line has no newline; Prometheus rejects such a payload",
        )
    ]
    last = exposition.samples.tail(1)
    assert last.get_column("line").item() == exposition.problems.item(0, "line")


def test_readme_excerpts_keep_samples_and_report_the_elision_lines(shared_fixtures: Path) -> None:
    for excerpt in sorted((shared_fixtures / README_EXCERPTS).iterdir()):
        exposition = parse_exposition(excerpt.read_bytes())
        # upstream's "..." elision lines are not exposition; the three samples around them are
        assert exposition.problems.get_column("reason").to_list() == ["invalid_metric_name"] * 2
        assert exposition.samples.get_column("name").to_list() == [
            "DCGM_FI_DEV_SM_CLOCK",
            "DCGM_FI_DEV_MEM_CLOCK",
            "DCGM_FI_DEV_MEMORY_TEMP",
        ]
        # `{gpu="0", UUID=...}` (a blank after the comma) takes the careful path, same result
        uuids = exposition.samples.select(label_value("UUID")).to_series().unique().to_list()
        assert uuids == ["GPU-604ac76c-d9cf-fef3-62e9-d92044ab6e52"]
        assert exposition.samples.get_column("type").to_list() == ["gauge"] * 3


# --- text 0.0.4, rule by rule -------------------------------------------------------------------


def test_labels_come_out_unescaped_in_payload_order() -> None:
    rows = samples_of('m{b="x\\\\y",a="q\\"r\\ns"} 1\n')
    assert rows == [
        ("m", [{"name": "b", "value": "x\\y"}, {"name": "a", "value": 'q"r\ns'}], 1.0, None)
    ]


def test_blanks_inside_braces_give_the_same_sample_as_the_plain_form() -> None:
    plain = samples_of('m{a="1",b="two words"} 2.5 1700000000000\n')
    spaced = samples_of('  m { a = "1" ,\tb="two words" , } 2.5   1700000000000\n')
    assert (
        plain
        == spaced
        == [
            (
                "m",
                [{"name": "a", "value": "1"}, {"name": "b", "value": "two words"}],
                2.5,
                1700000000.0,
            )
        ]
    )


def test_timestamps_are_milliseconds_and_values_go_floats() -> None:
    rows = samples_of("a +Inf -1500\nb NaN\nc 1e3 0\nd .5\n")
    values = {name: (value, ts) for name, _, value, ts in rows}
    assert values["a"] == (float("inf"), -1.5)
    assert values["c"] == (1000.0, 0.0)
    assert values["d"] == (0.5, None)
    nan, no_timestamp = values["b"]
    assert nan != nan and no_timestamp is None


def random_lines(seed: int, count: int) -> list[str]:
    """Sample lines with hostile label values: quotes, commas, braces, '="', escapes, UTF-8."""
    rnd = random.Random(seed)
    pieces = [*"abXZ_:09 ,={}#\té€", '\\"', "\\\\", "\\n", '",', '="', "} 1", '"']
    lines = []
    for i in range(count):
        pairs = [
            f'l{j}="' + "".join(rnd.choice(pieces) for _ in range(rnd.randint(0, 8))) + '"'
            for j in range(rnd.randint(0, 4))
        ]
        labels = "{" + ",".join(pairs) + ("," if pairs and rnd.random() < 0.1 else "") + "}"
        timestamp = f" {rnd.randint(-(10**12), 10**12)}" if rnd.random() < 0.3 else ""
        value = rnd.choice(["1", "-2.5", "+Inf", "NaN", "1e3", ".5", "7."])
        lines.append(f"m_{i}{labels if pairs or rnd.random() < 0.3 else ''} {value}{timestamp}")
    return lines


@pytest.mark.parametrize("escapes", [True, False])
def test_vectorized_lines_read_exactly_as_the_careful_path_reads_them(escapes: bool) -> None:
    # A leading blank means nothing to expfmt but sends every line down the careful path.
    lines = [line for line in random_lines(7, 1500) if escapes or "\\" not in line]
    fast = parse_exposition("\n".join(lines) + "\n", max_problems=10_000)
    careful = parse_exposition("\n".join(" " + line for line in lines) + "\n", max_problems=10_000)

    def rows(exposition: Exposition) -> list[tuple[object, ...]]:
        found = exposition.samples.select("line", "name", "labels", "value", "timestamp_seconds")
        return [
            (line, name, labels, None if math.isnan(value) else value, ts)
            for line, name, labels, value, ts in found.iter_rows()
        ]

    assert fast.samples.height > 500 and fast.problems.height > 100  # both kinds of line
    assert rows(fast) == rows(careful)
    assert fast.problems.equals(careful.problems)


def test_quoted_utf8_names_are_read_as_expfmt_reads_them() -> None:
    assert samples_of('{"gpu.power", "node.name"="n1"} 7\n') == [
        ("gpu.power", [{"name": "node.name", "value": "n1"}], 7.0, None)
    ]


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("a 1\r\n", "invalid_value"),  # CRLF: the CR belongs to the value
        ("a 1 \n", "invalid_timestamp"),  # a blank after the value announces a timestamp
        ("a 1 2 \n", "trailing_characters"),
        ("a 0x10\n", "invalid_value"),
        ("a 1_000\n", "invalid_value"),
        ("a 1e999\n", "invalid_value"),  # overflows to infinity
        ("a 1 9223372036854775808\n", "invalid_timestamp"),  # beyond int64
        ("a 1 1.5\n", "invalid_timestamp"),
        ('a{__name__="b"} 1\n', "reserved_label"),
        ('a{b="1",b="2"} 1\n', "duplicate_label"),
        ('a{b="\\t"} 1\n', "invalid_escape"),
        ('a{b="1"c="2"} 1\n', "invalid_label"),
        ("a{b=1} 1\n", "invalid_label_value"),
        ('{b="1"} 1\n', "invalid_metric_name"),
        ("# TYPE a gauge\n# TYPE a counter\n", "duplicate_type"),
        ("a 1\n# TYPE a gauge\n", "duplicate_type"),  # TYPE after the family's samples
        ("# HELP a x\n# HELP a y\n", "duplicate_help"),
        ("# HELP a bad \\escape\n", "invalid_escape"),
        ("# TYPE a gauge \n", "unknown_type"),
        ('# TYPE a summary\na{quantile="x"} 1\n', "invalid_quantile"),
        ('# TYPE a histogram\na_bucket{le="+Inf"} 1\na_bucket{le="1,5"} 1\n', "invalid_le"),
    ],
)
def test_text_rules_match_expfmt(line: str, reason: str) -> None:
    assert reason in reasons(line, strict=True)
    assert not parse_exposition(line, strict=True).accepted


@pytest.mark.parametrize(
    "payload",
    [
        "",
        "\n\n",
        "# just a comment\n#\n# HELP\n# HELP name\n",
        "# TYPE Gauge_family GAUGE\nGauge_family 1\n",  # type names are case-insensitive
        '# TYPE h histogram\nh_bucket{le="1",le="2"} 1\n',  # le is exempt from the duplicate rule
        'a{} 1\nb{c="d",} 2\n',
        "# TYPE s summary\ns_sum 1\ns_count 2\nfake_sum 3\n",
    ],
)
def test_text_payloads_expfmt_accepts(payload: str) -> None:
    exposition = parse_exposition(payload, strict=True)
    assert exposition.accepted, exposition.problems.rows()


def test_families_resolve_sums_and_counts_to_their_summary() -> None:
    exposition = parse_exposition("# TYPE s summary\ns_sum 1\ns_count 2\nfake_sum 3\n")
    resolved = exposition.samples.select("name", "family", "type").rows()
    assert resolved == [
        ("s_sum", "s", "summary"),
        ("s_count", "s", "summary"),
        ("fake_sum", "fake_sum", "untyped"),
    ]


def test_invalid_utf8_in_a_label_value_rejects_the_line() -> None:
    exposition = parse_exposition(b'a{b="\xff"} 1\nc 2\n# HELP c caf\xe9\n')
    assert exposition.problems.select("line", "reason").rows() == [(1, "invalid_utf8")]
    assert exposition.samples.get_column("name").to_list() == ["c"]


def test_lenient_mode_drops_only_the_bad_lines() -> None:
    payload = 'good 1\nbad{x="1" 2\nalso_good{x="y"} 3\n'
    lenient = parse_exposition(payload)
    assert lenient.samples.get_column("name").to_list() == ["good", "also_good"]
    assert lenient.problems.select("line", "reason").rows() == [(2, "invalid_label")]
    strict = parse_exposition(payload, strict=True)
    assert strict.samples.height == 0
    assert strict.problems.equals(lenient.problems)


def test_problems_are_capped_with_a_count_of_the_rest() -> None:
    exposition = parse_exposition("bad line\n" * 30, max_problems=10)
    assert exposition.problems.height == 10
    assert exposition.problems.tail(1).rows() == [
        (0, "too_many_problems", "21 more problems left off")
    ]
    assert exposition.problems.schema == pl.Schema(PARSE_PROBLEMS)


# --- OpenMetrics and content types --------------------------------------------------------------


def test_openmetrics_samples_have_float_second_timestamps_and_families() -> None:
    payload = (
        "# TYPE energy_joules counter\n# UNIT energy_joules joules\n"
        '# HELP energy_joules Energy.\nenergy_joules_total{gpu="a"} 12.5 1700000000.25\n'
        'energy_joules_created{gpu="a"} 1600000000 1700000000.25\n# EOF\n'
    )
    exposition = parse_exposition(payload, "application/openmetrics-text; version=1.0.0")
    assert exposition.format == "openmetrics"
    assert exposition.accepted
    assert exposition.samples.select("family", "name", "value", "timestamp_seconds").rows() == [
        ("energy_joules", "energy_joules_total", 12.5, 1700000000.25),
        ("energy_joules", "energy_joules_created", 1600000000.0, 1700000000.25),
    ]
    assert exposition.families.rows() == [("energy_joules", "counter", "Energy.", "joules", 1)]


def test_openmetrics_without_eof_is_a_problem() -> None:
    assert reasons("a 1\n", format="openmetrics") == ["missing_eof"]


def test_openmetrics_group_mixing_timestamps_is_rejected() -> None:
    payload = "# TYPE e counter\ne_total 1 5\ne_created 1\n# EOF\n"
    assert reasons(payload, format="openmetrics") == ["timestamp_order"]


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        (None, "text"),
        ("", "text"),
        ("text/plain; version=0.0.4; charset=utf-8", "text"),
        ("text/plain;version=1.0.0;escaping=allow-utf-8", "text"),
        ("application/openmetrics-text; version=1.0.0; charset=utf-8", "openmetrics"),
        ("Application/OpenMetrics-Text", "openmetrics"),
        ("application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily", None),
    ],
)
def test_format_follows_the_content_type(content_type: str | None, expected: str | None) -> None:
    assert format_for_content_type(content_type) == expected


def test_an_unsupported_content_type_is_a_problem_not_an_exception() -> None:
    exposition = parse_exposition(b"\x08\x96\x01", "application/vnd.google.protobuf")
    assert exposition.samples.height == 0
    assert exposition.problems.get_column("reason").to_list() == ["unsupported_content_type"]


def test_parse_problems_convert_to_the_problems_schema() -> None:
    exposition = parse_exposition("a 1\nb\n")
    problems = as_problems(exposition, "prometheus", "http://n1:9400/metrics")
    assert problems.schema == pl.Schema(schemas.PROBLEMS)
    assert problems.rows() == [
        (
            "prometheus",
            "http://n1:9400/metrics",
            "line 2",
            "invalid_value",
            "expected float as value, got ''",
        )
    ]
