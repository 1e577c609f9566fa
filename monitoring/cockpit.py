"""Reads for the cockpit: the release health panel, the incident page's "what fired it" and the home page.

Every read here is set-based and costs a fixed number of queries whatever the number of releases, guardrails,
evaluations or samples (tests/monitoring/test_cockpit.py counts them at 1 and at 50). They read the stored
``Evaluation`` rows only (observed value, interval, baseline, window end, outcome), so the pictures keep working
whatever way the evaluation computes them.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import connection
from django.db.models import Case, Count, F, Q, Sum, Value, When, Window
from django.db.models.functions import RowNumber
from django.utils import timezone

from core.models import AuditEvent
from governance.models import FreezeWindow
from releases.choices import LIVE_STATES, ReleaseStatus
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
NO_LOOK_RANK = 9  # a release not looked at yet sorts after every verdict


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


# How many rollouts and incidents the home lists: the worst ones, with the totals and a link to the full lists.
HOME_LINES = 25


@dataclass
class Home:
    rollouts: list[RolloutLine]  # the worst HOME_LINES live releases, worst first
    incidents: list[OncallLine]  # the first HOME_LINES open incidents of the on-call queue
    freezes: list[Any]
    audit: list[AuditEvent]
    now: datetime
    rollouts_total: int = 0
    ready_count: int = 0
    blocked_count: int = 0
    incidents_total: int = 0
    unacknowledged_count: int = 0

    @property
    def more_rollouts(self) -> int:
        return self.rollouts_total - len(self.rollouts)

    @property
    def more_incidents(self) -> int:
        return self.incidents_total - len(self.incidents)


# The home's rollout card over every live release in one statement: each release's worst latest verdict in the
# markets it serves, whether something blocks its promotion, and the totals; only the worst HOME_LINES come back.
# It reads the few looks that are not a plain pass (evaluation_problem_idx) and, for each, whether a later look
# of the same key exists; a release whose latest looks all pass needs only one probe for "has it any look". So the
# cost follows live releases and open problems, not every look ever taken.
# Two fragments differ by database: whether a stage's JSON list holds a market, and whether its hold still runs.
_VENDOR_SQL = {
    "postgresql": {
        "has_markets": "jsonb_array_length(st.markets) > 0",
        "in_markets": "live.stage_markets @> jsonb_build_array(e.market)",
        "hold_running": "r.stage_started_at + st.min_hold > %(now)s",
    },
    "sqlite": {
        "has_markets": "json_array_length(st.markets) > 0",
        "in_markets": "EXISTS (SELECT 1 FROM json_each(live.stage_markets) AS m WHERE m.value = e.market)",
        # Durations are stored in microseconds and datetimes as ISO text there.
        "hold_running": "julianday(r.stage_started_at) + st.min_hold / 86400000000.0 > julianday(%(now)s)",
    },
}

_WORST_ROLLOUTS_SQL = """
WITH live AS (
    SELECT r.id, r.status, r.rollout_started_at, st.markets AS stage_markets,
           (r.status IN (%(rolling_out)s, %(paused)s) AND st.id IS NOT NULL AND {has_markets}) AS own_markets,
           CASE WHEN r.status = %(paused)s THEN 1
                WHEN r.status = %(rolling_out)s AND {hold_running} THEN 1 ELSE 0 END AS held
    FROM releases_release AS r LEFT JOIN releases_rolloutstage AS st ON st.id = r.current_stage_id
    WHERE r.status IN ({live})
),
problems AS (
    -- The latest look of its key that is not a plain pass, in a market the release serves (a stage without
    -- markets of its own serves all the release's, the only ones it has looks at).
    SELECT e.release_id,
           MIN(CASE e.outcome {outcome_ranks} ELSE %(no_look)s END) AS worst_rank,
           MAX(CASE WHEN e.outcome = %(fail)s OR e.breached THEN 1 ELSE 0 END) AS failing
    FROM monitoring_evaluation AS e JOIN live ON live.id = e.release_id
    WHERE NOT e.dry_run AND (e.outcome <> %(pass)s OR e.breached)
      AND (NOT live.own_markets OR {in_markets})
      AND NOT EXISTS (
          SELECT 1 FROM monitoring_evaluation AS later
          WHERE later.guardrail_id = e.guardrail_id AND later.release_id = e.release_id
            AND later.market = e.market AND NOT later.dry_run
            AND (later.evaluated_at > e.evaluated_at OR (later.evaluated_at = e.evaluated_at AND later.id > e.id))
      )
    GROUP BY e.release_id
),
open_incidents AS (
    SELECT release_id, COUNT(*) AS n FROM monitoring_incident WHERE status IN ({open}) GROUP BY release_id
),
lines AS (
    SELECT live.id, live.status, live.rollout_started_at, COALESCE(i.n, 0) AS incidents,
           COALESCE(p.worst_rank, CASE WHEN EXISTS (
               SELECT 1 FROM monitoring_evaluation AS e
               WHERE e.release_id = live.id AND NOT e.dry_run AND (NOT live.own_markets OR {in_markets})
           ) THEN %(pass_rank)s ELSE %(no_look)s END) AS worst_rank,
           CASE WHEN live.status IN (%(rolling_out)s, %(paused)s)
                 AND (live.held = 1 OR COALESCE(p.failing, 0) = 1 OR COALESCE(i.n, 0) > 0) THEN 1 ELSE 0 END AS blocked
    FROM live LEFT JOIN problems AS p ON p.release_id = live.id LEFT JOIN open_incidents AS i ON i.release_id = live.id
)
SELECT id, incidents, COUNT(*) OVER (), SUM(blocked) OVER (),
       SUM(CASE WHEN status = %(rolling_out)s AND blocked = 0 THEN 1 ELSE 0 END) OVER ()
FROM lines
ORDER BY worst_rank, incidents DESC, status, CASE WHEN rollout_started_at IS NULL THEN 1 ELSE 0 END,
         rollout_started_at DESC, id DESC
LIMIT %(limit)s
"""


@dataclass
class Rollouts:
    lines: list[RolloutLine]  # the worst, worst first
    total: int
    ready: int
    blocked: int


def _worst_rollouts(*, now: datetime, limit: int) -> tuple[list[tuple[int, int]], int, int, int]:
    """(release, open incidents) of the ``limit`` worst live releases, and the live, blocked and ready totals."""
    fragments = _VENDOR_SQL.get(connection.vendor, _VENDOR_SQL["sqlite"])
    ranks = " ".join(f"WHEN %(outcome_{outcome})s THEN {rank}" for outcome, rank in OUTCOME_RANK.items())
    live = {f"live_{index}": str(status) for index, status in enumerate(sorted(LIVE_STATES))}
    open_states = {f"open_{index}": str(status) for index, status in enumerate(sorted(OPEN_INCIDENT_STATES))}
    sql = _WORST_ROLLOUTS_SQL.format(
        outcome_ranks=ranks,
        in_markets=fragments["in_markets"],
        has_markets=fragments["has_markets"],
        hold_running=fragments["hold_running"],
        live=", ".join(f"%({name})s" for name in live),
        open=", ".join(f"%({name})s" for name in open_states),
    )
    params: dict[str, Any] = {
        "now": now,
        **live,
        **open_states,
        "rolling_out": ReleaseStatus.ROLLING_OUT.value,
        "paused": ReleaseStatus.PAUSED.value,
        "fail": Outcome.FAIL.value,
        "pass": Outcome.PASS.value,
        "pass_rank": OUTCOME_RANK[Outcome.PASS],
        "no_look": NO_LOOK_RANK,
        "limit": limit,
        **{f"outcome_{outcome}": str(outcome) for outcome in OUTCOME_RANK},
    }
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    if not rows:
        return [], 0, 0, 0
    return [(row[0], row[1]) for row in rows], rows[0][2], int(rows[0][3] or 0), int(rows[0][4] or 0)


def live_rollouts(*, now: datetime, limit: int = HOME_LINES) -> Rollouts:
    """The ``limit`` worst live releases — worst latest verdict first, then the most open incidents — each with
    what blocks its promotion, and how many are live, blocked and ready in all. A fixed four queries whatever the
    number of live releases, looks or incidents: the ranking over all of them is one SQL statement, and only the
    lines shown are read as model instances."""
    worst, total, blocked_total, ready_total = _worst_rollouts(now=now, limit=limit)
    if not worst:
        return Rollouts([], total, ready_total, blocked_total)
    ids = [release_id for release_id, _incidents in worst]
    by_id = Release.objects.with_related().in_bulk(ids)
    latest = (
        Evaluation.objects.filter(release__in=ids, dry_run=False)
        .annotate(
            look_rank=Window(
                RowNumber(),
                partition_by=[F("release_id"), F("guardrail_id"), F("market")],
                order_by=[F("evaluated_at").desc(), F("id").desc()],
            )
        )
        .filter(look_rank=1)
        .select_related("guardrail__metric")
    )
    verdicts: dict[int, list[Evaluation]] = defaultdict(list)
    for look in latest:
        verdicts[look.release_id].append(look)
    lines = [
        _rollout_line(by_id[release_id], verdicts.get(release_id, []), open_incidents, now=now)
        for release_id, open_incidents in worst
        if release_id in by_id
    ]
    return Rollouts(lines, total, ready_total, blocked_total)


def _rollout_line(release: Release, latest: list[Evaluation], open_incidents: int, *, now: datetime) -> RolloutLine:
    looks = [
        e for e in latest if e.market in active_markets(release, release.current_stage) or release.current_stage is None
    ]
    failing = [f"{e.guardrail.metric.name} in {e.market}" for e in looks if e.outcome == Outcome.FAIL or e.breached]
    worst = min((e.outcome for e in looks), key=lambda o: OUTCOME_RANK.get(o, NO_LOOK_RANK), default="none")
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
    if open_incidents:
        blocked.append(f"{open_incidents} open incident(s)")
    in_rollout = release.status in (ReleaseStatus.ROLLING_OUT, ReleaseStatus.PAUSED)
    return RolloutLine(
        release=release,
        worst=worst,
        failing=failing,
        open_incidents=open_incidents,
        hold_ends_at=hold_ends_at,
        blocked_by=blocked if in_rollout else [],
    )


def oncall_queue(*, now: datetime, limit: int = HOME_LINES) -> tuple[list[OncallLine], int, int]:
    """The first ``limit`` open incidents — unacknowledged first, then by severity and age (oldest first) — and
    how many are open and unacknowledged in all (two queries)."""
    severity_rank = Case(*[When(severity=s, then=Value(r)) for s, r in SEVERITY_RANK.items()], default=Value(9))
    incidents = list(
        Incident.objects.open()
        .with_related()
        .select_related("release__current_stage")
        .annotate(
            unacknowledged_first=Case(When(status=IncidentStatus.TRIGGERED, then=Value(0)), default=Value(1)),
            severity_rank=severity_rank,
        )
        .order_by("unacknowledged_first", "severity_rank", "opened_at", "id")[:limit]
    )
    counts = Incident.objects.open().aggregate(
        total=Count("id"), unacknowledged=Count("id", filter=Q(status=IncidentStatus.TRIGGERED))
    )
    lines = [
        OncallLine(
            incident=i,
            headline=incident_headline(i),
            age=now - i.opened_at,
            deadline=i.ack_deadline,
            overdue=i.status == IncidentStatus.TRIGGERED and now >= i.ack_deadline,
        )
        for i in incidents
    ]
    return lines, counts["total"], counts["unacknowledged"]


def home(*, now: datetime | None = None, audit_rows: int = 12) -> Home:
    """The home page's shared reads (the per-person queues of governance are read beside it): a fixed handful of
    queries whatever the number of releases, incidents, evaluations or samples."""
    now = now or timezone.now()
    rollouts = live_rollouts(now=now, limit=HOME_LINES)
    incidents, incidents_total, unacknowledged = oncall_queue(now=now, limit=HOME_LINES)
    freezes = list(FreezeWindow.objects.filter(cancelled_at__isnull=True, ends_at__gt=now).order_by("starts_at")[:5])
    audit = list(AuditEvent.objects.select_related("actor").order_by("-id")[:audit_rows])
    return Home(
        rollouts=rollouts.lines,
        incidents=incidents,
        freezes=freezes,
        audit=audit,
        now=now,
        rollouts_total=rollouts.total,
        ready_count=rollouts.ready,
        blocked_count=rollouts.blocked,
        incidents_total=incidents_total,
        unacknowledged_count=unacknowledged,
    )


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
