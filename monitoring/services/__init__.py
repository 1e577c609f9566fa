"""Monitoring's write paths, one module per concern; import from here."""

from .definitions import metric_definition_update
from .endpoints import notification_endpoint_create, notification_endpoint_update
from .evaluation import guardrail_action_apply, guardrails_evaluate
from .guardrails import guardrail_create, guardrail_update
from .incidents import (
    incident_acknowledge,
    incident_assign,
    incident_comment,
    incident_escalate,
    incident_event_add,
    incident_mitigate,
    incident_open_data_quality,
    incident_resolve,
    incident_trigger,
    incidents_escalate_overdue,
)
from .ingestion import metric_samples_ingest
from .notifications import dead_letter_counts, notification_deliver, notification_redrive, notifications_due
from .rollout import guardrails_guard, release_guardrail_status, rollout_automate

__all__ = [
    "dead_letter_counts",
    "guardrail_action_apply",
    "guardrail_create",
    "guardrail_update",
    "guardrails_evaluate",
    "guardrails_guard",
    "incident_acknowledge",
    "incident_assign",
    "incident_comment",
    "incident_escalate",
    "incident_event_add",
    "incident_mitigate",
    "incident_open_data_quality",
    "incident_resolve",
    "incident_trigger",
    "incidents_escalate_overdue",
    "metric_definition_update",
    "metric_samples_ingest",
    "notification_deliver",
    "notification_endpoint_create",
    "notification_endpoint_update",
    "notification_redrive",
    "notifications_due",
    "release_guardrail_status",
    "rollout_automate",
]
