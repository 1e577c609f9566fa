"""Named reads for monitoring, with their joins; nothing here writes."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from datetime import datetime
from typing import Any

from django.db import DatabaseError, transaction
from django.db.models import Case, Count, F, Max, Prefetch, Q, QuerySet, Sum, When, Window
from django.db.models.functions import Coalesce, RowNumber

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
    return (
        Release.objects.filter(id__in=release_ids, status__in=LIVE_STATES)
        .select_related("current_stage")
        .order_by("id")
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
    return {
        release.pk: [
            *by_scope.get((GuardrailScope.RELEASE, release.pk), []),
            *by_scope.get((GuardrailScope.SOLUTION, release.solution_id), []),
            *by_scope.get((GuardrailScope.RISK_LEVEL, release.risk_level), []),
        ]
        for release in releases
    }


def phase_start(release: Release) -> datetime | None:
    """When the release's current phase began: verification, else its current stage (a promotion or a resume
    starts a new one). The cohort is every matured sample whose window starts at or after it (METRICS.md)."""
    if release.status == ReleaseStatus.VERIFYING:
        return release.verification_started_at
    return release.stage_started_at or release.created_at


# The same rule in SQL, so one aggregate serves every release of a batch.
_PHASE_START = Case(
    When(release__status=ReleaseStatus.VERIFYING, then=F("release__verification_started_at")),
    default=Coalesce(F("release__stage_started_at"), F("release__created_at")),
)


def evaluated_looks(
    *,
    release_ids: Sequence[int],
    guardrail_ids: Sequence[int],
    phase_starts: Collection[datetime],
    data_throughs: Collection[datetime],
) -> set[tuple[int, int, str, datetime, int, datetime]]:
    """(guardrail, release, market, phase start, samples, data through) already looked at: the same data again
    writes nothing. Only the candidates' own data identities are fetched, not every earlier look of the phase."""
    return set(
        Evaluation.objects.filter(
            release_id__in=release_ids,
            guardrail_id__in=guardrail_ids,
            window_start__in=phase_starts,
            data_through__in=data_throughs,
        ).values_list("guardrail_id", "release_id", "market", "window_start", "samples", "data_through")
    )


_TOTALS_COLUMNS = (
    "num",
    "den",
    "windows",
    "units_sum",
    "sx",
    "sy",
    "sxx",
    "syy",
    "sxy",
    "with_sums",
    "last_received",
    "last_end",
)


def _totals(queryset: QuerySet[MetricSample], keys: Sequence[str]) -> dict[tuple[Any, ...], Totals]:
    # Tuples, not .values() dicts: a cycle over 10,000 releases reads ~360,000 of these rows.
    rows = (
        queryset.values(*keys)
        .annotate(
            num=Sum("numerator"),
            den=Sum("denominator"),
            windows=Count("id"),
            units_sum=Sum("units"),
            sx=Sum("sum_x"),
            sy=Sum("sum_y"),
            sxx=Sum("sum_xx"),
            syy=Sum("sum_yy"),
            sxy=Sum("sum_xy"),
            with_sums=Count("units"),
            last_received=Max("received_at"),
            last_end=Max("window_end"),
        )
        .values_list(*keys, *_TOTALS_COLUMNS)
    )
    width = len(keys)
    return {
        row[:width]: Totals(
            numerator=num or 0,
            denominator=den or 0,
            windows=windows,
            units=units or 0,
            sum_x=sx or 0.0,
            sum_y=sy or 0.0,
            sum_xx=sxx or 0.0,
            sum_yy=syy or 0.0,
            sum_xy=sxy or 0.0,
            windows_with_sums=with_sums,
            last_received=last_received,
            last_window_end=last_end,
        )
        for row in rows
        for num, den, windows, units, sx, sy, sxx, syy, sxy, with_sums, last_received, last_end in (row[width:],)
    }


def _isolated(
    aggregate: Any, queryset: QuerySet[MetricSample], release_ids: Collection[int]
) -> tuple[dict[tuple[Any, ...], Any], dict[int, str]]:
    """One aggregate for all ``release_ids``; when the database refuses it (e.g. a float overflow adding up one
    release's values), the same aggregate release by release, so only the releases whose own rows fail are
    reported (release id → error) and the others are still judged. Savepoints keep the batch's transaction usable.
    """
    try:
        with transaction.atomic():
            return aggregate(queryset), {}
    except DatabaseError:
        pass
    result: dict[tuple[Any, ...], Any] = {}
    failed: dict[int, str] = {}
    for release_id in sorted(release_ids):
        try:
            with transaction.atomic():
                result.update(aggregate(queryset.filter(release_id=release_id)))
        except DatabaseError as exc:
            failed[release_id] = f"{type(exc).__name__}: {str(exc).strip()}"
    return result, failed


COHORT_KEY = ["release_id", "metric_id", "market", "arm"]


def cohort_samples(
    *, release_ids: Collection[int], metric_ids: Collection[int], now: datetime
) -> QuerySet[MetricSample]:
    """The matured samples of each release's current phase, from each metric's source of record."""
    return (
        MetricSample.objects.filter(
            release_id__in=release_ids, metric_id__in=metric_ids, source=F("metric__source_of_record")
        )
        .alias(phase_start=_PHASE_START, matured_at=F("window_end") + F("metric__maturation_period"))
        .filter(window_start__gte=F("phase_start"), matured_at__lte=now)
    )


def _latest_values(queryset: QuerySet[MetricSample]) -> dict[tuple[Any, ...], Any]:
    return {
        tuple(row[k] for k in COHORT_KEY): row["value"]
        for row in queryset.filter(value__isnull=False)
        .annotate(rank=Window(RowNumber(), partition_by=[F(k) for k in COHORT_KEY], order_by=F("window_start").desc()))
        .filter(rank=1)
        .values(*COHORT_KEY, "value")
    }


def cohort_totals(
    *, release_ids: Collection[int], metric_ids: Collection[int], gauge_metric_ids: Collection[int], now: datetime
) -> tuple[dict[tuple[Any, ...], Totals], dict[int, str]]:
    """Totals per (release, metric, market, arm) of each release's current-phase cohort (one aggregate; one more
    for the latest value of gauges), and the releases whose samples could not be added up."""
    queryset = cohort_samples(release_ids=release_ids, metric_ids=metric_ids, now=now)
    totals, failed = _isolated(lambda qs: _totals(qs, COHORT_KEY), queryset, release_ids)
    if gauge_metric_ids:
        values, failed_values = _isolated(_latest_values, queryset.filter(metric_id__in=gauge_metric_ids), release_ids)
        for key, value in values.items():
            if key in totals:
                totals[key].value = value
        failed.update(failed_values)
    return totals, failed


def cohort_identities(
    *, release_ids: Collection[int], metric_ids: Collection[int], now: datetime
) -> dict[tuple[Any, ...], Totals]:
    """Only what identifies a look (windows, latest receipt, latest window end) per (release, metric, market, arm),
    for releases whose sums could not be added up: counting and maxima cannot overflow, so their ``error`` look is
    still taken once per new data, never hidden behind an earlier look's identity."""
    rows = (
        cohort_samples(release_ids=release_ids, metric_ids=metric_ids, now=now)
        .values(*COHORT_KEY)
        .annotate(windows=Count("id"), last_received=Max("received_at"), last_end=Max("window_end"))
    )
    return {
        tuple(row[k] for k in COHORT_KEY): Totals(
            windows=row["windows"], last_received=row["last_received"], last_window_end=row["last_end"]
        )
        for row in rows
    }


def release_totals(
    *, release_ids: Collection[int], metric_ids: Collection[int]
) -> tuple[dict[tuple[Any, ...], Totals], dict[int, str]]:
    """The previous verified release as a baseline: its treatment samples of the metric's current version and
    source of record, from its verification phase (all of them when it has none) — never other versions, never
    every stage it went through."""
    queryset = (
        MetricSample.objects.filter(
            release_id__in=release_ids,
            metric_id__in=metric_ids,
            arm=Arm.TREATMENT,
            metric_version=F("metric__version"),
            source=F("metric__source_of_record"),
        )
        .alias(since=Coalesce(F("release__verification_started_at"), F("release__created_at")))
        .filter(window_start__gte=F("since"))
    )
    return _isolated(lambda qs: _totals(qs, ["release_id", "metric_id", "market"]), queryset, release_ids)


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
    """The counters after the latest look of each (guardrail, release, market) (one window-function query): the
    latest look is the latest row, since looks follow the data, not the clock."""
    return {
        (row["guardrail_id"], row["release_id"], row["market"]): Counters(
            failures=row["failures"], consecutive_passes=row["consecutive_passes"], breached=row["breached"]
        )
        for row in Evaluation.objects.filter(release_id__in=release_ids, guardrail_id__in=guardrail_ids)
        .annotate(
            rank=Window(
                RowNumber(),
                partition_by=[F("guardrail_id"), F("release_id"), F("market")],
                order_by=F("id").desc(),
            )
        )
        .filter(rank=1)
        .values("guardrail_id", "release_id", "market", "failures", "consecutive_passes", "breached")
    }


# --- The experiment readout of one release -------------------------------------------------------------------


def _other_sources(*, release: Release, now: datetime) -> dict[tuple[int, str, str], dict[str, Totals]]:
    """Totals of the phase's matured samples from sources that are not the metric's source of record, per
    (metric, market, arm) and source: stored and shown as discrepancies, never added to the judged cohort."""
    rows = (
        MetricSample.objects.filter(release_id=release.pk)
        .exclude(source=F("metric__source_of_record"))
        .alias(phase_start=_PHASE_START, matured_at=F("window_end") + F("metric__maturation_period"))
        .filter(window_start__gte=F("phase_start"), matured_at__lte=now)
        .values("metric_id", "market", "arm", "source")
        .annotate(num=Sum("numerator"), den=Sum("denominator"), windows=Count("id"))
    )
    result: dict[tuple[int, str, str], dict[str, Totals]] = defaultdict(dict)
    for row in rows:
        result[(row["metric_id"], row["market"], row["arm"])][row["source"]] = Totals(
            numerator=row["num"] or 0, denominator=row["den"] or 0, windows=row["windows"]
        )
    return result


def release_readout(*, release: Release, now: datetime) -> dict[str, Any]:
    """Every metric of the release's current phase per market: treatment vs control, the difference with its
    always-valid interval (at the release's per-sequence confidence), the sample-ratio check, the latest verdict
    of each guardrail on it, and other sources' counts as discrepancies. A handful of queries."""
    from . import statistics as st
    from .judging import TURN, Rule, rate_variance

    guardrails = effective_guardrails([release])[release.pk]
    markets = list(release.markets or [])
    sequences = max(1, sum(1 for g in guardrails if g.bonferroni and not g.dry_run) * len(markets))
    metrics = {m.pk: m for m in MetricDefinition.objects.all()}
    totals, failed = cohort_totals(
        release_ids=[release.pk],
        metric_ids=list(metrics),
        gauge_metric_ids=[pk for pk, m in metrics.items() if m.kind == "gauge"],
        now=now,
    )
    discrepancies = _other_sources(release=release, now=now)
    latest = {
        (row["guardrail_id"], row["market"]): row
        for row in Evaluation.objects.filter(release_id=release.pk)
        .annotate(rank=Window(RowNumber(), partition_by=[F("guardrail_id"), F("market")], order_by=F("id").desc()))
        .filter(rank=1)
        .values("guardrail_id", "market", "outcome", "reason", "sample_ratio_mismatch", "evaluated_at", "samples")
    }
    stage = release.current_stage
    # The planned split, as the evaluation takes it: a guardrail's declared share, else the stage's percent below
    # 100% (not in verification), else even.
    declared = [g.planned_treatment_share for g in guardrails if g.planned_treatment_share is not None]
    if declared:
        share = declared[0]
    elif release.status != ReleaseStatus.VERIFYING and stage is not None and stage.traffic_percent < 100:
        share = stage.traffic_percent / 100
    else:
        share = 0.5
    default_confidence = st.bonferroni_confidence(0.95, sequences)
    readout: dict[str, Any] = {
        "release": release.pk,
        "status": release.status,
        "phase_start": phase_start(release),
        "sequences": sequences,
        "per_sequence_confidence": default_confidence,
        "unreadable": failed.get(release.pk, ""),
        "markets": [],
    }
    for market in markets:
        srm = {"checked": False, "mismatch": False, "treatment_units": 0, "control_units": 0, "planned_share": share}
        rows = []
        for metric_id, metric in sorted(metrics.items(), key=lambda item: item[1].key):
            treatment = totals.get((release.pk, metric_id, market, Arm.TREATMENT))
            control = totals.get((release.pk, metric_id, market, Arm.CONTROL))
            if treatment is None and control is None:
                continue
            treatment, control = treatment or Totals(), control or Totals()
            row: dict[str, Any] = {
                "metric": metric.key,
                "kind": metric.kind,
                "unit_of_analysis": metric.unit_of_analysis,
                "treatment": _arm_view(treatment, metric.kind),
                "control": _arm_view(control, metric.kind),
                "difference": None,
                "difference_lower": None,
                "difference_upper": None,
                "variance_method": "",
                "verdicts": [
                    {
                        "guardrail": g.pk,
                        "name": g.name,
                        "outcome": latest[(g.pk, market)]["outcome"],
                        "reason": latest[(g.pk, market)]["reason"],
                    }
                    for g in guardrails
                    if g.metric_id == metric_id and (g.pk, market) in latest
                ],
                "discrepancies": [
                    {"source": source, "arm": arm, **_arm_view(other, metric.kind)}
                    for arm in (Arm.TREATMENT, Arm.CONTROL)
                    for source, other in sorted(discrepancies.get((metric_id, market, arm), {}).items())
                ],
            }
            if metric.kind == "rate" and treatment.denominator and control.denominator:
                rule = Rule(
                    kind="rate",
                    direction=metric.direction,
                    absolute_threshold=None,
                    relative_margin=None,
                    min_sample_size=0,
                    confidence=default_confidence,
                    tuning_n=1000,
                    unit=metric.unit_of_analysis,
                    design_effect=metric.design_effect,
                )
                try:
                    t_var, t_n, method = rate_variance(rule, treatment)
                    c_var, c_n, _ = rate_variance(rule, control)
                    estimate = treatment.numerator / treatment.denominator - control.numerator / control.denominator
                    interval = st.sequential_interval_from_variance(
                        estimate, t_var + c_var, t_n + c_n, confidence=default_confidence, tuning_n=1000, bounds=(-1, 1)
                    )
                    row.update(
                        difference=estimate,
                        difference_lower=interval.lower,
                        difference_upper=interval.upper,
                        variance_method=method,
                    )
                except (ValueError, ArithmeticError) as exc:
                    row["variance_method"] = f"error: {exc}"
                if metric.unit_of_analysis != TURN and treatment.denominator > srm["treatment_units"]:
                    srm.update(
                        checked=True,
                        treatment_units=treatment.denominator,
                        control_units=control.denominator,
                        mismatch=st.sample_ratio_mismatch(
                            treatment.denominator, control.denominator, treatment_share=share
                        ),
                    )
            rows.append(row)
        flagged = any(row["sample_ratio_mismatch"] for key, row in latest.items() if key[1] == market)
        srm["mismatch"] = srm["mismatch"] or flagged
        readout["markets"].append({"market": market, "sample_ratio": srm, "metrics": rows})
    return readout


def _arm_view(totals: Totals, kind: str) -> dict[str, Any]:
    if kind == "gauge":
        return {"value": totals.value, "windows": totals.windows}
    return {
        "numerator": totals.numerator,
        "denominator": totals.denominator,
        "rate": totals.numerator / totals.denominator if totals.denominator else None,
        "windows": totals.windows,
        "units": totals.units if totals.has_unit_sums else None,
    }
