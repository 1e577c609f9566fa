"""The notification outbox: rows written with their incident event, delivered (at least once) by Celery.

Delivery claims a row with a compare-and-set lease, so the task, its retries and the periodic sweep never send one
row twice at the same time; a worker killed mid-send leaves a lease that expires and the sweep resends. Receivers
get ``X-Rollgate-Delivery`` (the outbox id) to drop the rare duplicate.
"""

from __future__ import annotations

import json
import logging
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from ..choices import SEVERITY_RANK, Channel, DeliveryStatus, IncidentEventKind
from ..models import NotificationEndpoint, NotificationOutbox

if TYPE_CHECKING:
    from ..models import IncidentEvent

logger = logging.getLogger(__name__)

LEASE = timedelta(minutes=2)
WEBHOOK_TIMEOUT_SECONDS = 10


def backoff(attempts: int) -> timedelta:
    """30 s, 1 min, 2 min, 4 min, ... capped at one hour."""
    return timedelta(seconds=min(3600, 30 * 2 ** max(0, attempts - 1)))


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
            NotificationOutbox.objects.filter(pk=row.pk).update(
                status=DeliveryStatus.FAILED if gave_up else DeliveryStatus.PENDING,
                attempts=attempts,
                next_attempt_at=now + backoff(attempts),
                claimed_until=None,
                last_error=f"{type(exc).__name__}: {exc}"[:2000],
            )
            incident_event_add(
                incident=row.incident,
                kind=IncidentEventKind.NOTIFICATION_FAILED,
                message=f"{row.channel} to {row.target} failed (attempt {attempts}/{row.max_attempts}"
                f"{', giving up' if gave_up else ''}): {type(exc).__name__}: {exc}",
                data={"outbox": row.pk, "attempt": attempts, "gave_up": gave_up},
                now=now,
            )
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
