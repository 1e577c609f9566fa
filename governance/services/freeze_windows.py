"""Freeze windows, and the emergency override a program manager may make of them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.contrib.auth.models import Group
from django.db import transaction
from django.utils import timezone

from core.audit import audit_record
from core.errors import (
    DomainPermissionDenied,
    DomainValidationError,
    GuardFailed,
)
from core.roles import PROGRAM_MANAGERS
from core.service_support import reject_unknown_fields, require_permission, save_audited, validate_model
from releases.models import Release

from ..models import (
    FreezeWindow,
)

if TYPE_CHECKING:
    from core.actors import Actor as User

from ._common import user_in_group

# --- Freeze windows -----------------------------------------------------------------------------------------


@transaction.atomic
def freeze_window_create(
    *,
    actor: User,
    name: str,
    starts_at: datetime,
    ends_at: datetime,
    reason: str,
    markets: Sequence[str] = (),
) -> FreezeWindow:
    require_permission(actor, "governance.add_freezewindow", "create freeze windows")
    window = FreezeWindow(
        name=name, starts_at=starts_at, ends_at=ends_at, reason=reason, markets=list(markets), created_by=actor
    )
    _validate_window(window)
    save_audited(
        window, actor=actor, action="freeze_window.created", reason=reason, data=_window_data(window), validate=False
    )
    return window


@transaction.atomic
def freeze_window_update(*, window: FreezeWindow, actor: User, **fields: Any) -> FreezeWindow:
    require_permission(actor, "governance.change_freezewindow", "edit freeze windows")
    allowed = {"name", "starts_at", "ends_at", "reason", "markets"}
    reject_unknown_fields(fields, allowed)
    window = FreezeWindow.objects.select_for_update().get(pk=window.pk)
    if window.cancelled_at is not None:
        raise GuardFailed("This freeze window was cancelled.", code="freeze_window_cancelled")
    for field_name, value in fields.items():
        setattr(window, field_name, list(value) if field_name == "markets" else value)
    _validate_window(window)
    save_audited(
        window, actor=actor, action="freeze_window.updated", data=_window_data(window), reason="Edited", validate=False
    )
    return window


@transaction.atomic
def freeze_window_cancel(*, window: FreezeWindow, actor: User, reason: str) -> FreezeWindow:
    """Lift a freeze early; the row stays, with the time it was cancelled."""
    require_permission(actor, "governance.change_freezewindow", "cancel freeze windows")
    reason = (reason or "").strip()
    if not reason:
        raise DomainValidationError({"reason": ["Say why the freeze is lifted."]})
    window = FreezeWindow.objects.select_for_update().get(pk=window.pk)
    if window.cancelled_at is not None:
        raise GuardFailed("This freeze window was already cancelled.", code="freeze_window_cancelled")
    window.cancelled_at = timezone.now()
    save_audited(
        window,
        actor=actor,
        action="freeze_window.cancelled",
        reason=reason,
        data=_window_data(window),
        update_fields=["cancelled_at"],
        validate=False,
    )
    return window


# A freeze is planned for the coming campaigns or recorded for recent ones; dates further out are typos.
FREEZE_HORIZON = timedelta(days=5 * 366)


def _validate_window(window: FreezeWindow) -> None:
    validate_model(window, exclude=["created_by"])
    now = timezone.now()
    for field in ("starts_at", "ends_at"):
        if not now - FREEZE_HORIZON <= getattr(window, field) <= now + FREEZE_HORIZON:
            raise DomainValidationError({field: ["Must be within five years of today."]})
    if window.ends_at <= window.starts_at:
        raise DomainValidationError({"ends_at": ["The freeze must end after it starts."]})


def _window_data(window: FreezeWindow) -> dict[str, Any]:
    return {
        "name": window.name,
        "starts_at": window.starts_at.isoformat(),
        "ends_at": window.ends_at.isoformat(),
        "markets": window.markets,
    }


def freeze_override_check(*, release: Release, actor: User | None, reason: str) -> None:
    """Whether this actor may override freeze windows for this release (the freeze guard asks; reads only)."""
    if not release.is_emergency:
        raise GuardFailed(
            "Only an emergency release may override a freeze window.", code="freeze_override_not_emergency"
        )
    pm_group = Group.objects.filter(name=PROGRAM_MANAGERS).first()
    if actor is None or pm_group is None or not user_in_group(user=actor, group=pm_group):
        raise DomainPermissionDenied("Only a program manager may override a freeze window.")
    if not reason.strip():
        raise DomainValidationError({"reason": ["A reason is required to override a freeze window."]})


def freeze_override_record(
    *, release: Release, actor: User | None, window_ids: Sequence[int], transition: str, reason: str
) -> None:
    """Record an accepted override on each window's audit trail (a transition effect, in its transaction)."""
    for window in FreezeWindow.objects.filter(pk__in=window_ids).order_by("pk"):
        audit_record(
            actor=actor,
            action="freeze_window.overridden",
            obj=window,
            release_id=release.pk,
            reason=reason,
            data={"transition": transition, **_window_data(window)},
        )
