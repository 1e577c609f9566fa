"""Rollout automation (promote, complete verification) and the guardrail guard on those transitions.

A person may promote or complete verification when no guardrail is failing (nothing breached, no open incident);
the system itself only acts when every guardrail of the release positively passes in every market.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial

from django.db import transaction
from django.db.models import F, Sum, Window
from django.db.models.functions import RowNumber
from django.utils import timezone

from core.errors import DomainError, GuardFailed
from releases import hooks
from releases import services as release_services
from releases.choices import ReleaseStatus
from releases.models import Release

from ..choices import Arm, IncidentKind, Outcome
from ..models import Evaluation, Incident, MetricSample
from ..selectors import effective_guardrails

logger = logging.getLogger(__name__)


@dataclass
class GuardrailStatus:
    failing: list[str] = field(default_factory=list)
    not_passing: list[str] = field(default_factory=list)
    open_incidents: list[int] = field(default_factory=list)
    # Open data-quality incidents (sample ratio mismatch): shown, never blocking.
    data_quality_incidents: list[int] = field(default_factory=list)

    @property
    def all_pass(self) -> bool:
        return not (self.failing or self.not_passing or self.open_incidents)


def release_guardrail_status(*, release: Release) -> GuardrailStatus:
    """The latest evaluation of each acting (non dry-run) guardrail and market of ``release`` (three queries)."""
    status = GuardrailStatus()
    guardrails = [g for g in effective_guardrails([release])[release.pk] if not g.dry_run]
    latest = {
        (row["guardrail_id"], row["market"]): row
        for row in Evaluation.objects.filter(release_id=release.pk, guardrail_id__in=[g.pk for g in guardrails])
        .annotate(rank=Window(RowNumber(), partition_by=[F("guardrail_id"), F("market")], order_by=F("id").desc()))
        .filter(rank=1)
        .values("guardrail_id", "market", "outcome", "breached")
    }
    for guardrail in guardrails:
        for market in release.markets or []:
            label = f"{guardrail.name} [{market}]"
            row = latest.get((guardrail.pk, market))
            if row is not None and (row["breached"] or row["outcome"] == Outcome.FAIL):
                status.failing.append(label)
            elif row is None or row["outcome"] != Outcome.PASS:
                status.not_passing.append(f"{label}: {row['outcome'] if row else 'not evaluated yet'}")
    # A data-quality incident (sample ratio mismatch) takes no release action; its relative verdicts are already
    # inconclusive, which keeps automation waiting while a person may still decide.
    for pk, kind in Incident.objects.open().filter(release_id=release.pk).order_by("pk").values_list("pk", "kind"):
        (status.data_quality_incidents if kind == IncidentKind.DATA_QUALITY else status.open_incidents).append(pk)
    return status


def guardrails_guard(context: hooks.TransitionContext) -> None:
    """Registered on ``promote`` and ``complete_verification``: refuse while a guardrail fails, unless overridden."""
    status = release_guardrail_status(release=context.release)
    context.audit_data["guardrails"] = {
        "failing": status.failing,
        "not_passing": status.not_passing,
        "open_incidents": status.open_incidents,
        "data_quality_incidents": status.data_quality_incidents,
    }
    if context.override:
        return
    if status.failing or status.open_incidents:
        raise GuardFailed(
            "Guardrails are failing: "
            + ", ".join(status.failing or [f"open incident #{pk}" for pk in status.open_incidents])
            + ".",
            code="guardrails_failing",
            extra={"failing": status.failing, "open_incidents": status.open_incidents},
        )


@dataclass
class AutomationResult:
    promoted: list[int] = field(default_factory=list)
    verified: list[int] = field(default_factory=list)
    skipped: dict[int, str] = field(default_factory=dict)
    # Releases whose step raised something unexpected: logged, and the cycle went on with the others.
    failed: dict[int, str] = field(default_factory=dict)


def stage_sample_sizes(release_ids: list[int]) -> dict[int, int]:
    """Conversations seen since each release's current stage started: the largest denominator of any metric."""
    rows = (
        MetricSample.objects.filter(
            release_id__in=release_ids,
            arm=Arm.TREATMENT,
            window_start__gte=F("release__stage_started_at"),
            source=F("metric__source_of_record"),  # a second source's copy of a window is not more traffic
        )
        .values("release_id", "metric_id")
        .annotate(total=Sum("denominator"))
    )
    sizes: dict[int, int] = {}
    for row in rows:
        sizes[row["release_id"]] = max(sizes.get(row["release_id"], 0), row["total"] or 0)
    return sizes


def rollout_automate(*, now: datetime | None = None) -> AutomationResult:
    """Promote auto-promote rollouts that are ready, complete verification windows that ended green.

    Each release is handled on its own, in a savepoint: one release raising (bad data, a bug, a lost row) is
    logged and recorded in ``failed``, and the others are still promoted or verified.
    """
    now = now or timezone.now()
    result = AutomationResult()
    candidates = list(
        Release.objects.filter(status=ReleaseStatus.ROLLING_OUT, auto_promote=True, current_stage__isnull=False)
        .select_related("current_stage", "solution")
        .order_by("id")
    )
    sizes = stage_sample_sizes([r.pk for r in candidates]) if candidates else {}
    for release in candidates:
        _isolated(result, release, partial(_promote_if_ready, release, sizes, now, result))
    ended = Release.objects.filter(status=ReleaseStatus.VERIFYING, verification_started_at__isnull=False).order_by("id")
    for release in ended:
        _isolated(result, release, partial(_complete_verification_if_done, release, now, result))
    return result


def _isolated(result: AutomationResult, release: Release, step: Callable[[], None]) -> None:
    try:
        with transaction.atomic():
            step()
    except Exception as exc:  # one release's failure must not stop the periodic job for the others
        logger.exception("Rollout automation failed for release %s", release.pk)
        result.failed[release.pk] = f"{type(exc).__name__}: {exc}"


def _promote_if_ready(release: Release, sizes: dict[int, int], now: datetime, result: AutomationResult) -> None:
    stage = release.current_stage
    assert stage is not None
    if release_services.hold_time_remaining(release, now) > timedelta(0):
        result.skipped[release.pk] = "hold time"
        return
    if sizes.get(release.pk, 0) < stage.min_sample_size:
        result.skipped[release.pk] = f"sample {sizes.get(release.pk, 0)} < {stage.min_sample_size}"
        return
    if not release_guardrail_status(release=release).all_pass:
        result.skipped[release.pk] = "guardrails not all passing"
        return
    try:
        release_services.release_promote(
            release=release,
            actor=None,
            # Compare-and-set: promote only from the stage this job judged, never one a person moved it past.
            from_stage=stage.position,
            reason=f"Automatic promotion: stage '{stage.name}' held {stage.min_hold}, "
            f"sample {sizes.get(release.pk, 0)}, guardrails passing",
        )
    except DomainError as exc:
        result.skipped[release.pk] = exc.detail
        logger.info("Automatic promotion of release %s refused: %s", release.pk, exc.detail)
    else:
        result.promoted.append(release.pk)


def _complete_verification_if_done(release: Release, now: datetime, result: AutomationResult) -> None:
    if release_services.verification_time_remaining(release, now) > timedelta(0):
        return
    if not release_guardrail_status(release=release).all_pass:
        result.skipped[release.pk] = "guardrails not all passing"
        return
    try:
        release_services.release_complete_verification(
            release=release, actor=None, reason="Verification window ended with every guardrail passing"
        )
    except DomainError as exc:  # e.g. the verification checklist is not signed yet
        result.skipped[release.pk] = exc.detail
        logger.info("Automatic verification of release %s refused: %s", release.pk, exc.detail)
    else:
        result.verified.append(release.pk)
