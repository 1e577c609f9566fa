"""The append-only, hash-chained audit log: writing one event, and verifying the chain."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.db import connection, models, transaction
from django.utils import timezone

from core.canonical import canonical_json

from .models import AuditEvent

if TYPE_CHECKING:
    from core.actors import Actor

GENESIS_HASH = "0" * 64
# Any constant works; it only has to be the same for every writer of the chain.
_AUDIT_CHAIN_LOCK_KEY = 0x524F4C4C47415445  # "ROLLGATE"
SYSTEM_ACTOR_LABEL = "system"


def _canonical_event(event: AuditEvent) -> str:
    return canonical_json(
        {
            "created_at": event.created_at.isoformat(),
            "actor_id": event.actor_id,
            "actor_label": event.actor_label,
            "action": event.action,
            "object_type": event.object_type,
            "object_id": event.object_id,
            "release_id": event.release_id,
            "from_state": event.from_state,
            "to_state": event.to_state,
            "reason": event.reason,
            "data": event.data,
        }
    )


def event_hash(prev_hash: str, event: AuditEvent) -> str:
    return hashlib.sha256((prev_hash + _canonical_event(event)).encode("utf-8")).hexdigest()


def _lock_chain_head() -> None:
    # Appends serialize on one transaction-scoped advisory lock so two writers never chain onto the same head.
    # SQLite serializes writers on its own.
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_AUDIT_CHAIN_LOCK_KEY])


def audit_record(
    *,
    actor: Actor | None,
    action: str,
    obj: models.Model,
    release_id: int | None = None,
    from_state: str = "",
    to_state: str = "",
    reason: str = "",
    data: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event. Call inside the transaction that makes the change, so both land or neither does."""
    with transaction.atomic():
        _lock_chain_head()
        last = AuditEvent.objects.order_by("-id").values_list("hash", flat=True).first()
        event = AuditEvent(
            created_at=timezone.now(),
            actor=actor,
            actor_label=actor.get_username() if actor is not None else SYSTEM_ACTOR_LABEL,
            action=action,
            object_type=obj._meta.label_lower,
            object_id=str(obj.pk),
            release_id=release_id,
            from_state=from_state,
            to_state=to_state,
            reason=reason,
            data=data or {},
            prev_hash=last or GENESIS_HASH,
        )
        # Round-trip the JSON so the hash is computed over exactly what the database will return.
        event.data = _normalise_json(event.data)
        event.hash = event_hash(event.prev_hash, event)
        event.save(force_insert=True)
        return event


def _normalise_json(value: Any) -> Any:
    return json.loads(canonical_json(value))


@dataclass(frozen=True)
class ChainBreak:
    event_id: int
    problem: str


def audit_verify_chain(*, batch_size: int = 2000) -> tuple[int, ChainBreak | None]:
    """Walk the chain in order; return how many events were checked and the first break, if any."""
    expected_prev = GENESIS_HASH
    checked = 0
    for event in _iterate_events(batch_size):
        if event.prev_hash != expected_prev:
            return checked, ChainBreak(event.pk, "prev_hash does not match the hash of the event before it")
        if event_hash(event.prev_hash, event) != event.hash:
            return checked, ChainBreak(event.pk, "content does not match its hash (the row was altered)")
        expected_prev = event.hash
        checked += 1
    return checked, None


def _iterate_events(batch_size: int) -> Iterator[AuditEvent]:
    last_id = 0
    while True:
        batch = list(AuditEvent.objects.filter(id__gt=last_id).order_by("id")[:batch_size])
        if not batch:
            return
        yield from batch
        last_id = batch[-1].pk
