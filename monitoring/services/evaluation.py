"""Set-based guardrail evaluation of every live release: one look per cohort whose data changed.

The cohort of a (guardrail, release, market) is every matured sample of the metric's source of record since the
release's current phase began (stage or verification; METRICS.md). A look is identified by the data it saw —
(phase start, number of samples, latest receipt) — so evaluating unchanged data writes nothing and moves no
counter; ingestion enqueues a look at the releases it touched and it runs at once, and the periodic cycle only
catches up (a missed enqueue, a window that matured).

A cycle costs the same handful of statements for 10 releases as for 10,000: releases, guardrails and their metrics,
one cohort aggregate (gauges' latest values included), previous verified releases and their baselines, then the
locks, the phases re-checked, the looks already taken, the previous counters and one COPY of the evaluations.
Incidents are then opened or resolved only for the keys whose state changed, and release actions (pause /
rollback) run after the cycle commits, each in its own transaction through the release services.

Idempotence: the cycle locks each release's ``EvaluationLock`` row (sorted, so two cycles cannot deadlock; row
locks, so no fleet is too large for one transaction) and skips every look already taken; the unique constraint on
the look's identity is the backstop.
"""

from __future__ import annotations

import logging
import operator
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.db.backends.utils import CursorDebugWrapper
from django.utils import timezone

from core.errors import DomainError
from core.memory import cyclic_gc_paused
from releases import services as release_services
from releases.choices import ReleaseStatus
from releases.models import Release
from releases.state_machine import PAUSE, ROLLBACK

from .. import selectors
from .. import statistics as st
from ..choices import Arm, BaselineSource, GuardrailAction, IncidentEventKind, Outcome
from ..judging import GAUGE, Counters, Judgement, Rule, Totals, judge_safely, next_counters, split_units
from ..models import Evaluation, EvaluationLock, Guardrail, Incident, incident_dedup_key
from ..selectors import GuardrailSpec
from .incidents import incident_event_add, incident_open_data_quality, incident_resolve, incident_trigger

logger = logging.getLogger(__name__)

# Releases per Celery task when the beat fans a cycle out (monitoring/tasks.py).
BATCH_SIZE = 200


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
    srm_incidents_opened: int = 0
    outcomes: dict[str, int] = field(default_factory=lambda: defaultdict(int))


def guardrails_evaluate(*, release_ids: Iterable[int] | None = None, now: datetime | None = None) -> CycleResult:
    """One evaluation cycle over the live releases (all of them, or ``release_ids``).

    What the looks rest on is read once, without locks: releases, guardrails, one cohort aggregate over every
    release, the previous verified releases and their baselines. Then, in one transaction under the releases'
    locks (``EvaluationLock`` rows, sorted): the phases re-checked, the looks already taken and the counters (they
    must be read under the lock), the evaluations streamed into one statement, incidents for the keys whose state
    changed. The same statements for 10 releases as for 10,000.
    """
    now = now or timezone.now()
    with cyclic_gc_paused():
        snapshot = _read_snapshot(release_ids, now)
        if not snapshot.releases:
            return CycleResult()
        return _evaluate_and_act(release_ids=list(snapshot.releases), now=now, snapshot=snapshot)


def _evaluate_and_act(*, release_ids: Sequence[int], now: datetime, snapshot: _Snapshot) -> CycleResult:
    result, actions = _evaluate_batch_in_transaction(release_ids=release_ids, now=now, snapshot=snapshot)
    for action in actions:
        result.actions_taken += guardrail_action_apply(pending=action)
    return result


def _lock_releases(release_ids: Sequence[int]) -> None:
    """Lock the releases' ``EvaluationLock`` rows, in id order so two batches cannot deadlock, creating the ones
    missing. One upsert: it waits for a row another batch holds — or has just inserted and not yet committed, which
    a ``SELECT … FOR UPDATE`` would not see — and holds every row until this transaction ends."""
    if connection.vendor != "postgresql" or not release_ids:
        return  # SQLite serializes writers itself
    table = connection.ops.quote_name(EvaluationLock._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            # The table name is the model's own, quoted; the ids are a parameter.
            f"INSERT INTO {table} (release_id) SELECT id FROM unnest(%s::bigint[]) AS ids(id) ORDER BY id "  # noqa: S608
            "ON CONFLICT (release_id) DO UPDATE SET release_id = EXCLUDED.release_id",
            [sorted(release_ids)],
        )


# --- The batch, step by step ----------------------------------------------------------------------------------

Key = tuple[int, int, str]  # (guardrail, release, market)
_NO_COUNTERS = Counters()
# The arms as the plain strings the cohort keys hold: an enum member hashes in Python, ~20 times per look.
_TREATMENT, _CONTROL = Arm.TREATMENT.value, Arm.CONTROL.value
_ARMS = (_TREATMENT, _CONTROL)
CohortKey = tuple[int, int, str, str]  # (release, metric, market, arm)


@dataclass
class _Look:
    guardrail: GuardrailSpec
    release: Release
    market: str
    phase_start: datetime
    samples: int
    data_through: datetime
    last_window_end: datetime


@dataclass
class _Cohorts:
    """Sample totals per (release, metric, market, arm) of each current phase, the previous-release baselines,
    and the releases whose data could not even be added up (their looks are ``error``)."""

    totals: dict[tuple[Any, ...], Totals]
    previous_release: dict[int, int]
    baseline_totals: dict[tuple[Any, ...], Totals]
    unreadable: dict[int, str]


@dataclass
class _Looks:
    pending: list[_Look]
    skipped: int
    sequences: dict[int, int]  # release → K, the guardrails × markets sharing its α


@dataclass
class _Snapshot:
    """What a cycle reads once, before taking any lock: the releases as they were, their guardrails, cohorts."""

    releases: dict[int, Release]
    by_release: dict[int, list[GuardrailSpec]]
    cohorts: _Cohorts


def _read_snapshot(release_ids: Iterable[int] | None, now: datetime) -> _Snapshot:
    """The live releases among ``release_ids`` (all when None), in id order, and what their looks rest on."""
    releases = list(selectors.live_releases(release_ids))
    if not releases:
        return _Snapshot({}, {}, _Cohorts({}, {}, {}, {}))
    by_release = selectors.guardrail_specs(releases)
    return _Snapshot({r.pk: r for r in releases}, by_release, _read_cohorts(releases, by_release, now))


def _read_cohorts(releases: Sequence[Release], by_release: dict[int, list[GuardrailSpec]], now: datetime) -> _Cohorts:
    metrics = {g.metric_id: g.metric for guardrails in by_release.values() for g in guardrails}
    if not metrics:
        return _Cohorts({}, {}, {}, {})
    totals, unreadable = selectors.cohort_totals(
        release_ids=[r.pk for r in releases],
        metric_ids=list(metrics),
        gauge_metric_ids=[pk for pk, m in metrics.items() if m.kind == GAUGE],
        now=now,
    )
    if unreadable:
        # Their looks are ``error``; identify them by what arrived, as any other look (one more query, only then).
        for key, identity in selectors.cohort_identities(
            release_ids=list(unreadable), metric_ids=list(metrics), now=now
        ).items():
            totals.setdefault(key, identity)
    # The previous verified release of each solution: the baseline without a control arm, and whether a release
    # is its solution's first (then, without a control arm, its absolute bounds judge it).
    previous_release = selectors.previous_verified_releases(list(releases))
    baseline_totals: dict[tuple[Any, ...], Totals] = {}
    relative_releases = {r.pk for r in releases if any(g.relative_margin is not None for g in by_release[r.pk])}
    wanted = {k: v for k, v in previous_release.items() if k in relative_releases}
    if wanted:
        baseline_totals, failed = selectors.release_totals(release_ids=set(wanted.values()), metric_ids=list(metrics))
        for release_id, previous_id in wanted.items():
            if previous_id in failed:
                unreadable.setdefault(release_id, f"baseline release {previous_id}: {failed[previous_id]}")
    return _Cohorts(totals, previous_release, baseline_totals, unreadable)


def _looks_to_take(
    releases: Sequence[Release], by_release: dict[int, list[GuardrailSpec]], cohorts: _Cohorts
) -> _Looks:
    """Every (guardrail, release, market) whose cohort holds data not looked at yet."""
    candidates: list[_Look] = []
    sequences: dict[int, int] = {}
    totals = cohorts.totals
    for release in releases:
        release_id = release.id
        start = selectors.phase_start(release)
        markets = release.markets or []
        guardrails = by_release[release_id]
        sequences[release_id] = max(1, sum(1 for g in guardrails if g.bonferroni and not g.dry_run) * len(markets))
        if start is None:
            continue
        for guardrail in guardrails:
            metric_id = guardrail.metric_id
            for market in markets:
                # Both arms' windows, the later of their latest receipts and window ends (the phase start when
                # neither arm has any): written out, since this runs once per look of the fleet.
                samples, data_through, last_window_end = 0, start, start
                for arm in _ARMS:
                    arm_totals = totals.get((release_id, metric_id, market, arm))
                    if arm_totals is None:
                        continue
                    samples += arm_totals.windows
                    if arm_totals.last_received and (data_through is start or arm_totals.last_received > data_through):
                        data_through = arm_totals.last_received
                    if arm_totals.last_window_end and (
                        last_window_end is start or arm_totals.last_window_end > last_window_end
                    ):
                        last_window_end = arm_totals.last_window_end
                candidates.append(_Look(guardrail, release, market, start, samples, data_through, last_window_end))
    if not candidates:
        return _Looks([], 0, sequences)
    existing = selectors.evaluated_looks(
        release_ids=[r.id for r in releases],
        guardrail_ids=list({look.guardrail.id for look in candidates}),
        phase_starts={look.phase_start for look in candidates},
        data_throughs={look.data_through for look in candidates},
    )
    pending = [
        look
        for look in candidates
        if (look.guardrail.id, look.release.id, look.market, look.phase_start, look.samples, look.data_through)
        not in existing
    ]
    return _Looks(pending, len(candidates) - len(pending), sequences)


def planned_treatment_share(guardrail: Guardrail | GuardrailSpec, release: Release) -> float:
    """The split the SRM test checks: the guardrail's declared share, else the stage's traffic percent while it
    is below 100%, else an even split (a holdout as large as the treatment)."""
    if guardrail.planned_treatment_share is not None:
        return guardrail.planned_treatment_share
    stage = release.current_stage
    if release.status != ReleaseStatus.VERIFYING and stage is not None and stage.traffic_percent < 100:
        return stage.traffic_percent / 100
    return 0.5


def release_splits(
    cohorts: _Cohorts, releases: Sequence[Release], metrics: dict[int, Any]
) -> dict[tuple[int, str], tuple[int, int]]:
    """(release, market) → (treatment, control) conversations of its phase, for the sample-ratio test: from the
    metric that counts the most conversations in both arms (a conversation-level denominator, or a turn-level
    metric's per-unit ``units``). A metric whose denominator is a subset (CSAT: rated conversations) counts fewer
    and is not chosen while a whole-traffic metric is there."""
    wanted = {r.pk for r in releases}
    best: dict[tuple[int, str], tuple[int, int]] = {}
    for (release_id, metric_id, market, arm), treatment in cohorts.totals.items():
        if arm != _TREATMENT or release_id not in wanted or metric_id not in metrics:
            continue
        control = cohorts.totals.get((release_id, metric_id, market, _CONTROL))
        metric = metrics[metric_id]
        if control is None or metric.kind == GAUGE:
            continue
        split = split_units(metric.unit_of_analysis, treatment, control)
        if split is not None and sum(split) > sum(best.get((release_id, market), (0, 0))):
            best[(release_id, market)] = split
    return best


def rule_for(
    guardrail: Guardrail | GuardrailSpec,
    *,
    sequences: int = 1,
    first_release: bool = True,
    share: float = 0.5,
    split: tuple[int, int] | None = None,
) -> Rule:
    return Rule(
        kind=guardrail.metric.kind,
        direction=guardrail.metric.direction,
        absolute_threshold=guardrail.absolute_threshold,
        relative_margin=guardrail.relative_margin,
        min_sample_size=guardrail.min_sample_size,
        confidence=per_sequence_confidence(guardrail, sequences),
        tuning_n=guardrail.tuning_n,
        unit=guardrail.metric.unit_of_analysis,
        design_effect=guardrail.metric.design_effect,
        first_release=first_release,
        treatment_share=share,
        split=split,
    )


def per_sequence_confidence(guardrail: Guardrail | GuardrailSpec, sequences: int) -> float:
    """Bonferroni across the release's K sequences unless the guardrail opts out (then its own α)."""
    return st.bonferroni_confidence(guardrail.confidence, sequences) if guardrail.bonferroni else guardrail.confidence


def _baseline_for(cohorts: _Cohorts, look: _Look) -> tuple[Totals | None, str]:
    """The concurrent control arm of the same cohort, else the previous verified release, else none."""
    release, metric_id, market = look.release.id, look.guardrail.metric_id, look.market
    control = cohorts.totals.get((release, metric_id, market, _CONTROL))
    if control is not None and control.denominator > 0:
        return control, BaselineSource.CONTROL
    if release in cohorts.previous_release:
        baseline = cohorts.baseline_totals.get((cohorts.previous_release[release], metric_id, market))
        return baseline, BaselineSource.PREVIOUS_RELEASE if baseline is not None else BaselineSource.NONE
    return None, BaselineSource.NONE


@dataclass
class _Row:
    """One evaluation to write, as column values (no model instance: a cycle writes ~180,000 of them)."""

    values: dict[str, Any]
    guardrail: GuardrailSpec
    release: Release


def _evaluate(looks: _Looks, cohorts: _Cohorts, previous_state: dict[Key, Counters], now: datetime) -> Iterator[_Row]:
    """One evaluation per pending look, as it is judged (each cohort on its own, so one release's bad data is its
    own ``error``), with the counters carried over from the previous look. A generator: a cycle over the fleet
    streams ~180,000 of them into one COPY and never holds them all."""
    metrics = {look.guardrail.metric_id: look.guardrail.metric for look in looks.pending}
    splits = release_splits(cohorts, list({look.release.pk: look.release for look in looks.pending}.values()), metrics)
    # One rule per (guardrail, release, split): the markets of a release mostly share their split's absence.
    rules: dict[tuple[int, int, tuple[int, int] | None], Rule] = {}
    totals, unreadable, empty = cohorts.totals, cohorts.unreadable, Totals()
    for look in looks.pending:
        guardrail, release, market = look.guardrail, look.release, look.market
        guardrail_id, release_id = guardrail.id, release.id
        baseline_source: str = BaselineSource.NONE
        split = splits.get((release_id, market))
        rule = rules.get((guardrail_id, release_id, split))
        if rule is None:
            rule = rules[(guardrail_id, release_id, split)] = rule_for(
                guardrail,
                sequences=looks.sequences[release_id],
                first_release=release_id not in cohorts.previous_release,
                share=planned_treatment_share(guardrail, release),
                split=split,
            )
        if release_id in unreadable:
            judgement = Judgement(outcome=Outcome.ERROR, detail=unreadable[release_id])
        else:
            treatment = totals.get((release_id, guardrail.metric_id, market, _TREATMENT), empty)
            baseline, baseline_source = _baseline_for(cohorts, look)
            judgement = judge_safely(
                rule, treatment, baseline, baseline_is_control=baseline_source == BaselineSource.CONTROL
            )
        counters = next_counters(
            previous_state.get((guardrail_id, release_id, market), _NO_COUNTERS),
            judgement.outcome,
            failure_limit=guardrail.failure_limit,
            success_limit=guardrail.consecutive_success_limit,
        )
        values = {
            "guardrail_id": guardrail_id,
            "release_id": release_id,
            "market": market,
            "window_start": look.phase_start,
            "window_end": look.last_window_end,
            "samples": look.samples,
            "data_through": look.data_through,
            "confidence": rule.confidence,
            "sequences": looks.sequences[release_id] if guardrail.bonferroni else 1,
            "dry_run": guardrail.dry_run,
            "evaluated_at": now,
            "baseline_source": baseline_source,
            "outcome": judgement.outcome,
            "n": judgement.n,
            "observed": judgement.observed,
            "lower": judgement.lower,
            "upper": judgement.upper,
            "baseline": judgement.baseline,
            "baseline_n": judgement.baseline_n,
            "difference_lower": judgement.difference_lower,
            "difference_upper": judgement.difference_upper,
            "detail": judgement.detail,
            "reason": judgement.reason,
            "variance_method": judgement.variance_method if judgement.outcome != Outcome.ERROR else "",
            "sample_ratio_mismatch": judgement.sample_ratio_mismatch,
            "failures": counters.failures,
            "consecutive_passes": counters.consecutive_passes,
            "breached": counters.breached,
        }
        yield _Row(values, guardrail, release)


def _needs_incident_work(values: dict[str, Any], previous_state: dict[Key, Counters]) -> bool:
    """Whether the look opens, retriggers or resolves an incident or flags the split: only those need their row
    as a model instance with an id (the incident timeline points at it)."""
    if values["dry_run"]:
        return False
    if values["sample_ratio_mismatch"] or (values["breached"] and values["outcome"] == Outcome.FAIL):
        return True
    key = (values["guardrail_id"], values["release_id"], values["market"])
    return values["outcome"] == Outcome.PASS and not values["breached"] and previous_state.get(key, Counters()).breached


def _record(rows: Iterable[_Row], previous_state: dict[Key, Counters], result: CycleResult) -> list[Evaluation]:
    """Write every row; return, as saved instances, the few the incident steps need. The rest are streamed into
    one COPY on PostgreSQL: no model instance, one statement whatever the count."""
    actionable: list[Evaluation] = []

    def plain_rows() -> Iterator[dict[str, Any]]:
        for row in rows:
            values = row.values
            result.evaluations += 1
            result.outcomes[values["outcome"]] += 1
            if values["outcome"] == Outcome.ERROR:
                result.errors += 1
                # An operational alert, not a failure of the release.
                logger.error(
                    "Guardrail %s on release %s/%s could not be evaluated: %s",
                    values["guardrail_id"],
                    values["release_id"],
                    values["market"],
                    values["detail"],
                )
            if _needs_incident_work(values, previous_state):
                evaluation = Evaluation(**values)
                evaluation.release = row.release
                actionable.append(evaluation)
            else:
                yield values

    _insert_evaluations(plain_rows())
    if actionable:
        # The incident steps need the guardrails as models (an incident points at one): these few, in one query.
        guardrails = Guardrail.objects.select_related("metric").in_bulk({e.guardrail_id for e in actionable})
        for evaluation in actionable:
            evaluation.guardrail = guardrails[evaluation.guardrail_id]
        Evaluation.objects.bulk_create(actionable)
    return actionable


def _insert_evaluations(rows: Iterator[dict[str, Any]]) -> None:
    """COPY on PostgreSQL (one statement, rows streamed without SQL literals or model instances; it is logged
    as a query like any other, so the query-count guards see it); bulk_create elsewhere. No statement when there
    is no row."""
    if connection.vendor != "postgresql":
        Evaluation.objects.bulk_create([Evaluation(**values) for values in rows])
        return
    first = next(rows, None)
    if first is None:
        return
    columns = [str(f.column) for f in Evaluation._meta.concrete_fields if not f.primary_key]
    table = connection.ops.quote_name(Evaluation._meta.db_table)
    sql = f"COPY {table} ({', '.join(connection.ops.quote_name(c) for c in columns)}) FROM STDIN"
    in_column_order = operator.itemgetter(*columns)
    with connection.cursor() as cursor:
        logged = cursor.debug_sql(sql) if isinstance(cursor, CursorDebugWrapper) else nullcontext()
        with logged, cursor.cursor.copy(sql) as copy:
            copy.write_row(in_column_order(first))
            for values in rows:
                copy.write_row(in_column_order(values))


@transaction.atomic
def _evaluate_batch_in_transaction(
    *, release_ids: Sequence[int], now: datetime, snapshot: _Snapshot
) -> tuple[CycleResult, list[PendingAction]]:
    result = CycleResult()
    _lock_releases(release_ids)
    # Under the lock: only the releases still live in the phase the cohorts were read for (one paused, promoted
    # or resumed since is left to the next look, which reads its new phase).
    releases = [
        snapshot.releases[release_id]
        for release_id, phase_start in selectors.live_phase_starts(release_ids).items()
        if release_id in snapshot.releases and phase_start == selectors.phase_start(snapshot.releases[release_id])
    ]
    releases.sort(key=lambda release: release.pk)
    result.releases = len(releases)
    if not releases:
        return result, []
    looks = _looks_to_take(releases, snapshot.by_release, snapshot.cohorts)
    result.skipped = looks.skipped
    if not looks.pending:
        return result, []
    previous_state = selectors.latest_counters(
        release_ids=[r.id for r in releases], guardrail_ids=list({look.guardrail.id for look in looks.pending})
    )
    rows = _evaluate(looks, snapshot.cohorts, previous_state, now)
    evaluations = _record(rows, previous_state, result)
    actions = _act_on_incidents(evaluations, previous_state, now=now, result=result)
    _flag_sample_ratio_mismatches(evaluations, now=now, result=result)
    return result, actions


def _flag_sample_ratio_mismatches(evaluations: Sequence[Evaluation], *, now: datetime, result: CycleResult) -> None:
    """One low-severity data-quality incident per release and market whose split is off (no release action)."""
    flagged: dict[tuple[int, str], Evaluation] = {}
    for evaluation in evaluations:
        if evaluation.sample_ratio_mismatch and not evaluation.dry_run:
            flagged.setdefault((evaluation.release_id, evaluation.market), evaluation)
    for (release_id, market), evaluation in sorted(flagged.items(), key=lambda item: item[0]):
        _incident, opened = incident_open_data_quality(
            guardrail=evaluation.guardrail,
            release_id=release_id,
            market=market,
            evaluation=evaluation,
            now=now,
        )
        result.srm_incidents_opened += int(opened)


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
                note=f"{incident.guardrail.consecutive_success_limit} passing looks at new data in a row.",
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
