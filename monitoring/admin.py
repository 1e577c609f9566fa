"""The on-call triage UI and the guardrail configuration. Every write goes through ``monitoring.services``;
domain refusals come back as messages; statuses are never editable."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import construct_change_message
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from core.actors import request_actor
from core.admin_support import GovernedModelAdmin, copy_saved_state, run_service_action
from core.errors import DomainError

from . import selectors, services
from .choices import MANUAL_RESOLUTIONS, IncidentStatus, Resolution, Severity
from .models import (
    Evaluation,
    Guardrail,
    Incident,
    IncidentEvent,
    MetricDefinition,
    MetricSample,
    NotificationEndpoint,
    NotificationOutbox,
)
from .services.definitions import METRIC_DEFINITION_EDITABLE_FIELDS
from .services.endpoints import NOTIFICATION_ENDPOINT_FIELDS
from .services.guardrails import EDITABLE_FIELDS
from .services.incidents import INCIDENT_LIFECYCLE_FIELDS, INCIDENT_TRIAGE_FIELDS, TRANSITION_SERVICES
from .services.notifications import REDRIVE_PERMISSIONS
from .state_machine import ACKNOWLEDGE, INCIDENT_LIFECYCLE, MITIGATE, RESOLVE, TRIAGE_PERMISSION


class ReadOnlyAdminMixin:
    """Machine-written rows: visible, never edited or deleted by hand."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(MetricDefinition)
class MetricDefinitionAdmin(GovernedModelAdmin):
    list_display = [
        "key",
        "name",
        "kind",
        "direction",
        "unit_of_analysis",
        "design_effect",
        "source_of_record",
        "version",
        "maturation_period",
    ]
    list_filter = ["kind", "direction"]
    search_fields = ["key", "name"]
    readonly_fields = ["key", "kind", "direction"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # seeded; a new metric needs code that computes it

    def save_model(self, request: HttpRequest, obj: MetricDefinition, form: Any, change: bool) -> None:
        fields = {
            name: form.cleaned_data[name] for name in form.changed_data if name in METRIC_DEFINITION_EDITABLE_FIELDS
        }
        saved = services.metric_definition_update(metric=obj, actor=request_actor(request), **fields)
        copy_saved_state(obj, saved)


@admin.register(MetricSample)
class MetricSampleAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["release", "metric", "market", "arm", "window_start", "window_end", "numerator", "denominator"]
    list_filter = ["metric", "arm", "market", "source"]
    list_select_related = ["metric", "release", "release__solution"]
    date_hierarchy = "window_start"
    raw_id_fields = ["release"]


@admin.register(Guardrail)
class GuardrailAdmin(GovernedModelAdmin):
    list_display = ["name", "metric", "scope", "target", "absolute_threshold", "relative_margin", "action", "dry_run"]
    list_filter = ["scope", "metric", "action", "severity", "dry_run", "is_active", "risk_level"]
    list_select_related = ["metric", "release", "release__solution", "solution"]
    search_fields = ["name"]
    raw_id_fields = ["release"]
    fieldsets = [
        (
            "What and where",
            {
                "fields": ["name", "metric", "scope", "release", "solution", "risk_level", "is_active"],
                "description": "Scope 'release' needs a release, 'solution' a solution, 'risk level' a risk "
                "level (the default every release of that level inherits).",
            },
        ),
        (
            "Rule",
            {
                "fields": [
                    "absolute_threshold",
                    "relative_margin",
                    "min_sample_size",
                    "confidence",
                    "evaluation_window",
                    "evaluation_interval",
                ],
                "description": "Absolute: a bound on the bad side of the rate. Relative: the tolerated degradation "
                "against the control arm (else the previous verified release), in rate points. Below the "
                "minimum sample the outcome is 'insufficient data', never a failure.",
            },
        ),
        (
            "When it fails",
            {
                "fields": ["failure_limit", "consecutive_success_limit", "severity", "action", "dry_run"],
                "description": "Breached when failed evaluations > failure limit (0: the first failure; -1: never). "
                "The consecutive success limit of passes in a row recovers and auto-resolves the incident. "
                "Dry-run guardrails are evaluated and shown, never acted on.",
            },
        ),
    ]

    @admin.display(description="target")
    def target(self, obj: Guardrail) -> str:
        return str(obj.release or obj.solution or obj.get_risk_level_display())

    def save_model(self, request: HttpRequest, obj: Guardrail, form: Any, change: bool) -> None:
        fields = {name: form.cleaned_data[name] for name in EDITABLE_FIELDS if name in form.cleaned_data}
        actor = request_actor(request)
        saved = (
            services.guardrail_update(guardrail=obj, actor=actor, **fields)
            if change
            else services.guardrail_create(actor=actor, **fields)
        )
        copy_saved_state(obj, saved)


@admin.register(Evaluation)
class EvaluationAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    # What the look saw (samples, data through) and how it was judged: the variance method says whether a
    # turn-level rate used the delta method or a declared design effect (gauges: none), the confidence is the
    # per-sequence level after the release's α split over its guardrails × markets.
    list_display = [
        "evaluated_at",
        "guardrail",
        "release",
        "market",
        "outcome",
        "reason",
        "observed",
        "lower",
        "upper",
        "n",
        "samples",
        "variance_method",
        "confidence",
        "sequences",
        "sample_ratio_mismatch",
    ]
    list_filter = ["outcome", "breached", "dry_run", "sample_ratio_mismatch", "variance_method", "market"]
    list_select_related = ["guardrail", "release", "release__solution"]
    date_hierarchy = "evaluated_at"


class UnacknowledgedFilter(admin.SimpleListFilter):
    title = "acknowledgement"
    parameter_name = "unacknowledged"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Unacknowledged"), ("no", "Acknowledged or later")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Incident]) -> QuerySet[Incident]:
        if self.value() == "yes":
            return queryset.filter(status=IncidentStatus.TRIGGERED)
        if self.value() == "no":
            return queryset.exclude(status=IncidentStatus.TRIGGERED)
        return queryset


@dataclass(frozen=True)
class TriageButton:
    """One button of the triage panel: a lifecycle transition from the table, or "assign to me"."""

    name: str
    label: str
    title: str = ""
    # The placeholder of the required note field (transitions that need a reason), else no field.
    note: str = ""
    # Resolve asks which manual resolution applies.
    resolutions: bool = False
    colour: str = "var(--button-bg)"


_BUTTON_DETAILS: dict[str, dict[str, Any]] = {
    ACKNOWLEDGE.name: {"title": "Stops the escalation clock; assigns it to you if nobody has it"},
    MITIGATE.name: {"note": "What was done (required)"},
    RESOLVE.name: {"note": "How it was resolved (required)", "resolutions": True, "colour": "#198754"},
}
TRIAGE_BUTTONS: dict[str, TriageButton] = {
    name: (
        TriageButton(name, "Assign to me")
        if name == selectors.ASSIGN_TO_ME
        else TriageButton(name, INCIDENT_LIFECYCLE[name].label, **_BUTTON_DETAILS.get(name, {}))
    )
    for name in selectors.TRIAGE_ACTIONS
}
TRIAGE_LABELS = {name: button.label for name, button in TRIAGE_BUTTONS.items()}
INCIDENT_STATUS_COLOURS: dict[str, str] = {
    IncidentStatus.TRIGGERED: "#dc3545",
    IncidentStatus.ACKNOWLEDGED: "#fd7e14",
    IncidentStatus.MITIGATED: "#0d6efd",
    IncidentStatus.RESOLVED: "#198754",
}
SEVERITY_COLOURS: dict[str, str] = {
    Severity.SEV1: "#842029",
    Severity.SEV2: "#dc3545",
    Severity.SEV3: "#fd7e14",
    Severity.SEV4: "#6c757d",
}


class IncidentEventInline(admin.TabularInline):
    model = IncidentEvent
    fields = ["created_at", "kind", "actor", "message", "evaluation"]
    readonly_fields = ["created_at", "kind", "actor", "message", "evaluation"]
    extra = 0
    can_delete = False
    ordering = ["created_at", "id"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet[IncidentEvent]:
        return super().get_queryset(request).select_related("actor", "evaluation")


class IncidentAdminForm(forms.ModelForm):
    comment = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}), required=False, help_text="Added to the timeline on save."
    )

    class Meta:
        model = Incident
        fields = list(INCIDENT_TRIAGE_FIELDS)


@admin.register(Incident)
class IncidentAdmin(GovernedModelAdmin):
    form = IncidentAdminForm
    change_form_template = "admin/monitoring/incident/change_form.html"
    list_display = [
        "id",
        "title",
        "status",
        "kind",
        "severity",
        "release",
        "market",
        "assignee",
        "trigger_count",
        "opened_at",
        "escalated_at",
    ]
    list_display_links = ["id", "title"]
    list_filter = ["status", UnacknowledgedFilter, "kind", "severity", "assignee", "market"]
    list_select_related = ["release", "release__solution", "assignee", "guardrail"]
    search_fields = ["title", "dedup_key"]
    ordering = ["-opened_at"]
    actions = ["acknowledge_selected", "assign_to_me", "resolve_false_positive"]
    inlines = [IncidentEventInline]
    readonly_fields = [*INCIDENT_LIFECYCLE_FIELDS, "kind", "fired_by"]
    fieldsets = [
        ("Incident", {"fields": ["title", "status", "severity", "release", "guardrail", "market", "dedup_key"]}),
        (
            "Assignee and comments",
            {
                "fields": ["assignee", "comment"],
                "description": "Acknowledge, mitigate and resolve with the Triage buttons at the top of the page; "
                "hand the incident to someone else or add a comment to the timeline here.",
            },
        ),
        (
            "Timeline",
            {
                "fields": [
                    "trigger_count",
                    "opened_at",
                    "last_triggered_at",
                    "acknowledged_at",
                    "mitigated_at",
                    "resolved_at",
                    "escalated_at",
                    "resolution",
                    "resolution_note",
                    "previous_incident",
                ]
            },
        ),
        ("Evaluations that fired it", {"fields": ["fired_by"]}),
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Incident]:
        # The change page shows the release (with its solution), the guardrail and the assignee.
        return super().get_queryset(request).select_related("release__solution", "guardrail", "assignee")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # incidents are opened by guardrails

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Triage is the only change there is (assignee, comments), and the services check it again.
        return request.user.has_perm(TRIAGE_PERMISSION)

    @admin.display(description="evaluations")
    def fired_by(self, obj: Incident) -> str:
        rows = selectors.incident_fired_by(obj)
        if not rows:
            return "-"
        return format_html(
            "<table><tr><th>window end</th><th>outcome</th><th>observed</th><th>interval</th><th>n</th>"
            "<th>baseline</th></tr>{}</table>",
            format_html_join(
                "",
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>[{}, {}]</td><td>{}</td><td>{}</td></tr>",
                (
                    (
                        e.window_end,
                        e.outcome,
                        _fmt(e.observed),
                        _fmt(e.lower),
                        _fmt(e.upper),
                        e.n,
                        _fmt(e.baseline),
                    )
                    for e in rows
                ),
            ),
        )

    def save_model(self, request: HttpRequest, obj: Incident, form: Any, change: bool) -> None:
        actor = request_actor(request)
        if "assignee" in form.changed_data and form.cleaned_data["assignee"] is not None:
            services.incident_assign(incident=obj, actor=actor, assignee=form.cleaned_data["assignee"])
        if form.cleaned_data.get("comment"):
            services.incident_comment(incident=obj, actor=actor, message=form.cleaned_data["comment"])

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        pass  # the timeline is append-only and written by services

    def construct_change_message(self, request: HttpRequest, form: Any, formsets: Any, add: bool = False) -> Any:
        return construct_change_message(form, [], add)  # the read-only timeline inline saved nothing

    # --- Triage buttons (the panel at the top of the change page) ------------------------------------------

    def get_urls(self) -> list[Any]:
        custom = [
            path(
                "<int:object_id>/triage/<str:action>/",
                self.admin_site.admin_view(self.triage_view),
                name="monitoring_incident_triage",
            )
        ]
        return custom + super().get_urls()

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        extra_context = extra_context or {}
        incident = self.get_object(request, object_id)
        if incident is not None:
            extra_context["triage"] = self.triage_context(request, incident)
        return super().change_view(request, object_id, form_url, extra_context)

    def triage_context(self, request: HttpRequest, incident: Incident) -> dict[str, Any]:
        now = timezone.now()
        deadline = incident.ack_deadline
        actions = selectors.incident_triage_actions(incident=incident, user=request.user)
        return {
            "actions": actions,
            "buttons": [TRIAGE_BUTTONS[name] for name in actions],
            "may_triage": request.user.has_perm(TRIAGE_PERMISSION),
            "status_colour": INCIDENT_STATUS_COLOURS.get(incident.status, "#333"),
            "severity_colour": SEVERITY_COLOURS.get(incident.severity, "#333"),
            "ack_deadline": deadline,
            "ack_overdue": incident.status == IncidentStatus.TRIGGERED and now >= deadline,
            "resolutions": MANUAL_RESOLUTIONS,
        }

    def triage_view(self, request: HttpRequest, object_id: int, action: str) -> HttpResponse:
        incident = get_object_or_404(Incident, pk=object_id)
        change_url = reverse("admin:monitoring_incident_change", args=[incident.pk])
        if not self.has_view_permission(request, incident):
            self.message_user(request, "You cannot see this incident.", messages.ERROR)
            return HttpResponseRedirect(reverse("admin:index"))
        button = TRIAGE_BUTTONS.get(action)
        if request.method != "POST" or button is None:
            return HttpResponseRedirect(change_url)
        if not request.user.has_perm(TRIAGE_PERMISSION):
            self.message_user(
                request, f"{button.label} refused: your role does not allow you to triage incidents.", messages.ERROR
            )
            return HttpResponseRedirect(change_url)
        actor = request_actor(request)
        arguments: dict[str, Any] = {"incident": incident, "actor": actor}
        if button.note:
            arguments["note"] = request.POST.get("note", "")
        if button.resolutions:
            resolution = request.POST.get("resolution", "")
            if resolution not in dict(MANUAL_RESOLUTIONS):
                # "auto_recovered" is the system's to give; the service would accept it without a note.
                choices = ", ".join(str(name) for _, name in MANUAL_RESOLUTIONS)
                self.message_user(request, f"{button.label} refused: pick a resolution ({choices}).", messages.ERROR)
                return HttpResponseRedirect(change_url)
            arguments["resolution"] = resolution
        if action == selectors.ASSIGN_TO_ME:
            service: Callable[..., Incident] = services.incident_assign
            arguments["assignee"] = actor
        else:
            service = TRANSITION_SERVICES[action]

        def success(updated: Incident) -> str:
            assignee = updated.assignee.get_username() if updated.assignee else "nobody"
            status = updated.get_status_display().lower()
            return f"{button.label}: incident #{updated.pk} is {status}, assigned to {assignee}."

        return run_service_action(
            self,
            request,
            label=button.label,
            call=lambda: service(**arguments),
            success=success,
            redirect_to=change_url,
        )

    def _run(self, request: HttpRequest, queryset: QuerySet[Incident], label: str, call: Any) -> None:
        done = 0
        for incident in queryset:
            try:
                call(incident)
                done += 1
            except DomainError as exc:
                self.message_user(request, f"#{incident.pk}: {label} refused: {exc.detail}", messages.ERROR)
        if done:
            self.message_user(request, f"{label}: {done} incident(s).", messages.SUCCESS)

    @admin.action(description="Acknowledge selected incidents", permissions=["change"])
    def acknowledge_selected(self, request: HttpRequest, queryset: QuerySet[Incident]) -> None:
        actor = request_actor(request)
        self._run(request, queryset, "Acknowledged", lambda i: services.incident_acknowledge(incident=i, actor=actor))

    @admin.action(description="Assign selected incidents to me", permissions=["change"])
    def assign_to_me(self, request: HttpRequest, queryset: QuerySet[Incident]) -> None:
        actor = request_actor(request)
        self._run(
            request,
            queryset,
            "Assigned",
            lambda i: services.incident_assign(incident=i, actor=actor, assignee=actor),
        )

    @admin.action(description="Resolve selected incidents as false positives", permissions=["change"])
    def resolve_false_positive(self, request: HttpRequest, queryset: QuerySet[Incident]) -> None:
        actor = request_actor(request)
        self._run(
            request,
            queryset,
            "Resolved",
            lambda i: services.incident_resolve(
                incident=i,
                actor=actor,
                resolution=Resolution.FALSE_POSITIVE,
                note=f"Marked a false positive from the triage list by {actor.get_username()}.",
            ),
        )


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


@admin.register(NotificationEndpoint)
class NotificationEndpointAdmin(GovernedModelAdmin):
    # Never deleted (GovernedModelAdmin): deactivate instead, deliveries keep pointing at it.
    list_display = ["name", "channel", "target", "min_severity", "is_active"]
    list_filter = ["channel", "is_active", "min_severity"]
    fields = list(NOTIFICATION_ENDPOINT_FIELDS)

    def save_model(self, request: HttpRequest, obj: NotificationEndpoint, form: Any, change: bool) -> None:
        actor = request_actor(request)
        if change:
            fields = {
                name: form.cleaned_data[name] for name in form.changed_data if name in NOTIFICATION_ENDPOINT_FIELDS
            }
            saved = services.notification_endpoint_update(endpoint=obj, actor=actor, **fields)
        else:
            fields = {name: form.cleaned_data[name] for name in NOTIFICATION_ENDPOINT_FIELDS}
            saved = services.notification_endpoint_create(actor=actor, **fields)
        copy_saved_state(obj, saved)


@admin.register(NotificationOutbox)
class NotificationOutboxAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Deliveries, dead letters included (filter by status "Dead-lettered"); the one write is the Redrive action."""

    list_display = [
        "created_at",
        "incident",
        "channel",
        "target",
        "status",
        "attempts",
        "next_attempt_at",
        "dead_at",
        "redrive_count",
    ]
    list_filter = ["status", "channel"]
    list_select_related = ["incident"]
    readonly_fields = ["last_error"]
    search_fields = ["target", "incident__title", "last_error"]
    actions = ["redrive_selected"]

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Whoever may redrive (program managers, on-call) or sees the endpoints (auditors) sees the deliveries.
        user = request.user
        return super().has_view_permission(request, obj) or any(
            user.has_perm(perm) for perm in (*REDRIVE_PERMISSIONS, "monitoring.view_notificationendpoint")
        )

    def has_redrive_permission(self, request: HttpRequest) -> bool:
        return any(request.user.has_perm(perm) for perm in REDRIVE_PERMISSIONS)

    @admin.action(description="Redrive selected dead-lettered notifications", permissions=["redrive"])
    def redrive_selected(self, request: HttpRequest, queryset: QuerySet[NotificationOutbox]) -> None:
        try:
            redriven = services.notification_redrive(
                actor=request_actor(request), outbox_ids=list(queryset.values_list("pk", flat=True))
            )
        except DomainError as exc:
            self.message_user(request, f"Redrive refused: {exc.detail}", messages.ERROR)
            return
        skipped = queryset.count() - len(redriven)
        note = f" {skipped} selected row(s) were not dead-lettered and were left alone." if skipped else ""
        level = messages.SUCCESS if redriven else messages.WARNING
        self.message_user(request, f"Redriven: {len(redriven)} notification(s) back to delivery.{note}", level)
