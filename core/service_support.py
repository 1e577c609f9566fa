"""Small steps every service of every app takes the same way: who acts and why (for django-simple-history),
model validation turned into a 400, role permission turned into a 403, unknown fields refused, and the one
write helper (``save_audited``) that saves a governed object together with its audit event."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError
from django.db import models, transaction

from .audit import audit_record
from .errors import DomainPermissionDenied, DomainValidationError

if TYPE_CHECKING:
    from .actors import Actor
    from .models import AuditEvent


def record_actor(instance: Any, actor: Actor | None, reason: str) -> None:
    """The next save's history row names ``actor`` (None: the system) and ``reason``."""
    instance._history_user = actor
    instance._change_reason = reason[:100] if reason else None


def validate_model(instance: Any, exclude: Sequence[str] = ()) -> None:
    try:
        instance.full_clean(exclude=list(exclude))
    except ValidationError as exc:
        raise DomainValidationError(exc.message_dict) from exc


def require_permission(actor: Actor | None, permission: str, action: str) -> None:
    if actor is None or not actor.has_perm(permission):
        raise DomainPermissionDenied(f"Your role does not allow you to {action}.")


def reject_unknown_fields(fields: Mapping[str, Any], allowed: Collection[str]) -> None:
    unknown = set(fields) - set(allowed)
    if unknown:
        raise DomainValidationError({field: ["This field cannot be changed here."] for field in sorted(unknown)})


def save_audited(
    instance: models.Model,
    *,
    actor: Actor | None,
    action: str,
    reason: str = "",
    release_id: int | None = None,
    from_state: str = "",
    to_state: str = "",
    data: dict[str, Any] | None = None,
    update_fields: Sequence[str] | None = None,
    validate: bool = True,
    validate_exclude: Sequence[str] = (),
) -> AuditEvent:
    """Save a governed object and write its audit event in one call, so no write has one without the other.

    The history row names ``actor`` and ``reason`` (the action when no reason is given); the audit event names
    the object, the release it belongs to, the states it moved between and ``data``. Call it inside the
    service's transaction.
    """
    if validate:
        validate_model(instance, exclude=validate_exclude)
    record_actor(instance, actor, reason or action)
    with transaction.atomic():
        instance.save(update_fields=list(update_fields) if update_fields is not None else None)
        return audit_record(
            actor=actor,
            action=action,
            obj=instance,
            release_id=release_id,
            from_state=from_state,
            to_state=to_state,
            reason=reason,
            data=data,
        )
