"""What every admin of a governed model shares: writes go through services, domain refusals come back as
messages, rows are never deleted, history is read-only for everyone, and one helper runs a button's POST.

django-simple-history's history form view saves a POSTed form for anyone with *view* permission and ignores
``SIMPLE_HISTORY_REVERT_DISABLED`` on POST; ``GovernedModelAdmin`` shows history pages read-only and refuses
every POST to them (DESIGN: history is never editable, superusers included).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from simple_history.admin import SimpleHistoryAdmin

from .errors import DomainError


def copy_saved_state(target: Any, source: Any) -> None:
    """The admin keeps working with its own instance after a service saved another (for log entries and
    redirects): give it what the service saved."""
    target.__dict__.update({key: value for key, value in source.__dict__.items() if not key.startswith("_")})
    target._state.adding = False


def run_service_action(
    model_admin: admin.ModelAdmin[Any],
    request: HttpRequest,
    *,
    label: str,
    call: Callable[[], Any],
    success: str | Callable[[Any], str],
    redirect_to: str,
) -> HttpResponse:
    """POST → service → message → redirect, the shape of every admin button. A GET only redirects: buttons
    never act on a link that was merely followed."""
    if request.method == "POST":
        try:
            result = call()
        except DomainError as exc:
            model_admin.message_user(request, f"{label} refused: {exc.detail}", messages.ERROR)
        else:
            text = success(result) if callable(success) else success
            model_admin.message_user(request, text, messages.SUCCESS)
    return HttpResponseRedirect(redirect_to)


class ServiceBackedAdminMixin:
    """Shows a domain refusal raised while saving as a message instead of an error page."""

    def changeform_view(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return super().changeform_view(request, *args, **kwargs)  # type: ignore[misc]
        except DomainError as exc:
            self.message_user(request, exc.detail, messages.ERROR)  # type: ignore[attr-defined]
            return HttpResponseRedirect(request.get_full_path())


class ReadOnlyHistoryMixin:
    """History pages show what a row was; they never write it, whoever asks."""

    def history_form_view(
        self, request: HttpRequest, object_id: str, version_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if request.method not in ("GET", "HEAD"):
            raise PermissionDenied("History is read-only.")
        request._history_read_only = True  # type: ignore[attr-defined]
        return super().history_form_view(request, object_id, version_id, extra_context)  # type: ignore[misc]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if getattr(request, "_history_read_only", False):
            form_fields = [field.name for field in self.model._meta.fields]  # type: ignore[attr-defined]
            return [*super().get_readonly_fields(request, obj), *form_fields]  # type: ignore[misc]
        return super().get_readonly_fields(request, obj)  # type: ignore[misc]

    def revert_disabled(self, request: HttpRequest, obj: Any = None) -> bool:
        return True


class GovernedModelAdmin(ReadOnlyHistoryMixin, ServiceBackedAdminMixin, SimpleHistoryAdmin):
    """Base of the admin of every governed, history-tracked model."""

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
