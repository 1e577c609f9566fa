"""Metric definitions are seeded by a migration; a superuser may still correct their descriptive fields or their
maturation period, which changes what the guardrails judge, so the change is audited."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from core.actors import Actor
from core.service_support import reject_unknown_fields, require_permission, save_audited

from ..models import MetricDefinition

# ``key``, ``kind`` and ``direction`` are what the code computing the metric relies on: never edited.
METRIC_DEFINITION_EDITABLE_FIELDS = (
    "name",
    "numerator_definition",
    "denominator_definition",
    "unit",
    "version",
    "maturation_period",
    "unit_of_analysis",
    "design_effect",
    "slow_threshold_ms",
    "source_of_record",
)


@transaction.atomic
def metric_definition_update(*, metric: MetricDefinition, actor: Actor, **fields: Any) -> MetricDefinition:
    require_permission(actor, "monitoring.change_metricdefinition", "change metric definitions")
    reject_unknown_fields(fields, METRIC_DEFINITION_EDITABLE_FIELDS)
    locked = MetricDefinition.objects.select_for_update().get(pk=metric.pk)
    changed = {name: str(value) for name, value in fields.items() if getattr(locked, name) != value}
    if not changed:
        return locked
    for name in changed:
        setattr(locked, name, fields[name])
    save_audited(
        locked,
        actor=actor,
        action="metric_definition.updated",
        reason="Changed: " + ", ".join(sorted(changed)),
        data={"changed": changed},
    )
    return locked
