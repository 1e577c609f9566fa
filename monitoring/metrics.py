"""Rollgate's own Prometheus metrics (served by ``core.metrics`` at ``/metrics``).

Two kinds, on purpose:

- State, read from the database at scrape time (``MonitoringStateCollector``): open incidents, the notification
  backlog and dead letters. Every web replica reads the same rows, so they agree whichever one is scraped, and a
  restart loses nothing. Two queries per scrape, whatever the number of rows (both filter on indexed status
  columns and group a handful of values).
- Events, counted by the process that does the work: evaluations by outcome and the time of each evaluation run
  (in the Celery workers), ingested sample rows (in the web processes). Counting these from the database would
  mean scanning tables that grow by millions of rows a day on every scrape. Across processes they add up through
  ``PROMETHEUS_MULTIPROC_DIR`` (see ``core.metrics`` and docs/deploy.md).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager

from django.db import DatabaseError
from django.db.models import Count, Min
from django.utils import timezone
from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from .choices import DeliveryStatus, IncidentStatus, Outcome, Severity
from .models import Incident, NotificationOutbox

logger = logging.getLogger(__name__)

EVALUATIONS = Counter(
    "rollgate_evaluations",
    "Guardrail looks recorded, by outcome (pass, fail, inconclusive, insufficient_data, error).",
    ["outcome"],
)
for _outcome in Outcome:
    EVALUATIONS.labels(outcome=_outcome.value)  # every outcome is exported from the start, at 0
EVALUATION_RUN_SECONDS = Histogram(
    "rollgate_evaluation_cycle_seconds",
    "Wall time of one evaluation run: a batch of the periodic cycle (at most BATCH_SIZE releases) or the look "
    "ingestion enqueues at the releases it touched.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
INGESTED_ROWS = Counter("rollgate_ingest_rows", "Metric sample rows accepted by the ingestion API.")

_BACKLOG = (DeliveryStatus.PENDING, DeliveryStatus.SENDING)
_DEAD = (DeliveryStatus.DEAD, DeliveryStatus.FAILED)  # FAILED: rows from before dead-lettering existed


def record_evaluations(outcomes: Mapping[str, int]) -> None:
    for outcome, count in outcomes.items():
        if count:
            EVALUATIONS.labels(outcome=outcome).inc(count)


@contextmanager
def timed_evaluation_run() -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        EVALUATION_RUN_SECONDS.observe(time.perf_counter() - started)


def record_ingested_rows(rows: int) -> None:
    INGESTED_ROWS.inc(rows)


def open_incident_counts() -> dict[tuple[str, str], int]:
    rows = Incident.objects.open().values_list("severity", "status").annotate(n=Count("id")).order_by()
    return {(severity, status): n for severity, status, n in rows}


def outbox_state() -> tuple[int, int, float]:
    """(backlog: pending or being sent, dead letters, age in seconds of the oldest backlog row)."""
    rows = (
        NotificationOutbox.objects.filter(status__in=[*_BACKLOG, *_DEAD])
        .values_list("status")
        .annotate(n=Count("id"), oldest=Min("created_at"))
        .order_by()
    )
    backlog = dead = 0
    oldest = None
    for status, n, created in rows:
        if status in _DEAD:
            dead += n
        else:
            backlog += n
            oldest = created if oldest is None else min(oldest, created)
    age = max((timezone.now() - oldest).total_seconds(), 0.0) if oldest is not None else 0.0
    return backlog, dead, age


class MonitoringStateCollector(Collector):
    def collect(self) -> Iterable[Metric]:
        up = GaugeMetricFamily(
            "rollgate_state_scrape_up", "1 if the database answered the scrape-time queries below, else 0."
        )
        try:
            incidents = open_incident_counts()
            backlog, dead, oldest_age = outbox_state()
        except DatabaseError:
            # The scrape still answers (django-prometheus's own metrics are worth having while the database is
            # down); the gauges below are left out rather than reported as zero.
            logger.warning("Metrics: could not read monitoring state from the database", exc_info=True)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up

        open_incidents = GaugeMetricFamily(
            "rollgate_incidents_open",
            "Incidents not yet resolved, by severity and status.",
            labels=["severity", "status"],
        )
        open_states = [IncidentStatus.TRIGGERED, IncidentStatus.ACKNOWLEDGED, IncidentStatus.MITIGATED]
        for severity in Severity:
            for status in open_states:
                open_incidents.add_metric([severity.value, status.value], incidents.get((severity, status), 0))
        yield open_incidents
        yield GaugeMetricFamily(
            "rollgate_notifications_backlog", "Notifications waiting to be delivered (pending or being sent).", backlog
        )
        yield GaugeMetricFamily(
            "rollgate_notifications_backlog_oldest_seconds",
            "Age of the oldest notification still waiting to be delivered (0 when none).",
            oldest_age,
        )
        yield GaugeMetricFamily(
            "rollgate_notifications_dead_letters", "Notifications whose retries ran out, waiting for a redrive.", dead
        )
