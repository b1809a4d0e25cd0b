"""Line charts as server-rendered SVG: a picture of a kiosk's heartbeat history, no script.

::

    svg = line_chart(
        [(time, value), ...], start=now - dt.timedelta(hours=24), end=now,
        title="Outbox depth", unit="records", threshold=None,
    )
    # a Markup string: {{ svg }} in a template

The line breaks where heartbeats are missing (a gap longer than three heartbeat intervals),
so a kiosk that was silent shows as a gap, not as a straight line across it. Many points are
reduced to the lowest and highest value per pixel column, so a short spike stays visible.
Every text is escaped; the chart has a title and a description for screen readers.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import statistics
from collections.abc import Callable, Sequence

from markupsafe import Markup, escape

Point = tuple[dt.datetime, float | None]

WIDTH = 720
HEIGHT = 170
_LEFT, _RIGHT, _TOP, _BOTTOM = 60, 14, 26, 24
_MIN_GAP_S = 120.0
LINE = "#1f6fb2"
THRESHOLD = "#c0392b"
GRID = "#d8dde3"
INK = "#333"


def _nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 times 10^n at or above *value* (an axis' top)."""
    if value <= 0:
        return 1.0
    exponent = math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        candidate = step * 10**exponent
        if candidate >= value * (1 - 1e-9):
            return float(candidate)
    return float(10 ** (exponent + 1))


def _default_format(value: float) -> str:
    if abs(value) >= 100 or value == int(value):
        return f"{value:,.0f}"
    return f"{value:.1f}"


def _segments(points: Sequence[tuple[dt.datetime, float]], gap_s: float | None) -> list[list]:
    """*points* split where consecutive times are further apart than *gap_s*."""
    if len(points) < 2:
        return [list(points)] if points else []
    if gap_s is None:
        spacing = [(b[0] - a[0]).total_seconds() for a, b in itertools.pairwise(points)]
        gap_s = max(_MIN_GAP_S, 3 * statistics.median(spacing))
    segments: list[list] = [[points[0]]]
    for before, point in itertools.pairwise(points):
        if (point[0] - before[0]).total_seconds() > gap_s:
            segments.append([])
        segments[-1].append(point)
    return segments


def _reduce(points: list[tuple[float, float]], columns: int) -> list[tuple[float, float]]:
    """At most two points (lowest, highest) per pixel column, in x order."""
    if len(points) <= 2 * columns:
        return points
    reduced: list[tuple[float, float]] = []
    bucket: list[tuple[float, float]] = []
    column = None
    for x, y in points:
        here = int(x)
        if column is not None and here != column:
            reduced += _extremes(bucket)
            bucket = []
        column = here
        bucket.append((x, y))
    reduced += _extremes(bucket)
    return reduced


def _extremes(bucket: list[tuple[float, float]]) -> list[tuple[float, float]]:
    if len(bucket) <= 2:
        return bucket
    low = min(bucket, key=lambda p: p[1])
    high = max(bucket, key=lambda p: p[1])
    return sorted({low, high})


def line_chart(
    points: Sequence[Point],
    *,
    start: dt.datetime,
    end: dt.datetime,
    title: str,
    unit: str = "",
    threshold: float | None = None,
    threshold_label: str = "alert threshold",
    y_max: float | None = None,
    value_format: Callable[[float], str] = _default_format,
    gap_s: float | None = None,
    width: int = WIDTH,
    height: int = HEIGHT,
) -> Markup:
    """An SVG line chart of *points* (time, value; None values are gaps) between *start* and
    *end*. *y_max* fixes the top of the axis (100 for a percentage); otherwise it fits the data
    and the threshold. See the module docstring."""
    span = (end - start).total_seconds() or 1.0
    plot_w, plot_h = width - _LEFT - _RIGHT, height - _TOP - _BOTTOM
    known = [(t, float(v)) for t, v in points if v is not None and start <= t <= end]
    top = y_max
    if top is None:
        highest = max([v for _, v in known] + [threshold or 0.0, 0.0])
        top = _nice_ceiling(highest * 1.05 if highest else 1.0)

    def x_of(moment: dt.datetime) -> float:
        return _LEFT + plot_w * (moment - start).total_seconds() / span

    def y_of(value: float) -> float:
        return _TOP + plot_h * (1 - min(max(value, 0.0), top) / top)

    unit_text = f" {unit}" if unit else ""
    latest = f"latest {value_format(known[-1][1])}{unit_text}" if known else "no data"
    description = (
        f"{title} from {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC: "
        f"{len(known)} heartbeats, {latest}"
        + (f", highest {value_format(max(v for _, v in known))}{unit_text}" if known else "")
    )
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'aria-labelledby="{_id(title)}-t {_id(title)}-d">',
        f'<title id="{_id(title)}-t">{escape(title)}</title>',
        f'<desc id="{_id(title)}-d">{escape(description)}</desc>',
        f'<text x="{_LEFT}" y="16" font-size="13" font-weight="bold" fill="{INK}">'
        f"{escape(title)}</text>",
        f'<text x="{width - _RIGHT}" y="16" font-size="11" text-anchor="end" fill="{INK}">'
        f"{escape(latest)}</text>",
    ]
    # horizontal grid and y labels: 0, half, top
    for fraction in (0.0, 0.5, 1.0):
        value = top * fraction
        y = y_of(value)
        parts.append(
            f'<line x1="{_LEFT}" y1="{y:.1f}" x2="{width - _RIGHT}" y2="{y:.1f}" '
            f'stroke="{GRID}" stroke-width="1"/>'
        )
        parts.append(
            f'<text x="{_LEFT - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end" '
            f'fill="{INK}">{escape(value_format(value) + unit_text)}</text>'
        )
    # vertical grid every 6 hours on the hour (UTC), labelled
    tick = start.replace(minute=0, second=0, microsecond=0)
    while tick < start or tick.hour % 6:
        tick += dt.timedelta(hours=1)
    while tick <= end:
        x = x_of(tick)
        parts.append(
            f'<line x1="{x:.1f}" y1="{_TOP}" x2="{x:.1f}" y2="{_TOP + plot_h}" '
            f'stroke="{GRID}" stroke-width="1"/>'
        )
        parts.append(
            f'<text x="{x:.1f}" y="{height - 8}" font-size="11" text-anchor="middle" '
            f'fill="{INK}">{tick:%H:%M}</text>'
        )
        tick += dt.timedelta(hours=6)
    if threshold is not None and threshold <= top:
        y = y_of(threshold)
        parts.append(
            f'<line class="threshold" x1="{_LEFT}" y1="{y:.1f}" x2="{width - _RIGHT}" '
            f'y2="{y:.1f}" stroke="{THRESHOLD}" stroke-width="1" stroke-dasharray="4 3">'
            f"<title>{escape(threshold_label)}: {escape(value_format(threshold) + unit_text)}"
            "</title></line>"
        )
    for segment in _segments(known, gap_s):
        coords = _reduce([(x_of(t), y_of(v)) for t, v in segment], plot_w)
        if len(coords) == 1:
            x, y = coords[0]
            parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2" fill="{LINE}"/>')
            continue
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
        parts.append(
            f'<polyline class="series" points="{path}" fill="none" stroke="{LINE}" '
            'stroke-width="1.5" stroke-linejoin="round"/>'
        )
    if not known:
        parts.append(
            f'<text x="{_LEFT + plot_w / 2:.1f}" y="{_TOP + plot_h / 2:.1f}" font-size="12" '
            f'text-anchor="middle" fill="{INK}">no heartbeats in this period</text>'
        )
    parts.append(
        f'<rect x="{_LEFT}" y="{_TOP}" width="{plot_w}" height="{plot_h}" fill="none" '
        f'stroke="{GRID}"/>'
    )
    parts.append("</svg>")
    return Markup("".join(parts))


def _id(title: str) -> str:
    return "chart-" + "".join(c if c.isalnum() else "-" for c in title.lower())
