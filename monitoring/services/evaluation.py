"""Set-based guardrail evaluation of every live release.

One batch costs a handful of queries whatever its size: lock, releases, guardrails, existing evaluations, one
aggregate per distinct window span, baselines (two), previous states, one insert, open incidents. Incidents are
then opened or resolved only for the keys whose state changed, and release actions (pause / rollback) run after
the batch commits, each in its own transaction through the release services.

Idempotence: the batch takes a PostgreSQL advisory lock per release (sorted, so two batches cannot deadlock) and
skips every (guardrail, release, market, window_end) already evaluated, so two cycles at once write one evaluation
per window; the unique constraint is the backstop.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import Avg, Count, F, Q, Sum, Window
from django.db.models.functions import RowNumber
from django.utils import timezone

from core.errors import DomainError
from releases import services as release_services
from releases.choices import LIVE_STATES, ReleaseStatus
from releases.models import Release
from releases.state_machine import PAUSE, ROLLBACK

from .. import statistics as st
from ..choices import Arm, BaselineSource, GuardrailAction, GuardrailScope, IncidentEventKind, MetricKind, Outcome
from ..models import Evaluation, Guardrail, Incident, MetricSample, incident_dedup_key
from .incidents import incident_event_add, incident_resolve, incident_trigger

logger = logging.getLogger(__name__)

BATCH_SIZE = 200
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Counters:
    failures: int = 0
    consecutive_passes: int = 0
    breached: bool = False


def next_counters(previous: Counters, outcome: str, *, failure_limit: int, success_limit: int) -> Counters:
    """Carry a guardrail's counters over one more evaluation (see monitoring/README.md for examples).

    fail: one more failure, the pass streak breaks. pass: the streak grows; ``success_limit`` passes in a row
    forget the failures (recovery). inconclusive / insufficient_data: the streak breaks, failures stay (a data gap
    neither fails nor recovers). error: nothing changes — a pipeline error says nothing about the release.
    Breached when failures > failure_limit; a limit of -1 never breaches.
    """
    failures, passes = previous.failures, previous.consecutive_passes
    if outcome == Outcome.FAIL:
        failures, passes = failures + 1, 0
    elif outcome == Outcome.PASS:
        passes += 1
        if passes >= success_limit:
            failures = 0
    elif outcome in (Outcome.INCONCLUSIVE, Outcome.INSUFFICIENT_DATA):
        passes = 0
    else:
        return previous
    return Counters(
        failures=failures, consecutive_passes=passes, breached=failure_limit >= 0 and failures > failure_limit
    )


def window_end_for(guardrail: Guardrail, now: datetime) -> datetime:
    """The last matured window end, aligned to the guardrail's interval, so every run in one interval agrees."""
    matured = now - guardrail.metric.maturation_period
    step = guardrail.evaluation_interval.total_seconds()
    seconds = (matured - _EPOCH).total_seconds()
    return _EPOCH + timedelta(seconds=(seconds // step) * step)


@dataclass
class _Totals:
    numerator: int = 0
    denominator: int = 0
    value: float | None = None
    windows: int = 0


@dataclass
class PendingAction:
    release_id: int
    guardrail_id: int
    incident_id: int
    action: str
    reason: str


@dataclass
class CycleResult:
    releases: int = 0
    evaluations: int = 0
    skipped: int = 0
    incidents_opened: int = 0
    incidents_retriggered: int = 0
    incidents_resolved: int = 0
    actions_taken: int = 0
    errors: int = 0
    outcomes: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def add(self, other: CycleResult) -> None:
        for name in (
            "releases",
            "evaluations",
            "skipped",
            "incidents_opened",
            "incidents_retriggered",
            "incidents_resolved",
            "actions_taken",
            "errors",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for outcome, count in other.outcomes.items():
            self.outcomes[outcome] += count


def live_release_ids(*, release_ids: Iterable[int] | None = None) -> list[int]:
    queryset = Release.objects.filter(status__in=LIVE_STATES)
    if release_ids is not None:
        queryset = queryset.filter(id__in=list(release_ids))
    return list(queryset.order_by("id").values_list("id", flat=True))


def guardrails_evaluate(
    *, release_ids: Iterable[int] | None = None, now: datetime | None = None, batch_size: int = BATCH_SIZE
) -> CycleResult:
    """One evaluation cycle over the live releases (all of them, or ``release_ids``), batch by batch."""
    now = now or timezone.now()
    ids = live_release_ids(release_ids=release_ids)
    total = CycleResult()
    for start in range(0, len(ids), batch_size):
        total.add(guardrails_evaluate_batch(release_ids=ids[start : start + batch_size], now=now))
    return total


def guardrails_evaluate_batch(*, release_ids: Sequence[int], now: datetime) -> CycleResult:
    result, actions = _evaluate_batch_in_transaction(release_ids=release_ids, now=now)
    for action in actions:
        result.actions_taken += guardrail_action_apply(pending=action)
    return result


def _lock_releases(release_ids: Sequence[int]) -> None:
    if connection.vendor != "postgresql" or not release_ids:
        return  # SQLite serializes writers itself
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended('rollgate.monitoring.evaluate:' || ids.id::text, 0)) "
            "FROM (SELECT unnest(%s::bigint[]) AS id ORDER BY 1) AS ids",
            [sorted(release_ids)],
        )


def effective_guardrails(releases: Sequence[Release]) -> dict[int, list[Guardrail]]:
    """Guardrails per release: its own, its solution's and its risk level's defaults (one query)."""
    release_ids = [r.pk for r in releases]
    solution_ids = {r.solution_id for r in releases}
    risk_levels = {r.risk_level for r in releases}
    guardrails = list(
        Guardrail.objects.active()
        .filter(
            Q(scope=GuardrailScope.RELEASE, release_id__in=release_ids)
            | Q(scope=GuardrailScope.SOLUTION, solution_id__in=solution_ids)
            | Q(scope=GuardrailScope.RISK_LEVEL, risk_level__in=risk_levels)
        )
        .select_related("metric")
        .order_by("id")
    )
    by_scope: dict[tuple[str, object], list[Guardrail]] = defaultdict(list)
    for guardrail in guardrails:
        target = {
            GuardrailScope.RELEASE: guardrail.release_id,
            GuardrailScope.SOLUTION: guardrail.solution_id,
            GuardrailScope.RISK_LEVEL: guardrail.risk_level,
        }[GuardrailScope(guardrail.scope)]
        by_scope[(guardrail.scope, target)].append(guardrail)
    by_release: dict[int, list[Guardrail]] = {}
    for release in releases:
        by_release[release.pk] = [
            *by_scope.get((GuardrailScope.RELEASE, release.pk), []),
            *by_scope.get((GuardrailScope.SOLUTION, release.solution_id), []),
            *by_scope.get((GuardrailScope.RISK_LEVEL, release.risk_level), []),
        ]
    return by_release


def _aggregate(queryset: Any, keys: Sequence[str]) -> dict[tuple[Any, ...], _Totals]:
    rows = queryset.values(*keys).annotate(
        num=Sum("numerator"), den=Sum("denominator"), avg_value=Avg("value"), windows=Count("id")
    )
    return {
        tuple(row[k] for k in keys): _Totals(
            numerator=row["num"] or 0, denominator=row["den"] or 0, value=row["avg_value"], windows=row["windows"]
        )
        for row in rows
    }


@transaction.atomic
def _evaluate_batch_in_transaction(
    *, release_ids: Sequence[int], now: datetime
) -> tuple[CycleResult, list[PendingAction]]:
    result = CycleResult()
    _lock_releases(release_ids)
    releases = list(Release.objects.filter(id__in=release_ids, status__in=LIVE_STATES).order_by("id"))
    result.releases = len(releases)
    if not releases:
        return result, []
    by_release = effective_guardrails(releases)

    # (guardrail, release, market) keys with their window, minus those already evaluated.
    Key = tuple[int, int, str]
    windows: dict[int, tuple[datetime, datetime]] = {}
    keys: list[tuple[Guardrail, Release, str]] = []
    for release in releases:
        for guardrail in by_release[release.pk]:
            if guardrail.pk not in windows:
                end = window_end_for(guardrail, now)
                windows[guardrail.pk] = (end - guardrail.evaluation_window, end)
            keys.extend((guardrail, release, market) for market in release.markets or [])
    if not keys:
        return result, []
    existing = set(
        Evaluation.objects.filter(
            release_id__in=[r.pk for r in releases],
            guardrail_id__in=list(windows),
            window_end__in={end for _, end in windows.values()},
        ).values_list("guardrail_id", "release_id", "market", "window_end")
    )
    pending = [(g, r, m) for g, r, m in keys if (g.pk, r.pk, m, windows[g.pk][1]) not in existing]
    result.skipped = len(keys) - len(pending)
    if not pending:
        return result, []

    # One aggregate per distinct window span (usually one or two: spans differ only by maturation and window).
    spans: dict[tuple[datetime, datetime], set[int]] = defaultdict(set)
    span_releases: dict[tuple[datetime, datetime], set[int]] = defaultdict(set)
    for guardrail, release, _market in pending:
        spans[windows[guardrail.pk]].add(guardrail.metric_id)
        span_releases[windows[guardrail.pk]].add(release.pk)
    totals: dict[tuple[datetime, datetime], dict[tuple[Any, ...], _Totals]] = {}
    for span, metric_ids in spans.items():
        start, end = span
        totals[span] = _aggregate(
            MetricSample.objects.filter(
                release_id__in=span_releases[span],
                metric_id__in=metric_ids,
                window_start__gte=start,
                window_end__lte=end,
            ),
            ["release_id", "metric_id", "market", "arm"],
        )

    previous_release = _previous_verified_releases(
        [r for g, r, _m in pending if g.relative_margin is not None], now=now
    )
    baseline_totals: dict[tuple[Any, ...], _Totals] = {}
    if previous_release:
        baseline_totals = _aggregate(
            MetricSample.objects.filter(
                release_id__in=set(previous_release.values()),
                metric_id__in={g.metric_id for g, _r, _m in pending},
                arm=Arm.TREATMENT,
            ),
            ["release_id", "metric_id", "market"],
        )

    previous_state: dict[Key, Counters] = {
        (row["guardrail_id"], row["release_id"], row["market"]): Counters(
            failures=row["failures"], consecutive_passes=row["consecutive_passes"], breached=row["breached"]
        )
        for row in Evaluation.objects.filter(release_id__in=[r.pk for r in releases], guardrail_id__in=list(windows))
        .annotate(
            rank=Window(
                RowNumber(),
                partition_by=[F("guardrail_id"), F("release_id"), F("market")],
                order_by=F("window_end").desc(),
            )
        )
        .filter(rank=1)
        .values("guardrail_id", "release_id", "market", "failures", "consecutive_passes", "breached")
    }

    evaluations: list[Evaluation] = []
    for guardrail, release, market in pending:
        span = windows[guardrail.pk]
        span_totals = totals[span]
        treatment = span_totals.get((release.pk, guardrail.metric_id, market, Arm.TREATMENT), _Totals())
        control = span_totals.get((release.pk, guardrail.metric_id, market, Arm.CONTROL))
        baseline: _Totals | None
        baseline_source = BaselineSource.NONE
        if control is not None and control.denominator > 0:
            baseline, baseline_source = control, BaselineSource.CONTROL
        elif release.pk in previous_release:
            baseline = baseline_totals.get((previous_release[release.pk], guardrail.metric_id, market))
            baseline_source = BaselineSource.PREVIOUS_RELEASE if baseline is not None else BaselineSource.NONE
        else:
            baseline = None
        evaluation = Evaluation(
            guardrail=guardrail,
            release=release,
            market=market,
            window_start=span[0],
            window_end=span[1],
            dry_run=guardrail.dry_run,
            evaluated_at=now,
            baseline_source=baseline_source,
        )
        try:
            _judge(evaluation, guardrail, treatment, baseline)
        except (ValueError, ZeroDivisionError, OverflowError) as exc:
            evaluation.outcome = Outcome.ERROR
            evaluation.detail = f"{type(exc).__name__}: {exc}"
        counters = next_counters(
            previous_state.get((guardrail.pk, release.pk, market), Counters()),
            evaluation.outcome,
            failure_limit=guardrail.failure_limit,
            success_limit=guardrail.consecutive_success_limit,
        )
        evaluation.failures = counters.failures
        evaluation.consecutive_passes = counters.consecutive_passes
        evaluation.breached = counters.breached
        evaluations.append(evaluation)
    Evaluation.objects.bulk_create(evaluations)
    result.evaluations = len(evaluations)
    for evaluation in evaluations:
        result.outcomes[evaluation.outcome] += 1
        if evaluation.outcome == Outcome.ERROR:
            result.errors += 1
            # An operational alert, not a failure of the release.
            logger.error(
                "Guardrail %s on release %s/%s could not be evaluated: %s",
                evaluation.guardrail_id,
                evaluation.release_id,
                evaluation.market,
                evaluation.detail,
            )

    actions = _act_on_incidents(evaluations, previous_state, now=now, result=result)
    return result, actions


def _previous_verified_releases(releases: Sequence[Release], *, now: datetime) -> dict[int, int]:
    """Release id → the latest verified release of its solution (the baseline without a control arm)."""
    if not releases:
        return {}
    rows = (
        Release.objects.filter(solution_id__in={r.solution_id for r in releases}, status=ReleaseStatus.VERIFIED)
        .order_by("solution_id", "-closed_at", "-id")
        .values("id", "solution_id")
    )
    latest: dict[int, int] = {}
    for row in rows:
        latest.setdefault(row["solution_id"], row["id"])
    return {r.pk: latest[r.solution_id] for r in releases if latest.get(r.solution_id) not in (None, r.pk)}


def _judge(evaluation: Evaluation, guardrail: Guardrail, treatment: _Totals, baseline: _Totals | None) -> None:
    metric = guardrail.metric
    direction = metric.direction
    if metric.kind == MetricKind.GAUGE:
        evaluation.n = treatment.denominator or treatment.windows
        evaluation.observed = treatment.value
        if evaluation.n < guardrail.min_sample_size or treatment.value is None:
            evaluation.outcome = Outcome.INSUFFICIENT_DATA
            return
        evaluation.lower = evaluation.upper = treatment.value
        assert guardrail.absolute_threshold is not None
        evaluation.outcome = st.absolute_verdict(
            st.Interval(treatment.value, treatment.value, treatment.value, evaluation.n),
            threshold=guardrail.absolute_threshold,
            direction=direction,
        )
        return

    x, n = treatment.numerator, treatment.denominator
    evaluation.n = n
    evaluation.observed = x / n if n else None
    if n < max(1, guardrail.min_sample_size):
        evaluation.outcome = Outcome.INSUFFICIENT_DATA
        evaluation.detail = f"n={n} below the minimum sample {guardrail.min_sample_size}"
        return
    outcomes: list[str] = []
    if guardrail.absolute_threshold is not None:
        interval = st.sequential_rate_interval(x, n, confidence=guardrail.confidence, tuning_n=guardrail.tuning_n)
        evaluation.lower, evaluation.upper = interval.lower, interval.upper
        outcomes.append(st.absolute_verdict(interval, threshold=guardrail.absolute_threshold, direction=direction))
    if guardrail.relative_margin is not None:
        if baseline is None or baseline.denominator == 0:
            evaluation.detail = "No baseline: no control arm and no previous verified release with data."
            if guardrail.absolute_threshold is None:
                outcomes.append(Outcome.INSUFFICIENT_DATA)
        else:
            evaluation.baseline = baseline.numerator / baseline.denominator
            evaluation.baseline_n = baseline.denominator
            if baseline.denominator < guardrail.min_sample_size:
                outcomes.append(Outcome.INSUFFICIENT_DATA)
            else:
                difference = st.sequential_difference_interval(
                    x,
                    n,
                    baseline.numerator,
                    baseline.denominator,
                    confidence=guardrail.confidence,
                    tuning_n=guardrail.tuning_n,
                )
                evaluation.difference_lower, evaluation.difference_upper = difference.lower, difference.upper
                outcomes.append(st.relative_verdict(difference, margin=guardrail.relative_margin, direction=direction))
    evaluation.outcome = st.worst_outcome(*outcomes) if outcomes else Outcome.INSUFFICIENT_DATA


def _act_on_incidents(
    evaluations: Sequence[Evaluation],
    previous_state: dict[tuple[int, int, str], Counters],
    *,
    now: datetime,
    result: CycleResult,
) -> list[PendingAction]:
    failing = [e for e in evaluations if not e.dry_run and e.breached and e.outcome == Outcome.FAIL]
    recovered = [
        e
        for e in evaluations
        if not e.dry_run
        and not e.breached
        and e.outcome == Outcome.PASS
        and previous_state.get((e.guardrail_id, e.release_id, e.market), Counters()).breached
    ]
    if not failing and not recovered:
        return []
    actions: list[PendingAction] = []
    for evaluation in failing:
        guardrail = evaluation.guardrail
        incident, opened = incident_trigger(
            guardrail=guardrail,
            release_id=evaluation.release_id,
            market=evaluation.market,
            evaluation=evaluation,
            now=now,
        )
        if opened:
            result.incidents_opened += 1
        else:
            result.incidents_retriggered += 1
        if guardrail.action in (GuardrailAction.PAUSE, GuardrailAction.ROLLBACK):
            actions.append(
                PendingAction(
                    release_id=evaluation.release_id,
                    guardrail_id=guardrail.pk,
                    incident_id=incident.pk,
                    action=guardrail.action,
                    reason=f"Guardrail '{guardrail.name}' ({guardrail.metric.key}) failing in {evaluation.market}: "
                    f"incident #{incident.pk}",
                )
            )
    if recovered:
        keys = [
            incident_dedup_key(release_id=e.release_id, guardrail_id=e.guardrail_id, market=e.market) for e in recovered
        ]
        for incident in Incident.objects.open().filter(dedup_key__in=keys):
            incident_resolve(
                incident=incident,
                actor=None,
                resolution="auto_recovered",
                note=f"{incident.guardrail.consecutive_success_limit} passing evaluations in a row.",
                now=now,
            )
            result.incidents_resolved += 1
    return actions


def guardrail_action_apply(*, pending: PendingAction) -> int:
    """Pause or roll back the release for a failing guardrail, as the system, in its own transaction."""
    transition = PAUSE if pending.action == GuardrailAction.PAUSE else ROLLBACK
    try:
        with transaction.atomic():
            release = Release.objects.get(pk=pending.release_id)
            if not transition.allows_from(release.status):
                return 0  # already paused / rolled back: nothing to do, and no noise on the timeline
            service = release_services.release_pause if transition is PAUSE else release_services.release_rollback
            service(release=release, actor=None, reason=pending.reason)
            incident_event_add(
                incident=Incident.objects.get(pk=pending.incident_id),
                kind=IncidentEventKind.ACTION_TAKEN,
                message=f"{'Paused' if transition is PAUSE else 'Rolled back'} the release: {pending.reason}",
                data={"action": pending.action, "release": pending.release_id},
            )
        return 1
    except DomainError as exc:
        incident_event_add(
            incident=Incident.objects.get(pk=pending.incident_id),
            kind=IncidentEventKind.ACTION_FAILED,
            message=f"Could not {transition.label.lower()} the release: {exc.detail}",
            data={"action": pending.action, "code": exc.code},
        )
        return 0
