"""Named reads for monitoring, with their joins; nothing here writes."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from datetime import datetime
from typing import Any

from django.db import DatabaseError, transaction
from django.db.models import Avg, Count, F, Prefetch, Q, QuerySet, Sum, Window
from django.db.models.functions import RowNumber

from releases.choices import LIVE_STATES, ReleaseStatus
from releases.models import Release

from .choices import Arm, GuardrailScope
from .judging import Counters, Totals
from .models import Evaluation, Guardrail, Incident, IncidentEvent, MetricDefinition, MetricSample
from .state_machine import INCIDENT_LIFECYCLE, TRIAGE_PERMISSION


def metric_definition_list() -> QuerySet[MetricDefinition]:
    return MetricDefinition.objects.order_by("key")


def metric_sample_list() -> QuerySet[MetricSample]:
    return MetricSample.objects.select_related("metric").order_by("-window_start", "id")


def guardrail_list() -> QuerySet[Guardrail]:
    return Guardrail.objects.select_related("metric").order_by("id")


def evaluation_list() -> QuerySet[Evaluation]:
    return Evaluation.objects.select_related("guardrail", "guardrail__metric").order_by("-window_end", "-id")


def incident_list() -> QuerySet[Incident]:
    return Incident.objects.with_related().order_by("-opened_at", "-id")


def incident_detail() -> QuerySet[Incident]:
    return incident_list().prefetch_related(
        Prefetch("events", queryset=IncidentEvent.objects.select_related("actor").order_by("created_at", "id"))
    )


def incident_fired_by(incident: Incident) -> QuerySet[Evaluation]:
    """The evaluations that opened or retriggered ``incident``."""
    return evaluation_list().filter(incident_events__incident=incident).distinct()


# Assigning is not a state change, so it is not in the table; it comes right after acknowledging.
ASSIGN_TO_ME = "assign_to_me"
TRIAGE_ACTIONS = (INCIDENT_LIFECYCLE.names()[0], ASSIGN_TO_ME, *INCIDENT_LIFECYCLE.names()[1:])


def incident_triage_actions(*, incident: Incident, user: Any) -> list[str]:
    """The triage steps (``TRIAGE_ACTIONS``) this user may take on this incident now, in the order they happen:
    the transitions the lifecycle table allows from the incident's status and the user's permissions, and
    "assign to me" while it is open and someone else's (the services check again)."""
    if not getattr(user, "is_active", False) or not incident.is_open:
        return []
    allowed = {t.name for t in INCIDENT_LIFECYCLE.transitions_from(incident.status) if user.has_perm(t.permission)}
    if user.has_perm(TRIAGE_PERMISSION) and incident.assignee_id != user.pk:
        allowed.add(ASSIGN_TO_ME)
    return [name for name in TRIAGE_ACTIONS if name in allowed]


# --- Set-based reads of an evaluation batch: a few queries per batch, never per release ------------------------


def live_release_ids(*, release_ids: Iterable[int] | None = None) -> list[int]:
    queryset = Release.objects.filter(status__in=LIVE_STATES)
    if release_ids is not None:
        queryset = queryset.filter(id__in=list(release_ids))
    return list(queryset.order_by("id").values_list("id", flat=True))


def live_releases(release_ids: Sequence[int]) -> QuerySet[Release]:
    return Release.objects.filter(id__in=release_ids, status__in=LIVE_STATES).order_by("id")


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
    return {
        release.pk: [
            *by_scope.get((GuardrailScope.RELEASE, release.pk), []),
            *by_scope.get((GuardrailScope.SOLUTION, release.solution_id), []),
            *by_scope.get((GuardrailScope.RISK_LEVEL, release.risk_level), []),
        ]
        for release in releases
    }


def evaluated_looks(
    *, release_ids: Sequence[int], guardrail_ids: Sequence[int], window_ends: Collection[datetime]
) -> set[tuple[int, int, str, datetime]]:
    """(guardrail, release, market, window_end) already evaluated: looking again at them writes nothing."""
    return set(
        Evaluation.objects.filter(
            release_id__in=release_ids, guardrail_id__in=guardrail_ids, window_end__in=window_ends
        ).values_list("guardrail_id", "release_id", "market", "window_end")
    )


def _totals(queryset: QuerySet[MetricSample], keys: Sequence[str]) -> dict[tuple[Any, ...], Totals]:
    rows = queryset.values(*keys).annotate(
        num=Sum("numerator"), den=Sum("denominator"), avg_value=Avg("value"), windows=Count("id")
    )
    return {
        tuple(row[k] for k in keys): Totals(
            numerator=row["num"] or 0, denominator=row["den"] or 0, value=row["avg_value"], windows=row["windows"]
        )
        for row in rows
    }


def _isolated_totals(
    queryset: QuerySet[MetricSample], keys: Sequence[str], release_ids: Collection[int]
) -> tuple[dict[tuple[Any, ...], Totals], dict[int, str]]:
    """One aggregate for all ``release_ids``; when the database refuses it (e.g. a float overflow adding up one
    release's values), the same aggregate release by release, so only the releases whose own rows fail are
    reported (release id → error) and the others are still judged. Savepoints keep the batch's transaction usable.
    """
    try:
        with transaction.atomic():
            return _totals(queryset, keys), {}
    except DatabaseError:
        pass
    totals: dict[tuple[Any, ...], Totals] = {}
    failed: dict[int, str] = {}
    for release_id in sorted(release_ids):
        try:
            with transaction.atomic():
                totals.update(_totals(queryset.filter(release_id=release_id), keys))
        except DatabaseError as exc:
            failed[release_id] = f"{type(exc).__name__}: {str(exc).strip()}"
    return totals, failed


def cohort_totals(
    *, release_ids: Collection[int], metric_ids: Collection[int], start: datetime, end: datetime
) -> tuple[dict[tuple[Any, ...], Totals], dict[int, str]]:
    """Sample totals per (release, metric, market, arm) for windows inside [start, end], and the releases whose
    samples could not be added up."""
    queryset = MetricSample.objects.filter(
        release_id__in=release_ids, metric_id__in=metric_ids, window_start__gte=start, window_end__lte=end
    )
    return _isolated_totals(queryset, ["release_id", "metric_id", "market", "arm"], release_ids)


def release_totals(
    *, release_ids: Collection[int], metric_ids: Collection[int]
) -> tuple[dict[tuple[Any, ...], Totals], dict[int, str]]:
    """All treatment samples per (release, metric, market): the previous verified release as a baseline."""
    queryset = MetricSample.objects.filter(release_id__in=release_ids, metric_id__in=metric_ids, arm=Arm.TREATMENT)
    return _isolated_totals(queryset, ["release_id", "metric_id", "market"], release_ids)


def previous_verified_releases(releases: Sequence[Release]) -> dict[int, int]:
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


def latest_counters(
    *, release_ids: Sequence[int], guardrail_ids: Sequence[int]
) -> dict[tuple[int, int, str], Counters]:
    """The counters after the latest look of each (guardrail, release, market) (one window-function query)."""
    return {
        (row["guardrail_id"], row["release_id"], row["market"]): Counters(
            failures=row["failures"], consecutive_passes=row["consecutive_passes"], breached=row["breached"]
        )
        for row in Evaluation.objects.filter(release_id__in=release_ids, guardrail_id__in=guardrail_ids)
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
