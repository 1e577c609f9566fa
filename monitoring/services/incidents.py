"""Incidents: opened by failing guardrails (deduplicated by the database), triaged by on-call, closed by passes.

Every timeline event is written with its outbox rows in the same transaction (``incident_event_add``), so a
notification exists exactly when its event does.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from core.actors import Actor
from core.audit import audit_record
from core.errors import DomainPermissionDenied, DomainValidationError, IllegalTransition
from core.service_support import record_actor

from ..choices import (
    ACK_DEADLINES,
    ACKNOWLEDGEABLE_STATES,
    MITIGATABLE_STATES,
    NOTIFYING_EVENTS,
    IncidentEventKind,
    IncidentStatus,
    Resolution,
)
from ..models import Evaluation, Guardrail, Incident, IncidentEvent, incident_dedup_key
from .notifications import outbox_write_for_event

TRIAGE_PERMISSION = "monitoring.triage_incident"


def _require_triage(actor: Actor | None, action: str) -> None:
    if actor is None or not actor.has_perm(TRIAGE_PERMISSION):  # type: ignore[attr-defined]
        raise DomainPermissionDenied(f"Your role does not allow you to {action} incidents.")


def incident_event_add(
    *,
    incident: Incident,
    kind: str,
    actor: Actor | None = None,
    message: str = "",
    data: dict[str, Any] | None = None,
    evaluation: Evaluation | None = None,
    now: datetime | None = None,
) -> IncidentEvent:
    """Append a timeline event; events that page people get their outbox rows in this same transaction."""
    with transaction.atomic():
        event = IncidentEvent(
            incident=incident,
            kind=kind,
            created_at=now or timezone.now(),
            actor=actor,
            message=message,
            data=data or {},
            evaluation=evaluation,
        )
        event.full_clean(exclude=["incident", "evaluation", "actor"])
        event.save()
        if kind in NOTIFYING_EVENTS:
            outbox_write_for_event(event=event)
    return event


def _lock(incident: Incident) -> Incident:
    return Incident.objects.select_for_update(of=("self",)).select_related("release", "guardrail").get(pk=incident.pk)


def _audit(incident: Incident, actor: Actor | None, action: str, from_state: str, reason: str) -> None:
    audit_record(
        actor=actor,
        action=f"incident.{action}",
        obj=incident,
        release_id=incident.release_id,
        from_state=from_state,
        to_state=incident.status,
        reason=reason,
        data={"dedup_key": incident.dedup_key, "severity": incident.severity},
    )


@transaction.atomic
def incident_trigger(
    *, guardrail: Guardrail, release_id: int, market: str, evaluation: Evaluation | None, now: datetime
) -> tuple[Incident, bool]:
    """Open the incident of (release, guardrail, market), or retrigger the open one. Returns (incident, opened).

    At most one open incident per key is the database's rule (partial unique constraint); when a concurrent
    writer wins the insert we retrigger its incident instead.
    """
    key = incident_dedup_key(release_id=release_id, guardrail_id=guardrail.pk, market=market)
    existing = Incident.objects.select_for_update().filter(dedup_key=key).open().first()
    if existing is None:
        previous = Incident.objects.filter(dedup_key=key, status=IncidentStatus.RESOLVED).order_by("-id").first()
        incident = Incident(
            title=f"{guardrail.metric.key} guardrail '{guardrail.name}' failing in {market}",
            dedup_key=key,
            release_id=release_id,
            guardrail=guardrail,
            market=market,
            severity=guardrail.severity,
            opened_at=now,
            last_triggered_at=now,
            previous_incident=previous,
        )
        record_actor(incident, None, "Opened by a failing guardrail")
        try:
            with transaction.atomic():
                incident.save()
        except IntegrityError:
            existing = Incident.objects.select_for_update().filter(dedup_key=key).open().first()
            if existing is None:  # the winner was resolved meanwhile: a genuine conflict, let the caller retry
                raise
        else:
            incident_event_add(
                incident=incident,
                kind=IncidentEventKind.OPENED,
                message=_evaluation_message(evaluation),
                data={"previous_incident": previous.pk} if previous else {},
                evaluation=evaluation,
                now=now,
            )
            return incident, True
    existing.trigger_count += 1
    existing.last_triggered_at = now
    record_actor(existing, None, "Retriggered")
    existing.save(update_fields=["trigger_count", "last_triggered_at"])
    incident_event_add(
        incident=existing,
        kind=IncidentEventKind.RETRIGGERED,
        message=_evaluation_message(evaluation),
        data={"trigger_count": existing.trigger_count},
        evaluation=evaluation,
        now=now,
    )
    return existing, False


def _evaluation_message(evaluation: Evaluation | None) -> str:
    if evaluation is None:
        return ""
    parts = [f"{evaluation.outcome} for the window ending {evaluation.window_end:%Y-%m-%d %H:%M} UTC"]
    if evaluation.observed is not None:
        parts.append(f"observed {evaluation.observed:.4g} (n={evaluation.n})")
    if evaluation.lower is not None and evaluation.upper is not None:
        parts.append(f"interval [{evaluation.lower:.4g}, {evaluation.upper:.4g}]")
    if evaluation.baseline is not None:
        parts.append(f"baseline {evaluation.baseline:.4g} ({evaluation.baseline_source}, n={evaluation.baseline_n})")
    return "; ".join(parts)


@transaction.atomic
def incident_acknowledge(*, incident: Incident, actor: Actor) -> Incident:
    _require_triage(actor, "acknowledge")
    locked = _lock(incident)
    if locked.status not in ACKNOWLEDGEABLE_STATES:
        raise IllegalTransition(
            f"Only a triggered incident can be acknowledged; this one is {locked.get_status_display().lower()}.",
            extra={"status": locked.status},
        )
    now = timezone.now()
    locked.status = IncidentStatus.ACKNOWLEDGED
    locked.acknowledged_at = now
    if locked.assignee_id is None:
        locked.assignee = actor  # type: ignore[assignment]
    record_actor(locked, actor, "Acknowledged")
    locked.save()
    incident_event_add(incident=locked, kind=IncidentEventKind.ACKNOWLEDGED, actor=actor, now=now)
    _audit(locked, actor, "acknowledge", IncidentStatus.TRIGGERED, "")
    return locked


@transaction.atomic
def incident_assign(*, incident: Incident, actor: Actor, assignee: Actor) -> Incident:
    _require_triage(actor, "assign")
    if not assignee.is_active or not assignee.has_perm(TRIAGE_PERMISSION):  # type: ignore[attr-defined]
        raise DomainValidationError({"assignee": ["The assignee must be an active user who may triage incidents."]})
    locked = _lock(incident)
    if not locked.is_open:
        raise IllegalTransition("A resolved incident cannot be reassigned.", extra={"status": locked.status})
    locked.assignee = assignee  # type: ignore[assignment]
    record_actor(locked, actor, f"Assigned to {assignee.get_username()}")
    locked.save(update_fields=["assignee"])
    incident_event_add(
        incident=locked,
        kind=IncidentEventKind.ASSIGNED,
        actor=actor,
        message=f"Assigned to {assignee.get_username()}",
        data={"assignee": assignee.pk},
    )
    return locked


@transaction.atomic
def incident_comment(*, incident: Incident, actor: Actor, message: str) -> IncidentEvent:
    _require_triage(actor, "comment on")
    message = (message or "").strip()
    if not message:
        raise DomainValidationError({"message": ["A comment cannot be empty."]})
    return incident_event_add(incident=incident, kind=IncidentEventKind.COMMENT, actor=actor, message=message)


@transaction.atomic
def incident_mitigate(*, incident: Incident, actor: Actor, note: str) -> Incident:
    _require_triage(actor, "mitigate")
    note = (note or "").strip()
    if not note:
        raise DomainValidationError({"note": ["Say what was done to mitigate."]})
    locked = _lock(incident)
    if locked.status not in MITIGATABLE_STATES:
        raise IllegalTransition(
            f"Cannot mitigate an incident that is {locked.get_status_display().lower()}.",
            extra={"status": locked.status},
        )
    now, from_state = timezone.now(), locked.status
    locked.status = IncidentStatus.MITIGATED
    locked.mitigated_at = now
    locked.acknowledged_at = locked.acknowledged_at or now
    record_actor(locked, actor, "Mitigated")
    locked.save()
    incident_event_add(incident=locked, kind=IncidentEventKind.MITIGATED, actor=actor, message=note, now=now)
    _audit(locked, actor, "mitigate", from_state, note)
    return locked


@transaction.atomic
def incident_resolve(
    *, incident: Incident, actor: Actor | None, resolution: str, note: str = "", now: datetime | None = None
) -> Incident:
    """Resolve an open incident. ``actor=None`` is the system (auto-recovery)."""
    if actor is not None:
        _require_triage(actor, "resolve")
    if resolution not in Resolution.values:
        raise DomainValidationError({"resolution": [f"One of {', '.join(Resolution.values)}."]})
    if actor is not None and resolution != Resolution.AUTO_RECOVERED and not (note or "").strip():
        raise DomainValidationError({"note": ["Say how it was resolved."]})
    locked = _lock(incident)
    if not locked.is_open:
        raise IllegalTransition("The incident is already resolved.", extra={"status": locked.status})
    now, from_state = now or timezone.now(), locked.status
    locked.status = IncidentStatus.RESOLVED
    locked.resolved_at = now
    locked.resolution = resolution
    locked.resolution_note = (note or "").strip()
    record_actor(locked, actor, f"Resolved: {resolution}")
    locked.save()
    incident_event_add(
        incident=locked,
        kind=IncidentEventKind.RESOLVED,
        actor=actor,
        message=locked.resolution_note or locked.get_resolution_display(),
        data={"resolution": resolution},
        now=now,
    )
    if actor is not None:
        _audit(locked, actor, "resolve", from_state, locked.resolution_note)
    return locked


@transaction.atomic
def incident_escalate(*, incident: Incident, now: datetime) -> bool:
    """Escalate once when the incident is still unacknowledged past its severity's deadline."""
    locked = _lock(incident)
    deadline = locked.ack_deadline
    if locked.status != IncidentStatus.TRIGGERED or locked.escalated_at is not None or now < deadline:
        return False
    locked.escalated_at = now
    record_actor(locked, None, "Escalated: not acknowledged in time")
    locked.save(update_fields=["escalated_at"])
    incident_event_add(
        incident=locked,
        kind=IncidentEventKind.ESCALATED,
        message=f"Not acknowledged within {ACK_DEADLINES[locked.severity]} ({locked.get_severity_display()}).",
        now=now,
    )
    return True


def incidents_escalate_overdue(*, now: datetime | None = None) -> int:
    now = now or timezone.now()
    escalated = 0
    for severity, deadline in ACK_DEADLINES.items():
        overdue = Incident.objects.filter(
            status=IncidentStatus.TRIGGERED, escalated_at__isnull=True, severity=severity, opened_at__lte=now - deadline
        ).only("pk")
        for incident in overdue:
            escalated += incident_escalate(incident=incident, now=now)
    return escalated
