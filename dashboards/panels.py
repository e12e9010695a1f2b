"""House-style panel factories, PromQL helpers and the grid layout every dashboard shares.

A dashboard module composes these: a power stat, a power time series, a ratio gauge, a
heatmap, a table, a bar gauge and a state timeline, each with the one datasource every panel
uses, its unit taken from the metric table, and thresholds given as `Steps` (the alert
thresholds, read from the rules' config by the dashboard modules). Series are named through
the contract (``Series(selector)(frame, column, ...)``), never spelled, and laid out by
``Grid`` at explicit positions.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from grafana_foundation_sdk.builders import (
    bargauge,
    gauge,
    heatmap,
    prometheus,
    stat,
    statetimeline,
    table,
    timeseries,
)
from grafana_foundation_sdk.builders import common as common_builder
from grafana_foundation_sdk.builders import dashboard as dashboard_builder
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models import common, units
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models import prometheus as prometheus_model
from grafana_foundation_sdk.models.heatmap import HeatmapColorMode, HeatmapColorScale

from exporters.contract import metric_for
from exporters.contract.thresholds import Above, Below

# The Prometheus datasource every panel and variable names: provisioned with this uid
# (deploy/grafana/provisioning), so a dashboard works on a fresh Grafana with nothing clicked.
DATASOURCE_UID = "gigawatt-prometheus"
DATASOURCE = model.DataSourceRef(type_val="prometheus", uid=DATASOURCE_UID)
# Every dashboard carries this tag; the dashboards menu of each one lists the others by it.
TAG = "gigawatt"
GRID_COLUMNS = 24

# Grafana units for the metric table's units. Energy counters are divided by 3600 before
# display (joules -> watt-hours), so Grafana scales them to kWh, MWh, GWh.
_GRAFANA_UNITS: dict[str, str] = {
    "watts": units.Watt,
    "joules": units.WattHour,
    "celsius": units.Celsius,
    "ratio": units.PercentUnit,
    "seconds": units.Seconds,
    "amperes": units.Ampere,
    "volts": units.Volt,
    "bytes": units.BytesIEC,
    "hertz": units.Hertz,
    # Grafana has no power-rate unit; "si:" scales the custom one (kW/s, MW/s).
    "watts_per_second": "si:W/s",
    "": units.Short,
}
JOULES_PER_WATT_HOUR = 3600


def unit_of(frame: str, column: str) -> str:
    """The Grafana unit of the metric read from ``frame``/``column``, from its table row."""
    return _GRAFANA_UNITS[metric_for(frame, column).unit]


# --- PromQL ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Series:
    """Selectors of the metric table's series, each with the rules' common matchers
    (``Thresholds.selector``, e.g. ``job="gigawatt"``) so dashboards and alerts read the same
    series."""

    common: str = ""

    def __call__(
        self,
        frame: str,
        column: str,
        *scoped: str,
        matching: Mapping[str, str] | None = None,
        **equal: str,
    ) -> str:
        """The metric read from ``frame``/``column``: each label in ``scoped`` matches the
        dashboard variable of the same name (``building=~"$building"``, so "All" and several
        values work), each ``matching`` label its regex, each ``equal`` label its value."""
        name = metric_for(frame, column).name
        matchers = [self.common] if self.common else []
        matchers += [f'{label}=~"${label}"' for label in scoped]
        matchers += [f'{label}=~"{regex}"' for label, regex in (matching or {}).items()]
        matchers += [f'{label}="{value}"' for label, value in equal.items()]
        return f"{name}{{{', '.join(matchers)}}}" if matchers else name


_REGEX_SPECIAL = frozenset(r".^$*+?()[]{}|\\")


def any_of(values: Iterable[str]) -> str:
    """A regex matching exactly ``values``, escaped for a double-quoted PromQL string."""
    escaped = ("".join(f"\\\\{c}" if c in _REGEX_SPECIAL else c for c in value) for value in values)
    return "|".join(escaped)


def recorded(name: str, *scoped: str) -> str:
    """A recording rule's series (which already applied the rules' matchers), each label in
    ``scoped`` matched against its dashboard variable."""
    matchers = ", ".join(f'{label}=~"${label}"' for label in scoped)
    return f"{name}{{{matchers}}}" if matchers else name


def watt_hours(counter: str, window: str = "$__range") -> str:
    """Energy of a joules counter over ``window``, in watt-hours."""
    return f"increase({counter}[{window}]) / {JOULES_PER_WATT_HOUR}"


def query(expr: str, legend: str = "") -> prometheus.Dataquery:
    """A range query drawn over time; ``legend`` names each series (``{{building}}``)."""
    built = prometheus.Dataquery().expr(expr).range()
    return built.legend_format(legend) if legend else built


def instant(expr: str, legend: str = "") -> prometheus.Dataquery:
    """An instant query: the latest value, for stats, gauges and bar gauges."""
    built = prometheus.Dataquery().expr(expr).instant()
    return built.legend_format(legend) if legend else built


def table_query(expr: str) -> prometheus.Dataquery:
    """An instant query formatted as a table: one row per series, one column per label."""
    return (
        prometheus.Dataquery().expr(expr).instant().format(prometheus_model.PromQueryFormat.TABLE)
    )


# --- thresholds ---------------------------------------------------------------------------------

Color = Literal["green", "orange", "red", "blue", "text"]


@dataclass(frozen=True)
class Steps:
    """Threshold steps: the base colour, then (value, colour) pairs in rising order."""

    base: Color
    steps: tuple[tuple[float, Color], ...] = ()

    def gauge_maximum(self, floor: float = 1.0) -> float:
        """Where a gauge of these colours should end: ``floor`` (100 % for a ratio), or a
        fifth past the highest step when that lies beyond it, so the last colour shows."""
        highest = max((value for value, _ in self.steps), default=floor)
        return floor if highest < floor else round(highest * 1.2, 2)

    def build(self) -> dashboard_builder.ThresholdsConfig:
        # Grafana reads the first step as the base (-Infinity) whatever its value, and saves
        # it as null; the schema wants a number, so the base carries the lowest finite one.
        first = [model.Threshold(value=-sys.float_info.max, color=self.base)]
        rest = [model.Threshold(value=value, color=color) for value, color in self.steps]
        return (
            dashboard_builder.ThresholdsConfig()
            .mode(model.ThresholdsMode.ABSOLUTE)
            .steps(first + rest)
        )


def rising(warning: float, critical: float | None = None) -> Steps:
    """Green below ``warning``, orange from it, red from ``critical`` (higher is worse)."""
    steps: list[tuple[float, Color]] = [(warning, "orange")]
    if critical is not None:
        steps.append((critical, "red"))
    return Steps("green", tuple(steps))


def falling(warning: float, critical: float | None = None) -> Steps:
    """Green above ``warning``, orange below it, red below ``critical`` (lower is worse)."""
    if critical is None:
        return Steps("orange", ((warning, "green"),))
    return Steps("red", ((critical, "orange"), (warning, "green")))


NEUTRAL = Steps("green")


def above(levels: Above, *, scale: float = 1.0) -> Steps:
    """The colours of an alert that fires above its limits: orange from its warning value,
    red from its critical one (each times ``scale``, for a panel drawn in other units)."""
    steps: list[tuple[float, Color]] = []
    if levels.warning is not None:
        steps.append((levels.warning.value * scale, "orange"))
    if levels.critical is not None:
        steps.append((levels.critical.value * scale, "red"))
    return Steps("green", tuple(steps))


def below(levels: Below) -> Steps:
    """The colours of an alert that fires below its limits: red under its critical value,
    orange under its warning one."""
    if levels.critical is None:
        return Steps("orange", () if levels.warning is None else ((levels.warning.value, "green"),))
    steps: list[tuple[float, Color]] = []
    steps.append((levels.critical.value, "orange" if levels.warning is not None else "green"))
    if levels.warning is not None:
        steps.append((levels.warning.value, "green"))
    return Steps("red", tuple(steps))


# --- links ---------------------------------------------------------------------------------------


def link_to(uid: str, title: str, **variables: str) -> dashboard_builder.DashboardLink:
    """A data link to dashboard ``uid`` that sets its variables (``building=
    "${__field.labels.building}"``) and keeps the time range."""
    arguments = "".join(f"&var-{name}={value}" for name, value in variables.items())
    return (
        dashboard_builder.DashboardLink(title)
        .type(model.DashboardLinkType.LINK)
        .url(f"/d/{uid}?${{__url_time_range}}{arguments}")
    )


def from_labels(*labels: str) -> dict[str, str]:
    """Link variables read from the clicked series' labels (time series, gauges)."""
    return {label: f"${{__field.labels.{label}}}" for label in labels}


def from_row(*labels: str) -> dict[str, str]:
    """Link variables read from the clicked table row's columns."""
    return {label: f"${{__data.fields.{label}}}" for label in labels}


def dashboards_menu() -> dashboard_builder.DashboardLink:
    """The menu every dashboard carries: the other gigawatt dashboards, variables kept."""
    return (
        dashboard_builder.DashboardLink("gigawatt")
        .type(model.DashboardLinkType.DASHBOARDS)
        .tags([TAG])
        .as_dropdown(True)
        .include_vars(True)
        .keep_time(True)
    )


# --- variables -----------------------------------------------------------------------------------


def label_variable(
    label: str,
    selector: str,
    *,
    multi: bool = False,
    title: str | None = None,
    current: str | None = None,
) -> dashboard_builder.QueryVariable:
    """A variable listing the values ``label`` takes in ``selector``; a selector that names
    earlier variables chains it to them (building -> hall -> row). ``multi`` adds "All" and
    selects it; ``current`` selects a value (Grafana falls back to the first one listed
    when it is not)."""
    variable = (
        dashboard_builder.QueryVariable(label)
        .label(title or label.replace("_", " ").capitalize())
        .datasource(DATASOURCE)
        .query(f"label_values({selector}, {label})")
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(model.VariableSort.NATURAL_ASC)
        .multi(multi)
        .include_all(multi)
    )
    if multi:
        # "All" as a regex rather than a list of every value: a campus has 67,200 racks.
        variable = variable.all_value(".*").current(
            model.VariableOption(selected=True, text="All", value="$__all")
        )
    elif current is not None:
        variable = variable.current(
            model.VariableOption(selected=True, text=current, value=current)
        )
    return variable


def number_variable(
    name: str, title: str, value: float, description: str
) -> Builder[model.VariableModel]:
    """A text box holding a number the queries multiply by (a tariff, a grid intensity)."""
    text = f"{value:g}"
    return (
        dashboard_builder.TextBoxVariable(name)
        .label(title)
        .description(description)
        .default_value(text)
        .current(model.VariableOption(selected=True, text=text, value=text))
    )


def firing_alerts_annotation(expr: str) -> dashboard_builder.AnnotationQuery:
    """Marks on every time series where an alert of ``expr`` (a selector of ALERTS) fires."""
    return (
        dashboard_builder.AnnotationQuery()
        .name("Firing alerts")
        .datasource(DATASOURCE)
        .enable(True)
        .icon_color("red")
        .expr(expr)
    )


# --- panels --------------------------------------------------------------------------------------


def stat_panel(
    title: str,
    description: str,
    target: prometheus.Dataquery,
    unit: str,
    thresholds: Steps = NEUTRAL,
) -> stat.Panel:
    """One number, coloured by ``thresholds``, with a sparkline of its recent past."""
    panel = (
        stat.Panel()
        .with_target(target)
        .unit(unit)
        .thresholds(thresholds.build())
        .reduce_options(common_builder.ReduceDataOptions().calcs(["lastNotNull"]))
        .color_mode(common.BigValueColorMode.VALUE)
        .graph_mode(common.BigValueGraphMode.AREA)
        .no_value("no data")
    )
    return panel.title(title).description(description).datasource(DATASOURCE)


def power_stat(title: str, description: str, expr: str, thresholds: Steps = NEUTRAL) -> stat.Panel:
    """A power in watts, shown in W, kW or MW as Grafana's unit scales it."""
    return stat_panel(title, description, query(expr), units.Watt, thresholds)


def timeseries_panel(
    title: str,
    description: str,
    targets: Iterable[prometheus.Dataquery],
    unit: str,
    thresholds: Steps | None = None,
) -> timeseries.Panel:
    """Series over time; ``thresholds`` (the alert thresholds) draw as dashed lines."""
    panel = (
        timeseries.Panel()
        .unit(unit)
        .line_width(1)
        .fill_opacity(10)
        .show_points(common.VisibilityMode.NEVER)
        .span_nulls(False)  # a gap is missing data: never draw over it
        .legend(
            common_builder.VizLegendOptions()
            .display_mode(common.LegendDisplayMode.TABLE)
            .placement(common.LegendPlacement.BOTTOM)
            .show_legend(True)
            .calcs(["lastNotNull", "max"])
        )
        .tooltip(
            common_builder.VizTooltipOptions()
            .mode(common.TooltipDisplayMode.MULTI)
            .sort(common.SortOrder.DESCENDING)
        )
    )
    for target in targets:
        panel = panel.with_target(target)
    if thresholds is not None:
        panel = panel.thresholds(thresholds.build()).thresholds_style(
            common_builder.GraphThresholdsStyleConfig().mode(common.GraphThresholdsStyleMode.DASHED)
        )
    return panel.title(title).description(description).datasource(DATASOURCE)


def power_timeseries(
    title: str,
    description: str,
    targets: Iterable[prometheus.Dataquery],
    thresholds: Steps | None = None,
) -> timeseries.Panel:
    """Power over time in W, kW or MW."""
    return timeseries_panel(title, description, targets, units.Watt, thresholds)


def ratio_gauge(
    title: str, description: str, target: prometheus.Dataquery, thresholds: Steps
) -> gauge.Panel:
    """A ratio (utilization, reporting share) as a percent gauge from 0 to 100 % (further
    when a threshold lies beyond), its arc coloured by ``thresholds``; one gauge per series."""
    panel = (
        gauge.Panel()
        .with_target(target)
        .unit(units.PercentUnit)
        .min(0)
        .max(thresholds.gauge_maximum())
        .decimals(1)
        .thresholds(thresholds.build())
        .show_threshold_markers(True)
        .reduce_options(common_builder.ReduceDataOptions().calcs(["lastNotNull"]))
    )
    return panel.title(title).description(description).datasource(DATASOURCE)


def bar_gauge_panel(
    title: str,
    description: str,
    target: prometheus.Dataquery,
    unit: str,
    thresholds: Steps = NEUTRAL,
    *,
    maximum: float | None = None,
) -> bargauge.Panel:
    """One horizontal bar per series (per building, per job), coloured by ``thresholds``."""
    panel = (
        bargauge.Panel()
        .with_target(target)
        .unit(unit)
        .min(0)
        .thresholds(thresholds.build())
        .orientation(common.VizOrientation.HORIZONTAL)
        .display_mode(common.BarGaugeDisplayMode.GRADIENT)
        .reduce_options(common_builder.ReduceDataOptions().calcs(["lastNotNull"]))
    )
    if maximum is not None:
        panel = panel.max(maximum)
    return panel.title(title).description(description).datasource(DATASOURCE)


def heatmap_panel(
    title: str,
    description: str,
    target: prometheus.Dataquery,
    unit: str,
    *,
    low: float | None,
    high: float | None,
) -> heatmap.Panel:
    """One heatmap row per series (per rack), time across, colour from ``low`` to ``high``
    (None: the data's own extreme): the series are the cells, nothing is bucketed."""
    colors = (
        heatmap.HeatmapColorOptions()
        .mode(HeatmapColorMode.SCHEME)
        .scheme("RdYlGn")
        .reverse(True)
        .scale(HeatmapColorScale.LINEAR)
        .steps(64)
    )
    if low is not None:
        colors = colors.min(low)
    if high is not None:
        colors = colors.max(high)
    panel = (
        heatmap.Panel()
        .with_target(target)
        .unit(unit)
        .calculate(False)
        .rows_frame(heatmap.RowsHeatmapOptions().layout(common.HeatmapCellLayout.UNKNOWN))
        .color(colors)
        .cell_values(heatmap.CellValues().unit(unit))
        .y_axis(heatmap.YAxisConfig().axis_placement(common.AxisPlacement.LEFT))
        .show_legend()
        .mode(common.TooltipDisplayMode.SINGLE)
    )
    return panel.title(title).description(description).datasource(DATASOURCE)


@dataclass(frozen=True)
class Column:
    """A table column: the label or value field it shows, under ``title``, and the colours
    of its cells."""

    field: str
    title: str
    thresholds: Steps | None = None


def table_panel(
    title: str,
    description: str,
    targets: Sequence[prometheus.Dataquery],
    columns: Sequence[Column],
    unit: str = units.Short,
    *,
    link: dashboard_builder.DashboardLink | None = None,
    sort_by: str | None = None,
    descending: bool = True,
) -> table.Panel:
    """Instant table queries joined on their labels; only ``columns`` are shown, in order,
    every value in ``unit``; ``link`` opens from any cell of a row (its variables may read
    the row's columns, ``from_row``). ``sort_by`` names the column (by its title) the rows
    are sorted by, largest first unless not ``descending``.

    With several queries each value column is named "Value #<refId>", so the dashboard
    assembler's refIds (A, B, ...) are what ``Column.field`` refers to. One unit per table:
    the dashboard schema types an override's value as an object, which a unit is not.
    """
    shown = [column.field for column in columns]
    panel = table.Panel().unit(unit).cell_height(common.TableCellHeight.SM).show_header(True)
    if link is not None:
        panel = panel.data_links([link])
    if sort_by is not None:
        panel = panel.sort_by(
            [common_builder.TableSortByFieldState().display_name(sort_by).desc(descending)]
        )
    for target in targets:
        panel = panel.with_target(target)
    if len(targets) > 1:
        panel = panel.with_transformation(model.DataTransformerConfig(id_val="merge", options={}))
    panel = panel.with_transformation(
        model.DataTransformerConfig(
            id_val="organize",
            options={
                "excludeByName": {"Time": True},
                "includeByName": {name: True for name in shown},
                "indexByName": {name: index for index, name in enumerate(shown)},
                "renameByName": {column.field: column.title for column in columns},
            },
        )
    )
    for column in columns:
        if column.thresholds is None:
            continue
        # Overrides match the field's name before "organize" renames it; "byNames" takes
        # its options as an object, as the schema asks of every matcher.
        panel = panel.with_override(
            model.MatcherConfig(
                id_val="byNames", options={"mode": "include", "names": [column.field]}
            ),
            [
                model.DynamicConfigValue(
                    id_val="thresholds", value=column.thresholds.build().build()
                ),
                model.DynamicConfigValue(id_val="custom.cellOptions", value={"type": "color-text"}),
            ],
        )
    return panel.title(title).description(description).datasource(DATASOURCE)


def state_timeline_panel(
    title: str,
    description: str,
    target: prometheus.Dataquery,
    mappings: dict[str, tuple[str, Color]],
) -> statetimeline.Panel:
    """Which state each series was in over time; ``mappings`` turn values into words and
    colours (0 -> "idle", green). The values are states, not quantities: unit "none"."""
    value_maps = model.ValueMap(
        options={
            value: model.ValueMappingResult(text=text, color=color)
            for value, (text, color) in mappings.items()
        }
    )
    panel = (
        statetimeline.Panel()
        .with_target(target)
        .unit(units.NoUnit)
        .mappings([value_maps])
        .show_value(common.VisibilityMode.NEVER)
        .merge_values(True)
        .row_height(0.8)
    )
    return panel.title(title).description(description).datasource(DATASOURCE)


# --- layout --------------------------------------------------------------------------------------


@dataclass
class Grid:
    """Places panels left to right on Grafana's 24-column grid, wrapping to a new line when
    the next one would run past the edge, under full-width section rows. The positions are
    explicit, so nothing depends on the SDK's automatic layout."""

    panels: list[model.Panel | model.RowPanel] = field(default_factory=list)
    _x: int = 0
    _y: int = 0
    _line_height: int = 0

    def section(self, title: str) -> Grid:
        self._new_line()
        row = dashboard_builder.Row(title).grid_pos(
            model.GridPos(h=1, w=GRID_COLUMNS, x=0, y=self._y)
        )
        self.panels.append(row.build())
        self._y += 1
        return self

    def add(self, panel: Builder[model.Panel], width: int, height: int) -> Grid:
        if not 0 < width <= GRID_COLUMNS:
            raise ValueError(f"panel width {width} is outside 1..{GRID_COLUMNS}")
        if self._x + width > GRID_COLUMNS:
            self._new_line()
        built = panel.build()
        built.grid_pos = model.GridPos(h=height, w=width, x=self._x, y=self._y)
        self.panels.append(built)
        self._x += width
        self._line_height = max(self._line_height, height)
        return self

    def _new_line(self) -> None:
        self._y += self._line_height
        self._x = 0
        self._line_height = 0


# --- the dashboard around the panels -------------------------------------------------------------

# Prometheus' own series of the alerting rules it evaluates (not a gigawatt metric): one per
# pending or firing alert, with the alert's labels.
ALERTS = "ALERTS"
# What operators act on; the Watchdog (severity none) always fires and means nothing here.
PAGING = 'severity=~"warning|critical"'


def firing_alerts(*scoped: str, paging: bool = False) -> str:
    """Alerts firing now about what the dashboard shows: each ``scoped`` label matches its
    variable or is absent (a site-wide alert has no building label); ``paging`` keeps
    warning and critical ones."""
    matchers = ['alertstate="firing"']
    matchers += [f'{label}=~"${label}|"' for label in scoped]
    if paging:
        matchers.append(PAGING)
    return f"{ALERTS}{{{', '.join(matchers)}}}"


def skeleton(
    uid: str, title: str, description: str, *alert_scope: str
) -> dashboard_builder.Dashboard:
    """A dashboard in house style: tagged, refreshed every 30 s over the last 6 hours, the
    menu of the other gigawatt dashboards, and firing warning and critical alerts (in
    ``alert_scope``) marked on its time series."""
    return (
        dashboard_builder.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags([TAG])
        .editable()
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
        .refresh("30s")
        .time("now-6h", "now")
        .timezone("browser")
        .link(dashboards_menu())
        .annotation(firing_alerts_annotation(firing_alerts(*alert_scope, paging=True)))
    )


def with_panels(board: dashboard_builder.Dashboard, grid: Grid) -> model.Dashboard:
    """The built dashboard with the grid's panels, in their explicit positions."""
    built = board.build()
    built.panels = list(grid.panels)
    return built
