"""Concurrency on real PostgreSQL: threads with their own connections and transactions."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection
from django.utils import timezone

from monitoring.models import Evaluation, Guardrail, Incident, MetricDefinition
from monitoring.services import guardrails_evaluate, incident_trigger
from tests.concurrency import raised, run_at_once
from tests.factories import SolutionFactory, UserFactory, make_release
from tests.live_database import raw_connection

from .conftest import ingest, make_guardrail, put_live, sample_row

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@pytest.fixture
def failing_release():
    Guardrail.objects.filter(scope="risk_level").delete()
    author = UserFactory(username="ana.author", groups=["Authors"])
    release = put_live(make_release(author=author, solution=SolutionFactory()))
    from monitoring.models import MetricDefinition

    guardrail = make_guardrail(release, MetricDefinition.objects.get(key="error_rate"))
    ingest(sample_row(release, "error_rate", numerator=300, denominator=1000))
    return release, guardrail


def test_two_evaluation_cycles_at_once_write_one_evaluation_per_window_and_one_incident(failing_release):
    release, _guardrail = failing_release
    now = timezone.now()
    errors = raised(run_at_once(*[lambda: guardrails_evaluate(now=now)] * 4))
    assert errors == []
    assert Evaluation.objects.filter(release=release).count() == 2  # US and DE, once each
    incident = Incident.objects.get()
    assert incident.trigger_count == 1


def test_fifty_threads_triggering_one_key_leave_one_open_incident(failing_release):
    release, guardrail = failing_release
    guardrail = Guardrail.objects.select_related("metric").get(pk=guardrail.pk)

    def trigger() -> None:
        incident_trigger(guardrail=guardrail, release_id=release.pk, market="US", evaluation=None, now=timezone.now())

    errors = raised(run_at_once(*[trigger] * 50))
    assert errors == []
    incident = Incident.objects.open().get()
    assert incident.trigger_count == 50
    assert incident.events.count() == 50  # one opened + 49 retriggered


def test_a_cycle_holds_row_locks_not_one_lock_table_slot_per_release():
    """The evaluation locks are rows (EvaluationLock), not advisory locks: PostgreSQL's shared lock table has
    64 × max_connections slots for the whole server, and a cycle over 10,000 releases must fit in one transaction.
    Caught mid-cycle (the test holds the last release's lock), the evaluating backend holds a handful of locks,
    not one per release, and finishes every release once the test lets go."""
    Guardrail.objects.filter(scope="risk_level").delete()
    author = UserFactory(username="ana.author", groups=["Authors"])
    error_rate = MetricDefinition.objects.get(key="error_rate")
    releases = [put_live(make_release(author=author, solution=SolutionFactory())) for _ in range(20)]
    for release in releases:
        make_guardrail(release, error_rate)
    ingest(*[sample_row(r, "error_rate", numerator=2, denominator=1000, market=m) for r in releases for m in ("US",)])
    last = max(releases, key=lambda release: release.pk)
    # The observer reads pg_stat_activity outside the holder's transaction, which would see one frozen snapshot.
    holder, observer = raw_connection(), raw_connection()
    holder.execute("BEGIN")
    holder.execute(
        "INSERT INTO monitoring_evaluationlock (release_id) VALUES (%s) "
        "ON CONFLICT (release_id) DO UPDATE SET release_id = EXCLUDED.release_id",
        [last.pk],
    )
    failures: list[BaseException] = []

    def run_cycle() -> None:
        try:
            guardrails_evaluate(now=timezone.now())
        except BaseException as exc:
            failures.append(exc)
        finally:
            connection.close()

    cycle = threading.Thread(target=run_cycle)
    cycle.start()
    try:
        waiting = None
        deadline = time.monotonic() + 30
        while waiting is None and time.monotonic() < deadline:
            row = observer.execute(
                "SELECT pid FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))", [holder.info.backend_pid]
            ).fetchone()
            waiting = row[0] if row else time.sleep(0.05)
        assert waiting, f"the cycle never waited for the lock the test holds: {failures}"
        held = observer.execute("SELECT count(*) FROM pg_locks WHERE pid = %s", [waiting]).fetchone()[0]
        assert held < 15, f"{held} locks for 20 releases: one per release"
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        observer.close()
        cycle.join(timeout=30)
    assert failures == []
    assert Evaluation.objects.filter(release__in=releases).count() == 40  # two markets each
