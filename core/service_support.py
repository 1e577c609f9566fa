"""Small steps every service of every app takes the same way: who acts and why (for django-simple-history),
model validation turned into a 400, role permission turned into a 403, unknown fields refused."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError

from .errors import DomainPermissionDenied, DomainValidationError

if TYPE_CHECKING:
    from .actors import Actor


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
