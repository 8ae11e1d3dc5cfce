"""The geometry of the insights page's charts: numbers in, rectangles and labels out.

The template draws them as SVG (rect, line, text) with CSS classes for colour, so the
charts follow the page's theme and the Content-Security-Policy needs no inline style.
Each chart also carries its numbers as a table, for screen readers and for copying.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

WIDTH = 720
HEIGHT = 240
# Room for the y axis's numbers on the left and the x axis's labels below.
LEFT, RIGHT, TOP, BOTTOM = 64, 8, 8, 40
# The horizontal charts: a name column, then the bars.
NAME_WIDTH = 260
ROW_HEIGHT = 22


@dataclass(frozen=True)
class Series:
    key: str
    label: str
    css: str  # a class from static/css/insights.css: the series' colour


@dataclass(frozen=True)
class Rect:
    x: float
    y: float
    width: float
    height: float
    css: str
    title: str  # shown on hover (SVG <title>)


@dataclass(frozen=True)
class Label:
    x: float
    y: float
    text: str


@dataclass
class Chart:
    """One chart: what the SVG draws and the table that says the same."""

    width: int
    height: int
    rects: list[Rect] = field(default_factory=list)
    gridlines: list[Label] = field(default_factory=list)  # y (and x for hbars) of each tick, with its text
    x_labels: list[Label] = field(default_factory=list)
    y_labels: list[Label] = field(default_factory=list)
    legend: list[Series] = field(default_factory=list)
    table_head: list[str] = field(default_factory=list)
    table_rows: list[list[str]] = field(default_factory=list)
    plot_left: int = LEFT
    plot_right: int = WIDTH - RIGHT
    plot_bottom: int = HEIGHT - BOTTOM
    horizontal: bool = False

    @property
    def empty(self) -> bool:
        return not self.rects

    def svg_body(self) -> SafeString:
        """The SVG's elements. Written here rather than in a template loop: a month's chart has
        hundreds of them, and the numbers need no localizing. Every text is escaped."""
        parts = []
        for tick in self.gridlines:
            if self.horizontal:
                parts.append(f'<line class="grid" x1="{tick.x}" x2="{tick.x}" y1="{TOP}" y2="{self.plot_bottom}"/>'
                             f'<text class="axis" x="{tick.x}" y="{tick.y}" text-anchor="middle">{escape(tick.text)}</text>')
            else:
                parts.append(f'<line class="grid" x1="{self.plot_left}" x2="{self.plot_right}" y1="{tick.y}" y2="{tick.y}"/>'
                             f'<text class="axis" x="{self.plot_left - 6}" y="{tick.y}" dy="4" text-anchor="end">'
                             f"{escape(tick.text)}</text>")
        for rect in self.rects:
            parts.append(f'<rect class="bar {escape(rect.css)}" x="{rect.x}" y="{rect.y}" width="{rect.width}" '
                         f'height="{rect.height}"><title>{escape(rect.title)}</title></rect>')
        for label in self.x_labels:
            parts.append(f'<text class="axis" x="{label.x}" y="{label.y}" text-anchor="middle">{escape(label.text)}</text>')
        for label in self.y_labels:
            parts.append(f'<text class="axis axis-name" x="{label.x}" y="{label.y}" text-anchor="end">'
                         f"{escape(label.text)}</text>")
        return mark_safe("".join(parts))  # noqa: S308 - every text above is escaped

    def table_body(self) -> SafeString:
        """The table view's rows (a name, then the values), written here for the same reason."""
        rows = [
            "<tr><th scope=\"row\">" + escape(name) + "</th>" + "".join(f"<td>{escape(cell)}</td>" for cell in cells)
            + "</tr>"
            for name, *cells in self.table_rows
        ]
        return mark_safe("".join(rows))  # noqa: S308 - every cell is escaped


# Units an axis may count in, so its ticks fall on round sizes and times (1.5 MB, 6 h), not on
# round numbers of bytes or seconds (976.6 KB, 6 h 56 m).
BYTES = (1, 1024, 1024**2, 1024**3, 1024**4)
SECONDS = (1, 60, 3600, 86400)


def axis_ticks(highest: float, *, whole: bool, units: Sequence[float] = (1,)) -> list[float]:
    """The axis's ticks from 0 up to the lowest readable top at or above `highest`: two to
    five of them (three or more when a step allows), a step of 1, 2, 2.5 or 5 × 10^k of the
    largest of `units` not above `highest`. With `whole` (counts, tokens, bytes) a step in
    plain units is a whole number, so no two ticks of a small count read the same ("0, 0,
    1, 2, 2")."""
    if highest <= 0:
        return [0, 1]
    unit = max((u for u in units if u <= highest), default=1)
    ticks = _ticks_in_unit(highest / unit, whole=whole and unit == 1)
    return [tick * unit for tick in ticks] if unit != 1 else ticks


def _ticks_in_unit(highest: float, *, whole: bool) -> list[float]:
    lowest_power = math.floor(math.log10(highest / 4))
    steps = [factor * 10.0**power for power in (lowest_power, lowest_power + 1) for factor in (1, 2, 2.5, 5)]
    if whole:
        steps = [1.0, *(step for step in steps if step.is_integer())]
    fitting = []
    for step in steps:
        intervals = max(math.ceil(highest / step - 1e-9), 1)
        if intervals <= 4:
            fitting.append((intervals < 2, step * intervals, step, intervals))  # a lone interval only if need be
    *_, step, intervals = min(fitting)
    return [int(step * n) if whole else round(step * n, 12) for n in range(intervals + 1)]


def _whole_numbers(values) -> bool:
    return all(float(value).is_integer() for value in values)


def stacked_bars(
    *,
    labels: Sequence[str],
    series: Sequence[Series],
    values: Sequence[dict[str, float]],
    fmt: Callable[[float], str],
    label_head: str,
    missing: str | None = None,
    units: Sequence[float] = (1,),
) -> Chart:
    """Columns, one per label, each stacking the series' values bottom up.

    A value missing from a column is 0, or, when `missing` is given, shown as that text
    in the table (a rate where nothing was counted).
    """
    chart = Chart(width=WIDTH, height=HEIGHT, legend=list(series))
    chart.table_head = [label_head, *(s.label for s in series)]
    for label, column in zip(labels, values, strict=True):
        chart.table_rows.append([label, *(missing if missing is not None and s.key not in column
                                          else fmt(column.get(s.key, 0)) for s in series)])
    ticks = axis_ticks(max((sum(column.values()) for column in values), default=0),
                       whole=_whole_numbers(v for column in values for v in column.values()), units=units)
    top = ticks[-1]
    plot_height = chart.plot_bottom - TOP
    plot_width = chart.plot_right - chart.plot_left
    slot = plot_width / max(len(labels), 1)
    bar = max(slot * 0.75, 1.0)
    for value in ticks:
        y = chart.plot_bottom - plot_height * value / top
        chart.gridlines.append(Label(x=chart.plot_left, y=round(y, 1), text=fmt(value)))
    # Every label when they fit, else every n-th: 30 days or 24 hours stay readable.
    every = max(1, math.ceil(len(labels) / 12))
    for index, (label, column) in enumerate(zip(labels, values, strict=True)):
        x = chart.plot_left + slot * index + (slot - bar) / 2
        if index % every == 0:
            chart.x_labels.append(Label(x=round(x + bar / 2, 1), y=chart.plot_bottom + 16, text=label))
        base = chart.plot_bottom
        for s in series:
            value = column.get(s.key, 0)
            if value <= 0:
                continue
            height = plot_height * value / top
            base -= height
            chart.rects.append(
                Rect(x=round(x, 1), y=round(base, 1), width=round(bar, 1), height=round(height, 1), css=s.css,
                     title=f"{label} · {s.label}: {fmt(value)}")
            )
    return chart


def grouped_hbars(
    *,
    rows: Sequence[tuple[str, dict[str, float | None]]],
    series: Sequence[Series],
    fmt: Callable[[float], str],
    label_head: str,
    units: Sequence[float] = (1,),
) -> Chart:
    """Horizontal bars: one group per row (a model, an error code), one bar per series."""
    per_row = len(series)
    height = TOP + len(rows) * (per_row * ROW_HEIGHT + 8) + 28
    # The right margin leaves room for the last tick's label, centred on the axis's end.
    chart = Chart(width=WIDTH, height=max(height, 60), legend=list(series) if per_row > 1 else [], horizontal=True,
                  plot_left=NAME_WIDTH, plot_right=WIDTH - 32, plot_bottom=max(height, 60) - 24)
    chart.table_head = [label_head, *(s.label for s in series)]
    shown = [v for _, vs in rows for v in vs.values() if v is not None]
    ticks = axis_ticks(max(shown, default=0), whole=_whole_numbers(shown), units=units)
    top = ticks[-1]
    plot_width = chart.plot_right - chart.plot_left
    for value in ticks:
        chart.gridlines.append(Label(x=round(chart.plot_left + plot_width * value / top, 1), y=chart.plot_bottom + 16,
                                     text=fmt(value)))
    y = TOP
    for name, row_values in rows:
        chart.table_rows.append([name, *(fmt(row_values[s.key]) if row_values.get(s.key) is not None else "–"
                                         for s in series)])
        chart.y_labels.append(Label(x=chart.plot_left - 8, y=round(y + per_row * ROW_HEIGHT / 2 + 4, 1),
                                    text=name if len(name) <= 36 else name[:35] + "…"))
        for s in series:
            value = row_values.get(s.key)
            if value is not None and value > 0:
                chart.rects.append(Rect(x=chart.plot_left, y=y + 2, width=round(max(plot_width * value / top, 1), 1),
                                        height=ROW_HEIGHT - 4, css=s.css, title=f"{name} · {s.label}: {fmt(value)}"))
            y += ROW_HEIGHT
        y += 8
    return chart
