from __future__ import annotations

from typing import Any

from django.db import transaction

from core.actors import Actor
from core.errors import DomainPermissionDenied, DomainValidationError
from core.service_support import record_actor, validate_model

from ..models import Guardrail

MANAGE_PERMISSION = "monitoring.change_guardrail"
EDITABLE_FIELDS = (
    "name",
    "metric",
    "scope",
    "release",
    "solution",
    "risk_level",
    "absolute_threshold",
    "relative_margin",
    "min_sample_size",
    "evaluation_window",
    "evaluation_interval",
    "confidence",
    "failure_limit",
    "consecutive_success_limit",
    "severity",
    "action",
    "dry_run",
    "is_active",
)


def _save(guardrail: Guardrail, actor: Actor | None, reason: str) -> Guardrail:
    validate_model(guardrail)
    record_actor(guardrail, actor, reason)
    guardrail.save()
    return guardrail


@transaction.atomic
def guardrail_create(*, actor: Actor | None, **fields: Any) -> Guardrail:
    if actor is not None and not actor.has_perm("monitoring.add_guardrail"):  # type: ignore[attr-defined]
        raise DomainPermissionDenied("Your role does not allow you to create guardrails.")
    unknown = set(fields) - set(EDITABLE_FIELDS)
    if unknown:
        raise DomainValidationError({name: ["Unknown field."] for name in sorted(unknown)})
    guardrail = Guardrail(created_by=actor, **fields)
    return _save(guardrail, actor, "Created")


@transaction.atomic
def guardrail_update(*, guardrail: Guardrail, actor: Actor | None, **fields: Any) -> Guardrail:
    if actor is not None and not actor.has_perm(MANAGE_PERMISSION):  # type: ignore[attr-defined]
        raise DomainPermissionDenied("Your role does not allow you to change guardrails.")
    locked = Guardrail.objects.select_for_update().get(pk=guardrail.pk)
    for name, value in fields.items():
        if name not in EDITABLE_FIELDS:
            raise DomainValidationError({name: ["Unknown field."]})
        setattr(locked, name, value)
    return _save(locked, actor, "Updated: " + ", ".join(sorted(fields))[:90])
