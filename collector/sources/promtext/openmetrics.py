"""OpenMetrics 1.0 text, read by the specification's ABNF and the checks of its reference
parser (prometheus/client_python): ``# EOF``, metric grouping, histogram, summary, info and
stateset rules, counter values, exemplars, units and clashing names."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import polars as pl

from collector.sources.promtext.shared import (
    FAMILIES,
    LABEL_NAME,
    METRIC_NAME,
    NUMBER,
    NUMBER_RE,
    SAMPLES,
    Event,
    ParserBase,
    Rule,
    clip,
    label_value,
    labels_from_pairs,
    lines_frame,
    message_expr,
)

_REAL = r"(?:[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)"
_OM_VALUE = r'"(?:[^"\\\n]|\\.)*"'
_OM_PAIR = rf"{LABEL_NAME}={_OM_VALUE}"
_OM_PAIR_OPEN = rf'{LABEL_NAME}="(?:[^"\\\n]|\\.)*'  # without the closing quote
_OM_LABELS = rf"(?:{_OM_PAIR}(?:,{_OM_PAIR})*)?"
# The whole OpenMetrics sample grammar (ABNF "sample", exemplar included).
_OM_SAMPLE = (
    rf"^(?P<name>{METRIC_NAME})(?:\{{(?P<labels>{_OM_LABELS})\}})?"
    rf" (?P<value>{NUMBER})(?: (?P<ts>{_REAL}))?"
    rf"(?: # \{{(?P<exlabels>{_OM_LABELS})\}} (?P<exvalue>{NUMBER})(?: (?P<exts>{_REAL}))?)?$"
)
_OM_METADATA_RE = re.compile(rf"# (HELP|TYPE|UNIT) ({METRIC_NAME}) (.*)", re.DOTALL)
_OM_PAIR_RE = re.compile(rf'({LABEL_NAME})="((?:[^"\\\n]|\\.)*)"')

_ESCAPE_RE = re.compile(r'\\[\\"n]')
_ESCAPED = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}


def _unescape(text: str) -> str:
    """Undo \\\\, \\" and \\n in one left-to-right pass; any other backslash stays as it is."""
    if "\\" not in text:
        return text
    return _ESCAPE_RE.sub(lambda m: _ESCAPED[m[0]], text)


def _label_names() -> pl.Expr:
    return pl.col("labels").list.eval(pl.element().struct.field("name"))


_OM_TYPE_SUFFIXES: dict[str, tuple[str, ...]] = {
    "counter": ("_total", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "histogram": ("_count", "_sum", "_bucket", "_created"),
    "gaugehistogram": ("_gcount", "_gsum", "_bucket"),
    "info": ("_info",),
}
_OM_TYPES = {
    "counter",
    "gauge",
    "summary",
    "histogram",
    "gaugehistogram",
    "unknown",
    "info",
    "stateset",
}
_HISTOGRAMS = ["histogram", "gaugehistogram"]
_EXEMPLAR_MAX_CHARS = 128


@dataclass
class _OMFamily:
    name: str
    line: int
    type: str | None = None
    help: str | None = None
    unit: str | None = None
    has_samples: bool = False
    allowed: tuple[str, ...] = ()


@dataclass
class _HistogramGroup:
    """client_python _check_histogram state for one group of one histogram."""

    count: float | None = None
    bucket: float | None = None
    value: float = 0.0
    has_sum: bool = False
    has_gsum: bool = False
    negative_buckets: bool = False
    negative_gsum: bool = False

    def problems(self) -> list[str]:
        found = []
        if self.bucket != math.inf:
            found.append("+Inf bucket missing")
        if self.count is not None and self.value != self.count:
            found.append("count does not match the +Inf bucket")
        if self.has_sum and self.count is None:
            found.append("_sum without _count")
        if self.has_gsum and self.count is None:
            found.append("_gsum without _gcount")
        if not (self.has_sum or self.has_gsum) and self.count is not None:
            found.append("_count without _sum")
        if self.negative_buckets and self.has_sum:
            found.append("_sum with negative buckets")
        if not self.negative_buckets and self.negative_gsum:
            found.append("negative _gsum without negative buckets")
        return found


@dataclass
class OpenMetricsParser(ParserBase):
    families: list[_OMFamily] = field(default_factory=list)

    def run(self) -> tuple[pl.DataFrame, pl.DataFrame, set[int]]:
        lines = lines_frame(self.text)
        name = pl.col("name")
        if self.bad_lines:
            name = pl.when(pl.col("line").is_in(self.bad_lines)).then(None).otherwise(name)
        matched = (
            lines.lazy()
            .with_columns(pl.col("text").str.extract_groups(_OM_SAMPLE).alias("m"))
            .unnest("m")
            .with_columns(name.alias("name"))
            .with_columns(
                (
                    pl.col("name").is_not_null()
                    & pl.col("name").ne_missing(pl.col("name").shift(1))
                ).alias("run_start")
            )
            .collect()
        )
        rest = matched.filter(pl.col("name").is_null())
        eof = (lines.get_column("text") == "# EOF").arg_true()
        line_count = lines.height
        if eof.len() == 0:
            self.error(line_count, "missing_eof", "the payload does not end with '# EOF'")
            end = line_count + 1
        else:
            end = int(eof[0]) + 1
            if end < line_count:
                self.error(end + 1, "text_after_eof", "text follows '# EOF'")

        events: list[Event] = []
        for line, raw in rest.filter(pl.col("line") < end).select("line", "text").iter_rows():
            if line in self.bad_lines:
                self.error(line, "invalid_utf8", "the line holds bytes that are not UTF-8")
            elif raw == "":
                self.error(line, "blank_line", "blank lines are not allowed in OpenMetrics")
            elif raw.startswith("#"):
                metadata = _OM_METADATA_RE.fullmatch(raw)
                if metadata is None:
                    self.error(
                        line,
                        "invalid_metadata",
                        f"not a HELP, TYPE or UNIT line, nor '# EOF': {clip(raw)!r}",
                    )
                else:
                    kind, family, text = metadata.groups()
                    events.append((line, 0, kind, family, text))
            else:
                self.error(line, "invalid_sample", _om_diagnosis(raw))

        samples = matched.filter(pl.col("name").is_not_null() & (pl.col("line") < end))
        starts = samples.filter(pl.col("run_start")).select("line", "name")
        events.extend((line, 0, "sample", sample, None) for line, sample in starts.iter_rows())
        events.sort(key=lambda event: event[0])
        run_family = self._replay(events)
        runs = pl.LazyFrame(
            [
                (run, self.families[index].name, self.families[index].type or "unknown")
                for run, index in enumerate(run_family)
            ],
            schema={"run": pl.UInt32, "family": pl.String, "type": pl.String},
            orient="row",
        )
        samples_query = (
            samples.lazy()
            .with_columns((pl.col("run_start").cum_sum() - 1).cast(pl.UInt32).alias("run"))
            .join(runs, on="run", how="left", maintain_order="left")
            .with_columns(
                labels_from_pairs(pl.col("labels"), _OM_PAIR_OPEN, "\\" in self.text).alias(
                    "labels"
                ),
                pl.col("value").alias("value_raw"),
                pl.col("value").cast(pl.Float64, strict=False),
                pl.col("ts").cast(pl.Float64, strict=False).alias("timestamp_seconds"),
            )
        )
        checked = self._check(samples_query)
        return checked.select(list(SAMPLES)), self._families(), self.error_lines

    def _close(self, family: _OMFamily, seen: set[str]) -> None:
        """client_python build_metric: clashing names and unit rules, when a family ends."""
        kind = family.type or "unknown"
        for suffix in sorted({*_OM_TYPE_SUFFIXES.get(kind, ()), ""}):
            if family.name + suffix in seen:
                self.error(family.line, "clashing_name", f"{family.name + suffix!r} is used twice")
            seen.add(family.name + suffix)
        if family.unit and not family.name.endswith("_" + family.unit):
            self.error(
                family.line,
                "unit_mismatch",
                f"family {family.name!r} does not end with its unit {family.unit!r}",
            )
        if family.unit and kind in ("info", "stateset"):
            self.error(family.line, "unit_mismatch", f"a {kind} family cannot have a unit")

    def _replay(self, events: list[Event]) -> list[int]:
        """Metadata and runs of samples through the family rules; the family of each run."""
        seen: set[str] = set()
        current: _OMFamily | None = None
        run_family: list[int] = []
        for line, _, kind, name, rest in events:
            if kind == "sample":
                if current is None or name not in current.allowed:
                    if current is not None:
                        self._close(current, seen)
                    current = _OMFamily(name, line, type="unknown", allowed=(name,))
                    self.families.append(current)
                current.has_samples = True
                run_family.append(len(self.families) - 1)
                continue
            if current is not None and name == current.name and current.has_samples:
                self.error(line, "metadata_after_samples", f"{kind} for {name!r} after its samples")
                continue
            if current is None or name != current.name:
                if current is not None:
                    self._close(current, seen)
                current = _OMFamily(name, line, allowed=(name,))
                self.families.append(current)
            text = rest or ""
            if kind == "HELP":
                if current.help is not None:
                    self.error(line, "duplicate_help", f"second HELP line for {name!r}")
                else:
                    current.help = _unescape(text)
            elif kind == "UNIT":
                if current.unit is not None:
                    self.error(line, "duplicate_unit", f"second UNIT line for {name!r}")
                else:
                    current.unit = text
            elif current.type is not None:
                self.error(line, "duplicate_type", f"second TYPE line for {name!r}")
            elif text not in _OM_TYPES:
                self.error(line, "unknown_type", f"unknown metric type {clip(text)!r}")
                current.type = "unknown"
            else:
                current.type = text
                current.allowed = tuple(name + s for s in _OM_TYPE_SUFFIXES.get(text, ("",)))
        if current is not None:
            self._close(current, seen)
        return run_family

    def _families(self) -> pl.DataFrame:
        return pl.DataFrame(
            [(f.name, f.type or "unknown", f.help, f.unit, f.line) for f in self.families],
            schema=FAMILIES,
            orient="row",
        )

    def _check(self, samples: pl.LazyFrame) -> pl.DataFrame:
        names = _label_names()
        kind, value, suffix = pl.col("type"), pl.col("value"), pl.col("suffix")
        kinds = {family.type or "unknown" for family in self.families}
        bounds = (
            [label_value("le"), label_value("quantile")]
            if kinds & {"histogram", "gaugehistogram", "summary"}
            else [pl.lit(None, pl.String).alias("le"), pl.lit(None, pl.String).alias("quantile")]
        )
        samples = samples.with_columns(
            pl.col("name").str.slice(pl.col("family").str.len_chars()).alias("suffix"),
            *bounds,
        )
        integral = value.is_finite() & (value == value.floor())
        le = pl.col("le").cast(pl.Float64, strict=False)
        quantile = pl.col("quantile").cast(pl.Float64, strict=False)
        number = f"^{NUMBER}$"
        rules: list[Rule] = [
            (
                names.list.n_unique() < names.list.len(),
                "duplicate_label",
                message_expr("duplicate label names for {}", pl.col("name")),
            ),
            (
                names.list.contains("__name__"),
                "reserved_label",
                pl.lit('label name "__name__" is reserved'),
            ),
            (
                (kind == "stateset") & ~names.list.contains(pl.col("family")),
                "invalid_stateset",
                message_expr("stateset sample lacks its label {}", pl.col("family")),
            ),
            (
                (kind == "stateset") & ~value.is_in([0.0, 1.0]),
                "invalid_stateset",
                message_expr("stateset value must be 0 or 1, got {}", pl.col("value_raw")),
            ),
            (
                (kind == "info") & (value != 1.0),
                "invalid_info",
                message_expr("info value must be 1, got {}", pl.col("value_raw")),
            ),
            (
                (suffix == "_bucket")
                & (
                    pl.col("le").is_null()
                    | ~pl.col("le").str.contains(number)
                    | le.is_nan()
                    | ((le == math.inf) & (pl.col("le") != "+Inf"))
                ),
                "invalid_le",
                message_expr(
                    "a bucket needs a canonical float le label, got {}",
                    pl.col("le").fill_null("none"),
                ),
            ),
            (
                suffix.is_in(["_bucket", "_count", "_gcount"]) & ~integral,
                "invalid_count",
                message_expr("{} must be an integer, got {}", pl.col("name"), pl.col("value_raw")),
            ),
            (
                (kind == "summary")
                & (suffix == "")
                & (
                    pl.col("quantile").is_null()
                    | ~pl.col("quantile").str.contains(number)
                    | ~quantile.is_between(0.0, 1.0)
                ),
                "invalid_quantile",
                message_expr(
                    "a quantile label must lie within [0, 1], got {}",
                    pl.col("quantile").fill_null("none"),
                ),
            ),
            (
                (kind == "summary") & (suffix == "") & (value < 0.0),
                "invalid_counter_value",
                message_expr("quantile values cannot be negative, got {}", pl.col("value_raw")),
            ),
            (
                suffix.is_in(["_total", "_sum", "_count", "_bucket", "_gcount", "_gsum"])
                & value.is_nan(),
                "invalid_counter_value",
                message_expr("{} cannot be NaN", pl.col("name")),
            ),
            (
                suffix.is_in(["_total", "_sum", "_count", "_bucket", "_gcount"]) & (value < 0.0),
                "invalid_counter_value",
                message_expr("{} cannot be negative, got {}", pl.col("name"), pl.col("value_raw")),
            ),
            (
                pl.col("exvalue").is_not_null()
                & ~(
                    (kind.is_in(_HISTOGRAMS) & pl.col("name").str.ends_with("_bucket"))
                    | ((kind == "counter") & pl.col("name").str.ends_with("_total"))
                ),
                "invalid_exemplar",
                message_expr(
                    "exemplars belong on buckets and counters only, not {}", pl.col("name")
                ),
            ),
        ]
        typed = {
            "invalid_stateset": "stateset" in kinds,
            "invalid_info": "info" in kinds,
            "invalid_le": bool(kinds & {"histogram", "gaugehistogram"}),
            "invalid_quantile": "summary" in kinds,
        }
        rules = [rule for rule in rules if typed.get(rule[1], True)]
        collected = self.apply_rules(samples, rules)
        exemplars = collected.filter(pl.col("exvalue").is_not_null()).select("line", "exlabels")
        for line, raw in exemplars.iter_rows():
            pairs = _OM_PAIR_RE.findall(raw or "")
            if len({label for label, _ in pairs}) != len(pairs):
                self.error(line, "invalid_exemplar", "duplicate exemplar label names")
            if sum(len(label) + len(_unescape(v)) for label, v in pairs) > _EXEMPLAR_MAX_CHARS:
                self.error(line, "invalid_exemplar", "exemplar labels exceed 128 characters")
        grouped = self._check_groups(collected)
        self._check_histograms(grouped)
        return grouped

    def _check_groups(self, samples: pl.DataFrame) -> pl.DataFrame:
        """Metric grouping and timestamp order inside each group of one family."""
        excluded = (
            (
                (pl.col("type") == "summary")
                & (pl.col("suffix") == "")
                & (pl.col("lname") == "quantile")
            )
            | ((pl.col("type") == "stateset") & (pl.col("lname") == pl.col("family")))
            | (
                pl.col("type").is_in(_HISTOGRAMS)
                & (pl.col("suffix") == "_bucket")
                & (pl.col("lname") == "le")
            )
            | (pl.col("type") == "info")
        )
        indexed = samples.lazy().with_row_index("row")
        keys = (
            indexed.select("row", "family", "type", "suffix", "labels")
            .explode("labels")
            .with_columns(
                pl.col("labels").struct.field("name").alias("lname"),
                pl.col("labels").struct.field("value").alias("lvalue"),
            )
            .filter(pl.col("lname").is_not_null() & ~excluded)
            .sort("row", "lname")
            .group_by("row", maintain_order=True)
            .agg(pl.concat_str("lname", "lvalue", separator="\x00").str.join("\x01").alias("group"))
        )
        same_group = (pl.col("family") == pl.col("family").shift(1)) & (
            pl.col("group") == pl.col("group").shift(1)
        )
        grouped = (
            indexed.join(keys, on="row", how="left", maintain_order="left")
            .sort("row")
            .with_columns(pl.col("group").fill_null(""))
            .with_columns(same_group.fill_null(False).alias("same_group"))
        )
        previous = pl.col("timestamp_seconds").shift(1)
        # A run of a group that starts where its (family, group) was seen before reopens it.
        reopened = ~pl.struct("family", "group").is_first_distinct()
        rules: list[Rule] = [
            (
                ~pl.col("same_group") & reopened,
                "invalid_grouping",
                message_expr("samples of {} are not grouped together", pl.col("name")),
            ),
            (
                pl.col("same_group")
                & (pl.col("timestamp_seconds").is_null() != previous.is_null()),
                "timestamp_order",
                pl.lit("a group mixes samples with and without timestamps"),
            ),
            (
                pl.col("same_group")
                & (pl.col("type") != "info")
                & (pl.col("timestamp_seconds") < previous),
                "timestamp_order",
                pl.lit("timestamps went backwards within a group"),
            ),
        ]
        return self.apply_rules(grouped, rules)

    def _check_histograms(self, samples: pl.DataFrame) -> None:
        """client_python _check_histogram: bucket order, the +Inf bucket, count and sum rules."""
        if not any(family.type in _HISTOGRAMS for family in self.families):
            return
        rows = samples.filter(pl.col("type").is_in(_HISTOGRAMS)).select(
            "line", "family", "suffix", "le", "value", "timestamp_seconds", "group"
        )
        current: tuple[str, str, float | None] | None = None
        group = _HistogramGroup()
        last_line = 0
        for line, family, suffix, le_raw, value, timestamp, labels in rows.iter_rows():
            key = (family, labels, timestamp)
            if key != current:
                if current is not None:
                    self._histogram_problems(last_line, current[0], group)
                current, group = key, _HistogramGroup()
            last_line = line
            if suffix == "_bucket":
                if le_raw is None or not NUMBER_RE.fullmatch(le_raw):
                    continue  # reported as invalid_le
                bound = float(le_raw)
                group.negative_buckets |= bound < 0
                if group.bucket is not None and bound <= group.bucket:
                    self.error(line, "invalid_histogram", f"{family}: buckets out of order")
                if value < group.value:
                    self.error(line, "invalid_histogram", f"{family}: bucket values decrease")
                group.bucket, group.value = bound, value
            elif suffix in ("_count", "_gcount"):
                group.count = value
            elif suffix == "_sum":
                group.has_sum = True
            elif suffix == "_gsum":
                group.has_gsum = True
                group.negative_gsum |= value < 0
        if current is not None:
            self._histogram_problems(last_line, current[0], group)

    def _histogram_problems(self, line: int, family: str, group: _HistogramGroup) -> None:
        for problem in group.problems():
            self.error(line, "invalid_histogram", f"{family}: {problem}")


def _om_diagnosis(raw: str) -> str:
    """A short reason why a line is not an OpenMetrics sample."""
    name = re.match(METRIC_NAME, raw)
    if name is None:
        return f"invalid metric name at the start of {clip(raw)!r}"
    rest = raw[name.end() :]
    if rest.startswith("{"):
        labels = re.match(rf"\{{{_OM_LABELS}\}}", rest)
        if labels is None:
            return f"invalid label set in {clip(raw)!r}"
        rest = rest[labels.end() :]
    if not rest.startswith(" "):
        return f"expected a single space before the value in {clip(raw)!r}"
    value = rest[1:].split(" ", 1)[0]
    if not NUMBER_RE.fullmatch(value):
        return f"invalid value {clip(value)!r}"
    return f"invalid timestamp or exemplar in {clip(raw)!r}"
