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
from django.template.loader import render_to_string
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from core.actors import request_actor
from core.admin_support import GovernedModelAdmin, copy_saved_state, run_service_action
from core.errors import DomainError
from governance.admin import GovernedReleaseAdmin
from releases import services as release_services
from releases.choices import LIVE_STATES
from releases.models import Release
from releases.selectors import transitions_available_to
from releases.state_machine import PAUSE, ROLLBACK

from . import cockpit, selectors, services
from .choices import MANUAL_RESOLUTIONS, OPEN_INCIDENT_STATES, IncidentStatus, Resolution, Severity
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
from .templatetags.cockpit import observed_against


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


class DefaultedListFilter(admin.SimpleListFilter):
    """A filter that is on by default: no parameter means ``default``, and the admin's "All" link is replaced by
    the filter's own choices (one of which shows everything)."""

    default: str

    def value(self) -> str:
        return super().value() or self.default

    def choices(self, changelist: Any) -> Any:
        for lookup, title in self.lookup_choices:
            yield {
                "selected": self.value() == lookup,
                "query_string": changelist.get_query_string({self.parameter_name: lookup}),
                "display": title,
            }


class ActiveMarketFilter(DefaultedListFilter):
    """By default only the looks at markets where the release serves traffic now (its stage's markets while
    rolling out): a US-only canary's DE and FR looks are all 'insufficient data' and say nothing."""

    title = "markets"
    parameter_name = "markets"
    default = "active"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("active", "Active in the release's stage"), ("all", "All markets")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Evaluation]) -> QuerySet[Evaluation]:
        if self.value() != "active":
            return queryset
        return queryset.filter(cockpit.active_market_looks())


@admin.register(Evaluation)
class EvaluationAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    # The verdict and its numbers first, so they stay on screen at 1440 px; then what the look saw (samples) and
    # how it was judged: the variance method (delta method, declared design effect; gauges: none), the
    # per-sequence confidence after the release's α split over its guardrails × markets, and the SRM flag.
    list_display = [
        "outcome_badge",
        "observed_pct",
        "interval_pct",
        "guardrail",
        "market",
        "release",
        "evaluated_at",
        "reason",
        "n",
        "samples",
        "variance_method",
        "confidence",
        "sequences",
        "sample_ratio_mismatch",
    ]
    list_filter = [
        ActiveMarketFilter,
        "outcome",
        "breached",
        "dry_run",
        "sample_ratio_mismatch",
        "variance_method",
        "market",
    ]
    list_select_related = ["guardrail__metric", "release", "release__solution"]
    date_hierarchy = "evaluated_at"

    @admin.display(description="Outcome", ordering="outcome")
    def outcome_badge(self, obj: Evaluation) -> str:
        return format_html('<span class="verdict verdict-{}">{}</span>', obj.outcome, obj.get_outcome_display())

    @admin.display(description="Observed", ordering="observed")
    def observed_pct(self, obj: Evaluation) -> str:
        return cockpit.format_value(obj.guardrail, obj.observed)

    @admin.display(description="Interval")
    def interval_pct(self, obj: Evaluation) -> str:
        if obj.lower is not None and obj.upper is not None:
            return (
                f"[{cockpit.format_value(obj.guardrail, obj.lower)}, {cockpit.format_value(obj.guardrail, obj.upper)}]"
            )
        if obj.difference_lower is not None and obj.difference_upper is not None:
            low, high = cockpit.format_points(obj.difference_lower), cockpit.format_points(obj.difference_upper)
            return f"vs baseline [{low}, {high}]"
        return "–"


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


class OpenFilter(DefaultedListFilter):
    """Open incidents unless asked for all: what on-call works on is the default view."""

    title = "state"
    parameter_name = "state"
    default = "open"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("open", "Open"), ("resolved", "Resolved"), ("all", "All")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Incident]) -> QuerySet[Incident]:
        if self.value() == "open":
            return queryset.filter(status__in=OPEN_INCIDENT_STATES)
        if self.value() == "resolved":
            return queryset.filter(status=IncidentStatus.RESOLVED)
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
# The release steps on-call may take from an incident page (emergency stop), each with a reason.
INCIDENT_RELEASE_ACTIONS = (PAUSE, ROLLBACK)
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
    # What on-call reads first, narrow enough for 1440 px: the human headline, then status, severity and age.
    list_display = ["headline", "status", "severity", "market", "assignee", "trigger_count", "opened_at"]
    list_display_links = ["headline"]
    # ``kind`` tells a guardrail breach from a data-quality (sample-ratio) incident.
    list_filter = [OpenFilter, UnacknowledgedFilter, "kind", "severity", "assignee", "market"]
    list_select_related = ["release__solution", "release__current_stage", "assignee", "guardrail__metric"]
    search_fields = ["title", "dedup_key"]
    # Severity names sort sev1 first; within one severity the oldest waits longest.
    ordering = ["severity", "opened_at"]
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
        return (
            super()
            .get_queryset(request)
            .select_related("release__solution", "release__current_stage", "guardrail__metric", "assignee")
        )

    @admin.display(description="Incident", ordering="opened_at")
    def headline(self, obj: Incident) -> str:
        return cockpit.incident_headline(obj)

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
        # In percent, against the rule: the observed value with its interval (absolute), or against the baseline
        # with the difference's interval (relative) — never a fraction or "[-, -]".
        return format_html(
            "<table><tr><th>window end</th><th>outcome</th><th>observed against the rule</th><th>n</th></tr>{}</table>",
            format_html_join(
                "",
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                (
                    (
                        f"{timezone.localtime(e.window_end):%Y-%m-%d %H:%M}",
                        e.get_outcome_display(),
                        observed_against(e, obj.guardrail),
                        e.n,
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
            ),
            path(
                "<int:object_id>/comment/",
                self.admin_site.admin_view(self.comment_view),
                name="monitoring_incident_comment",
            ),
            path(
                "<int:object_id>/release/<str:name>/",
                self.admin_site.admin_view(self.release_action_view),
                name="monitoring_incident_release_action",
            ),
        ]
        return custom + super().get_urls()

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        extra_context = extra_context or {}
        incident = self.get_object(request, object_id)
        if incident is not None:
            extra_context["triage"] = self.triage_context(request, incident)
            extra_context["headline"] = cockpit.incident_headline(incident)
            # The page's title reads like the headline, not like the stored key-ish title.
            extra_context["subtitle"] = f"#{incident.pk} {extra_context['headline']}"
            extra_context["picture"] = cockpit.incident_picture(incident=incident)
            available = {
                t.name for t in transitions_available_to(release=incident.release, user=request_actor(request))
            }
            extra_context["release_actions"] = [t for t in INCIDENT_RELEASE_ACTIONS if t.name in available]
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

    def comment_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        """A comment from the box beside the timeline, without the change form's Save."""
        incident = get_object_or_404(Incident, pk=object_id)
        message = request.POST.get("message", "").strip()
        return run_service_action(
            self,
            request,
            label="Comment",
            call=lambda: services.incident_comment(incident=incident, actor=request_actor(request), message=message),
            success="Comment added to the timeline.",
            redirect_to=reverse("admin:monitoring_incident_change", args=[incident.pk]),
        )

    def release_action_view(self, request: HttpRequest, object_id: int, name: str) -> HttpResponse:
        """Pause or roll back the incident's release from the incident page (on-call's emergency stop), through
        the release services with the reason given; their guards and permissions decide."""
        incident = get_object_or_404(Incident.objects.select_related("release"), pk=object_id)
        change_url = reverse("admin:monitoring_incident_change", args=[incident.pk])
        transition = next((t for t in INCIDENT_RELEASE_ACTIONS if t.name == name), None)
        if transition is None or not self.has_view_permission(request, incident):
            return HttpResponseRedirect(change_url)
        service = release_services.TRANSITION_SERVICES[name]
        reason = request.POST.get("reason", "").strip()
        return run_service_action(
            self,
            request,
            label=transition.label,
            call=lambda: service(release=incident.release, actor=request_actor(request), reason=reason),
            success=lambda updated: f"{transition.label}: {updated} is now {updated.get_status_display().lower()}.",
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


# --- The release page: its health first ---------------------------------------------------------------------


def release_health_panel(request: HttpRequest, release: Release) -> SafeString:
    """Stage step bar, guardrail × market grid, one chart per guardrail and active market, open incidents; its
    data is ``cockpit.release_health`` (a fixed number of queries)."""
    return render_to_string(
        "admin/monitoring/release_health.html", {"health": cockpit.release_health(release=release)}, request=request
    )


class MonitoredReleaseAdmin(GovernedReleaseAdmin):
    """The release page with its health on top while it serves traffic. Re-registered in place of governance's
    release admin, as governance does over releases'."""

    def extra_panels(self, request: HttpRequest, release: Release) -> list[SafeString]:
        panels = super().extra_panels(request, release)
        if release.status in LIVE_STATES:
            return [release_health_panel(request, release), *panels]
        return panels


admin.site.unregister(Release)
admin.site.register(Release, MonitoredReleaseAdmin)
