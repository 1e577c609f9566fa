"""Notification endpoints: where incident notifications go. One write path for the API (and the admin), each
write with its history row and audit event. Nobody deletes an endpoint: deliveries point at it; deactivate it."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from core.actors import Actor
from core.service_support import reject_unknown_fields, require_permission, save_audited

from ..models import NotificationEndpoint

ADD_PERMISSION = "monitoring.add_notificationendpoint"
CHANGE_PERMISSION = "monitoring.change_notificationendpoint"
NOTIFICATION_ENDPOINT_FIELDS = ("name", "channel", "target", "min_severity", "is_active")


def _snapshot(endpoint: NotificationEndpoint) -> dict[str, Any]:
    return {field: getattr(endpoint, field) for field in NOTIFICATION_ENDPOINT_FIELDS}


@transaction.atomic
def notification_endpoint_create(*, actor: Actor, **fields: Any) -> NotificationEndpoint:
    """Add an endpoint. The model's ``clean`` checks the target: an http(s) URL for a webhook, an e-mail address
    for e-mail (a 400 on ``target`` otherwise)."""
    require_permission(actor, ADD_PERMISSION, "add notification endpoints")
    reject_unknown_fields(fields, NOTIFICATION_ENDPOINT_FIELDS)
    endpoint = NotificationEndpoint(**fields)
    save_audited(endpoint, actor=actor, action="notification_endpoint.created", data=_snapshot(endpoint))
    return endpoint


@transaction.atomic
def notification_endpoint_update(
    *, endpoint: NotificationEndpoint, actor: Actor, **fields: Any
) -> NotificationEndpoint:
    """Change an endpoint (``is_active=False`` retires it). The audit event records what changed, before and
    after; a call that changes nothing writes nothing."""
    require_permission(actor, CHANGE_PERMISSION, "change notification endpoints")
    reject_unknown_fields(fields, NOTIFICATION_ENDPOINT_FIELDS)
    locked = NotificationEndpoint.objects.select_for_update().get(pk=endpoint.pk)
    before = _snapshot(locked)
    for name, value in fields.items():
        setattr(locked, name, value)
    after = _snapshot(locked)
    changed = sorted(name for name in NOTIFICATION_ENDPOINT_FIELDS if before[name] != after[name])
    if not changed:
        return locked
    save_audited(
        locked,
        actor=actor,
        action="notification_endpoint.updated",
        reason="Changed: " + ", ".join(changed),
        data={"before": {name: before[name] for name in changed}, "after": {name: after[name] for name in changed}},
    )
    return locked
