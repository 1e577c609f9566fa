"""The notification outbox: rows written with their incident event, delivered (at least once) by Celery.

Delivery claims a row with a compare-and-set lease, so the task, its retries and the periodic sweep never send one
row twice at the same time; a worker killed mid-send leaves a lease that expires and the sweep resends. Receivers
get ``X-Rollgate-Delivery`` (the outbox id) to drop the rare duplicate.
"""

from __future__ import annotations

import json
import logging
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Count, F, Q
from django.utils import timezone

from core.audit import audit_record
from core.errors import DomainPermissionDenied, DomainValidationError

from ..choices import SEVERITY_RANK, Channel, DeliveryStatus, IncidentEventKind
from ..models import NotificationEndpoint, NotificationOutbox

if TYPE_CHECKING:
    from core.actors import Actor

    from ..models import Incident, IncidentEvent

logger = logging.getLogger(__name__)

LEASE = timedelta(minutes=2)
WEBHOOK_TIMEOUT_SECONDS = 10


MAX_BACKOFF = timedelta(hours=6)
# Statuses of a row whose retries ran out: DEAD, and FAILED from before dead-lettering (migration 0003 moved those).
DEAD_STATUSES = (DeliveryStatus.DEAD, DeliveryStatus.FAILED)


def backoff(attempts: int) -> timedelta:
    """30 s, 1 min, 2 min, ... 4 h 16 min, then every 6 hours: the default 14 attempts span about 26 hours, so a
    receiver that is down for a night still gets its notifications (six attempts over 16 minutes did not)."""
    return min(MAX_BACKOFF, timedelta(seconds=30 * 2 ** min(max(0, attempts - 1), 20)))


def retry_span(max_attempts: int) -> timedelta:
    """How long after the first attempt the last one happens."""
    return sum((backoff(attempt) for attempt in range(1, max_attempts)), timedelta(0))


def outbox_write_for_event(*, event: IncidentEvent) -> list[NotificationOutbox]:
    """One outbox row per matching active endpoint; delivery is enqueued after commit."""
    incident = event.incident
    endpoints = [
        endpoint
        for endpoint in NotificationEndpoint.objects.filter(is_active=True)
        if SEVERITY_RANK[incident.severity] <= SEVERITY_RANK[endpoint.min_severity]
    ]
    if not endpoints:
        return []
    payload = {
        "event": event.kind,
        "event_id": event.pk,
        "occurred_at": event.created_at.isoformat(),
        "message": event.message,
        "incident": {
            "id": incident.pk,
            "title": incident.title,
            "status": incident.status,
            "severity": incident.severity,
            "release": incident.release_id,
            "guardrail": incident.guardrail_id,
            "market": incident.market,
            "trigger_count": incident.trigger_count,
            "dedup_key": incident.dedup_key,
        },
    }
    rows = NotificationOutbox.objects.bulk_create(
        [
            NotificationOutbox(
                incident=incident,
                event=event,
                endpoint=endpoint,
                channel=endpoint.channel,
                target=endpoint.target,
                payload=payload,
                next_attempt_at=event.created_at,
                created_at=event.created_at,
            )
            for endpoint in endpoints
        ]
    )
    ids = [row.pk for row in rows]
    transaction.on_commit(lambda: enqueue_deliveries(ids))
    return rows


def enqueue_deliveries(outbox_ids: list[int]) -> None:
    from ..tasks import deliver_notification

    for outbox_id in outbox_ids:
        try:
            deliver_notification.delay(outbox_id)
        except Exception:  # broker down: the sweep delivers it
            logger.warning("Could not enqueue notification %s; the sweep will send it.", outbox_id, exc_info=True)


def _claim(outbox_id: int, now: datetime) -> bool:
    # Compare-and-set: only one worker at a time holds a row's lease. QuerySet.update is fine here: outbox rows
    # are not history-tracked.
    return bool(
        NotificationOutbox.objects.filter(pk=outbox_id, next_attempt_at__lte=now)
        .filter(
            Q(status=DeliveryStatus.PENDING) | Q(status=DeliveryStatus.SENDING, claimed_until__lt=now),
        )
        .update(status=DeliveryStatus.SENDING, claimed_until=now + LEASE)
    )


def _send(row: NotificationOutbox) -> None:
    if row.channel == Channel.WEBHOOK:
        request = urllib.request.Request(  # noqa: S310 - the URL is validated as http(s) on the endpoint
            row.target,
            data=json.dumps(row.payload).encode("utf-8"),
            headers={
                "Content-Type": "application/json",
                "User-Agent": "Rollgate/1.0",
                "X-Rollgate-Delivery": str(row.pk),
                "X-Rollgate-Event": str(row.payload.get("event", "")),
            },
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT_SECONDS) as response:  # noqa: S310
            if not 200 <= response.status < 300:
                raise OSError(f"HTTP {response.status}")
    else:
        incident = row.payload["incident"]
        send_mail(
            subject=f"[Rollgate {incident['severity'].upper()}] {row.payload['event']}: {incident['title']}",
            message=json.dumps(row.payload, indent=2),
            from_email=settings.DEFAULT_FROM_EMAIL,
            recipient_list=[row.target],
        )


@dataclass(frozen=True)
class DeliveryResult:
    claimed: bool
    sent: bool = False
    retry_in: timedelta | None = None


def notification_deliver(*, outbox_id: int, now: datetime | None = None) -> DeliveryResult:
    """Claim, send and record one outbox row. A failure is written to the incident's timeline."""
    from .incidents import incident_event_add

    now = now or timezone.now()
    if not _claim(outbox_id, now):
        return DeliveryResult(claimed=False)
    row = NotificationOutbox.objects.select_related("incident").get(pk=outbox_id)
    try:
        _send(row)
    except Exception as exc:  # any transport error is a failed attempt, recorded and retried
        attempts = row.attempts + 1
        gave_up = attempts >= row.max_attempts
        with transaction.atomic():
            # Retries exhausted: the row is dead-lettered, never dropped. It stays DEAD (shown in the admin,
            # counted on the incident) until someone redrives it.
            NotificationOutbox.objects.filter(pk=row.pk).update(
                status=DeliveryStatus.DEAD if gave_up else DeliveryStatus.PENDING,
                attempts=attempts,
                next_attempt_at=now + backoff(attempts),
                claimed_until=None,
                dead_at=now if gave_up else None,
                last_error=f"{type(exc).__name__}: {exc}"[:2000],
            )
            incident_event_add(
                incident=row.incident,
                kind=IncidentEventKind.NOTIFICATION_FAILED,
                message=f"{row.channel} to {row.target} failed (attempt {attempts}/{row.max_attempts}"
                f"{', dead-lettered: redrive it once the receiver is back' if gave_up else ''}): "
                f"{type(exc).__name__}: {exc}",
                data={"outbox": row.pk, "attempt": attempts, "gave_up": gave_up, "dead_lettered": gave_up},
                now=now,
            )
        if gave_up:
            logger.error("Notification %s dead-lettered after %s attempts: %s", row.pk, attempts, exc)
        else:
            logger.warning("Notification %s failed (attempt %s): %s", row.pk, attempts, exc)
        return DeliveryResult(claimed=True, sent=False, retry_in=None if gave_up else backoff(attempts))
    with transaction.atomic():
        NotificationOutbox.objects.filter(pk=row.pk).update(
            status=DeliveryStatus.SENT, attempts=row.attempts + 1, sent_at=timezone.now(), claimed_until=None
        )
        incident_event_add(
            incident=row.incident,
            kind=IncidentEventKind.NOTIFICATION_SENT,
            message=f"{row.payload.get('event')} sent by {row.channel} to {row.target}",
            data={"outbox": row.pk},
        )
    return DeliveryResult(claimed=True, sent=True)


def notifications_due(*, now: datetime | None = None, limit: int = 500) -> list[int]:
    """Rows the sweep should (re)send: pending and due, or stuck in a lease that expired."""
    now = now or timezone.now()
    return list(
        NotificationOutbox.objects.filter(
            Q(status=DeliveryStatus.PENDING, next_attempt_at__lte=now)
            | Q(status=DeliveryStatus.SENDING, claimed_until__lt=now)
        )
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )


def dead_letter_counts(*, incident_ids: Iterable[int]) -> dict[int, int]:
    """Dead-lettered notifications per incident (one query), for the incident's page and API."""
    rows = (
        NotificationOutbox.objects.filter(incident_id__in=list(incident_ids), status__in=DEAD_STATUSES)
        .values("incident_id")
        .annotate(dead=Count("id"))
    )
    return {row["incident_id"]: row["dead"] for row in rows}


def _may_redrive(actor: Actor) -> bool:
    # Program managers own where notifications go; on-call triages the incidents they announce. Both may send
    # a dead letter back once the receiver is fixed.
    return any(actor.has_perm(perm) for perm in REDRIVE_PERMISSIONS)


REDRIVE_PERMISSIONS = ("monitoring.change_notificationendpoint", "monitoring.triage_incident")


@transaction.atomic
def notification_redrive(
    *,
    actor: Actor | None,
    outbox_ids: Sequence[int] | None = None,
    incident: Incident | None = None,
    all_dead: bool = False,
    now: datetime | None = None,
) -> list[int]:
    """Send dead-lettered notifications back to delivery: the selected rows (``outbox_ids``), those of one
    ``incident``, or every dead letter (``all_dead``). Each starts a fresh retry schedule, is enqueued after
    commit and gets an audit event. Rows that are not dead (pending, in flight, sent) are left alone, so a
    redrive never sends a notification twice. ``actor=None`` is the system (the management command).

    Returns the ids of the rows redriven.
    """
    if actor is not None and not _may_redrive(actor):
        raise DomainPermissionDenied("Your role does not allow you to redrive notifications.")
    if sum((outbox_ids is not None, incident is not None, all_dead)) != 1:
        raise DomainValidationError({"non_field_errors": ["Choose outbox ids, an incident, or all dead letters."]})
    now = now or timezone.now()
    rows = NotificationOutbox.objects.filter(status__in=DEAD_STATUSES)
    if outbox_ids is not None:
        rows = rows.filter(pk__in=list(outbox_ids))
    elif incident is not None:
        rows = rows.filter(incident=incident)
    # Lock in id order so two redrives of overlapping sets queue up instead of deadlocking; a concurrent redrive
    # that got there first has already moved the row out of DEAD_STATUSES, and the re-check below skips it.
    locked = list(rows.select_for_update().order_by("pk"))
    redriven: list[int] = []
    for row in locked:
        updated = NotificationOutbox.objects.filter(pk=row.pk, status__in=DEAD_STATUSES).update(
            status=DeliveryStatus.PENDING,
            attempts=0,
            next_attempt_at=now,
            claimed_until=None,
            dead_at=None,
            redrive_count=F("redrive_count") + 1,
        )
        if not updated:
            continue
        redriven.append(row.pk)
        audit_record(
            actor=actor,
            action="notification.redriven",
            obj=row,
            from_state=row.status,
            to_state=DeliveryStatus.PENDING,
            data={
                "incident": row.incident_id,
                "channel": row.channel,
                "target": row.target,
                "attempts": row.attempts,
                "last_error": row.last_error[:500],
            },
        )
    if redriven:
        transaction.on_commit(lambda: enqueue_deliveries(redriven))
        logger.info("Redrove %s dead-lettered notification(s): %s", len(redriven), redriven)
    return redriven
