"""Reads for the cockpit: the release health panel, the incident page's "what fired it" and the home page.

Every read here is set-based and costs a fixed number of queries whatever the number of releases, guardrails,
evaluations or samples (tests/monitoring/test_cockpit.py counts them at 1 and at 50). They read the stored
``Evaluation`` rows only (observed value, interval, baseline, window end, outcome), so the pictures keep working
whatever way the evaluation computes them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db.models import F, Q, Sum, Window
from django.db.models.functions import RowNumber
from django.utils import timezone

from core.models import AuditEvent
from governance.models import FreezeWindow
from releases.choices import ReleaseStatus
from releases.models import Release, RolloutStage

from . import selectors
from .choices import OPEN_INCIDENT_STATES, SEVERITY_RANK, Arm, Direction, IncidentStatus, MetricKind, Outcome
from .models import Evaluation, Guardrail, Incident, NotificationEndpoint, NotificationOutbox

# How many looks a chart draws: the latest ones; older looks are in the evaluations list.
CHART_LOOKS = 48
# Worst first, as the README orders outcomes.
OUTCOME_RANK: dict[str, int] = {
    Outcome.FAIL: 0,
    Outcome.ERROR: 1,
    Outcome.INCONCLUSIVE: 2,
    Outcome.INSUFFICIENT_DATA: 3,
    Outcome.PASS: 4,
}


# --- Formatting: rates in percent, gauges in their unit ---------------------------------------------------------


def format_value(guardrail: Guardrail, value: float | None) -> str:
    if value is None:
        return "–"
    if guardrail.metric.kind == MetricKind.RATE:
        return f"{value * 100:.1f}%"
    return f"{value:,.0f} {guardrail.metric.unit}".strip()


def format_points(value: float | None) -> str:
    """A difference of two rates, in percentage points."""
    return "–" if value is None else f"{value * 100:+.1f} pts"


def rule_text(guardrail: Guardrail) -> str:
    """The guardrail's rule in words: "≤ 5.0%" or "no worse than control by 2.0 pts"."""
    lower_is_better = guardrail.metric.direction == Direction.LOWER
    parts = []
    if guardrail.absolute_threshold is not None:
        parts.append(f"{'≤' if lower_is_better else '≥'} {format_value(guardrail, guardrail.absolute_threshold)}")
    if guardrail.relative_margin is not None:
        parts.append(f"no worse than baseline by {guardrail.relative_margin * 100:.1f} pts")
    return " and ".join(parts)


# --- One guardrail's looks at one market, as a chart -------------------------------------------------------------


@dataclass(frozen=True)
class ChartPoint:
    at: datetime
    estimate: float | None
    low: float | None
    high: float | None
    # The line the band is judged against at this look: the threshold, or the baseline moved by the margin.
    limit: float | None
    baseline: float | None
    outcome: str


@dataclass
class GuardrailSeries:
    guardrail: Guardrail
    market: str
    points: list[ChartPoint]

    @property
    def relative(self) -> bool:
        return self.guardrail.absolute_threshold is None

    @property
    def latest(self) -> ChartPoint | None:
        return self.points[-1] if self.points else None


def _chart_point(guardrail: Guardrail, evaluation: Evaluation) -> ChartPoint:
    lower_is_better = guardrail.metric.direction == Direction.LOWER
    low: float | None
    high: float | None
    limit: float | None
    if guardrail.absolute_threshold is not None:
        low, high, limit = evaluation.lower, evaluation.upper, guardrail.absolute_threshold
    else:
        # A relative guardrail judges the difference to the baseline; drawn on the rate's scale, the difference's
        # band sits on the baseline and the margin moves the baseline to the bad side.
        base, margin = evaluation.baseline, guardrail.relative_margin or 0.0
        low = None if base is None or evaluation.difference_lower is None else base + evaluation.difference_lower
        high = None if base is None or evaluation.difference_upper is None else base + evaluation.difference_upper
        limit = None if base is None else base + (margin if lower_is_better else -margin)
    return ChartPoint(
        at=evaluation.evaluated_at,
        estimate=evaluation.observed,
        low=low,
        high=high,
        limit=limit,
        baseline=evaluation.baseline,
        outcome=evaluation.outcome,
    )


def _recent_looks(filters: Q) -> list[Evaluation]:
    """The latest ``CHART_LOOKS`` looks of each (release, guardrail, market) matching ``filters``, oldest first
    (one window-function query)."""
    return list(
        Evaluation.objects.filter(filters)
        .annotate(
            look_rank=Window(
                RowNumber(),
                partition_by=[F("release_id"), F("guardrail_id"), F("market")],
                order_by=[F("evaluated_at").desc(), F("id").desc()],
            )
        )
        .filter(look_rank__lte=CHART_LOOKS)
        .order_by("release_id", "guardrail_id", "market", "evaluated_at", "id")
    )


# --- The release health panel ------------------------------------------------------------------------------------


@dataclass
class StageStep:
    stage: RolloutStage
    state: str  # done, active, next
    hold_ends_at: datetime | None = None
    hold_left: timedelta | None = None
    samples: list[tuple[str, int, int]] = field(default_factory=list)  # (market, n, minimum)


@dataclass
class GridCell:
    market: str
    evaluation: Evaluation | None
    active: bool

    @property
    def outcome(self) -> str:
        return self.evaluation.outcome if self.evaluation else "none"


@dataclass
class GridRow:
    guardrail: Guardrail
    rule: str
    cells: list[GridCell]


@dataclass
class ReleaseHealth:
    release: Release
    steps: list[StageStep]
    markets: list[str]
    active_markets: list[str]
    rows: list[GridRow]
    charts: list[GuardrailSeries]
    open_incidents: list[Incident]
    now: datetime

    @property
    def worst(self) -> str:
        outcomes = [cell.outcome for row in self.rows for cell in row.cells if cell.active and cell.evaluation]
        return min(outcomes, key=lambda o: OUTCOME_RANK.get(o, 9), default="none")


def _last(looks: list[Evaluation] | None) -> Evaluation | None:
    return looks[-1] if looks else None


def active_markets(release: Release, stage: RolloutStage | None) -> list[str]:
    """Where the release serves traffic now: its current stage's markets while rolling out or paused, all of
    its markets once launched."""
    if stage is not None and release.status in (ReleaseStatus.ROLLING_OUT, ReleaseStatus.PAUSED):
        return list(stage.markets) or list(release.markets)
    return list(release.markets)


def release_health(*, release: Release, now: datetime | None = None) -> ReleaseHealth:
    """Everything the health panel draws, in five queries: stages, guardrails, recent looks, the stage's samples,
    open incidents."""
    now = now or timezone.now()
    stages = list(RolloutStage.objects.filter(release=release).order_by("position"))
    current = next((s for s in stages if s.pk == release.current_stage_id), None)
    markets = list(release.markets)
    live_markets = active_markets(release, current)
    guardrails = selectors.effective_guardrails([release]).get(release.pk, [])
    looks = _recent_looks(Q(release=release, guardrail_id__in=[g.pk for g in guardrails])) if guardrails else []

    samples: dict[str, int] = {}
    if current is not None and release.stage_started_at is not None:
        # The stage's sample is its largest metric denominator since the stage started (as rollout automation
        # counts it): summed per market and metric, the largest per market.
        for row in (
            release.metric_samples.filter(arm=Arm.TREATMENT, window_start__gte=release.stage_started_at)
            .values("market", "metric_id")
            .annotate(n=Sum("denominator"))
        ):
            samples[row["market"]] = max(samples.get(row["market"], 0), row["n"] or 0)

    steps: list[StageStep] = []
    for stage in stages:
        if current is None:
            state = "done" if release.status in (ReleaseStatus.LAUNCHED, ReleaseStatus.VERIFYING) else "next"
        else:
            state = "done" if stage.position < current.position else "active" if stage.pk == current.pk else "next"
        step = StageStep(stage=stage, state=state)
        if state == "active" and release.stage_started_at is not None:
            step.hold_ends_at = release.stage_started_at + stage.min_hold
            step.hold_left = max(step.hold_ends_at - now, timedelta(0))
            step.samples = [(m, samples.get(m, 0), stage.min_sample_size) for m in stage.effective_markets()]
        steps.append(step)

    by_key: dict[tuple[int, str], list[Evaluation]] = defaultdict(list)
    for look in looks:
        by_key[(look.guardrail_id, look.market)].append(look)
    rows = [
        GridRow(
            guardrail=g,
            rule=rule_text(g),
            cells=[
                GridCell(market=m, evaluation=_last(by_key.get((g.pk, m))), active=m in live_markets) for m in markets
            ],
        )
        for g in guardrails
    ]
    charts = [
        GuardrailSeries(guardrail=g, market=m, points=[_chart_point(g, e) for e in by_key[(g.pk, m)]])
        for g in guardrails
        for m in markets
        if m in live_markets and any(e.observed is not None for e in by_key.get((g.pk, m), []))
    ]
    incidents = list(
        Incident.objects.open().filter(release=release).select_related("guardrail__metric").order_by("severity")
    )
    return ReleaseHealth(
        release=release,
        steps=steps,
        markets=markets,
        active_markets=live_markets,
        rows=rows,
        charts=charts,
        open_incidents=incidents,
        now=now,
    )


# --- Incidents: a human headline, the look that fired it, who was told -------------------------------------------


def incident_headline(incident: Incident) -> str:
    """'Escalation rate worse than baseline in US — Buyer refunds assistant v2, stage Canary'. Needs the
    incident's guardrail (with metric) and release (with solution and current stage) loaded."""
    guardrail, release = incident.guardrail, incident.release
    metric = guardrail.metric.name
    # A relative guardrail (the seeded defaults also carry an absolute floor) reads as the comparison it makes.
    if guardrail.absolute_threshold is not None and guardrail.relative_margin is None:
        side = "above" if guardrail.metric.direction == Direction.LOWER else "below"
        what = f"{metric} {side} {format_value(guardrail, guardrail.absolute_threshold)}"
    else:
        what = f"{metric} worse than baseline"
    where = f"{release.solution.name} v{release.version}"
    stage = release.current_stage
    if stage is not None and release.status in (ReleaseStatus.ROLLING_OUT, ReleaseStatus.PAUSED):
        where += f", stage {stage.name}"
    return f"{what} in {incident.market} — {where}"


@dataclass
class IncidentPicture:
    fired_by: Evaluation | None
    rule: str
    series: GuardrailSeries
    notifications: list[NotificationOutbox]
    endpoints_exist: bool


def incident_picture(*, incident: Incident) -> IncidentPicture:
    """The look that fired the incident (the latest failing one), the chart of its guardrail in its market, and
    the deliveries of its notifications: four queries."""
    guardrail = incident.guardrail
    looks = _recent_looks(Q(release_id=incident.release_id, guardrail_id=guardrail.pk, market=incident.market))
    fired = selectors.incident_fired_by(incident).first()
    notifications = list(NotificationOutbox.objects.filter(incident=incident).order_by("created_at", "id"))
    return IncidentPicture(
        fired_by=fired,
        rule=rule_text(guardrail),
        series=GuardrailSeries(
            guardrail=guardrail, market=incident.market, points=[_chart_point(guardrail, e) for e in looks]
        ),
        notifications=notifications,
        endpoints_exist=bool(notifications) or NotificationEndpoint.objects.filter(is_active=True).exists(),
    )


# --- The home: what needs me now ----------------------------------------------------------------------------------


@dataclass
class RolloutLine:
    release: Release
    worst: str
    failing: list[str]  # "Escalation rate in US"
    open_incidents: int
    hold_ends_at: datetime | None
    blocked_by: list[str]

    @property
    def ready(self) -> bool:
        return self.release.status == ReleaseStatus.ROLLING_OUT and not self.blocked_by


@dataclass
class OncallLine:
    incident: Incident
    headline: str
    age: timedelta
    deadline: datetime
    overdue: bool


@dataclass
class Home:
    rollouts: list[RolloutLine]
    incidents: list[OncallLine]
    freezes: list[Any]
    audit: list[AuditEvent]
    now: datetime

    @property
    def ready_to_promote(self) -> list[RolloutLine]:
        return [line for line in self.rollouts if line.ready]

    @property
    def blocked(self) -> list[RolloutLine]:
        return [line for line in self.rollouts if line.blocked_by]

    @property
    def unacknowledged(self) -> list[OncallLine]:
        return [line for line in self.incidents if line.incident.status == IncidentStatus.TRIGGERED]


def live_rollouts(*, now: datetime) -> tuple[list[RolloutLine], list[Incident]]:
    """Every live release with its worst latest verdict, what blocks a promotion, and the open incidents (three
    queries: releases, latest looks, open incidents)."""
    releases = list(Release.objects.live().with_related().order_by("status", "-rollout_started_at", "-id"))
    latest = (
        Evaluation.objects.filter(release__in=[r.pk for r in releases], dry_run=False)
        .annotate(
            look_rank=Window(
                RowNumber(),
                partition_by=[F("release_id"), F("guardrail_id"), F("market")],
                order_by=[F("evaluated_at").desc(), F("id").desc()],
            )
        )
        .filter(look_rank=1)
        .select_related("guardrail__metric")
        if releases
        else Evaluation.objects.none()
    )
    verdicts: dict[int, list[Evaluation]] = defaultdict(list)
    for look in latest:
        verdicts[look.release_id].append(look)
    incidents = list(
        Incident.objects.filter(status__in=OPEN_INCIDENT_STATES).with_related().select_related("release__current_stage")
    )
    open_by_release: dict[int, int] = defaultdict(int)
    for incident in incidents:
        open_by_release[incident.release_id] += 1
    lines = []
    for release in releases:
        looks = [
            e
            for e in verdicts.get(release.pk, [])
            if e.market in active_markets(release, release.current_stage) or release.current_stage is None
        ]
        failing = [f"{e.guardrail.metric.name} in {e.market}" for e in looks if e.outcome == Outcome.FAIL or e.breached]
        worst = min((e.outcome for e in looks), key=lambda o: OUTCOME_RANK.get(o, 9), default="none")
        hold_ends_at = None
        blocked: list[str] = []
        if release.status == ReleaseStatus.PAUSED:
            blocked.append("paused")
        if release.current_stage is not None and release.stage_started_at is not None:
            hold_ends_at = release.stage_started_at + release.current_stage.min_hold
            if hold_ends_at > now and release.status == ReleaseStatus.ROLLING_OUT:
                blocked.append(f"hold until {timezone.localtime(hold_ends_at):%H:%M}")
        if failing:
            blocked.append("failing: " + ", ".join(failing))
        if open_by_release.get(release.pk):
            blocked.append(f"{open_by_release[release.pk]} open incident(s)")
        if release.status not in (ReleaseStatus.ROLLING_OUT, ReleaseStatus.PAUSED):
            blocked = [b for b in blocked if not b.startswith("hold")]
        lines.append(
            RolloutLine(
                release=release,
                worst=worst,
                failing=failing,
                open_incidents=open_by_release.get(release.pk, 0),
                hold_ends_at=hold_ends_at,
                blocked_by=blocked if release.status in (ReleaseStatus.ROLLING_OUT, ReleaseStatus.PAUSED) else [],
            )
        )
    # Worst first: a failing rollout is what a program manager should see before a healthy one.
    lines.sort(key=lambda line: OUTCOME_RANK.get(line.worst, 9))
    return lines, incidents


def oncall_queue(incidents: Sequence[Incident], *, now: datetime) -> list[OncallLine]:
    """Open incidents, unacknowledged first, then by severity and age (oldest first)."""
    ordered = sorted(
        incidents,
        key=lambda i: (i.status != IncidentStatus.TRIGGERED, SEVERITY_RANK.get(i.severity, 9), i.opened_at),
    )
    return [
        OncallLine(
            incident=i,
            headline=incident_headline(i),
            age=now - i.opened_at,
            deadline=i.ack_deadline,
            overdue=i.status == IncidentStatus.TRIGGERED and now >= i.ack_deadline,
        )
        for i in ordered
    ]


def home(*, now: datetime | None = None, audit_rows: int = 12) -> Home:
    """The home page's shared reads (the per-person queues of governance are read beside it): a fixed handful of
    queries whatever the number of releases, incidents, evaluations or samples."""
    now = now or timezone.now()
    rollouts, incidents = live_rollouts(now=now)
    freezes = list(FreezeWindow.objects.filter(cancelled_at__isnull=True, ends_at__gt=now).order_by("starts_at")[:5])
    audit = list(AuditEvent.objects.select_related("actor").order_by("-id")[:audit_rows])
    return Home(rollouts=rollouts, incidents=oncall_queue(incidents, now=now), freezes=freezes, audit=audit, now=now)


def active_market_looks() -> Q:
    """A filter for evaluations at markets where their release serves traffic now: the current stage's markets of
    a rolling-out or paused release, every market otherwise (one query, over the releases in rollout)."""
    condition = Q()
    in_rollout = Release.objects.in_rollout().filter(current_stage__isnull=False).select_related("current_stage")
    restricted = []
    for release in in_rollout:
        restricted.append(release.pk)
        condition |= Q(release_id=release.pk, market__in=active_markets(release, release.current_stage))
    return condition | ~Q(release_id__in=restricted)
