from __future__ import annotations

import contextlib
import hmac
from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import NoReverseMatch, reverse

from .audit import _signature_of
from .models import AuditCheckpoint, AuditEvent


class _TypedFilter(admin.SimpleListFilter):
    """A list filter typed into a box (a release id, a username), for values too many to list as links."""

    template = "admin/core/input_filter.html"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        # One dummy choice: Django shows a filter only when it has lookups.
        return [("", "")]

    def choices(self, changelist: Any) -> Any:
        # The other filters' parameters, kept as hidden inputs so typing here narrows the current view.
        yield {
            "parameter": self.parameter_name,
            "value": self.value() or "",
            "others": [
                (key, value)
                for key, value in changelist.get_filters_params().items()
                if key != self.parameter_name and isinstance(value, str)
            ],
        }


class ReleaseFilter(_TypedFilter):
    title = "release id"
    parameter_name = "release"

    def queryset(self, request: HttpRequest, queryset: QuerySet[AuditEvent]) -> QuerySet[AuditEvent]:
        value = (self.value() or "").strip()
        if value.isdigit() and len(value) < 19:
            return queryset.filter(release_id=int(value))
        return queryset


class ActorFilter(_TypedFilter):
    title = "actor (username or 'system')"
    parameter_name = "actor"

    def queryset(self, request: HttpRequest, queryset: QuerySet[AuditEvent]) -> QuerySet[AuditEvent]:
        value = (self.value() or "").strip()
        return queryset.filter(actor_label=value) if value else queryset


def chain_checkpoint_status() -> dict[str, Any] | None:
    """What the latest signed checkpoint vouches for, cheaply (one signature, one row): the full walk is
    ``manage.py audit_verify`` and the evidence pack."""
    checkpoint = AuditCheckpoint.objects.order_by("-id").first()
    if checkpoint is None:
        return None
    signed = hmac.compare_digest(checkpoint.signature, _signature_of(checkpoint))
    head_hash = AuditEvent.objects.filter(pk=checkpoint.last_event_id).values_list("hash", flat=True).first()
    newer = AuditEvent.objects.filter(pk__gt=checkpoint.last_event_id).count()
    return {
        "checkpoint": checkpoint,
        "signed": signed,
        "head_matches": head_hash == checkpoint.last_hash,
        "ok": signed and head_hash == checkpoint.last_hash,
        "newer": newer,
    }


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Read-only: the audit log is append-only, for everyone including superusers. Newest first."""

    change_list_template = "admin/core/auditevent/change_list.html"
    list_display = ["id", "created_at", "actor_label", "action", "object_type", "object_id", "release_id", "to_state"]
    list_filter = [ReleaseFilter, ActorFilter, "action", "object_type", "created_at"]
    search_fields = ["actor_label", "action", "object_id", "reason"]
    date_hierarchy = "created_at"
    ordering = ["-id"]
    show_full_result_count = False
    readonly_fields = [field.name for field in AuditEvent._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        extra_context = extra_context or {}
        extra_context["chain"] = chain_checkpoint_status()
        if request.user.has_perm("core.export_evidence"):
            # The export lives on a higher floor (the evidence app); core links to it only when installed.
            with contextlib.suppress(NoReverseMatch):
                extra_context["evidence_range_url"] = reverse("evidence_range")
        return super().changelist_view(request, extra_context)
