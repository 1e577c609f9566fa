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
from django.utils import timezone

from core.errors import DomainError
from releases import services as release_services
from releases.models import Release
from releases.state_machine import PAUSE, ROLLBACK

from .. import selectors
from ..choices import Arm, BaselineSource, GuardrailAction, IncidentEventKind, Outcome
from ..judging import Counters, Judgement, Rule, Totals, judge_safely, next_counters
from ..models import Evaluation, Guardrail, Incident, incident_dedup_key
from .incidents import incident_event_add, incident_resolve, incident_trigger

logger = logging.getLogger(__name__)

BATCH_SIZE = 200
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def window_end_for(guardrail: Guardrail, now: datetime) -> datetime:
    """The last matured window end, aligned to the guardrail's interval, so every run in one interval agrees."""
    matured = now - guardrail.metric.maturation_period
    step = guardrail.evaluation_interval.total_seconds()
    seconds = (matured - _EPOCH).total_seconds()
    return _EPOCH + timedelta(seconds=(seconds // step) * step)


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


def guardrails_evaluate(
    *, release_ids: Iterable[int] | None = None, now: datetime | None = None, batch_size: int = BATCH_SIZE
) -> CycleResult:
    """One evaluation cycle over the live releases (all of them, or ``release_ids``), batch by batch."""
    now = now or timezone.now()
    ids = selectors.live_release_ids(release_ids=release_ids)
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


# --- The batch, step by step ----------------------------------------------------------------------------------

Key = tuple[int, int, str]  # (guardrail, release, market)
Span = tuple[datetime, datetime]


@dataclass
class _Looks:
    """The (guardrail, release, market) looks a batch still has to take, with each guardrail's window."""

    windows: dict[int, Span]
    pending: list[tuple[Guardrail, Release, str]]
    skipped: int


def _looks_to_take(releases: Sequence[Release], now: datetime) -> _Looks:
    by_release = selectors.effective_guardrails(releases)
    windows: dict[int, Span] = {}
    keys: list[tuple[Guardrail, Release, str]] = []
    for release in releases:
        for guardrail in by_release[release.pk]:
            if guardrail.pk not in windows:
                end = window_end_for(guardrail, now)
                windows[guardrail.pk] = (end - guardrail.evaluation_window, end)
            keys.extend((guardrail, release, market) for market in release.markets or [])
    if not keys:
        return _Looks(windows, [], 0)
    existing = selectors.evaluated_looks(
        release_ids=[r.pk for r in releases],
        guardrail_ids=list(windows),
        window_ends={end for _, end in windows.values()},
    )
    pending = [(g, r, m) for g, r, m in keys if (g.pk, r.pk, m, windows[g.pk][1]) not in existing]
    return _Looks(windows, pending, len(keys) - len(pending))


@dataclass
class _Cohorts:
    """Sample totals per window span, the previous-release baselines, and the releases whose data could not
    even be added up (their looks are ``error``)."""

    totals: dict[Span, dict[tuple[Any, ...], Totals]]
    previous_release: dict[int, int]
    baseline_totals: dict[tuple[Any, ...], Totals]
    unreadable: dict[int, str]


def _read_cohorts(looks: _Looks) -> _Cohorts:
    # One aggregate per distinct window span (usually one or two: spans differ only by maturation and window).
    spans: dict[Span, set[int]] = defaultdict(set)
    span_releases: dict[Span, set[int]] = defaultdict(set)
    for guardrail, release, _market in looks.pending:
        spans[looks.windows[guardrail.pk]].add(guardrail.metric_id)
        span_releases[looks.windows[guardrail.pk]].add(release.pk)
    unreadable: dict[int, str] = {}
    totals: dict[Span, dict[tuple[Any, ...], Totals]] = {}
    for span, metric_ids in spans.items():
        totals[span], failed = selectors.cohort_totals(
            release_ids=span_releases[span], metric_ids=metric_ids, start=span[0], end=span[1]
        )
        unreadable.update(failed)

    previous_release = selectors.previous_verified_releases(
        [r for g, r, _m in looks.pending if g.relative_margin is not None]
    )
    baseline_totals: dict[tuple[Any, ...], Totals] = {}
    if previous_release:
        baseline_totals, failed = selectors.release_totals(
            release_ids=set(previous_release.values()), metric_ids={g.metric_id for g, _r, _m in looks.pending}
        )
        for release_id, previous_id in previous_release.items():
            if previous_id in failed:
                unreadable.setdefault(release_id, f"baseline release {previous_id}: {failed[previous_id]}")
    return _Cohorts(totals, previous_release, baseline_totals, unreadable)


def rule_for(guardrail: Guardrail) -> Rule:
    return Rule(
        kind=guardrail.metric.kind,
        direction=guardrail.metric.direction,
        absolute_threshold=guardrail.absolute_threshold,
        relative_margin=guardrail.relative_margin,
        min_sample_size=guardrail.min_sample_size,
        confidence=guardrail.confidence,
        tuning_n=guardrail.tuning_n,
    )


def _baseline_for(
    cohorts: _Cohorts, span: Span, guardrail: Guardrail, release: Release, market: str
) -> tuple[Totals | None, str]:
    """The concurrent control arm of the same cohort, else the previous verified release, else none."""
    control = cohorts.totals[span].get((release.pk, guardrail.metric_id, market, Arm.CONTROL))
    if control is not None and control.denominator > 0:
        return control, BaselineSource.CONTROL
    if release.pk in cohorts.previous_release:
        baseline = cohorts.baseline_totals.get((cohorts.previous_release[release.pk], guardrail.metric_id, market))
        return baseline, BaselineSource.PREVIOUS_RELEASE if baseline is not None else BaselineSource.NONE
    return None, BaselineSource.NONE


def _evaluate(looks: _Looks, cohorts: _Cohorts, previous_state: dict[Key, Counters], now: datetime) -> list[Evaluation]:
    """One evaluation per pending look: judged (each cohort on its own, so one release's bad data is its own
    ``error``), with the counters carried over from the previous look."""
    evaluations: list[Evaluation] = []
    for guardrail, release, market in looks.pending:
        span = looks.windows[guardrail.pk]
        baseline_source: str = BaselineSource.NONE
        if release.pk in cohorts.unreadable:
            judgement = Judgement(outcome=Outcome.ERROR, detail=cohorts.unreadable[release.pk])
        else:
            treatment = cohorts.totals[span].get((release.pk, guardrail.metric_id, market, Arm.TREATMENT), Totals())
            baseline, baseline_source = _baseline_for(cohorts, span, guardrail, release, market)
            judgement = judge_safely(rule_for(guardrail), treatment, baseline)
        counters = next_counters(
            previous_state.get((guardrail.pk, release.pk, market), Counters()),
            judgement.outcome,
            failure_limit=guardrail.failure_limit,
            success_limit=guardrail.consecutive_success_limit,
        )
        evaluations.append(
            Evaluation(
                guardrail=guardrail,
                release=release,
                market=market,
                window_start=span[0],
                window_end=span[1],
                dry_run=guardrail.dry_run,
                evaluated_at=now,
                baseline_source=baseline_source,
                outcome=judgement.outcome,
                n=judgement.n,
                observed=judgement.observed,
                lower=judgement.lower,
                upper=judgement.upper,
                baseline=judgement.baseline,
                baseline_n=judgement.baseline_n,
                difference_lower=judgement.difference_lower,
                difference_upper=judgement.difference_upper,
                detail=judgement.detail,
                failures=counters.failures,
                consecutive_passes=counters.consecutive_passes,
                breached=counters.breached,
            )
        )
    return evaluations


def _record(evaluations: list[Evaluation], result: CycleResult) -> None:
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


@transaction.atomic
def _evaluate_batch_in_transaction(
    *, release_ids: Sequence[int], now: datetime
) -> tuple[CycleResult, list[PendingAction]]:
    result = CycleResult()
    _lock_releases(release_ids)
    releases = list(selectors.live_releases(release_ids))
    result.releases = len(releases)
    if not releases:
        return result, []
    looks = _looks_to_take(releases, now)
    result.skipped = looks.skipped
    if not looks.pending:
        return result, []
    cohorts = _read_cohorts(looks)
    previous_state = selectors.latest_counters(release_ids=[r.pk for r in releases], guardrail_ids=list(looks.windows))
    evaluations = _evaluate(looks, cohorts, previous_state, now)
    _record(evaluations, result)
    actions = _act_on_incidents(evaluations, previous_state, now=now, result=result)
    return result, actions


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
