from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.models import Group
from django.db.models import Case, CharField, QuerySet, Value, When
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.template.loader import render_to_string
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import SafeString

from core.actors import request_actor
from core.admin_support import GovernedModelAdmin, copy_saved_state, run_service_action
from core.errors import DomainError
from releases.admin import ReleaseAdmin
from releases.choices import ReleaseStatus
from releases.forms import MarketsField
from releases.models import Release

from . import selectors, services
from .models import (
    Approval,
    ApprovalPolicy,
    ApprovalRequirement,
    AwaitingMyApproval,
    AwaitingMySignOff,
    Checklist,
    ChecklistItem,
    ChecklistTemplate,
    ChecklistTemplateItem,
    FreezeWindow,
)

# Writes go through governance.services; domain refusals come back as messages. Governed rows are never deleted
# (policies are deactivated, template versions retired, freeze windows cancelled) and their history is read-only
# (GovernedModelAdmin).


class _ReadOnlyMixin:
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def _choices_once(formfield: Any) -> Any:
    """Evaluate a foreign key's choices once per formset, not once per inline row: a ModelChoiceField given an
    explicit ``choices`` list renders that list and still validates against its queryset."""
    if isinstance(formfield, forms.ModelChoiceField):
        choices: Any = formfield.choices
        formfield.choices = list(choices)
    return formfield


def _formset_rows(formsets: Any, formset_class: type[forms.BaseInlineFormSet]) -> list[dict[str, Any]] | None:
    each: Any
    for each in formsets:
        # The service writes the rows; the admin's change message still reads what a formset saved.
        each.new_objects, each.changed_objects, each.deleted_objects = [], [], []
    formset: Any = next((fs for fs in formsets if isinstance(fs, formset_class)), None)
    if formset is None:
        return None
    rows = [f.cleaned_data for f in formset.forms if f.cleaned_data and not f.cleaned_data.get("DELETE", False)]
    rows.sort(key=lambda row: row.get("position") or 10_000)
    return rows


# --- Approval policies ------------------------------------------------------------------------------------------


class RequirementFormSet(forms.BaseInlineFormSet):
    pass


class ApprovalRequirementInline(admin.TabularInline):
    model = ApprovalRequirement
    formset = RequirementFormSet
    extra = 0
    fields = ["group", "minimum_count"]

    def get_extra(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> int:
        return 2 if obj is None else 0

    def get_queryset(self, request: HttpRequest) -> QuerySet[ApprovalRequirement]:
        return super().get_queryset(request).select_related("group")

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        return _choices_once(super().formfield_for_foreignkey(db_field, request, **kwargs))


@admin.register(ApprovalPolicy)
class ApprovalPolicyAdmin(GovernedModelAdmin):
    list_display = [
        "name",
        "risk_level",
        "is_emergency",
        "solution",
        "requirements_summary",
        "validity_days",
        "is_active",
    ]
    list_filter = ["risk_level", "is_emergency", "is_active"]
    list_select_related = ["solution"]
    search_fields = ["name", "description"]
    inlines = [ApprovalRequirementInline]
    fieldsets = [
        (
            None,
            {
                "fields": list(services.APPROVAL_POLICY_EDITABLE_FIELDS),
                "description": "Matched by risk level (the emergency policy by the emergency flag), a solution's own "
                "policy before the default one. Edits apply at once to releases still collecting approvals.",
            },
        ),
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[ApprovalPolicy]:
        return super().get_queryset(request).prefetch_related("requirements__group")

    @admin.display(description="Requirements")
    def requirements_summary(self, obj: ApprovalPolicy) -> str:
        return ", ".join(str(req) for req in obj.requirements.all())

    def save_model(self, request: HttpRequest, obj: ApprovalPolicy, form: Any, change: bool) -> None:
        pass  # saved with its requirements in save_related, through one service call

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        rows = _formset_rows(formsets, RequirementFormSet)
        specs = (
            [services.RequirementSpec(group=row["group"].name, minimum_count=row["minimum_count"]) for row in rows]
            if rows is not None
            else None
        )
        fields = {name: form.cleaned_data[name] for name in form.fields if name in form.cleaned_data}
        actor = request_actor(request)
        if change:
            saved = services.approval_policy_update(policy=form.instance, actor=actor, requirements=specs, **fields)
        else:
            saved = services.approval_policy_create(actor=actor, requirements=specs or [], **fields)
        copy_saved_state(form.instance, saved)


# --- Checklist templates ----------------------------------------------------------------------------------------


class TemplateItemFormSet(forms.BaseInlineFormSet):
    pass


class ChecklistTemplateItemInline(admin.StackedInline):
    model = ChecklistTemplateItem
    formset = TemplateItemFormSet
    extra = 0
    fields = ["position", "question", "guidance", "signer_group", "required", "evidence_required"]
    ordering = ["position"]

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "signer_group":
            kwargs["queryset"] = Group.objects.filter(name__in=services.SIGNER_GROUPS)
        return _choices_once(super().formfield_for_foreignkey(db_field, request, **kwargs))

    def get_queryset(self, request: HttpRequest) -> QuerySet[ChecklistTemplateItem]:
        return super().get_queryset(request).select_related("signer_group")

    def _editable(self, obj: ChecklistTemplate | None) -> bool:
        return obj is None or obj.is_editable

    def get_extra(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> int:
        return 3 if obj is None else 0

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._editable(obj) and super().has_add_permission(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._editable(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._editable(obj) and request.user.has_perm("governance.change_checklisttemplate")


@admin.register(ChecklistTemplate)
class ChecklistTemplateAdmin(GovernedModelAdmin):
    list_display = ["name", "gate", "risk_level", "version", "status", "item_count", "activated_at"]
    list_filter = ["gate", "risk_level", "status"]
    search_fields = ["name", "description", "items__question"]
    inlines = [ChecklistTemplateItemInline]
    actions = ["make_new_version", "activate"]
    readonly_fields = ["version", "status", "created_by", "created_at", "activated_at"]
    fieldsets = [
        (
            None,
            {
                "fields": ["gate", "risk_level", "name", "description"],
                "description": "Versions are immutable once active: to change an active checklist, select it in the "
                "list and run “Create a new draft version”, edit the draft, then “Activate”. Checklists already "
                "started on releases keep their own copy.",
            },
        ),
        ("Version", {"fields": ["version", "status", "created_by", "created_at", "activated_at"]}),
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[ChecklistTemplate]:
        return super().get_queryset(request).prefetch_related("items")

    @admin.display(description="Items")
    def item_count(self, obj: ChecklistTemplate) -> int:
        return len(obj.items.all())

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        fields = list(self.readonly_fields)
        if obj is not None:
            fields += ["gate", "risk_level"]
            if not obj.is_editable:
                fields += ["name", "description"]
        return fields

    def save_model(self, request: HttpRequest, obj: ChecklistTemplate, form: Any, change: bool) -> None:
        pass  # saved with its items in save_related, through one service call

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        rows = _formset_rows(formsets, TemplateItemFormSet)
        specs = (
            [
                services.TemplateItemSpec(
                    question=row["question"],
                    signer_group=row["signer_group"].name,
                    guidance=row.get("guidance") or "",
                    required=row.get("required", True),
                    evidence_required=row.get("evidence_required", False),
                )
                for row in rows
            ]
            if rows is not None
            else None
        )
        actor = request_actor(request)
        data = form.cleaned_data
        if change:
            saved = services.checklist_template_update(
                template=form.instance,
                actor=actor,
                name=data.get("name"),
                description=data.get("description"),
                items=specs if specs is not None and form.instance.is_editable else None,
            )
        else:
            saved = services.checklist_template_create(
                actor=actor,
                gate=data["gate"],
                risk_level=data["risk_level"],
                name=data["name"],
                description=data.get("description", ""),
                items=specs or [],
            )
        copy_saved_state(form.instance, saved)

    @admin.action(description="Create a new draft version of the selected templates", permissions=["add"])
    def make_new_version(self, request: HttpRequest, queryset: QuerySet[ChecklistTemplate]) -> None:
        for template in queryset:
            try:
                draft = services.checklist_template_new_version(template=template, actor=request_actor(request))
            except DomainError as exc:
                self.message_user(request, f"{template}: {exc.detail}", messages.ERROR)
            else:
                self.message_user(request, f"Created draft {draft}; edit it, then activate it.", messages.SUCCESS)

    @admin.action(description="Activate the selected drafts (retires the current versions)", permissions=["change"])
    def activate(self, request: HttpRequest, queryset: QuerySet[ChecklistTemplate]) -> None:
        for template in queryset:
            try:
                services.checklist_template_activate(template=template, actor=request_actor(request))
            except DomainError as exc:
                self.message_user(request, f"{template}: {exc.detail}", messages.ERROR)
            else:
                self.message_user(request, f"{template} is now active.", messages.SUCCESS)


# --- Freeze windows ---------------------------------------------------------------------------------------------


class FreezeWindowForm(forms.ModelForm):
    markets = MarketsField(help_text="Comma-separated market codes, e.g. US, DE; empty means every market.")
    cancel_reason = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Fill in to lift this freeze now (the window is kept, marked cancelled).",
    )

    class Meta:
        model = FreezeWindow
        fields = ["name", "starts_at", "ends_at", "markets", "reason"]


@admin.register(FreezeWindow)
class FreezeWindowAdmin(GovernedModelAdmin):
    form = FreezeWindowForm
    list_display = ["name", "starts_at", "ends_at", "markets_display", "in_force", "created_by", "cancelled_at"]
    list_filter = ["cancelled_at"]
    list_select_related = ["created_by"]
    search_fields = ["name", "reason"]
    date_hierarchy = "starts_at"
    readonly_fields = ["created_by", "created_at", "cancelled_at"]
    fieldsets = [
        (
            None,
            {
                "fields": ["name", "starts_at", "ends_at", "markets", "reason"],
                "description": "While a window is in force no rollout starts or promotes in its markets (all markets "
                "when empty); only a program manager may override it, for an emergency release, with a reason.",
            },
        ),
        ("Lift early", {"fields": ["cancel_reason", "created_by", "created_at", "cancelled_at"]}),
    ]

    @admin.display(description="Markets")
    def markets_display(self, obj: FreezeWindow) -> str:
        return ", ".join(obj.markets) or "all markets"

    @admin.display(description="In force now", boolean=True)
    def in_force(self, obj: FreezeWindow) -> bool:

        now = timezone.now()
        return obj.cancelled_at is None and obj.starts_at <= now < obj.ends_at

    def save_model(self, request: HttpRequest, obj: FreezeWindow, form: Any, change: bool) -> None:
        actor = request_actor(request)
        fields = {name: form.cleaned_data[name] for name in FreezeWindowForm.Meta.fields}
        if change:
            changed = {name: value for name, value in fields.items() if name in form.changed_data}
            saved = services.freeze_window_update(window=obj, actor=actor, **changed) if changed else obj
            if form.cleaned_data.get("cancel_reason"):
                saved = services.freeze_window_cancel(
                    window=saved, actor=actor, reason=form.cleaned_data["cancel_reason"]
                )
        else:
            saved = services.freeze_window_create(actor=actor, **fields)
        copy_saved_state(obj, saved)


# --- Approvals and checklists (read-only records) ---------------------------------------------------------------


@admin.register(Approval)
class ApprovalAdmin(_ReadOnlyMixin, GovernedModelAdmin):
    list_display = ["release", "approver", "group", "decision", "created_at", "expires_at", "dismissed_at"]
    list_filter = ["decision", "group", ("dismissed_at", admin.EmptyFieldListFilter)]
    list_select_related = ["release__solution", "approver", "group"]
    search_fields = ["release__title", "approver__username", "comment"]
    readonly_fields = [field.name for field in Approval._meta.fields]


_CHECKLIST_ITEM_FIELDS = [
    "position",
    "question",
    "signer_group",
    "required",
    "evidence_required",
    "state",
    "signed_by",
    "signed_at",
    "evidence_url",
    "note",
    "na_justification",
]


class ChecklistItemInline(admin.TabularInline):
    model = ChecklistItem
    extra = 0
    fields = tuple(_CHECKLIST_ITEM_FIELDS)
    readonly_fields = _CHECKLIST_ITEM_FIELDS
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet[ChecklistItem]:
        # Read-only foreign keys are rendered with str(): without this, two queries per item.
        return super().get_queryset(request).select_related("signer_group", "signed_by")


@admin.register(Checklist)
class ChecklistAdmin(_ReadOnlyMixin, GovernedModelAdmin):
    """Checklists are written by the release lifecycle; sign their items from the release page or from
    “Awaiting my sign-off”."""

    list_display = ["release", "gate", "template_version", "status", "created_at", "completed_at", "due_at"]
    list_filter = ["gate", "status"]
    list_select_related = ["release__solution"]
    search_fields = ["release__title", "release__solution__name"]
    readonly_fields = [field.name for field in Checklist._meta.fields]
    inlines = [ChecklistItemInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Checklist]:
        # The change page shows the release and template read-only; one query instead of three.
        return super().get_queryset(request).select_related("release__solution", "template")


# --- Work queues: awaiting my approval / my sign-off --------------------------------------------------------------


@admin.register(AwaitingMyApproval)
class AwaitingMyApprovalAdmin(_ReadOnlyMixin, admin.ModelAdmin):
    """Releases in review where the logged-in user's approval would still count."""

    list_display = [
        "release_link",
        "risk_level",
        "is_emergency",
        "author",
        "submitted_at",
        "still_missing",
        "diff_link",
    ]
    list_select_related = ["solution", "author"]
    list_display_links = None

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm("releases.view_release")

    def has_module_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("releases.view_release")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        # Decided set-based by the selector; what each release still misses travels with its row as an
        # annotation, so the changelist never computes a policy status per row.
        waiting = selectors.awaiting_approval_by(user=request_actor(request))
        missing = [When(pk=release.pk, then=Value(status.describe_missing())) for release, status in waiting]
        return (
            AwaitingMyApproval.objects.filter(pk__in=[release.pk for release, _status in waiting])
            .select_related("solution", "author")
            .annotate(still_missing_text=Case(*missing, default=Value(""), output_field=CharField()))
        )

    @admin.display(description="Release")
    def release_link(self, obj: AwaitingMyApproval) -> str:
        return format_html('<a href="{}">{}</a>', reverse("admin:releases_release_change", args=[obj.pk]), obj)

    @admin.display(description="Still missing")
    def still_missing(self, obj: AwaitingMyApproval) -> str:
        return str(getattr(obj, "still_missing_text", ""))

    @admin.display(description="Changes")
    def diff_link(self, obj: AwaitingMyApproval) -> str:
        # A link, not the diff itself: the queue stays a handful of queries whatever its length.
        return format_html(
            '<a class="button" href="{}">Read the diff</a>', reverse("admin:releases_release_diff", args=[obj.pk])
        )


class SignOffForm(forms.Form):
    evidence_url = forms.URLField(required=False, max_length=500, assume_scheme="https")
    note = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    na_justification = forms.CharField(
        required=False, label="N/A justification", widget=forms.Textarea(attrs={"rows": 2})
    )


@admin.register(AwaitingMySignOff)
class AwaitingMySignOffAdmin(_ReadOnlyMixin, admin.ModelAdmin):
    """Checklist items the logged-in user may sign now: their group's, on releases they did not write."""

    list_display = ["question", "release", "gate", "signer_group", "required", "evidence_required", "sign_link"]
    list_display_links = None

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm("governance.view_checklistitem")

    def has_module_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("governance.view_checklistitem")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        ids = [item.pk for item in selectors.checklist_items_awaiting_sign_off_by(user=request_actor(request))]
        return AwaitingMySignOff.objects.filter(pk__in=ids).select_related(
            "checklist__release__solution", "signer_group"
        )

    @admin.display(description="Release")
    def release(self, obj: ChecklistItem) -> str:
        return str(obj.checklist.release)

    @admin.display(description="Gate")
    def gate(self, obj: ChecklistItem) -> str:
        return obj.checklist.get_gate_display()

    @admin.display(description="")
    def sign_link(self, obj: ChecklistItem) -> str:
        return format_html(
            '<a class="button" href="{}">Sign off…</a>', reverse("admin:governance_sign_off", args=[obj.pk])
        )

    def get_urls(self) -> list[Any]:
        return [
            path("<int:item_id>/sign-off/", self.admin_site.admin_view(self.sign_off_view), name="governance_sign_off"),
            *super().get_urls(),
        ]

    def _back(self, request: HttpRequest, default: str) -> str:
        target = request.POST.get("next") or request.GET.get("next") or ""
        if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
            return target
        return default

    def sign_off_view(self, request: HttpRequest, item_id: int) -> HttpResponse:
        """Sign an item (or mark an optional one N/A). The release page posts here from its governance panel."""
        item = get_object_or_404(
            ChecklistItem.objects.select_related("checklist__release__solution", "signer_group"), pk=item_id
        )
        back = self._back(request, reverse("admin:governance_awaitingmysignoff_changelist"))
        if not request.user.has_perm("governance.view_checklistitem"):
            self.message_user(request, "You cannot see checklists.", messages.ERROR)
            return HttpResponseRedirect(reverse("admin:index"))
        form = SignOffForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            actor = request_actor(request)
            if request.POST.get("action") == "mark_na":
                return run_service_action(
                    self,
                    request,
                    label="Mark N/A",
                    call=lambda: services.checklist_item_mark_na(
                        item=item, actor=actor, justification=data["na_justification"]
                    ),
                    success=f"Marked N/A: {item.question}",
                    redirect_to=back,
                )
            return run_service_action(
                self,
                request,
                label="Sign-off",
                call=lambda: services.checklist_item_sign_off(
                    item=item, actor=actor, evidence_url=data["evidence_url"], note=data["note"]
                ),
                success=f"Signed: {item.question}",
                redirect_to=back,
            )
        if request.method == "POST":
            self.message_user(request, f"Refused: {form.errors.as_text()}", messages.ERROR)
            if request.POST.get("next"):
                return HttpResponseRedirect(back)
        context = {
            **self.admin_site.each_context(request),
            "title": "Sign off a checklist item",
            "item": item,
            "form": form,
            "next": back,
            "opts": self.model._meta,
        }
        return render(request, "admin/governance/sign_off.html", context)


def _overview(request: HttpRequest, release: Release) -> selectors.GovernanceOverview:
    """The release's governance overview, read once per request: the panel and the lifecycle buttons share it."""
    cache: dict[int, selectors.GovernanceOverview] = request.__dict__.setdefault("_governance_overviews", {})
    if release.pk not in cache:
        overview = selectors.release_governance_overview(release=release, user=request_actor(request))
        for checklist in overview.checklists:
            # Shown in the template beside each checklist ("6/9 signed").
            checklist.progress_done, checklist.progress_total = selectors.checklist_progress(checklist)  # type: ignore[attr-defined]
        cache[release.pk] = overview
    return cache[release.pk]


def release_governance_panel(request: HttpRequest, release: Release) -> SafeString:
    """The governance panel of the release change page: what blocks the gate, policy status, checklists with
    inline sign-off and the decision form; its data is ``selectors.release_governance_overview``."""
    overview = _overview(request, release)
    return render_to_string(
        "admin/governance/release_panel.html",
        {
            "release": release,
            "overview": overview,
            "policy_status": overview.policy_status,
            "approvals": overview.approvals,
            "checklists": overview.checklists,
            "back": reverse("admin:releases_release_change", args=[release.pk]),
        },
        request=request,
    )


class GovernedReleaseAdmin(ReleaseAdmin):
    """The release page with governance on it: the panel under the transition buttons and the decision form's
    POST. Re-registered in place of ``releases.admin.ReleaseAdmin``."""

    def extra_panels(self, request: HttpRequest, release: Release) -> list[SafeString]:
        return [*super().extra_panels(request, release), release_governance_panel(request, release)]

    def panel_transitions(self, request: HttpRequest, release: Release) -> set[str]:
        # Request changes and reject are decisions: when the panel's decision form offers them, the lifecycle
        # buttons would be a second, differently worded way to the same thing.
        if release.status == ReleaseStatus.IN_REVIEW and _overview(request, release).can_decide:
            return {"request_changes", "reject"}
        return set()

    def get_urls(self) -> list[Any]:
        return [
            path("<int:release_id>/decide/", self.admin_site.admin_view(self.approve_view), name="governance_approve"),
            *super().get_urls(),
        ]

    def approve_view(self, request: HttpRequest, release_id: int) -> HttpResponse:
        """Record a decision from the panel (group, content hash seen, comment)."""
        release = get_object_or_404(Release, pk=release_id)
        back = reverse("admin:releases_release_change", args=[release.pk])
        if not self.has_view_permission(request, release):
            return HttpResponseRedirect(back)

        def decided(_approval: Any) -> str:
            release.refresh_from_db()
            text = f"Decision recorded; the release is {release.get_status_display().lower()}."
            if release.status == ReleaseStatus.IN_REVIEW:
                blocked = selectors.release_governance_overview(release=release, user=request_actor(request))
                if blocked.blockers:
                    text += f" Still blocked by: {blocked.blocked_by_text()}."
            return text

        return run_service_action(
            self,
            request,
            label="Decision",
            call=lambda: services.approval_record(
                release=release,
                approver=request_actor(request),
                group=request.POST.get("group", ""),
                decision=request.POST.get("decision", "approve"),
                content_hash=request.POST.get("content_hash", ""),
                comment=request.POST.get("comment", ""),
            ),
            success=decided,
            redirect_to=back,
        )


admin.site.unregister(Release)
admin.site.register(Release, GovernedReleaseAdmin)
