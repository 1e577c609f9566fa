"""Signed checkpoints of the audit chain's head: deleting the newest events, truncating the table, or rewriting
the chain and re-hashing everything after the edit is reported by audit_verify, naming what is missing."""

from __future__ import annotations

import itertools
import logging

import pytest
from django.conf import settings as django_settings
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.db.utils import DatabaseError

from config.celery import app as celery_app
from core.audit import audit_checkpoint, audit_record, audit_verify_chain, event_hash
from core.models import AuditCheckpoint, AuditEvent
from core.tasks import audit_checkpoint_task

pytestmark = pytest.mark.django_db


def _append(user, count: int) -> list[AuditEvent]:
    return [audit_record(actor=user, action="test.appended", obj=user, data={"n": n}) for n in range(count)]


def _as_tamperer(*statements: tuple[str, list[object]], table: str = "governance_auditevent") -> None:
    # A database superuser switches the table's triggers off, as an attacker with database access would.
    with connection.cursor() as cursor:
        # Deferred foreign-key checks still pending in this transaction would block ALTER TABLE.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
        for sql, params in statements:
            cursor.execute(sql, params)
        cursor.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")


def _verify_fails(match: str) -> None:
    with pytest.raises(CommandError, match=match):
        call_command("audit_verify")


def test_deleting_the_newest_50_events_is_detected(auditor):
    events = _append(auditor, 60)
    checkpoint = audit_checkpoint()
    assert checkpoint is not None and checkpoint.last_event_id == events[-1].pk
    survivor = events[9]
    _as_tamperer(("DELETE FROM governance_auditevent WHERE id > %s", [survivor.pk]))

    _checked, broken = audit_verify_chain()
    assert broken is not None and broken.checkpoint_id == checkpoint.pk
    assert f"events after #{survivor.pk} up to checkpoint #{checkpoint.pk}" in broken.problem
    assert checkpoint.last_hash in broken.problem and "missing" in broken.problem
    _verify_fails(f"events after #{survivor.pk} up to checkpoint #{checkpoint.pk}")


def test_truncate_is_refused_by_the_database(auditor):
    _append(auditor, 3)
    count = AuditEvent.objects.count()
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # else pending foreign-key checks refuse it first
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("TRUNCATE governance_auditevent")
    assert AuditEvent.objects.count() == count


def test_truncate_with_triggers_disabled_is_detected(auditor):
    _append(auditor, 5)
    checkpoint = audit_checkpoint()
    assert checkpoint is not None
    _as_tamperer(("TRUNCATE governance_auditevent", []))
    assert AuditEvent.objects.count() == 0
    _checked, broken = audit_verify_chain()
    assert broken is not None and "missing" in broken.problem and f"checkpoint #{checkpoint.pk}" in broken.problem
    _verify_fails("missing")


def test_rewriting_a_row_and_rehashing_every_later_one_is_detected(auditor):
    events = _append(auditor, 8)
    checkpoint = audit_checkpoint()
    assert checkpoint is not None
    # Rewrite event 3, then recompute its hash and every later one so the chain links up again.
    victim = AuditEvent.objects.get(pk=events[2].pk)
    victim.reason = "nothing happened here"
    prev = victim.prev_hash
    updates: list[tuple[str, list[object]]] = []
    for event in AuditEvent.objects.filter(pk__gte=victim.pk).order_by("id"):
        if event.pk == victim.pk:
            event.reason = victim.reason
        new_hash = event_hash(prev, event)
        updates.append(
            (
                "UPDATE governance_auditevent SET reason = %s, prev_hash = %s, hash = %s WHERE id = %s",
                [event.reason, prev, new_hash, event.pk],
            )
        )
        prev = new_hash
    # Hashes are unique: move the rows out of the way first, as a careful tamperer would.
    _as_tamperer(
        ("UPDATE governance_auditevent SET hash = 'x' || id WHERE id >= %s", [victim.pk]),
        *updates,
    )
    events_now = list(AuditEvent.objects.order_by("id"))
    assert all(after.prev_hash == before.hash for before, after in itertools.pairwise(events_now))

    _checked, broken = audit_verify_chain()
    assert broken is not None and broken.checkpoint_id == checkpoint.pk
    assert "the log was rewritten" in broken.problem
    _verify_fails("rewritten")


def test_forged_checkpoint_is_detected(auditor):
    _append(auditor, 4)
    checkpoint = audit_checkpoint()
    assert checkpoint is not None
    _as_tamperer(
        ("UPDATE core_auditcheckpoint SET event_count = event_count - 1 WHERE id = %s", [checkpoint.pk]),
        table="core_auditcheckpoint",
    )
    _checked, broken = audit_verify_chain()
    assert broken is not None and "invalid signature" in broken.problem


def test_checkpoints_are_append_only(auditor):
    _append(auditor, 1)
    checkpoint = audit_checkpoint()
    assert checkpoint is not None
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    for sql in ("UPDATE core_auditcheckpoint SET event_count = 0", "DELETE FROM core_auditcheckpoint"):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql)
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("TRUNCATE core_auditcheckpoint")
    assert AuditCheckpoint.objects.filter(pk=checkpoint.pk, event_count=checkpoint.event_count).exists()


def test_intact_chain_verifies_against_its_checkpoint(auditor, capsys):
    _append(auditor, 3)
    checkpoint = audit_checkpoint()
    _append(auditor, 2)  # events after the latest checkpoint are normal
    assert audit_verify_chain()[1] is None
    call_command("audit_verify")
    assert f"against checkpoint #{checkpoint.pk}" in capsys.readouterr().out


def test_checkpoint_is_signed_with_the_environment_key_and_logged(
    auditor, settings, caplog, django_capture_on_commit_callbacks
):
    _append(auditor, 2)
    settings.AUDIT_CHECKPOINT_KEY = "key-held-outside-the-database"
    with caplog.at_level(logging.INFO, logger="rollgate.audit"), django_capture_on_commit_callbacks(execute=True):
        checkpoint = audit_checkpoint()
    assert checkpoint is not None
    line = next(r.getMessage() for r in caplog.records if r.name == "rollgate.audit")
    assert f"#{checkpoint.pk}" in line and checkpoint.last_hash in line and checkpoint.signature in line
    # Verified with the key it was signed with; with another key the signature no longer holds.
    assert audit_verify_chain()[1] is None
    settings.AUDIT_CHECKPOINT_KEY = "another-key"
    assert "invalid signature" in audit_verify_chain()[1].problem


def test_unchanged_head_adds_no_row(auditor):
    _append(auditor, 2)
    first = audit_checkpoint()
    assert audit_checkpoint() == first
    assert AuditCheckpoint.objects.count() == 1
    _append(auditor, 1)
    assert audit_checkpoint() != first


def test_beat_runs_the_checkpoint_task_every_five_minutes(auditor):
    entry = django_settings.CELERY_BEAT_SCHEDULE["core-audit-checkpoint"]
    assert entry["task"] == "core.audit_checkpoint" and entry["schedule"].total_seconds() == 300
    assert "core.audit_checkpoint" in celery_app.tasks
    _append(auditor, 2)
    checkpoint_id = audit_checkpoint_task()
    assert AuditCheckpoint.objects.get(pk=checkpoint_id).event_count == AuditEvent.objects.count()


def test_audit_checkpoint_command(auditor, capsys):
    call_command("audit_checkpoint")
    assert "empty" in capsys.readouterr().out or AuditEvent.objects.exists()
    _append(auditor, 1)
    call_command("audit_checkpoint")
    assert "Checkpoint #" in capsys.readouterr().out
