"""The admin is a real UI for program managers, authors and reviewers: every write goes through
``releases.services``; domain errors come back as messages; ``status`` is never editable."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.auth import get_user_model
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.template.loader import render_to_string
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from core.actors import request_actor
from core.admin_support import GovernedModelAdmin, copy_saved_state, run_service_action
from core.errors import DomainError

from . import services
from .choices import EDITABLE_STATES, ReleaseStatus
from .content import flow_to_text, parameters_to_text
from .diff import ReleaseDiff, release_diff
from .forms import FlowField, MarketChoicesField, ParametersField, ToolsField
from .models import AutomationSolution, Release, RolloutStage
from .selectors import transitions_available_to
from .services import StageSpec, validate_stage_plan
from .state_machine import APPROVE, RELEASE_LIFECYCLE, Transition

User = get_user_model()

STATUS_COLOURS = {
    ReleaseStatus.DRAFT: "#6c757d",
    ReleaseStatus.IN_REVIEW: "#0d6efd",
    ReleaseStatus.APPROVED: "#198754",
    ReleaseStatus.ROLLING_OUT: "#fd7e14",
    ReleaseStatus.PAUSED: "#dc3545",
    ReleaseStatus.LAUNCHED: "#20c997",
    ReleaseStatus.VERIFYING: "#6610f2",
    ReleaseStatus.VERIFIED: "#146c43",
    ReleaseStatus.REJECTED: "#842029",
    ReleaseStatus.CANCELLED: "#495057",
    ReleaseStatus.ROLLED_BACK: "#b02a37",
}


@admin.register(AutomationSolution)
class AutomationSolutionAdmin(GovernedModelAdmin):
    list_display = ["name", "key", "audience", "owner", "is_active", "updated_at"]
    list_filter = ["audience", "is_active"]
    search_fields = ["name", "key", "description"]
    list_select_related = ["owner"]
    fieldsets = [
        (None, {"fields": ["name", "key", "audience", "owner", "is_active"]}),
        ("About", {"fields": ["description"], "description": "What customers ask this automation, and where."}),
    ]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return ["key"] if obj is not None else []

    def save_model(self, request: HttpRequest, obj: AutomationSolution, form: Any, change: bool) -> None:
        data = {field: form.cleaned_data[field] for field in form.changed_data}
        if change:
            saved = services.solution_update(solution=obj, actor=request_actor(request), **data)
        else:
            saved = services.solution_create(actor=request_actor(request), **form.cleaned_data)
        copy_saved_state(obj, saved)


class StageInlineFormSet(forms.BaseInlineFormSet):
    def clean(self) -> None:
        super().clean()
        if any(self.errors):
            return
        # The admin builds the formset on the parent form's unsaved instance, so its markets are the new ones.
        release_markets = self.instance.markets or []
        self._reject_markets_outside(release_markets)
        if any(self.errors):
            return
        problems = validate_stage_plan(markets=release_markets, stages=self.stage_specs(), complete=False)
        if problems:
            raise forms.ValidationError(problems["stages"])

    def _reject_markets_outside(self, release_markets: list[str]) -> None:
        """Each stage's markets must be markets of the release: said on the stage's own row, where it is fixed
        (the services check the same rule again for the API)."""
        for form in self.forms:
            data = form.cleaned_data
            if not data or data.get("DELETE", False):
                continue
            outside = sorted(set(data.get("markets") or ()) - set(release_markets))
            if not outside:
                continue
            codes = ", ".join(outside)
            if release_markets:
                served = ", ".join(sorted(release_markets))
                it = "it" if len(outside) == 1 else "them"
                text = (
                    f"{codes} {'is' if len(outside) == 1 else 'are'} not among the release's markets ({served}): "
                    f"tick {it} on the release above, or untick {it} here."
                )
            else:
                text = f"The release has no markets yet: tick {codes} on the release above first."
            form.add_error("markets", text)

    def stage_specs(self) -> list[StageSpec]:
        rows = [
            form.cleaned_data for form in self.forms if form.cleaned_data and not form.cleaned_data.get("DELETE", False)
        ]
        rows.sort(key=lambda row: row.get("position") or 10_000)
        return [
            StageSpec(
                name=row["name"],
                traffic_percent=row["traffic_percent"],
                markets=tuple(row.get("markets") or ()),
                min_hold=row["min_hold"],
                min_sample_size=row["min_sample_size"],
            )
            for row in rows
        ]


class RolloutStageForm(forms.ModelForm):
    # The same known-market checkboxes as the release's own markets; the page's script shows only those the
    # release serves (and any already ticked), so a row stays short. None ticked = every market of the release.
    markets = MarketChoicesField(
        widget=forms.CheckboxSelectMultiple(attrs={"class": "stage-markets"}),
        help_text="None ticked = all the release's markets.",
    )

    class Meta:
        model = RolloutStage
        fields = ["position", "name", "traffic_percent", "markets", "min_hold", "min_sample_size"]
        widgets = {
            "position": forms.NumberInput(attrs={"style": "width:4em"}),
            "traffic_percent": forms.NumberInput(attrs={"style": "width:5em"}),
            "min_sample_size": forms.NumberInput(attrs={"style": "width:7em"}),
            "name": forms.TextInput(attrs={"size": 16}),
            "min_hold": forms.TextInput(attrs={"size": 10}),
        }


class RolloutStageInline(admin.TabularInline):
    model = RolloutStage
    form = RolloutStageForm
    formset = StageInlineFormSet
    extra = 0
    fields = ["position", "name", "traffic_percent", "markets", "min_hold", "min_sample_size", "started_at"]
    readonly_fields = ["started_at"]
    ordering = ["position"]

    def _editable(self, request: HttpRequest, obj: Release | None) -> bool:
        # Stages are part of the release's content: whoever may write the draft may write its plan.
        if obj is None:
            return request.user.has_perm("releases.add_release")
        return obj.status in EDITABLE_STATES and request.user.has_perm("releases.change_release")

    def get_extra(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> int:
        return 3 if obj is None else 0

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._editable(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._editable(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._editable(request, obj)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm("releases.view_release")


class ReleaseAdminForm(forms.ModelForm):
    # Structured content is authored as readable lines and checkboxes; the services validate again.
    markets = MarketChoicesField()
    resolution_flow = FlowField(label="Resolution flow")
    model_parameters = ParametersField(label="Model parameters")
    tools = ToolsField()

    class Meta:
        model = Release
        fields = ["solution", *services.RELEASE_EDITABLE_FIELDS]


class SolutionFilter(admin.SimpleListFilter):
    """By solution, offering the solutions of the latest releases: a link per solution (every one of thousands)
    made the list slow and unreadable. Any other solution is one search or one link away (same parameter)."""

    title = "solution"
    parameter_name = "solution__id__exact"
    OFFERED = 20
    RECENT_RELEASES = 200  # where the offered solutions come from

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        recent = Release.objects.order_by("-created_at", "-id").values_list("solution_id", flat=True)
        ids = list(dict.fromkeys(recent[: self.RECENT_RELEASES]))[: self.OFFERED]
        chosen = self.value()
        if chosen and chosen.isdigit():
            ids.append(int(chosen))
        solutions = AutomationSolution.objects.in_bulk(ids)
        return sorted(((str(pk), str(s)) for pk, s in solutions.items()), key=lambda choice: choice[1].lower())

    def queryset(self, request: HttpRequest, queryset: QuerySet[Release]) -> QuerySet[Release]:
        value = self.value()
        if not value:
            return queryset
        if not value.isdigit():
            raise IncorrectLookupParameters(f"Unknown solution {value!r}.")
        return queryset.filter(solution_id=int(value))


# Panels other apps add to every release page, whichever subclass of ReleaseAdmin is registered (a higher app's
# AppConfig.ready registers a function ``(request, release) -> html or None``).
RELEASE_PANELS: list[Callable[[HttpRequest, Release], SafeString | None]] = []


def register_release_panel(panel: Callable[[HttpRequest, Release], SafeString | None]) -> None:
    if panel not in RELEASE_PANELS:
        RELEASE_PANELS.append(panel)


# ``approve`` has no button: a release becomes approved when the last decision that completes its approval policy
# (and review checklist) is recorded, through the approve guard (governance adds the decision form).
BUTTON_TRANSITIONS: tuple[Transition, ...] = tuple(t for t in RELEASE_LIFECYCLE if t is not APPROVE)


@admin.register(Release)
class ReleaseAdmin(GovernedModelAdmin):
    form = ReleaseAdminForm
    change_form_template = "admin/releases/release/change_form.html"
    list_display = ["__str__", "status_badge", "risk_level", "is_emergency", "current_stage", "author", "updated_at"]
    list_filter = ["status", "risk_level", "is_emergency", SolutionFilter]
    search_fields = ["title", "change_summary", "solution__name", "solution__key"]
    list_select_related = ["solution", "author", "current_stage"]
    show_full_result_count = False  # a filtered page does not count every release a second time
    inlines = [RolloutStageInline]
    readonly_fields = ["status_badge", "current_stage", "stage_started_at", *services.RELEASE_LIFECYCLE_FIELDS]
    fieldsets = [
        (
            None,
            {
                "fields": ["solution", "title", "change_summary", "risk_level", "is_emergency"],
                "description": "What changes and why. The risk level selects the approval policy.",
            },
        ),
        (
            "Content",
            {
                "fields": list(services.RELEASE_CONTENT_FIELDS),
                "description": "Everything here (and the rollout stages below) is hashed; any change dismisses "
                "approvals. Editable only while the release is a draft.",
            },
        ),
        ("Rollout", {"fields": ["auto_promote", "verification_window", "current_stage", "stage_started_at"]}),
        ("Lifecycle", {"fields": ["status_badge", *services.RELEASE_LIFECYCLE_FIELDS]}),
    ]

    # Read-only pages show content as people read it, not as JSON.
    READABLE_CONTENT = {
        "resolution_flow": "flow_display",
        "model_parameters": "parameters_display",
        "tools": "tools_display",
        "markets": "markets_display",
    }

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        declared: list[tuple[str | None, dict[str, Any]]] = self.fieldsets  # type: ignore[assignment]
        fieldsets = [(name, {**options, "fields": list(options["fields"])}) for name, options in declared]
        if obj is None:
            # Nothing of the lifecycle exists before the release does: no block of '-' on the add form.
            fieldsets = [(n, o) for n, o in fieldsets if n != "Lifecycle"]
            for _name, options in fieldsets:
                options["fields"] = [f for f in options["fields"] if f not in ("current_stage", "stage_started_at")]
        elif obj.status not in EDITABLE_STATES or not self.has_change_permission(request, obj):
            for _name, options in fieldsets:
                options["fields"] = [self.READABLE_CONTENT.get(f, f) for f in options["fields"]]
        return fieldsets

    @admin.display(description="Resolution flow")
    def flow_display(self, obj: Release) -> str:
        return format_html('<pre class="content-readable">{}</pre>', flow_to_text(obj.resolution_flow) or "—")

    @admin.display(description="Model parameters")
    def parameters_display(self, obj: Release) -> str:
        return format_html('<pre class="content-readable">{}</pre>', parameters_to_text(obj.model_parameters) or "—")

    @admin.display(description="Tools")
    def tools_display(self, obj: Release) -> str:
        return ", ".join(obj.tools or []) or "—"

    @admin.display(description="Markets")
    def markets_display(self, obj: Release) -> str:
        return ", ".join(obj.markets or []) or "—"

    @admin.display(description="Status", ordering="status")
    def status_badge(self, obj: Release) -> str:
        colour = STATUS_COLOURS.get(ReleaseStatus(obj.status), "#333")
        return format_html(
            '<span style="background:{};color:#fff;padding:2px 8px;border-radius:10px;white-space:nowrap">{}</span>',
            colour,
            obj.get_status_display(),
        )

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        fields = list(self.readonly_fields)
        if obj is not None:
            fields.append("solution")
            if obj.status not in EDITABLE_STATES or not self.has_change_permission(request, obj):
                fields += [f for f in services.RELEASE_EDITABLE_FIELDS if f not in fields]
                fields += list(self.READABLE_CONTENT.values())
        return fields

    def save_model(self, request: HttpRequest, obj: Release, form: Any, change: bool) -> None:
        # Saved together with the stages in save_related, through one service call.
        pass

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        release = form.instance
        stage_formset = next((fs for fs in formsets if isinstance(fs, StageInlineFormSet)), None)
        stage_specs = stage_formset.stage_specs() if stage_formset is not None and stage_formset.has_changed() else None
        fields = {
            name: form.cleaned_data[name]
            for name in services.RELEASE_EDITABLE_FIELDS
            if name in form.cleaned_data and (not change or name in form.changed_data)
        }
        if change:
            saved = services.release_update(
                release=release,
                actor=request_actor(request),
                stages=stage_specs,
                **fields,  # type: ignore[arg-type]
            )
        else:
            saved = services.release_create(
                actor=request_actor(request),
                solution=form.cleaned_data["solution"],
                stages=stage_specs or (),
                **fields,
            )
        copy_saved_state(release, saved)
        for formset in formsets:
            # The service wrote the stages; the admin's change message still reads what a formset saved.
            formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []

    # --- Transition buttons -------------------------------------------------------------------------------

    def get_urls(self) -> list[Any]:
        custom = [
            path(
                "<int:object_id>/transition/<str:name>/",
                self.admin_site.admin_view(self.transition_view),
                name="releases_release_transition",
            ),
            path("<int:object_id>/diff/", self.admin_site.admin_view(self.diff_view), name="releases_release_diff"),
            path(
                "<int:object_id>/new-version/",
                self.admin_site.admin_view(self.new_version_view),
                name="releases_release_new_version",
            ),
            path(
                "<int:object_id>/reassign/",
                self.admin_site.admin_view(self.reassign_view),
                name="releases_release_reassign",
            ),
        ]
        return custom + super().get_urls()

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        extra_context = extra_context or {}
        release = self.get_object(request, object_id)
        if release is not None:
            available = {t.name for t in transitions_available_to(release=release, user=request_actor(request))}
            available -= self.panel_transitions(request, release)
            extra_context["available_transitions"] = [t for t in BUTTON_TRANSITIONS if t.name in available]
            extra_context["transition_extra_panels"] = self.extra_panels(request, release)
            extra_context["diff_panel"] = self.diff_panel(request, release_diff(release=release))
            extra_context["diff_open"] = release.status in (ReleaseStatus.DRAFT, ReleaseStatus.IN_REVIEW)
            extra_context["can_new_version"] = request.user.has_perm("releases.add_release")
            user = request_actor(request)
            is_manager = user.has_perm("releases.manage_rollout")  # type: ignore[attr-defined]
            if release.status in EDITABLE_STATES and (is_manager or user.pk == release.author_id):
                extra_context["reassign"] = {
                    "can_change_author": is_manager,
                    "candidates": list(
                        User.objects.filter(groups__permissions__codename="change_release")
                        .distinct()
                        .order_by("username")
                    ),
                    "co_author_ids": {u.pk for u in release.co_authors.all()},
                }
        return super().change_view(request, object_id, form_url, extra_context)

    def extra_panels(self, request: HttpRequest, release: Release) -> list[SafeString]:
        """Extension point: HTML panels rendered under the transition buttons. Apps on higher floors subclass this
        admin and re-register it (governance adds policy status, decisions and checklists); apps that only add a
        panel register it with ``register_release_panel``."""
        return [html for html in (panel(request, release) for panel in RELEASE_PANELS) if html]

    def diff_panel(self, request: HttpRequest, diff: ReleaseDiff) -> SafeString:
        """The diff of a release, with the other releases of its solution to compare with."""
        choices = (
            Release.objects.filter(solution_id=diff.release.solution_id)
            .exclude(pk=diff.release.pk)
            .only("pk", "version", "status", "title")
            .order_by("-version")
        )
        return render_to_string(
            "admin/releases/release/diff_panel.html", {"diff": diff, "diff_choices": choices}, request=request
        )

    def diff_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        """The full-width diff page, linked from the review queue; ``?against=<id>`` picks another version."""
        release = get_object_or_404(Release.objects.with_related(), pk=object_id)
        if not self.has_view_permission(request, release):
            return HttpResponseRedirect(reverse("admin:index"))
        against_id = request.GET.get("against", "")
        against = (
            Release.objects.with_related().filter(pk=int(against_id), solution_id=release.solution_id).first()
            if against_id.isdigit() and len(against_id) < 10
            else None
        )
        diff = release_diff(release=release, against=against)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Changes in {release}",
            "diff": diff,
            "diff_choices": Release.objects.filter(solution_id=release.solution_id)
            .exclude(pk=release.pk)
            .only("pk", "version", "status", "title")
            .order_by("-version"),
            "opts": self.model._meta,
        }
        return render(request, "admin/releases/release/diff.html", context)

    def new_version_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        """POST: a new draft from this release's content; the author lands on it, ready to edit."""
        release = get_object_or_404(Release, pk=object_id)
        change_url = reverse("admin:releases_release_change", args=[release.pk])
        if request.method != "POST" or not self.has_view_permission(request, release):
            return HttpResponseRedirect(change_url)
        try:
            created = services.release_new_version(release=release, actor=request_actor(request))
        except DomainError as exc:
            self.message_user(request, f"New version refused: {exc.detail}", messages.ERROR)
            return HttpResponseRedirect(change_url)
        self.message_user(
            request,
            f"Draft v{created.version} created from v{release.version}: edit it, then submit it for review.",
            messages.SUCCESS,
        )
        return HttpResponseRedirect(reverse("admin:releases_release_change", args=[created.pk]))

    def panel_transitions(self, request: HttpRequest, release: Release) -> set[str]:
        """Transitions a higher app's panel offers in its own words; their lifecycle buttons are left out so each
        action has one place (governance's decision form offers request changes and reject)."""
        return set()

    def reassign_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        """Ownership: a program manager names the author and co-authors, the author names co-authors."""
        release = get_object_or_404(Release, pk=object_id)
        if not self.has_view_permission(request, release):
            return HttpResponseRedirect(reverse("admin:index"))
        author_id = request.POST.get("author", "")
        new_author = User.objects.filter(pk=author_id).first() if author_id.isdigit() else None
        co_authors = list(User.objects.filter(pk__in=[pk for pk in request.POST.getlist("co_authors") if pk.isdigit()]))
        return run_service_action(
            self,
            request,
            label="Reassign",
            call=lambda: services.release_reassign(
                release=release,
                actor=request_actor(request),
                author=new_author if new_author is not None and new_author.pk != release.author_id else None,
                co_authors=co_authors,
            ),
            success="Ownership saved.",
            redirect_to=reverse("admin:releases_release_change", args=[release.pk]),
        )

    def transition_view(self, request: HttpRequest, object_id: int, name: str) -> HttpResponse:
        release = get_object_or_404(Release, pk=object_id)
        if not self.has_view_permission(request, release):
            self.message_user(request, "You cannot see this release.", messages.ERROR)
            return HttpResponseRedirect(reverse("admin:index"))
        change_url = reverse("admin:releases_release_change", args=[release.pk])
        transition = next((t for t in BUTTON_TRANSITIONS if t.name == name), None)
        if transition is None:
            return HttpResponseRedirect(change_url)
        arguments: dict[str, Any] = {"release": release, "actor": request_actor(request)}
        if name != "submit":
            arguments["reason"] = request.POST.get("reason", "")
        if transition.overridable and request.POST.get("override") == "on":
            arguments["override"] = True
        if name == "promote":
            # The button names the stage the page showed; a stale page is refused instead of promoting twice.
            from_stage = request.POST.get("from_stage", "")
            arguments["from_stage"] = int(from_stage) if from_stage.isdigit() else 0
        service = services.TRANSITION_SERVICES[name]
        return run_service_action(
            self,
            request,
            label=transition.label,
            call=lambda: service(**arguments),
            success=lambda updated: f"{transition.label}: the release is now {updated.get_status_display().lower()}.",
            redirect_to=change_url,
        )
