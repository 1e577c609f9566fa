"""Celery tasks: thin wrappers that own the retry policy and call one service each.

Every task is ``acks_late`` with ``reject_on_worker_lost``: a worker killed mid-cycle leaves its message
unacknowledged, so it is redelivered, and every service below is idempotent (evaluations per window, incidents per
dedup key, deliveries by compare-and-set claim), so running one again is safe. Schedules: CELERY_BEAT_SCHEDULE in
``config/settings/base.py``.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task

from . import metrics, services
from .selectors import live_release_ids
from .services.evaluation import BATCH_SIZE

logger = logging.getLogger(__name__)

TASK_RETRY_HORIZON = timedelta(minutes=10)


@shared_task(
    name="monitoring.evaluate_guardrails_cycle",
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=50,
    time_limit=60,
)
def evaluate_guardrails_cycle() -> int:
    """Beat, every minute: fan the live releases out into batches."""
    ids = live_release_ids()
    for start in range(0, len(ids), BATCH_SIZE):
        evaluate_releases.delay(ids[start : start + BATCH_SIZE])
    return len(ids)


@shared_task(
    name="monitoring.evaluate_releases",
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=110,
    time_limit=120,
    autoretry_for=(Exception,),
    retry_backoff=5,
    retry_backoff_max=120,
    max_retries=5,
)
def evaluate_releases(release_ids: list[int]) -> int:
    with metrics.timed_evaluation_run():
        result = services.guardrails_evaluate(release_ids=release_ids)
    metrics.record_evaluations(result.outcomes)
    return result.evaluations


@shared_task(
    name="monitoring.rollout_automate", acks_late=True, reject_on_worker_lost=True, soft_time_limit=50, time_limit=60
)
def rollout_automate() -> dict[str, list[int]]:
    result = services.rollout_automate()
    return {"promoted": result.promoted, "verified": result.verified}


@shared_task(
    name="monitoring.escalate_incidents", acks_late=True, reject_on_worker_lost=True, soft_time_limit=50, time_limit=60
)
def escalate_incidents() -> int:
    return services.incidents_escalate_overdue()


@shared_task(
    name="monitoring.deliver_notification",
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=30,
    time_limit=40,
    max_retries=8,
)
def deliver_notification(self, outbox_id: int) -> bool:  # type: ignore[no-untyped-def]
    result = services.notification_deliver(outbox_id=outbox_id)
    if (
        result.retry_in is not None
        and result.retry_in <= TASK_RETRY_HORIZON
        and self.request.retries < self.max_retries
    ):
        # The row is already rescheduled in the database (the sweep would find it); retrying is just sooner.
        # Longer waits (the backoff reaches hours) are left to the sweep: a countdown beyond the broker's
        # visibility timeout gets the message handed out again, and holding hours of ETA messages helps nobody.
        raise self.retry(countdown=result.retry_in.total_seconds())
    return result.sent


@shared_task(
    name="monitoring.sweep_notifications", acks_late=True, reject_on_worker_lost=True, soft_time_limit=50, time_limit=60
)
def sweep_notifications() -> int:
    due = services.notifications_due()
    for outbox_id in due:
        deliver_notification.delay(outbox_id)
    return len(due)
