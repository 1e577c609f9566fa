from __future__ import annotations

from typing import Any

from django.db import transaction

from core.actors import Actor
from core.service_support import reject_unknown_fields, require_permission, save_audited

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
    "bonferroni",
    "planned_treatment_share",
    "failure_limit",
    "consecutive_success_limit",
    "severity",
    "action",
    "dry_run",
    "is_active",
)


def _data(guardrail: Guardrail) -> dict[str, Any]:
    return {
        "metric": guardrail.metric.key,
        "scope": guardrail.scope,
        "target": guardrail.release_id or guardrail.solution_id or guardrail.risk_level,
        "action": guardrail.action,
        "dry_run": guardrail.dry_run,
        "is_active": guardrail.is_active,
    }


@transaction.atomic
def guardrail_create(*, actor: Actor | None, **fields: Any) -> Guardrail:
    """A guardrail pauses and rolls back releases, so creating one is audited like a release transition."""
    if actor is not None:
        require_permission(actor, "monitoring.add_guardrail", "create guardrails")
    reject_unknown_fields(fields, EDITABLE_FIELDS)
    guardrail = Guardrail(created_by=actor, **fields)
    save_audited(
        guardrail, actor=actor, action="guardrail.created", release_id=guardrail.release_id, data=_data(guardrail)
    )
    return guardrail


@transaction.atomic
def guardrail_update(*, guardrail: Guardrail, actor: Actor | None, **fields: Any) -> Guardrail:
    if actor is not None:
        require_permission(actor, MANAGE_PERMISSION, "change guardrails")
    reject_unknown_fields(fields, EDITABLE_FIELDS)
    locked = Guardrail.objects.select_for_update().get(pk=guardrail.pk)
    changed = {name: str(value) for name, value in fields.items() if getattr(locked, name) != value}
    for name, value in fields.items():
        setattr(locked, name, value)
    save_audited(
        locked,
        actor=actor,
        action="guardrail.updated",
        reason=("Updated: " + ", ".join(sorted(changed)))[:100],
        release_id=locked.release_id,
        data={**_data(locked), "changed": changed},
    )
    return locked
