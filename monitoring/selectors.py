"""Named reads for monitoring, with their joins; nothing here writes."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from django.db import DatabaseError, connection, transaction
from django.db.models import BigIntegerField, Case, Count, F, Func, Max, Prefetch, Q, QuerySet, Sum, When, Window
from django.db.models.functions import Coalesce, RowNumber

from releases.choices import LIVE_STATES, ReleaseStatus
from releases.models import Release

from .choices import Arm, GuardrailScope
from .judging import Counters, Totals, tuning_n_for
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
        queryset = queryset.filter(id__any=list(release_ids))
    return list(queryset.order_by("id").values_list("id", flat=True))


def live_releases(release_ids: Iterable[int] | None = None) -> QuerySet[Release]:
    """The live releases (all of them, or those of ``release_ids``), with their current stage, by id."""
    queryset = Release.objects.filter(status__in=LIVE_STATES)
    if release_ids is not None:
        queryset = queryset.filter(id__any=list(release_ids))
    return queryset.select_related("current_stage").order_by("id")


def live_phase_starts(release_ids: Sequence[int]) -> dict[int, datetime | None]:
    """Release id → ``phase_start`` of each of ``release_ids`` still live, computed by the database (what a batch
    re-checks under its locks: two columns per release rather than the release and its stage as instances)."""
    return dict(
        Release.objects.filter(id__any=release_ids, status__in=LIVE_STATES)
        .annotate(phase=_phase_start_sql())
        .values_list("id", "phase")
    )


_G = TypeVar("_G", "Guardrail", "GuardrailSpec")


def effective_guardrails(releases: Sequence[Release]) -> dict[int, list[Guardrail]]:
    """Guardrails per release: its own, its solution's and its risk level's defaults (two queries: the guardrails,
    then their metrics, one instance per metric shared by all its guardrails)."""
    guardrails = list(_effective_guardrail_rows(releases).order_by("id"))
    metrics = MetricDefinition.objects.in_bulk({guardrail.metric_id for guardrail in guardrails})
    metric_field = Guardrail._meta.get_field("metric")
    for guardrail in guardrails:
        metric_field.set_cached_value(guardrail, metrics[guardrail.metric_id])
    return _by_release(releases, guardrails)


@dataclass(frozen=True, slots=True)
class GuardrailSpec:
    """What judging a guardrail reads of it, without a model instance: a fleet of 10,000 releases carries ~60,000
    guardrails, and building each as a model cost more than judging all of its looks. The evaluation reads these
    (``guardrail_specs``) and fetches real ``Guardrail`` rows only for the few looks that open or resolve an
    incident."""

    id: int
    name: str
    metric_id: int
    scope: str
    release_id: int | None
    solution_id: int | None
    risk_level: str
    absolute_threshold: float | None
    relative_margin: float | None
    min_sample_size: int
    bonferroni: bool
    planned_treatment_share: float | None
    confidence: float
    failure_limit: int
    consecutive_success_limit: int
    action: str
    dry_run: bool
    metric: MetricDefinition

    @property
    def tuning_n(self) -> int:
        return tuning_n_for(self.min_sample_size)


_SPEC_COLUMNS = [field.name for field in fields(GuardrailSpec) if field.name != "metric"]


def guardrail_specs(releases: Sequence[Release]) -> dict[int, list[GuardrailSpec]]:
    """``effective_guardrails`` as ``GuardrailSpec`` rows, in the same order (two queries)."""
    rows = list(_effective_guardrail_rows(releases).order_by("id").values_list(*_SPEC_COLUMNS))
    metrics = MetricDefinition.objects.in_bulk({row[2] for row in rows})
    specs = [GuardrailSpec(*row, metrics[row[2]]) for row in rows]  # type: ignore[call-arg]
    return _by_release(releases, specs)


def _effective_guardrail_rows(releases: Sequence[Release]) -> QuerySet[Guardrail]:
    return Guardrail.objects.active().filter(
        Q(scope=GuardrailScope.RELEASE, release_id__any=[r.id for r in releases])
        | Q(scope=GuardrailScope.SOLUTION, solution_id__any={r.solution_id for r in releases})
        | Q(scope=GuardrailScope.RISK_LEVEL, risk_level__in={r.risk_level for r in releases})
    )


# Scopes as plain strings: they key a dict probed three times per release, and an enum member hashes in Python.
_RELEASE_SCOPE, _SOLUTION_SCOPE, _RISK_SCOPE = (
    GuardrailScope.RELEASE.value,
    GuardrailScope.SOLUTION.value,
    GuardrailScope.RISK_LEVEL.value,
)


def _by_release(releases: Sequence[Release], guardrails: Sequence[_G]) -> dict[int, list[_G]]:
    """Each release's guardrails among ``guardrails``: its own, then its solution's, then its risk level's."""
    by_scope: dict[tuple[str, object], list[_G]] = defaultdict(list)
    for guardrail in guardrails:
        scope = guardrail.scope
        if scope == _RELEASE_SCOPE:
            target: object = guardrail.release_id
        elif scope == _SOLUTION_SCOPE:
            target = guardrail.solution_id
        else:
            target = guardrail.risk_level
        by_scope[(scope, target)].append(guardrail)
    result: dict[int, list[_G]] = {}
    live: Release
    for live in releases:
        result[live.id] = [
            *by_scope.get((_RELEASE_SCOPE, live.id), ()),
            *by_scope.get((_SOLUTION_SCOPE, live.solution_id), ()),
            *by_scope.get((_RISK_SCOPE, live.risk_level), ()),
        ]
    return result


def phase_start(release: Release) -> datetime | None:
    """When the release's current phase began: verification, else its current stage (a promotion or a resume
    starts a new one). The cohort is every matured sample whose window starts at or after it (METRICS.md)."""
    if release.status == ReleaseStatus.VERIFYING:
        return release.verification_started_at
    return release.stage_started_at or release.created_at


def _phase_start_sql(release: str = "") -> Case:
    """``phase_start`` in SQL, on the release at the path ``release`` (``"release__"`` from a sample), so one
    aggregate serves every release of a batch."""
    return Case(
        When(**{f"{release}status": ReleaseStatus.VERIFYING}, then=F(f"{release}verification_started_at")),
        default=Coalesce(F(f"{release}stage_started_at"), F(f"{release}created_at")),
    )


_PHASE_START = _phase_start_sql("release__")


def evaluated_looks(
    *,
    release_ids: Sequence[int],
    guardrail_ids: Sequence[int],
    phase_starts: Collection[datetime],
    data_throughs: Collection[datetime],
) -> set[tuple[int, int, str, datetime, int, datetime]]:
    """(guardrail, release, market, phase start, samples, data through) already looked at: the same data again
    writes nothing. Only the candidates' own data identities are fetched, not every earlier look of the phase.

    A catch-up cycle with nothing new reads back one look per key of the fleet (180,000 at 10,000 releases): on
    PostgreSQL the two timestamps come as epoch microseconds, turned into datetimes here, since parsing them as
    text took most of such a cycle."""
    looks = Evaluation.objects.filter(
        release_id__any=release_ids,
        guardrail_id__any=guardrail_ids,
        window_start__any=phase_starts,
        data_through__any=data_throughs,
    )
    if connection.vendor != "postgresql":
        return set(looks.values_list("guardrail_id", "release_id", "market", "window_start", "samples", "data_through"))
    rows = looks.annotate(
        window_start_us=_EpochMicroseconds("window_start"), data_through_us=_EpochMicroseconds("data_through")
    ).values_list("guardrail_id", "release_id", "market", "window_start_us", "samples", "data_through_us")
    return {
        (guardrail_id, release_id, market, _at_epoch_us(start), samples, _at_epoch_us(through))
        for guardrail_id, release_id, market, start, samples, through in rows
    }


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _at_epoch_us(microseconds: int) -> datetime:
    return _EPOCH + timedelta(microseconds=microseconds)


class _EpochMicroseconds(Func):
    """A timestamp as whole microseconds since the epoch (PostgreSQL): exact, and an integer to load."""

    template = "(EXTRACT(EPOCH FROM %(expressions)s) * 1000000)::bigint"
    output_field = BigIntegerField()


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
    return {row[:width]: _sums_as_totals(row[width : width + 10], *row[width + 10 :]) for row in rows}


def _sums_as_totals(
    sums: Sequence[Any], last_received: datetime, last_end: datetime, value: float | None = None
) -> Totals:
    """A cohort row's ten sums (numerator, denominator, windows, units, Σx, Σy, Σx², Σy², Σxy, windows with
    sums; NULL when no sample carried the column) and its two maxima as ``Totals``. Positional, in the field order
    of Totals: a cycle builds one per cohort row, ~360,000 at 10,000 releases."""
    num, den, windows, units, sx, sy, sxx, syy, sxy, with_sums = sums
    return Totals(
        num or 0,
        den or 0,
        value,
        windows,
        units or 0,
        sx or 0.0,
        sy or 0.0,
        sxx or 0.0,
        syy or 0.0,
        sxy or 0.0,
        with_sums,
        last_received,
        last_end,
    )


def _isolated(
    aggregate: Callable[[Collection[int]], dict[tuple[Any, ...], Any]], release_ids: Collection[int]
) -> tuple[dict[tuple[Any, ...], Any], dict[int, str]]:
    """``aggregate(release_ids)`` in one go; when the database refuses it (e.g. a float overflow adding up one
    release's values), the same aggregate release by release, so only the releases whose own rows fail are
    reported (release id → error) and the others are still judged. Savepoints keep the batch's transaction usable.
    """
    try:
        with transaction.atomic():
            return aggregate(release_ids), {}
    except DatabaseError:
        pass
    result: dict[tuple[Any, ...], Any] = {}
    failed: dict[int, str] = {}
    for release_id in sorted(release_ids):
        try:
            with transaction.atomic():
                result.update(aggregate([release_id]))
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
            release_id__any=release_ids, metric_id__any=metric_ids, source=F("metric__source_of_record")
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


# The cohort aggregate of ``cohort_samples`` in plain SQL: an evaluation cycle reads one row per (release, metric,
# market, arm) of every live release (~360,000 rows at 10,000 releases), and through the ORM each row paid for
# parsing two timestamps and converting numeric sums back to integers — more than the database took to add them
# up. Here the sums come back as bigint, the two maxima as microseconds since the epoch, and a gauge's latest
# value in the same pass.
_COHORT_TOTALS_SQL = """
SELECT s.release_id, s.metric_id, s.market, s.arm,
       SUM(s.numerator)::bigint, SUM(s.denominator)::bigint, COUNT(*), SUM(s.units)::bigint,
       SUM(s.sum_x), SUM(s.sum_y), SUM(s.sum_xx), SUM(s.sum_yy), SUM(s.sum_xy), COUNT(s.units),
       (EXTRACT(EPOCH FROM MAX(s.received_at)) * 1000000)::bigint,
       (EXTRACT(EPOCH FROM MAX(s.window_end)) * 1000000)::bigint,
       (ARRAY_AGG(s.value ORDER BY s.window_start DESC)
          FILTER (WHERE s.value IS NOT NULL AND s.metric_id = ANY(%s::{metric_id}[])))[1]
FROM {sample} AS s
JOIN {metric} AS m ON m.id = s.metric_id AND s.source = m.source_of_record
JOIN {release} AS r ON r.id = s.release_id
WHERE s.release_id = ANY(%s::{release_id}[]) AND s.metric_id = ANY(%s::{metric_id}[])
  AND s.window_start >= CASE WHEN r.status = %s THEN r.verification_started_at
                             ELSE COALESCE(r.stage_started_at, r.created_at) END
  AND s.window_end + m.maturation_period <= %s
GROUP BY s.release_id, s.metric_id, s.market, s.arm
"""


def _cohort_sums(
    release_ids: Collection[int], metric_ids: Collection[int], gauge_metric_ids: Collection[int], now: datetime
) -> dict[tuple[Any, ...], Totals]:
    if connection.vendor != "postgresql":
        samples = cohort_samples(release_ids=release_ids, metric_ids=metric_ids, now=now)
        totals = _totals(samples, COHORT_KEY)
        if gauge_metric_ids:
            for key, value in _latest_values(samples.filter(metric_id__in=gauge_metric_ids)).items():
                if key in totals:
                    totals[key].value = value
        return totals
    sql = _COHORT_TOTALS_SQL.format(
        sample=connection.ops.quote_name(MetricSample._meta.db_table),
        metric=connection.ops.quote_name(MetricDefinition._meta.db_table),
        release=connection.ops.quote_name(Release._meta.db_table),
        # Arrays of the columns' own type: a comparison across types is not hashed, and each row would scan them.
        release_id=MetricSample._meta.get_field("release").db_type(connection),
        metric_id=MetricSample._meta.get_field("metric").db_type(connection),
    )
    params: list[Any] = [
        list(gauge_metric_ids),
        list(release_ids),
        list(metric_ids),
        ReleaseStatus.VERIFYING.value,
        now,
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    # Both maxima come as epoch microseconds; received_at and window_end are never NULL, nor their maxima.
    return {row[:4]: _sums_as_totals(row[4:14], _at_epoch_us(row[14]), _at_epoch_us(row[15]), row[16]) for row in rows}


def cohort_totals(
    *, release_ids: Collection[int], metric_ids: Collection[int], gauge_metric_ids: Collection[int], now: datetime
) -> tuple[dict[tuple[Any, ...], Totals], dict[int, str]]:
    """Totals per (release, metric, market, arm) of each release's current-phase cohort, with the latest value of
    gauges (one aggregate), and the releases whose samples could not be added up."""
    return _isolated(lambda ids: _cohort_sums(ids, metric_ids, gauge_metric_ids, now), release_ids)


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
            release_id__any=release_ids,
            metric_id__any=metric_ids,
            arm=Arm.TREATMENT,
            metric_version=F("metric__version"),
            source=F("metric__source_of_record"),
        )
        .alias(since=Coalesce(F("release__verification_started_at"), F("release__created_at")))
        .filter(window_start__gte=F("since"))
    )
    return _isolated(
        lambda ids: _totals(queryset.filter(release_id__any=ids), ["release_id", "metric_id", "market"]), release_ids
    )


def previous_verified_releases(releases: Sequence[Release]) -> dict[int, int]:
    """Release id → the latest verified release of its solution (the baseline without a control arm)."""
    if not releases:
        return {}
    rows = (
        Release.objects.filter(solution_id__any={r.solution_id for r in releases}, status=ReleaseStatus.VERIFIED)
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
        for row in Evaluation.objects.filter(release_id__any=release_ids, guardrail_id__any=guardrail_ids)
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
