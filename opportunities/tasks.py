"""Opportunities' periodic work: thin tasks over idempotent services."""

from __future__ import annotations

from celery import shared_task

from .services import opportunities_measure_due


@shared_task(name="opportunities.measure_due", acks_late=True)
def measure_due() -> list[int]:
    # Idempotent: a measured opportunity leaves ``delivered``, so a redelivered task measures nothing twice.
    return opportunities_measure_due()
