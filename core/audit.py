"""The append-only, hash-chained audit log: writing one event, checkpointing the chain's head, and verifying
the chain against its latest signed checkpoint."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import connection, models, transaction
from django.utils import timezone

from core.canonical import canonical_json

from .models import AuditCheckpoint, AuditEvent

if TYPE_CHECKING:
    from core.actors import Actor

GENESIS_HASH = "0" * 64
# Any constant works; it only has to be the same for every writer of the chain.
_AUDIT_CHAIN_LOCK_KEY = 0x524F4C4C47415445  # "ROLLGATE"
SYSTEM_ACTOR_LABEL = "system"
# Checkpoints go to this logger too: a log shipped off the database server holds the head even if the
# checkpoint table is wiped.
checkpoint_logger = logging.getLogger("rollgate.audit")


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


def _checkpoint_key() -> bytes:
    if settings.AUDIT_CHECKPOINT_KEY:
        return str(settings.AUDIT_CHECKPOINT_KEY).encode("utf-8")
    # Derived, so a checkpoint signature never doubles as anything else signed with SECRET_KEY.
    return hmac.new(settings.SECRET_KEY.encode("utf-8"), b"rollgate.audit-checkpoint", hashlib.sha256).digest()


def checkpoint_signature(*, last_event_id: int, last_hash: str, event_count: int, created_at: str) -> str:
    message = canonical_json(
        {"last_event_id": last_event_id, "last_hash": last_hash, "event_count": event_count, "created_at": created_at}
    )
    return hmac.new(_checkpoint_key(), message.encode("utf-8"), hashlib.sha256).hexdigest()


def _signature_of(checkpoint: AuditCheckpoint) -> str:
    return checkpoint_signature(
        last_event_id=checkpoint.last_event_id,
        last_hash=checkpoint.last_hash,
        event_count=checkpoint.event_count,
        created_at=checkpoint.created_at.isoformat(),
    )


def audit_checkpoint() -> AuditCheckpoint | None:
    """Sign the chain's head (last id, hash, count) into a checkpoint row and the log.

    Returns the new checkpoint; None when the log is empty. When nothing was appended since the latest
    checkpoint, no row is added (the head is already covered) but the head is logged again.
    """
    with transaction.atomic():
        # The same lock as audit_record: the head and the count are read with no append in between.
        _lock_chain_head()
        head = AuditEvent.objects.order_by("-id").values_list("id", "hash").first()
        if head is None:
            return None
        last_event_id, last_hash = head
        latest = AuditCheckpoint.objects.order_by("-id").first()
        if latest is not None and latest.last_event_id == last_event_id and latest.last_hash == last_hash:
            _log_checkpoint(latest, repeated=True)
            return latest
        checkpoint = AuditCheckpoint(
            created_at=timezone.now(),
            last_event_id=last_event_id,
            last_hash=last_hash,
            event_count=AuditEvent.objects.filter(id__lte=last_event_id).count(),
        )
        checkpoint.signature = _signature_of(checkpoint)
        checkpoint.save(force_insert=True)
        transaction.on_commit(lambda: _log_checkpoint(checkpoint, repeated=False))
        return checkpoint


def _log_checkpoint(checkpoint: AuditCheckpoint, *, repeated: bool) -> None:
    checkpoint_logger.info(
        "audit checkpoint #%s%s: last_event=#%s hash=%s count=%s at=%s signature=%s",
        checkpoint.pk,
        " (unchanged head)" if repeated else "",
        checkpoint.last_event_id,
        checkpoint.last_hash,
        checkpoint.event_count,
        checkpoint.created_at.isoformat(),
        checkpoint.signature,
    )


@dataclass(frozen=True)
class ChainBreak:
    event_id: int
    problem: str
    checkpoint_id: int | None = None


def audit_verify_chain(*, batch_size: int = 2000) -> tuple[int, ChainBreak | None]:
    """Walk the chain in order, then hold it against the signed checkpoints.

    Returns how many events were checked and the first problem, if any: a broken link or altered row; a
    checkpoint whose signature is not ours; a checkpoint whose event is gone or has another hash (the newest
    events were deleted, the table truncated, or the chain rewritten and re-hashed); or fewer events than a
    checkpoint counted.
    """
    checkpoints = list(AuditCheckpoint.objects.order_by("id"))
    for checkpoint in checkpoints:
        if not hmac.compare_digest(checkpoint.signature, _signature_of(checkpoint)):
            return 0, ChainBreak(
                checkpoint.last_event_id,
                f"checkpoint #{checkpoint.pk} has an invalid signature (forged or altered checkpoint)",
                checkpoint.pk,
            )
    # For each checkpointed event id: its hash and its position in the chain, as the walk finds them.
    watched = {checkpoint.last_event_id for checkpoint in checkpoints}
    seen: dict[int, tuple[str, int]] = {}

    expected_prev = GENESIS_HASH
    checked = 0
    last_id = 0
    for event in _iterate_events(batch_size):
        if event.prev_hash != expected_prev:
            return checked, ChainBreak(event.pk, "prev_hash does not match the hash of the event before it")
        if event_hash(event.prev_hash, event) != event.hash:
            return checked, ChainBreak(event.pk, "content does not match its hash (the row was altered)")
        expected_prev = event.hash
        checked += 1
        last_id = event.pk
        if event.pk in watched:
            seen[event.pk] = (event.hash, checked)

    for checkpoint in checkpoints:
        problem = _checkpoint_problem(checkpoint, seen.get(checkpoint.last_event_id), last_id, checked)
        if problem is not None:
            return checked, ChainBreak(checkpoint.last_event_id, problem, checkpoint.pk)
    return checked, None


def _checkpoint_problem(
    checkpoint: AuditCheckpoint, found: tuple[str, int] | None, head_id: int, checked: int
) -> str | None:
    where = f"checkpoint #{checkpoint.pk} (event #{checkpoint.last_event_id}, hash {checkpoint.last_hash})"
    if found is None:
        if head_id < checkpoint.last_event_id:
            after = f"after #{head_id}" if head_id else "(all of them)"
            missing = checkpoint.event_count - checked
            return f"events {after} up to {where} are missing: at least {missing} events deleted or the table truncated"
        return f"event #{checkpoint.last_event_id} of {where} is missing (the chain was rewritten without it)"
    found_hash, position = found
    if found_hash != checkpoint.last_hash:
        return f"event #{checkpoint.last_event_id} has hash {found_hash}, not the one in {where}: the log was rewritten"
    if position != checkpoint.event_count:
        return (
            f"{where} counted {checkpoint.event_count} events up to it, the chain now has {position}: "
            "events were removed and the chain re-hashed"
        )
    return None


def _iterate_events(batch_size: int) -> Iterator[AuditEvent]:
    last_id = 0
    while True:
        batch = list(AuditEvent.objects.filter(id__gt=last_id).order_by("id")[:batch_size])
        if not batch:
            return
        yield from batch
        last_id = batch[-1].pk
