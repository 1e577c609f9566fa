"""Named reads of contact-reason data and the backlog; nothing here writes.

Every function reads with a fixed number of queries whatever the number of reasons, weeks or opportunities
(the gap-analysis and backlog pages are guarded by query-count tests)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db.models import F, FloatField, Max, Min, Q, QuerySet, Sum
from django.db.models.functions import Cast, TruncWeek
from django.utils import timezone

from core.actors import Actor
from core.errors import DomainError

from .choices import VolumeArm
from .impact import Calibration, CalibrationRow, PeriodCounts, calibrate
from .models import ContactReasonVolume, Opportunity, ScoringWeights
from .scoring import Score, Weights, rice_score
from .state_machine import OPPORTUNITY_LIFECYCLE

WEEK = timedelta(days=7)
# The "current" level of a reason (and an opportunity's reach) is the average of the last complete weeks.
CURRENT_WEEKS = 4
TREND_WEEKS = 8
# How far before ``live_since`` the measurement looks for its baseline.
BASELINE_WEEKS = 4


def week_floor(moment: datetime) -> datetime:
    """Monday 00:00 UTC of ``moment``'s week: weeks are whole and the same for every reader."""
    moment = moment.astimezone(UTC)
    return (moment - timedelta(days=moment.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)


def _handle_minutes() -> Any:
    return Sum(Cast(F("handed_to_human"), FloatField()) * F("avg_handle_minutes"))


def contact_reason_volume_list() -> QuerySet[ContactReasonVolume]:
    return ContactReasonVolume.objects.with_related()


# --- Gap analysis ---------------------------------------------------------------------------------------------


@dataclass
class Gap:
    contact_reason: str
    rank: int = 0
    conversations_per_week: float = 0.0
    handoffs_per_week: float = 0.0
    avg_handle_minutes: float = 0.0
    human_hours_per_week: float = 0.0
    coverage: float = 0.0
    containment: float = 0.0
    csat: float | None = None
    # Human hours per week, oldest week first.
    trend: list[float] = field(default_factory=list)
    trend_change: float | None = None
    markets: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class GapAnalysis:
    gaps: list[Gap]
    weeks: list[datetime]
    period_start: datetime
    period_end: datetime
    market: str | None
    audience: str | None
    total_human_hours_per_week: float

    @property
    def period_last_day(self) -> datetime:
        return self.period_end - timedelta(days=1)  # the period ends (exclusive) at Monday 00:00


def gap_analysis(*, market: str | None = None, audience: str | None = None, now: datetime | None = None) -> GapAnalysis:
    """Contact reasons ranked by the human work left: handoffs × handle time, in hours per week over the last
    ``CURRENT_WEEKS`` complete weeks, with the weekly trend over ``TREND_WEEKS``, coverage (share of
    conversations served by a solution), containment and CSAT. One query."""
    end = week_floor(now or timezone.now())
    start = end - TREND_WEEKS * WEEK
    weeks = [start + i * WEEK for i in range(TREND_WEEKS)]
    current_from = end - CURRENT_WEEKS * WEEK
    rows = ContactReasonVolume.objects.filter(window_start__gte=start, window_start__lt=end)
    if market:
        rows = rows.filter(market=market)
    if audience:
        rows = rows.filter(audience=audience)
    aggregated = (
        rows.annotate(week=TruncWeek("window_start", tzinfo=UTC))
        .values("contact_reason", "week", "market")
        .annotate(
            t_conversations=Sum("conversations"),
            t_handed=Sum("handed_to_human"),
            t_abandoned=Sum("abandoned"),
            t_handle_minutes=_handle_minutes(),
            t_served=Sum("conversations", filter=~Q(served_by="")),
            t_csat_responses=Sum("csat_responses"),
            t_csat_positive=Sum("csat_positive"),
        )
        .order_by()
    )
    totals: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    weekly_minutes: dict[str, dict[datetime, float]] = defaultdict(lambda: defaultdict(float))
    markets: dict[str, set[str]] = defaultdict(set)
    for values in aggregated:
        row: dict[str, Any] = dict(values)
        reason, week = row["contact_reason"], row["week"]
        minutes = row["t_handle_minutes"] or 0.0
        weekly_minutes[reason][week] += minutes
        markets[reason].add(row["market"])
        bucket = "current" if week >= current_from else "previous"
        numbers = totals[reason]
        numbers[f"{bucket}_minutes"] += minutes
        if bucket == "current":
            for key in ("conversations", "handed", "abandoned", "served", "csat_responses", "csat_positive"):
                numbers[key] += row[f"t_{key}"] or 0
    gaps = []
    for reason, numbers in totals.items():
        conversations = numbers["conversations"]
        previous_weeks = TREND_WEEKS - CURRENT_WEEKS
        previous = numbers["previous_minutes"] / 60 / previous_weeks
        gap = Gap(
            contact_reason=reason,
            conversations_per_week=conversations / CURRENT_WEEKS,
            handoffs_per_week=numbers["handed"] / CURRENT_WEEKS,
            avg_handle_minutes=numbers["current_minutes"] / numbers["handed"] if numbers["handed"] else 0.0,
            human_hours_per_week=numbers["current_minutes"] / 60 / CURRENT_WEEKS,
            coverage=numbers["served"] / conversations if conversations else 0.0,
            containment=(conversations - numbers["handed"] - numbers["abandoned"]) / conversations
            if conversations
            else 0.0,
            csat=numbers["csat_positive"] / numbers["csat_responses"] if numbers["csat_responses"] else None,
            trend=[weekly_minutes[reason].get(week, 0.0) / 60 for week in weeks],
            markets=sorted(markets[reason]),
        )
        gap.trend_change = (gap.human_hours_per_week - previous) / previous if previous else None
        gaps.append(gap)
    gaps.sort(key=lambda gap: (-gap.human_hours_per_week, gap.contact_reason))
    for rank, gap in enumerate(gaps, start=1):
        gap.rank = rank
    return GapAnalysis(
        gaps=gaps,
        weeks=weeks,
        period_start=current_from,
        period_end=end,
        market=market or None,
        audience=audience or None,
        total_human_hours_per_week=sum(gap.human_hours_per_week for gap in gaps),
    )


def known_markets_and_reasons() -> tuple[list[str], list[str]]:
    """For filter choices and the opportunity form's hints. Two small DISTINCT queries."""
    markets = list(ContactReasonVolume.objects.order_by("market").values_list("market", flat=True).distinct())
    reasons = list(
        ContactReasonVolume.objects.order_by("contact_reason").values_list("contact_reason", flat=True).distinct()
    )
    return markets, reasons


# --- Scoring -----------------------------------------------------------------------------------------------------


def scoring_weights() -> Weights:
    row = ScoringWeights.objects.filter(pk=1).first()
    if row is None:
        return Weights()
    return Weights(reach=row.reach, impact=row.impact, confidence=row.confidence, effort=row.effort)


@dataclass(frozen=True)
class ReachCell:
    conversations: float
    handed: float
    handle_minutes: float


ReachTable = dict[tuple[str, str, str], ReachCell]


def reach_table(*, reasons: Iterable[str] | None = None, now: datetime | None = None) -> ReachTable:
    """Conversations, handoffs and handle minutes per (reason, market, audience) over the last complete weeks.
    One query, shared by every opportunity on a page."""
    end = week_floor(now or timezone.now())
    rows = ContactReasonVolume.objects.filter(window_start__gte=end - CURRENT_WEEKS * WEEK, window_start__lt=end)
    if reasons is not None:
        rows = rows.filter(contact_reason__in=list(reasons))
    aggregated = (
        rows.values("contact_reason", "market", "audience")
        .annotate(t_conversations=Sum("conversations"), t_handed=Sum("handed_to_human"), t_minutes=_handle_minutes())
        .order_by()
    )
    return {
        (row["contact_reason"], row["market"], row["audience"]): ReachCell(
            conversations=float(row["t_conversations"] or 0),
            handed=float(row["t_handed"] or 0),
            handle_minutes=float(row["t_minutes"] or 0.0),
        )
        for row in aggregated
    }


def opportunity_reach(opportunity: Opportunity, table: ReachTable) -> tuple[float, float]:
    """(conversations per week, average handle minutes) on the opportunity's reasons, markets and audience."""
    reasons = set(opportunity.contact_reasons or [])
    markets = set(opportunity.markets or [])
    conversations = handed = minutes = 0.0
    for (reason, market, audience), cell in table.items():
        if (
            reason in reasons
            and (not markets or market in markets)
            and (not opportunity.audience or audience == opportunity.audience)
        ):
            conversations += cell.conversations
            handed += cell.handed
            minutes += cell.handle_minutes
    return conversations / CURRENT_WEEKS, (minutes / handed if handed else 0.0)


def opportunity_score(
    opportunity: Opportunity, *, table: ReachTable | None = None, weights: Weights | None = None
) -> Score:
    table = table if table is not None else reach_table(reasons=opportunity.contact_reasons)
    weekly, handle = opportunity_reach(opportunity, table)
    return rice_score(
        weekly_conversations=weekly,
        avg_handle_minutes=handle,
        expected_lift=opportunity.expected_containment_lift,
        confidence=opportunity.confidence,
        effort_weeks=opportunity.effort_weeks,
        weights=weights or scoring_weights(),
    )


def opportunity_list() -> QuerySet[Opportunity]:
    return Opportunity.objects.with_related()


def scored_opportunities(opportunities: Iterable[Opportunity]) -> list[tuple[Opportunity, Score]]:
    """Each opportunity with its score, highest first: two queries for any number of opportunities."""
    opportunities = list(opportunities)
    table = reach_table()
    weights = scoring_weights()
    scored = [(opp, opportunity_score(opp, table=table, weights=weights)) for opp in opportunities]
    return sorted(scored, key=lambda pair: (-pair[1].value, pair[0].pk))


def transitions_available_to(*, opportunity: Opportunity, user: Actor) -> list[Any]:
    from .services import check_actor_may

    available = []
    for transition in OPPORTUNITY_LIFECYCLE.transitions_from(opportunity.status):
        try:
            check_actor_may(transition=transition, actor=user)
        except DomainError:
            continue
        available.append(transition)
    return available


# --- Realized impact -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImpactCounts:
    before: PeriodCounts
    after: PeriodCounts
    control: PeriodCounts | None


def impact_counts(*, opportunity: Opportunity, live_since: datetime, now: datetime | None = None) -> ImpactCounts:
    """The targeted reasons' counts before ``live_since`` (the baseline weeks), after it (all traffic or the
    treatment arm) and in the control arm after it. Windows that straddle ``live_since`` belong to neither
    period. One query."""
    now = now or timezone.now()
    rows = ContactReasonVolume.objects.filter(contact_reason__in=opportunity.contact_reasons)
    if opportunity.markets:
        rows = rows.filter(market__in=opportunity.markets)
    if opportunity.audience:
        rows = rows.filter(audience=opportunity.audience)
    periods = {
        "before": Q(window_start__gte=live_since - BASELINE_WEEKS * WEEK, window_end__lte=live_since)
        & ~Q(arm=VolumeArm.CONTROL),
        "after": Q(window_start__gte=live_since, window_end__lte=now) & ~Q(arm=VolumeArm.CONTROL),
        "control": Q(window_start__gte=live_since, window_end__lte=now, arm=VolumeArm.CONTROL),
    }
    aggregates: dict[str, Any] = {}
    for name, condition in periods.items():
        aggregates[f"{name}_conversations"] = Sum("conversations", filter=condition)
        aggregates[f"{name}_handed"] = Sum("handed_to_human", filter=condition)
        aggregates[f"{name}_abandoned"] = Sum("abandoned", filter=condition)
        aggregates[f"{name}_minutes"] = Sum(
            Cast(F("handed_to_human"), FloatField()) * F("avg_handle_minutes"), filter=condition
        )
        aggregates[f"{name}_first"] = Min("window_start", filter=condition)
        aggregates[f"{name}_last"] = Max("window_end", filter=condition)
    values = rows.aggregate(**aggregates)

    def period(name: str) -> PeriodCounts:
        first, last = values[f"{name}_first"], values[f"{name}_last"]
        return PeriodCounts(
            conversations=values[f"{name}_conversations"] or 0,
            handed_to_human=values[f"{name}_handed"] or 0,
            abandoned=values[f"{name}_abandoned"] or 0,
            handle_minutes=values[f"{name}_minutes"] or 0.0,
            weeks=(last - first) / WEEK if first and last else 0.0,
        )

    control = period("control")
    return ImpactCounts(
        before=period("before"), after=period("after"), control=control if control.conversations else None
    )


def calibration() -> Calibration:
    """How the accepted predictions compare with the measured outcomes. One query."""
    rows = [
        CalibrationRow(
            opportunity_id=opp.pk,
            title=opp.title,
            predicted_lift=opp.expected_containment_lift,
            realized_lift=opp.realized_containment_lift or 0.0,
            predicted_hours=opp.predicted_hours_saved_per_week,
            realized_hours=opp.realized_hours_saved_per_week,
        )
        for opp in Opportunity.objects.filter(measured_at__isnull=False, realized_containment_lift__isnull=False)
        .only(
            "id",
            "title",
            "expected_containment_lift",
            "realized_containment_lift",
            "predicted_hours_saved_per_week",
            "realized_hours_saved_per_week",
        )
        .order_by("measured_at", "id")
    ]
    return calibrate(rows)


def opportunity_impact(opportunity: Opportunity, *, now: datetime | None = None) -> dict[str, Any]:
    """The prediction beside the outcome: the stored measurement once measured; before that, a preview from the
    data so far (once it went live), or why there is nothing to show yet."""
    from .impact import realized_impact

    result: dict[str, Any] = {
        "opportunity": opportunity.pk,
        "status": opportunity.status,
        "live_since": opportunity.live_since,
        "prediction": {
            "expected_containment_lift": opportunity.expected_containment_lift,
            "predicted_weekly_conversations": opportunity.predicted_weekly_conversations,
            "predicted_hours_saved_per_week": opportunity.predicted_hours_saved_per_week,
        },
        "measured": opportunity.measured_at is not None,
        "measured_at": opportunity.measured_at,
        "realized": opportunity.measurement or None,
        "detail": "",
    }
    if opportunity.measured_at is not None:
        return result
    if opportunity.live_since is None:
        result["detail"] = "Not delivered yet: the realized impact is measured after a linked release goes live."
        return result
    counts = impact_counts(opportunity=opportunity, live_since=opportunity.live_since, now=now)
    if counts.before.conversations == 0 or counts.after.conversations == 0:
        result["detail"] = "Not enough contact-reason data before and after it went live yet."
        return result
    result["realized"] = realized_impact(before=counts.before, after=counts.after, control=counts.control).as_dict()
    result["detail"] = "Preview from the data so far; measured when a linked release is verified."
    return result
