"""Server-rendered SVG charts of a guardrail's looks: the estimate over time, its always-valid band, and the line
it is judged against (the threshold, or the baseline moved by the margin) — no JavaScript, no CDN."""

from __future__ import annotations

from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from .cockpit import GuardrailSeries, format_value

WIDTH, HEIGHT = 600, 200
LEFT, RIGHT, TOP, BOTTOM = 52, 12, 12, 26
OUTCOME_COLOURS = {
    "pass": "#198754",
    "fail": "#dc3545",
    "inconclusive": "#fd7e14",
    "insufficient_data": "#6c757d",
    "error": "#6f42c1",
}


def _path(points: list[tuple[float, float]]) -> str:
    return " ".join(f"{x:.1f},{y:.1f}" for x, y in points)


def guardrail_chart(series: GuardrailSeries) -> SafeString:
    """One chart; an empty series says so instead of drawing axes around nothing."""
    points = [p for p in series.points if p.estimate is not None]
    guardrail = series.guardrail
    title = f"{guardrail.metric.name} in {series.market}"
    if not points:
        return format_html('<p class="help chart-empty">{}: no estimate yet (not enough data).</p>', title)
    values = [v for p in points for v in (p.estimate, p.low, p.high, p.limit, p.baseline) if v is not None]
    low, high = min(values), max(values)
    pad = (high - low) * 0.1 or max(abs(high) * 0.1, 0.01)
    low, high = max(low - pad, 0.0), high + pad
    first, last = points[0].at.timestamp(), points[-1].at.timestamp()
    span = (last - first) or 1.0
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(at: float) -> float:
        return LEFT + (at - first) / span * plot_w if len(points) > 1 else LEFT + plot_w / 2

    def y(value: float) -> float:
        return TOP + (high - value) / (high - low) * plot_h

    banded = [p for p in points if p.low is not None and p.high is not None]
    band = ""
    if banded:
        upper = [(x(p.at.timestamp()), y(p.high)) for p in banded]  # type: ignore[arg-type]
        lower = [(x(p.at.timestamp()), y(p.low)) for p in reversed(banded)]  # type: ignore[arg-type]
        band = format_html(
            '<polygon class="band" points="{}" fill="#0d6efd" fill-opacity="0.15"/>', _path(upper + lower)
        )
    limits = [(x(p.at.timestamp()), y(p.limit)) for p in points if p.limit is not None]
    limit_line = (
        format_html(
            '<polyline class="limit" points="{}" fill="none" stroke="#dc3545" stroke-width="1.5" '
            'stroke-dasharray="6 4"/>',
            _path(limits if len(limits) > 1 else [(LEFT, limits[0][1]), (WIDTH - RIGHT, limits[0][1])]),
        )
        if limits
        else ""
    )
    baselines = [(x(p.at.timestamp()), y(p.baseline)) for p in points if p.baseline is not None]
    baseline_line = (
        format_html(
            '<polyline class="baseline" points="{}" fill="none" stroke="#6c757d" stroke-width="1.5"/>',
            _path(baselines),
        )
        if len(baselines) > 1
        else ""
    )
    estimate = format_html(
        '<polyline class="estimate" points="{}" fill="none" stroke="#0d6efd" stroke-width="2"/>',
        _path([(x(p.at.timestamp()), y(p.estimate)) for p in points]),  # type: ignore[arg-type]
    )
    dots = format_html_join(
        "",
        '<circle cx="{}" cy="{}" r="3" fill="{}"><title>{}: {} ({})</title></circle>',
        (
            (
                f"{x(p.at.timestamp()):.1f}",
                f"{y(p.estimate):.1f}",  # type: ignore[arg-type]
                OUTCOME_COLOURS.get(p.outcome, "#333"),
                f"{timezone.localtime(p.at):%Y-%m-%d %H:%M}",
                format_value(guardrail, p.estimate),
                p.outcome.replace("_", " "),
            )
            for p in points
        ),
    )
    axis = format_html(
        '<text x="{}" y="{}" font-size="11" text-anchor="end" fill="#666">{}</text>'
        '<text x="{}" y="{}" font-size="11" text-anchor="end" fill="#666">{}</text>'
        '<text x="{}" y="{}" font-size="11" fill="#666">{}</text>'
        '<text x="{}" y="{}" font-size="11" text-anchor="end" fill="#666">{}</text>'
        '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#ccc"/>',
        LEFT - 4,
        TOP + 10,
        format_value(guardrail, high),
        LEFT - 4,
        HEIGHT - BOTTOM,
        format_value(guardrail, low),
        LEFT,
        HEIGHT - 8,
        f"{timezone.localtime(points[0].at):%b %d %H:%M}",
        WIDTH - RIGHT,
        HEIGHT - 8,
        f"{timezone.localtime(points[-1].at):%b %d %H:%M}",
        LEFT,
        HEIGHT - BOTTOM,
        WIDTH - RIGHT,
        HEIGHT - BOTTOM,
    )
    limit_label = "baseline moved by the margin" if series.relative else "threshold"
    return format_html(
        '<figure class="guardrail-chart" data-guardrail="{}" data-market="{}" data-looks="{}">'
        '<svg viewBox="0 0 {} {}" role="img" aria-label="{}" preserveAspectRatio="none">{}{}{}{}{}{}</svg>'
        '<figcaption class="help"><span style="color:#0d6efd">━</span> estimate and its always-valid band{}{}'
        "</figcaption></figure>",
        guardrail.pk,
        series.market,
        len(points),
        WIDTH,
        HEIGHT,
        title,
        band,
        baseline_line,
        limit_line,
        estimate,
        dots,
        axis,
        format_html(' · <span style="color:#dc3545">╌</span> {}', limit_label) if limits else "",
        format_html(' · <span style="color:{}">━</span> baseline', "#6c757d") if baselines else "",
    )
