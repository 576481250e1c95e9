"""The one look every kpexporter dashboard shares: panels, thresholds, variables, layout.

Built on ``grafana-foundation-sdk``'s typed builders, so a panel option misspelt is a type
error, not a silently ignored JSON key. Everything a dashboard needs in common is decided
here once: the datasource is always the ``$datasource`` variable (never a UID), every panel
has a unit, every target a ``refId`` and the datasource, every panel its place on a grid
that no other panel overlaps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import prometheus as pb
from grafana_foundation_sdk.builders import stat as sb
from grafana_foundation_sdk.builders import statetimeline as stb
from grafana_foundation_sdk.builders import table as tb
from grafana_foundation_sdk.builders import timeseries as tsb
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.cog.variants import Dataquery
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models import prometheus as pm

DATASOURCE_VAR = "datasource"
DS = dm.DataSourceRef(type_val="prometheus", uid=f"${{{DATASOURCE_VAR}}}")
"""Every panel and target reads through the variable: one dashboard for every Prometheus."""
GRID_WIDTH = 24
TAG = "kpexporter"
"""Every kpexporter dashboard carries it; the link dropdown lists the dashboards by it."""

# Grafana's named colours, so the dashboards follow the theme.
OK, WARN, BAD, INFO, OFF = "green", "orange", "red", "blue", "text"


@dataclass(frozen=True, slots=True)
class Target:
    """One PromQL query of a panel. ``instant``: one value (stat, table); else a range."""

    expr: str
    legend: str = ""
    instant: bool = False
    table: bool = False  # Prometheus "table" format: one row per series, labels as columns


def _query(t: Target, ref: str) -> pb.Dataquery:
    q = pb.Dataquery().expr(t.expr).ref_id(ref).datasource(DS).legend_format(
        t.legend or "__auto")
    q = q.instant() if t.instant else q.range()
    if t.table:
        q = q.format(pm.PromQueryFormat.TABLE)
    return q


def _targets(targets: Sequence[Target]) -> list[Builder[Dataquery]]:
    return [_query(t, chr(ord("A") + i)) for i, t in enumerate(targets)]


def steps(base: str, *above: tuple[float, str]) -> db.ThresholdsConfig:
    """Absolute thresholds: ``base`` below the first value, then each colour from its value."""
    return db.ThresholdsConfig().mode(dm.ThresholdsMode.ABSOLUTE).steps(
        [dm.Threshold(value=None, color=base),
         *(dm.Threshold(value=v, color=c) for v, c in above)])


def value_text(*pairs: tuple[str, str, str]) -> list[dm.ValueMapping]:
    """Value mappings ``(value, text, colour)``: 1 → "healthy", 503 → "503", …"""
    return [dm.ValueMap(options={v: dm.ValueMappingResult(text=t, color=c, index=i)
                                 for i, (v, t, c) in enumerate(pairs)})]


def link(title: str, url: str) -> db.DashboardLink:
    return db.DashboardLink(title).type(dm.DashboardLinkType.LINK).url(url).target_blank(True)


@dataclass(frozen=True, slots=True)
class PanelSpec:
    """What every panel kind takes; ``unit`` is required: no panel without one."""

    title: str
    unit: str
    targets: Sequence[Target]
    description: str = ""
    thresholds: db.ThresholdsConfig | None = None
    mappings: Sequence[dm.ValueMapping] = ()
    links: Sequence[db.DashboardLink] = ()
    """Links in the panel's header (runbooks, related dashboards)."""
    data_links: Sequence[db.DashboardLink] = ()
    """Links on each value (a table row's node → its detail dashboard)."""
    min: float | None = None
    max: float | None = None
    decimals: int | None = None


PanelBuilder = (tsb.Panel | sb.Panel | tb.Panel | stb.Panel)


def _common(p: PanelBuilder, s: PanelSpec) -> None:
    p.title(s.title).datasource(DS).unit(s.unit).targets(_targets(s.targets))
    if s.description:
        p.description(s.description)
    p.thresholds(s.thresholds if s.thresholds is not None else steps(OK))
    if s.mappings:
        p.mappings(list(s.mappings))
    if s.links:
        p.links(list(s.links))
    if s.data_links:
        p.data_links(list(s.data_links))
    if s.min is not None:
        p.min(s.min)
    if s.max is not None:
        p.max(s.max)
    if s.decimals is not None:
        p.decimals(s.decimals)


def timeseries(s: PanelSpec, *, threshold_lines: bool = False, stack: bool = False,
               bars: bool = False) -> tsb.Panel:
    p = tsb.Panel()
    _common(p, s)
    p.legend(cb.VizLegendOptions().display_mode(cm.LegendDisplayMode.TABLE)
             .placement(cm.LegendPlacement.BOTTOM).show_legend(True).calcs(["lastNotNull", "max"]))
    p.tooltip(cb.VizTooltipOptions().mode(cm.TooltipDisplayMode.MULTI)
              .sort(cm.SortOrder.DESCENDING))
    p.line_width(1).fill_opacity(10).show_points(cm.VisibilityMode.NEVER).span_nulls(False)
    if bars:
        p.draw_style(cm.GraphDrawStyle.BARS).fill_opacity(80)
    if stack:
        p.stacking(cb.StackingConfig().mode(cm.StackingMode.NORMAL)).fill_opacity(60)
    p.thresholds_style(cb.GraphThresholdsStyleConfig().mode(
        cm.GraphTresholdsStyleMode.DASHED if threshold_lines else cm.GraphTresholdsStyleMode.OFF))
    return p


def stat(s: PanelSpec, *, text_mode: cm.BigValueTextMode = cm.BigValueTextMode.AUTO,
         background: bool = True, calc: str = "lastNotNull") -> sb.Panel:
    p = sb.Panel()
    _common(p, s)
    p.reduce_options(cb.ReduceDataOptions().calcs([calc]).values(False))
    p.color_mode(cm.BigValueColorMode.BACKGROUND if background else cm.BigValueColorMode.VALUE)
    p.graph_mode(cm.BigValueGraphMode.NONE).text_mode(text_mode)
    p.orientation(cm.VizOrientation.AUTO).justify_mode(cm.BigValueJustifyMode.AUTO)
    return p


def table(s: PanelSpec, *, hide: Sequence[str] = ("Time", "__name__", "job", "instance"),
          sort_by: str = "value", descending: bool = True) -> tb.Panel:
    """An instant table of series; label columns but ``hide`` shown, sorted by value (the
    ``Value`` column renamed ``value``), the value coloured by the thresholds."""
    p = tb.Panel()
    _common(p, s)
    p.show_header(True).cell_height(cm.TableCellHeight.SM)
    p.override_by_name("value", [dm.DynamicConfigValue(id_val="custom.cellOptions",
                                                       value={"type": "color-text"})])
    p.sort_by([cb.TableSortByFieldState().display_name(sort_by).desc(descending)])
    p.with_transformation(dm.DataTransformerConfig(
        id_val="organize", options={"excludeByName": {h: True for h in hide},
                                    "renameByName": {"Value": "value"}}))
    return p


def state_timeline(s: PanelSpec) -> stb.Panel:
    p = stb.Panel()
    _common(p, s)
    p.show_value(cm.VisibilityMode.NEVER).merge_values(True).row_height(0.8)
    p.legend(cb.VizLegendOptions().display_mode(cm.LegendDisplayMode.LIST)
             .placement(cm.LegendPlacement.BOTTOM).show_legend(True))
    p.tooltip(cb.VizTooltipOptions().mode(cm.TooltipDisplayMode.SINGLE)
              .sort(cm.SortOrder.NONE))
    return p


@dataclass
class Layout:
    """Panels placed left to right, wrapping at the grid's width; rows span it.

    Positions are computed here, not by the SDK's auto-placement, so that no two panels can
    overlap whatever their sizes, and ids are numbered in reading order from 1.
    """

    items: list[tuple[str, Builder[dm.Panel] | db.Row]] = field(default_factory=list)
    x: int = 0
    y: int = 0
    line_height: int = 0
    next_id: int = 1

    def _new_line(self) -> None:
        self.y += self.line_height
        self.x = 0
        self.line_height = 0

    def row(self, title: str) -> None:
        if self.x:
            self._new_line()
        r = db.Row(title).id(self.next_id).collapsed(False).grid_pos(
            dm.GridPos(h=1, w=GRID_WIDTH, x=0, y=self.y))
        self.next_id += 1
        self.items.append(("row", r))
        self.y += 1

    def add(self, panel: PanelBuilder, w: int, h: int) -> None:
        if not 0 < w <= GRID_WIDTH:
            raise ValueError(f"panel width {w} outside 1..{GRID_WIDTH}")
        if self.x + w > GRID_WIDTH:
            self._new_line()
        panel.id(self.next_id).grid_pos(dm.GridPos(h=h, w=w, x=self.x, y=self.y))
        self.next_id += 1
        self.items.append(("panel", panel))
        self.x += w
        self.line_height = max(self.line_height, h)
        if self.x == GRID_WIDTH:
            self._new_line()

    def apply(self, d: db.Dashboard) -> db.Dashboard:
        for kind, item in self.items:
            if kind == "row":
                assert isinstance(item, db.Row)
                d.with_row(item)
            else:
                d.with_panel(item)  # type: ignore[arg-type]
        return d


def datasource_variable() -> db.DatasourceVariable:
    return (db.DatasourceVariable(DATASOURCE_VAR).label("Data source").type("prometheus")
            .current(dm.VariableOption(selected=True, text="default", value="default")))


def query_variable(name: str, label: str, query: str, *, all_value: str,
                   multi: bool = True) -> db.QueryVariable:
    """A variable of label values; "All" is the regex ``all_value`` (``.*`` also matches a
    series without the label, so a ``cluster`` variable is harmless where there is none)."""
    return (db.QueryVariable(name).label(label).datasource(DS)
            .query({"query": query, "refId": f"{name}-values"})
            .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED).sort(dm.VariableSort.ALPHABETICAL_ASC)
            .include_all(True).all_value(all_value).multi(multi)
            .current(dm.VariableOption(selected=True, text="All", value="$__all")))
