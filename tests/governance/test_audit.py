from __future__ import annotations

import itertools

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.db.utils import DatabaseError

from core.audit import GENESIS_HASH, audit_verify_chain
from core.models import AuditEvent
from releases import services
from tests.factories import make_release

pytestmark = pytest.mark.django_db


def _tamper(sql: str, params: list[object]) -> None:
    # A superuser bypassing the trigger, as an attacker with database access would.
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute(sql, params)


def test_chain_links_each_event_to_the_previous(draft_release, author):
    services.release_submit(release=draft_release, actor=author)
    events = list(AuditEvent.objects.order_by("id"))
    assert events[0].prev_hash == GENESIS_HASH
    for before, after in itertools.pairwise(events):
        assert after.prev_hash == before.hash
    assert audit_verify_chain() == (len(events), None)


def test_audit_verify_command_passes_on_intact_chain(draft_release, capsys):
    call_command("audit_verify")
    assert "intact" in capsys.readouterr().out


def test_tampered_row_is_found_and_named(author, solution):
    releases = [make_release(author=author, solution=solution) for _ in range(3)]
    victim = AuditEvent.objects.get(release_id=releases[1].pk, action="release.created")
    _tamper("UPDATE governance_auditevent SET reason = %s WHERE id = %s", ["nothing to see", victim.pk])
    _checked, broken = audit_verify_chain()
    assert broken is not None and broken.event_id == victim.pk
    assert "altered" in broken.problem
    with pytest.raises(CommandError, match=f"#{victim.pk}"):
        call_command("audit_verify")


def test_deleted_row_breaks_the_next_link(author, solution):
    releases = [make_release(author=author, solution=solution) for _ in range(3)]
    victim = AuditEvent.objects.get(release_id=releases[1].pk, action="release.created")
    successor = AuditEvent.objects.filter(id__gt=victim.pk).order_by("id").first()
    _tamper("DELETE FROM governance_auditevent WHERE id = %s", [victim.pk])
    _, broken = audit_verify_chain()
    assert broken is not None and broken.event_id == successor.pk
    assert "prev_hash" in broken.problem


@pytest.mark.parametrize("sql", ["UPDATE governance_auditevent SET reason = 'x'", "DELETE FROM governance_auditevent"])
def test_database_refuses_update_and_delete(draft_release, sql):
    count = AuditEvent.objects.count()
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql)
    assert AuditEvent.objects.count() == count
    assert audit_verify_chain()[1] is None
