"""Incidents: opened by failing guardrails (deduplicated by the database), triaged by on-call, closed by passes.

Status changes follow ``monitoring.state_machine.INCIDENT_LIFECYCLE`` through one choke point (``_transition``);
every write of an incident row comes with its audit event (``save_audited``). Every timeline event is written
with its outbox rows in the same transaction (``incident_event_add``), so a notification exists exactly when its
event does.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from core.actors import Actor
from core.audit import audit_record
from core.errors import DomainPermissionDenied, DomainValidationError, IllegalTransition
from core.service_support import save_audited
from core.transitions import Applied, Transition, check_role, perform_transition

from ..choices import (
    ACK_DEADLINES,
    NOTIFYING_EVENTS,
    IncidentEventKind,
    IncidentKind,
    IncidentStatus,
    Resolution,
    Severity,
)
from ..models import Evaluation, Guardrail, Incident, IncidentEvent, incident_dedup_key
from ..state_machine import ACKNOWLEDGE, EVENT_KINDS, INCIDENT_LIFECYCLE, MITIGATE, REFUSALS, RESOLVE, TRIAGE_PERMISSION
from .notifications import outbox_write_for_event


def _require_triage(actor: Actor | None, action: str) -> None:
    # For the steps that are not transitions (assign, comment); transitions check their table row.
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
        opened = _open(
            key=key,
            title=f"{guardrail.metric.key} guardrail '{guardrail.name}' failing in {market}",
            kind=IncidentKind.GUARDRAIL,
            severity=guardrail.severity,
            guardrail=guardrail,
            release_id=release_id,
            market=market,
            evaluation=evaluation,
            now=now,
            reason="Opened by a failing guardrail",
            message=_evaluation_message(evaluation),
        )
        if opened is not None:
            return opened, True
        existing = Incident.objects.select_for_update().filter(dedup_key=key).open().first()
        if existing is None:  # the winner was resolved meanwhile: a genuine conflict, let the caller retry
            raise IntegrityError(f"incident {key} was opened and resolved concurrently")
    existing.trigger_count += 1
    existing.last_triggered_at = now
    save_audited(
        existing,
        actor=None,
        action="incident.retriggered",
        reason="Retriggered",
        release_id=release_id,
        data={**_incident_data(existing, evaluation), "trigger_count": existing.trigger_count},
        update_fields=["trigger_count", "last_triggered_at"],
        validate=False,
    )
    incident_event_add(
        incident=existing,
        kind=IncidentEventKind.RETRIGGERED,
        message=_evaluation_message(evaluation),
        data={"trigger_count": existing.trigger_count},
        evaluation=evaluation,
        now=now,
    )
    return existing, False


def srm_dedup_key(*, release_id: int, market: str) -> str:
    return f"{release_id}:srm:{market}"


@transaction.atomic
def incident_open_data_quality(
    *, guardrail: Guardrail, release_id: int, market: str, evaluation: Evaluation, now: datetime
) -> tuple[Incident, bool]:
    """Open the low-severity data-quality incident of a release and market whose sample ratio is off, once: a
    mismatch seen again on later looks adds nothing (the open incident already says it). No release action; the
    guard on promote / complete verification does not count it. Returns (incident, opened)."""
    key = srm_dedup_key(release_id=release_id, market=market)
    existing = Incident.objects.filter(dedup_key=key).open().first()
    if existing is not None:
        return existing, False
    opened = _open(
        key=key,
        title=f"Sample ratio mismatch in {market}: comparisons with the control arm are not read",
        kind=IncidentKind.DATA_QUALITY,
        severity=Severity.SEV4,
        guardrail=guardrail,
        release_id=release_id,
        market=market,
        evaluation=evaluation,
        now=now,
        reason="Opened by a sample ratio mismatch (data quality)",
        message=evaluation.detail,
    )
    if opened is not None:
        return opened, True
    winner = Incident.objects.filter(dedup_key=key).open().first()  # a concurrent look opened it first
    if winner is None:
        raise IntegrityError(f"incident {key} was opened and resolved concurrently")
    return winner, False


def _open(
    *,
    key: str,
    title: str,
    kind: str,
    severity: str,
    guardrail: Guardrail,
    release_id: int,
    market: str,
    evaluation: Evaluation | None,
    now: datetime,
    reason: str,
    message: str,
) -> Incident | None:
    """Insert the open incident of ``key`` with its audit event and timeline entry, or None when a concurrent
    writer's insert won the partial unique constraint (the caller looks the winner up)."""
    previous = Incident.objects.filter(dedup_key=key, status=IncidentStatus.RESOLVED).order_by("-id").first()
    incident = Incident(
        title=title,
        dedup_key=key,
        kind=kind,
        release_id=release_id,
        guardrail=guardrail,
        market=market,
        severity=severity,
        opened_at=now,
        last_triggered_at=now,
        previous_incident=previous,
    )
    data = _incident_data(incident, evaluation)
    event_data: dict[str, Any] = {"previous_incident": previous.pk} if previous else {}
    if kind != IncidentKind.GUARDRAIL:
        data["kind"] = event_data["kind"] = kind
    try:
        # The savepoint covers the insert and its audit event: a lost race leaves neither behind.
        with transaction.atomic():
            save_audited(
                incident,
                actor=None,
                action="incident.opened",
                reason=reason,
                release_id=release_id,
                to_state=incident.status,
                data=data,
                validate=False,
            )
    except IntegrityError:
        return None
    incident_event_add(
        incident=incident,
        kind=IncidentEventKind.OPENED,
        message=message,
        data=event_data,
        evaluation=evaluation,
        now=now,
    )
    return incident


def _incident_data(incident: Incident, evaluation: Evaluation | None) -> dict[str, Any]:
    return {
        "dedup_key": incident.dedup_key,
        "severity": incident.severity,
        "evaluation": evaluation.pk if evaluation is not None else None,
    }


def _evaluation_message(evaluation: Evaluation | None) -> str:
    if evaluation is None:
        return ""
    parts = [
        f"{evaluation.outcome} on the cohort since {evaluation.window_start:%Y-%m-%d %H:%M} UTC "
        f"({evaluation.samples} samples, latest window ending {evaluation.window_end:%Y-%m-%d %H:%M} UTC)"
    ]
    if evaluation.observed is not None:
        parts.append(f"observed {evaluation.observed:.4g} (n={evaluation.n})")
    # Say which check failed: the interval against the absolute bound, or the difference against the baseline.
    guardrail = evaluation.guardrail
    threshold = guardrail.absolute_threshold
    absolute_failed = (
        threshold is not None
        and evaluation.lower is not None
        and evaluation.upper is not None
        and (evaluation.lower > threshold if guardrail.metric.direction == "lower" else evaluation.upper < threshold)
    )
    if (
        evaluation.lower is not None
        and evaluation.upper is not None
        and (absolute_failed or evaluation.baseline is None)
    ):
        parts.append(f"interval [{evaluation.lower:.4g}, {evaluation.upper:.4g}] against the bound {threshold:.4g}")
    if evaluation.baseline is not None:
        parts.append(f"baseline {evaluation.baseline:.4g} ({evaluation.baseline_source}, n={evaluation.baseline_n})")
        if evaluation.difference_lower is not None and evaluation.difference_upper is not None:
            parts.append(
                f"difference interval [{evaluation.difference_lower:.4g}, {evaluation.difference_upper:.4g}] "
                f"against the margin {guardrail.relative_margin or 0:.4g}"
            )
    if evaluation.confidence is not None:
        parts.append(f"per-sequence confidence {evaluation.confidence:.4g} (α split over {evaluation.sequences})")
    return "; ".join(parts)


# --- Triage: the lifecycle transitions (``monitoring.state_machine``) and the plain steps beside them -------

# The incident's fields, declared once. A person changes only the triage fields (through ``incident_assign``: the
# admin form edits them, the API shows them); the lifecycle fields are written by these services alone and are
# read-only in the admin and the API.
INCIDENT_TRIAGE_FIELDS = ("assignee",)
INCIDENT_LIFECYCLE_FIELDS = (
    "title",
    "status",
    "severity",
    "release",
    "guardrail",
    "market",
    "dedup_key",
    "trigger_count",
    "opened_at",
    "last_triggered_at",
    "acknowledged_at",
    "mitigated_at",
    "resolved_at",
    "escalated_at",
    "resolution",
    "resolution_note",
    "previous_incident",
)

Mutation = Callable[[Incident, datetime], None]


def check_actor_may(*, transition: Transition, actor: Actor | None) -> None:
    """The system (``None``) runs only ``system_allowed`` steps; a person needs the transition's permission."""
    check_role(transition=transition, actor=actor, noun="incidents")


def _transition(
    *,
    incident: Incident,
    transition: Transition,
    actor: Actor | None,
    reason: str = "",
    message: str = "",
    now: datetime | None = None,
    mutate: Mutation | None = None,
    event_data: dict[str, Any] | None = None,
) -> Incident:
    """Move an incident through the one choke point of every lifecycle (``core.transitions``), then add its
    timeline event (and outbox rows) in the same transaction."""
    when = now or timezone.now()

    def apply(locked: Incident, from_state: str) -> Applied:
        if mutate is not None:
            mutate(locked, when)
        return Applied(
            target=transition.target,
            release_id=locked.release_id,
            data={"dedup_key": locked.dedup_key, "severity": locked.severity, **(event_data or {})},
            effects=lambda: incident_event_add(
                incident=locked,
                kind=EVENT_KINDS[transition.name],
                actor=actor,
                message=message,
                data=event_data,
                now=when,
            ),
        )

    return perform_transition(
        machine=INCIDENT_LIFECYCLE,
        transition=transition,
        actor=actor,
        reason=reason,
        noun="incidents",
        lock=lambda: _lock(incident),
        refuse=lambda locked: IllegalTransition(
            REFUSALS[transition.name].format(status=locked.get_status_display().lower()),
            extra={"status": locked.status},  # the 409 body the API has always answered
        ),
        apply=apply,
    )


def incident_acknowledge(*, incident: Incident, actor: Actor) -> Incident:
    def mutate(locked: Incident, now: datetime) -> None:
        locked.acknowledged_at = now
        if locked.assignee_id is None:
            locked.assignee = actor  # type: ignore[assignment]

    return _transition(incident=incident, transition=ACKNOWLEDGE, actor=actor, mutate=mutate)


def incident_mitigate(*, incident: Incident, actor: Actor, note: str) -> Incident:
    check_actor_may(transition=MITIGATE, actor=actor)
    note = (note or "").strip()
    if not note:
        raise DomainValidationError({"note": ["Say what was done to mitigate."]})

    def mutate(locked: Incident, now: datetime) -> None:
        locked.mitigated_at = now
        locked.acknowledged_at = locked.acknowledged_at or now

    return _transition(incident=incident, transition=MITIGATE, actor=actor, reason=note, message=note, mutate=mutate)


def incident_resolve(
    *, incident: Incident, actor: Actor | None, resolution: str, note: str = "", now: datetime | None = None
) -> Incident:
    """Resolve an open incident. ``actor=None`` is the system (auto-recovery), which needs no note."""
    check_actor_may(transition=RESOLVE, actor=actor)
    if resolution not in Resolution.values:
        raise DomainValidationError({"resolution": [f"One of {', '.join(Resolution.values)}."]})
    note = (note or "").strip()
    if actor is not None and resolution != Resolution.AUTO_RECOVERED and not note:
        raise DomainValidationError({"note": ["Say how it was resolved."]})

    def mutate(locked: Incident, when: datetime) -> None:
        locked.resolved_at = when
        locked.resolution = resolution
        locked.resolution_note = note

    return _transition(
        incident=incident,
        transition=RESOLVE,
        actor=actor,
        reason=note or Resolution(resolution).label,
        message=note or Resolution(resolution).label,
        now=now,
        mutate=mutate,
        event_data={"resolution": resolution},
    )


TRANSITION_SERVICES: dict[str, Callable[..., Incident]] = {
    ACKNOWLEDGE.name: incident_acknowledge,
    MITIGATE.name: incident_mitigate,
    RESOLVE.name: incident_resolve,
}


@transaction.atomic
def incident_assign(*, incident: Incident, actor: Actor, assignee: Actor) -> Incident:
    """Not a state change: hand an open incident to someone who may triage it."""
    _require_triage(actor, "assign")
    if not assignee.is_active or not assignee.has_perm(TRIAGE_PERMISSION):  # type: ignore[attr-defined]
        raise DomainValidationError({"assignee": ["The assignee must be an active user who may triage incidents."]})
    locked = _lock(incident)
    if not locked.is_open:
        raise IllegalTransition("A resolved incident cannot be reassigned.", extra={"status": locked.status})
    previous = locked.assignee_id
    locked.assignee = assignee  # type: ignore[assignment]
    save_audited(
        locked,
        actor=actor,
        action="incident.assign",
        reason=f"Assigned to {assignee.get_username()}",
        release_id=locked.release_id,
        data={"assignee": assignee.pk, "previous_assignee": previous},
        update_fields=INCIDENT_TRIAGE_FIELDS,
        validate=False,
    )
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
    """Not a state change: a note on the timeline. The incident row is untouched, so the audit event is the
    only record outside the timeline of who said what."""
    _require_triage(actor, "comment on")
    message = (message or "").strip()
    if not message:
        raise DomainValidationError({"message": ["A comment cannot be empty."]})
    event = incident_event_add(incident=incident, kind=IncidentEventKind.COMMENT, actor=actor, message=message)
    audit_record(
        actor=actor,
        action="incident.comment",
        obj=incident,
        release_id=incident.release_id,
        reason=message[:500],
        data={"event": event.pk},
    )
    return event


@transaction.atomic
def incident_escalate(*, incident: Incident, now: datetime) -> bool:
    """Escalate once when the incident is still unacknowledged past its severity's deadline."""
    locked = _lock(incident)
    deadline = locked.ack_deadline
    if locked.status != IncidentStatus.TRIGGERED or locked.escalated_at is not None or now < deadline:
        return False
    locked.escalated_at = now
    save_audited(
        locked,
        actor=None,
        action="incident.escalated",
        reason="Escalated: not acknowledged in time",
        release_id=locked.release_id,
        data={"dedup_key": locked.dedup_key, "severity": locked.severity, "deadline": deadline.isoformat()},
        update_fields=["escalated_at"],
        validate=False,
    )
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
