"""Governance's periodic work (scheduled in ``config.settings.base.CELERY_BEAT_SCHEDULE``). Thin: each task calls
one service, which is safe to run twice at once."""

from __future__ import annotations

from celery import shared_task

from . import services


@shared_task(name="governance.expire_approvals")
def expire_approvals() -> int:
    return services.approvals_expire()


@shared_task(name="governance.escalate_overdue_retro_reviews")
def escalate_overdue_retro_reviews() -> int:
    return services.retro_reviews_escalate()
