"""Formatting for the cockpit templates: verdicts, percentages, countdowns, charts and the home page."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django import template
from django.utils.safestring import SafeString

from monitoring.charts import guardrail_chart
from monitoring.choices import Outcome
from monitoring.cockpit import GuardrailSeries, format_points, format_value, rule_text
from monitoring.models import Evaluation, Guardrail

register = template.Library()


@register.filter
def outcome_label(outcome: str) -> str:
    return str(dict(Outcome.choices).get(outcome, outcome.replace("_", " ")))


@register.filter
def duration_short(value: timedelta | None) -> str:
    if value is None:
        return ""
    minutes = int(value.total_seconds() // 60)
    days, rest = divmod(minutes, 60 * 24)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m"


@register.filter
def subtract(value: int, other: int) -> int:
    return value - other


@register.filter
def rule(guardrail: Guardrail) -> str:
    return rule_text(guardrail)


@register.filter
def observed_against(evaluation: Evaluation, guardrail: Guardrail) -> str:
    """The observed value against what it is judged by, in percent: '3.1% [2.5%, 3.8%] vs ≤ 5.0%', or for a
    relative guardrail '12.0% vs baseline 10.0%: +2.0 pts [+0.5 pts, +3.5 pts]'."""
    observed = format_value(guardrail, evaluation.observed)
    # A guardrail with both checks reads as its comparison with the baseline once there is one (the seeded
    # relative defaults carry an absolute floor as well); the absolute bound otherwise.
    compared = guardrail.relative_margin is not None and evaluation.baseline is not None
    if guardrail.absolute_threshold is not None and not compared:
        interval = (
            f" [{format_value(guardrail, evaluation.lower)}, {format_value(guardrail, evaluation.upper)}]"
            if evaluation.lower is not None and evaluation.upper is not None
            else ""
        )
        return f"{observed}{interval} vs {rule_text(guardrail).split(' and ')[0]}"
    if evaluation.baseline is None:
        return f"{observed}, no baseline"
    difference = ""
    if evaluation.difference_lower is not None and evaluation.difference_upper is not None:
        middle = None if evaluation.observed is None else evaluation.observed - evaluation.baseline
        difference = (
            f": {format_points(middle)} [{format_points(evaluation.difference_lower)}, "
            f"{format_points(evaluation.difference_upper)}]"
        )
    return f"{observed} vs baseline {format_value(guardrail, evaluation.baseline)}{difference}"


@register.filter
def chart(series: GuardrailSeries) -> SafeString:
    return guardrail_chart(series)


@register.inclusion_tag("admin/monitoring/home.html", takes_context=True)
def needs_me_now(context: Any) -> dict[str, Any]:
    from monitoring.home import home_context

    return home_context(context["request"])
