"""Notification endpoints: where incident notifications go. Program managers configure them; every change is
audited, because an endpoint switched off or pointed elsewhere silences the pages people rely on."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from core.actors import Actor
from core.service_support import reject_unknown_fields, require_permission, save_audited

from ..models import NotificationEndpoint

NOTIFICATION_ENDPOINT_FIELDS = ("name", "channel", "target", "min_severity", "is_active")


@transaction.atomic
def notification_endpoint_create(*, actor: Actor, **fields: Any) -> NotificationEndpoint:
    require_permission(actor, "monitoring.add_notificationendpoint", "create notification endpoints")
    reject_unknown_fields(fields, NOTIFICATION_ENDPOINT_FIELDS)
    endpoint = NotificationEndpoint(**fields)
    save_audited(
        endpoint,
        actor=actor,
        action="notification_endpoint.created",
        data={name: str(getattr(endpoint, name)) for name in NOTIFICATION_ENDPOINT_FIELDS},
    )
    return endpoint


@transaction.atomic
def notification_endpoint_update(
    *, endpoint: NotificationEndpoint, actor: Actor, **fields: Any
) -> NotificationEndpoint:
    require_permission(actor, "monitoring.change_notificationendpoint", "change notification endpoints")
    reject_unknown_fields(fields, NOTIFICATION_ENDPOINT_FIELDS)
    locked = NotificationEndpoint.objects.select_for_update().get(pk=endpoint.pk)
    changed = {name: str(value) for name, value in fields.items() if getattr(locked, name) != value}
    if not changed:
        return locked
    for name in changed:
        setattr(locked, name, fields[name])
    save_audited(
        locked,
        actor=actor,
        action="notification_endpoint.updated",
        reason="Changed: " + ", ".join(sorted(changed)),
        data={"changed": changed},
    )
    return locked
