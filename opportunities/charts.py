"""Server-rendered SVG for the gap analysis: no JavaScript, no CDN, readable at any width (viewBox scales)."""

from __future__ import annotations

from collections.abc import Sequence

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from .selectors import Gap

BAR_COLOUR = "#417690"  # the admin's own blue
COVERED_COLOUR = "#79aec8"
TREND_COLOUR = "#ba2121"


def _fmt(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 else f"{value:,.1f}"


def sparkline(values: Sequence[float], *, width: int = 120, height: int = 28) -> SafeString:
    """A line of weekly human hours, oldest first, scaled to its own maximum."""
    if not values:
        return mark_safe("")
    top = max(values) or 1.0
    step = width / max(len(values) - 1, 1)
    points = " ".join(f"{i * step:.1f},{height - 2 - (v / top) * (height - 4):.1f}" for i, v in enumerate(values))
    last_x, last_y = points.split(" ")[-1].split(",")
    title = escape(" → ".join(_fmt(v) for v in values) + " h/week")
    return mark_safe(  # noqa: S308 - numbers only, and the title is escaped
        f'<svg class="sparkline" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
        f'aria-label="trend"><title>{title}</title>'
        f'<polyline fill="none" stroke="{TREND_COLOUR}" stroke-width="1.5" points="{points}"/>'
        f'<circle cx="{last_x}" cy="{last_y}" r="2.5" fill="{TREND_COLOUR}"/></svg>'
    )


def gap_bar_chart(gaps: Sequence[Gap], *, limit: int = 10) -> SafeString:
    """Horizontal bars of human hours per week for the top ``limit`` reasons; the lighter part of each bar is the
    share of the reason's conversations a solution already serves (coverage)."""
    shown = list(gaps[:limit])
    if not shown:
        return mark_safe('<p class="help">No contact-reason data in this period.</p>')
    label_width, bar_width, value_width, row = 190, 420, 110, 28
    width = label_width + bar_width + value_width
    height = row * len(shown) + 30
    top = max(gap.human_hours_per_week for gap in shown) or 1.0
    parts = [
        f'<svg id="gap-chart" viewBox="0 0 {width} {height}" width="100%" preserveAspectRatio="xMinYMin meet" '
        f'role="img" aria-labelledby="gap-chart-title" '
        f'style="max-width:{width}px;min-width:560px;font-family:sans-serif">',
        '<title id="gap-chart-title">Human hours per week by contact reason</title>',
    ]
    for index, gap in enumerate(shown):
        y = index * row + 4
        length = max(gap.human_hours_per_week / top * bar_width, 1.0)
        covered = length * gap.coverage
        parts.append(
            f'<g class="gap-bar" data-reason="{escape(gap.contact_reason)}">'
            f'<text x="{label_width - 8}" y="{y + 17}" text-anchor="end" font-size="13" fill="#333">'
            f"{escape(gap.contact_reason)}</text>"
            f'<rect x="{label_width}" y="{y + 3}" width="{length:.1f}" height="{row - 8}" fill="{BAR_COLOUR}"/>'
            f'<rect x="{label_width}" y="{y + 3}" width="{covered:.1f}" height="{row - 8}" fill="{COVERED_COLOUR}"/>'
            f'<text x="{label_width + length + 6:.1f}" y="{y + 17}" font-size="12" fill="#333">'
            f"{_fmt(gap.human_hours_per_week)} h</text></g>"
        )
    legend_y = len(shown) * row + 18
    parts.append(
        f'<rect x="{label_width}" y="{legend_y - 10}" width="12" height="12" fill="{BAR_COLOUR}"/>'
        f'<text x="{label_width + 16}" y="{legend_y}" font-size="12" fill="#555">human hours / week</text>'
        f'<rect x="{label_width + 160}" y="{legend_y - 10}" width="12" height="12" fill="{COVERED_COLOUR}"/>'
        f'<text x="{label_width + 176}" y="{legend_y}" font-size="12" fill="#555">share already served by a '
        "solution</text></svg>"
    )
    return mark_safe("".join(parts))  # noqa: S308 - reason slugs are escaped, the rest are numbers
