"""The opportunities admin: the gap analysis (a page of its own, listed under Opportunities on the index), the
backlog with its scores, an opportunity's lifecycle buttons and realized impact, and the calibration page.
Every write goes through ``opportunities.services``."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from core.actors import request_actor
from core.admin_support import GovernedModelAdmin, copy_saved_state, run_service_action
from releases.choices import Audience
from releases.models import Release

from . import charts, selectors, services
from .choices import EDITABLE_STATES, TERMINAL_STATES
from .models import ContactReasonVolume, GapAnalysis, Opportunity, ScoringWeights
from .scoring import Score
from .state_machine import GUARDS, OPPORTUNITY_LIFECYCLE


@admin.register(ContactReasonVolume)
class ContactReasonVolumeAdmin(admin.ModelAdmin):
    """Read-only: rows arrive through the bulk ingestion (API or ``manage.py ingest_contact_reasons``)."""

    list_display = [
        "window_start",
        "contact_reason",
        "market",
        "audience",
        "arm",
        "solution",
        "conversations",
        "handed_to_human",
        "abandoned",
        "avg_handle_minutes",
    ]
    list_filter = ["market", "audience", "arm", "contact_reason"]
    list_select_related = ["solution"]
    search_fields = ["contact_reason"]
    date_hierarchy = "window_start"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(GapAnalysis)
class GapAnalysisAdmin(admin.ModelAdmin):
    """Contact reasons ranked by the human work left, with filters, a chart and "create an opportunity"."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        markets, _ = selectors.known_markets_and_reasons()
        market = request.GET.get("market", "")
        audience = request.GET.get("audience", "")
        errors = []
        if market and market not in markets:
            errors.append(f"Unknown market {market!r}; showing every market.")
            market = ""
        if audience and audience not in Audience.values:
            errors.append(f"Unknown audience {audience!r}; showing every audience.")
            audience = ""
        analysis = selectors.gap_analysis(market=market or None, audience=audience or None)
        may_propose = request.user.has_perm(services.ADD_PERMISSION)
        add_url = reverse("admin:opportunities_opportunity_add")
        rows = [
            {
                "gap": gap,
                "sparkline": charts.sparkline(gap.trend),
                "create_url": f"{add_url}?contact_reasons={gap.contact_reason}"
                + (f"&markets={market}" if market else "")
                + (f"&audience={audience}" if audience else ""),
            }
            for gap in analysis.gaps
        ]
        context = {
            **self.admin_site.each_context(request),
            "title": "Gap analysis: where customers still need a human",
            "opts": self.model._meta,
            "analysis": analysis,
            "rows": rows,
            "chart": charts.gap_bar_chart(analysis.gaps),
            "markets": markets,
            "audiences": Audience.choices,
            "market": market,
            "audience": audience,
            "errors": errors,
            "may_propose": may_propose,
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/opportunities/gapanalysis/gap_analysis.html", context)


def _split(value: str) -> list[str]:
    return [item.strip() for item in value.replace("\n", ",").split(",") if item.strip()]


# The model fields the form edits as they are (the admin rewrites ``Meta.fields`` from the fieldsets).
_FORM_MODEL_FIELDS = (
    "title",
    "hypothesis",
    "expected_containment_lift",
    "effort_weeks",
    "confidence",
    "audience",
    "solution",
)


class OpportunityForm(forms.ModelForm):
    contact_reasons_text = forms.CharField(
        label="Contact reasons", help_text="Comma-separated contact-reason slugs, e.g. refund-status, order-tracking."
    )
    markets_text = forms.CharField(label="Markets", required=False, help_text="Comma-separated; blank = every market.")
    releases = forms.ModelMultipleChoiceField(
        queryset=Release.objects.select_related("solution").order_by("solution__key", "version"),
        required=False,
        help_text="The releases of the linked solution that deliver it.",
    )

    class Meta:
        model = Opportunity
        fields = list(_FORM_MODEL_FIELDS)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            # On this form's own copies of the fields: the class's declared fields are shared by every request.
            if self.instance.status not in EDITABLE_STATES:
                self.fields["contact_reasons_text"].disabled = True
                self.fields["markets_text"].disabled = True
            if self.instance.status in TERMINAL_STATES:
                self.fields["releases"].disabled = True
            self.fields["contact_reasons_text"].initial = ", ".join(self.instance.contact_reasons or [])
            self.fields["markets_text"].initial = ", ".join(self.instance.markets or [])
            self.fields["releases"].initial = list(self.instance.releases.all())
        else:
            self.fields["contact_reasons_text"].initial = self.initial.get("contact_reasons", "")
            self.fields["markets_text"].initial = self.initial.get("markets", "")

    def service_fields(self) -> dict[str, Any]:
        data = {name: self.cleaned_data[name] for name in _FORM_MODEL_FIELDS if name in self.cleaned_data}
        data["contact_reasons"] = _split(self.cleaned_data.get("contact_reasons_text", ""))
        data["markets"] = _split(self.cleaned_data.get("markets_text", ""))
        data["releases"] = list(self.cleaned_data.get("releases") or [])
        data["audience"] = data.get("audience") or ""
        return data


class ScoredChangeList(ChangeList):
    """The backlog, highest score first unless the user sorts by a column."""

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        scores: dict[int, Score] = getattr(request, "_opportunity_scores", {})
        if "o" not in request.GET:
            self.result_list = sorted(
                self.result_list, key=lambda opp: (-(scores[opp.pk].value if opp.pk in scores else 0), opp.pk)
            )


@admin.register(Opportunity)
class OpportunityAdmin(GovernedModelAdmin):
    form = OpportunityForm
    change_form_template = "admin/opportunities/opportunity/change_form.html"
    change_list_template = "admin/opportunities/opportunity/change_list.html"
    list_display = ["title", "status", "score", "reasons", "solution", "owner", "lift_predicted_realized"]
    list_filter = ["status", "audience", "solution"]
    list_select_related = ["solution", "owner"]
    search_fields = ["title", "hypothesis"]
    readonly_fields = ["status", "owner", "live_since", "accepted_at", "delivered_at", "measured_at", "drop_reason"]
    fieldsets = [
        (
            "The gap",
            {
                "fields": ["title", "contact_reasons_text", "markets_text", "audience", "hypothesis"],
                "description": "Which contact reasons it takes from humans, where, and why automating them works. "
                "Frozen once accepted.",
            },
        ),
        (
            "The bet (RICE)",
            {
                "fields": ["expected_containment_lift", "confidence", "effort_weeks"],
                "description": "Reach comes from the contact-reason data; Impact = expected lift × handle time. "
                "The score and its formula are shown above.",
            },
        ),
        ("Delivery", {"fields": ["solution", "releases"]}),
        (
            "Lifecycle",
            {"fields": ["status", "owner", "accepted_at", "delivered_at", "live_since", "measured_at", "drop_reason"]},
        ),
    ]

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        fieldsets = super().get_fieldsets(request, obj)
        # A new opportunity has no lifecycle yet: it starts proposed, owned by whoever proposes it.
        return fieldsets if obj is not None else [fs for fs in fieldsets if fs[0] != "Lifecycle"]

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return ScoredChangeList

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        # Scores for every opportunity in two queries (contact-reason reach, weights), whatever the page size.
        scored = selectors.scored_opportunities(Opportunity.objects.only(*_SCORE_FIELDS))
        request._opportunity_scores = {opp.pk: score for opp, score in scored}  # type: ignore[attr-defined]
        extra_context = {**(extra_context or {}), "weights": selectors.scoring_weights()}
        return super().changelist_view(request, extra_context)

    @admin.display(description="score")
    def score(self, obj: Opportunity) -> str:
        score = getattr(self, "_request_scores", {}).get(obj.pk)
        return format_html('<span title="{}">{}</span>', score.formula, f"{score.value:,.2f}") if score else "-"

    @admin.display(description="contact reasons")
    def reasons(self, obj: Opportunity) -> str:
        return ", ".join(obj.contact_reasons or [])

    @admin.display(description="lift: predicted → realized")
    def lift_predicted_realized(self, obj: Opportunity) -> str:
        realized = "—" if obj.realized_containment_lift is None else f"{obj.realized_containment_lift * 100:+.1f} pp"
        return f"+{obj.expected_containment_lift * 100:.1f} pp → {realized}"

    def get_list_display(self, request: HttpRequest) -> Any:
        # list_display methods get no request: hand them this request's scores.
        self._request_scores = getattr(request, "_opportunity_scores", {})
        return super().get_list_display(request)

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        initial = super().get_changeform_initial_data(request)
        reasons = request.GET.get("contact_reasons", "")
        if reasons and "title" not in initial:
            initial["title"] = f"Automate {reasons.replace('-', ' ')}"
        return initial

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None and obj.status not in EDITABLE_STATES:
            frozen = ["title", "hypothesis", "expected_containment_lift", "effort_weeks", "confidence", "audience"]
            fields += frozen
            if obj.status in TERMINAL_STATES:
                fields += ["solution"]
        return fields

    def save_model(self, request: HttpRequest, obj: Opportunity, form: Any, change: bool) -> None:
        fields = form.service_fields()
        actor = request_actor(request)
        if change:
            if obj.status not in EDITABLE_STATES:
                fields = {name: value for name, value in fields.items() if name in services.LINK_FIELDS}
            if obj.status in TERMINAL_STATES:
                fields = {}
            saved = services.opportunity_update(opportunity=obj, actor=actor, **fields) if fields else obj
        else:
            saved = services.opportunity_create(actor=actor, **fields)
        copy_saved_state(obj, saved)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        pass  # the releases were linked by the service (with its audit event)

    # --- Lifecycle buttons, score and impact panels -------------------------------------------------------------

    def get_urls(self) -> list[Any]:
        custom = [
            path(
                "<int:object_id>/transition/<str:name>/",
                self.admin_site.admin_view(self.transition_view),
                name="opportunities_opportunity_transition",
            ),
            path(
                "calibration/",
                self.admin_site.admin_view(self.calibration_view),
                name="opportunities_opportunity_calibration",
            ),
        ]
        return custom + super().get_urls()

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        extra_context = extra_context or {}
        opportunity = self.get_object(request, object_id)
        if opportunity is not None:
            extra_context["score"] = selectors.opportunity_score(opportunity)
            impact = selectors.opportunity_impact(opportunity)
            extra_context["impact"] = impact
            lift = (impact["realized"] or {}).get("lift")
            if lift:  # in percentage points, like the prediction beside it
                extra_context["realized_lift"] = (
                    f"{lift['estimate'] * 100:+.1f} pp [{lift['lower'] * 100:+.1f}, {lift['upper'] * 100:+.1f}]"
                )
            extra_context["transitions"] = selectors.transitions_available_to(
                opportunity=opportunity, user=request_actor(request)
            )
            extra_context["guards"] = GUARDS
        return super().change_view(request, object_id, form_url, extra_context)

    def transition_view(self, request: HttpRequest, object_id: int, name: str) -> HttpResponse:
        opportunity = get_object_or_404(Opportunity, pk=object_id)
        change_url = reverse("admin:opportunities_opportunity_change", args=[opportunity.pk])
        if not self.has_view_permission(request, opportunity):
            raise PermissionDenied
        step = OPPORTUNITY_LIFECYCLE.get(name)
        if step is None:
            return HttpResponseRedirect(change_url)
        actor = request_actor(request)

        def success(updated: Opportunity) -> str:
            return f"{step.label}: “{updated.title}” is {updated.get_status_display().lower()}."

        return run_service_action(
            self,
            request,
            label=step.label,
            call=lambda: services.opportunity_transition(
                opportunity=opportunity, transition=step.name, actor=actor, reason=request.POST.get("reason", "")
            ),
            success=success,
            redirect_to=change_url,
        )

    def calibration_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            "title": "Calibration: predicted against realized impact",
            "opts": self.model._meta,
            "calibration": selectors.calibration(),
        }
        return TemplateResponse(request, "admin/opportunities/opportunity/calibration.html", context)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Opportunity]:
        return super().get_queryset(request).select_related("solution", "owner")


_SCORE_FIELDS = (
    "id",
    "contact_reasons",
    "markets",
    "audience",
    "expected_containment_lift",
    "confidence",
    "effort_weeks",
)


class ScoringWeightsForm(forms.ModelForm):
    reason = forms.CharField(required=False, help_text="Why the weights change (kept in the audit log).")

    class Meta:
        model = ScoringWeights
        fields = ["reach", "impact", "confidence", "effort"]


@admin.register(ScoringWeights)
class ScoringWeightsAdmin(GovernedModelAdmin):
    form = ScoringWeightsForm
    list_display = ["__str__", "updated_at"]
    fieldsets = [
        (
            None,
            {
                "fields": ["reach", "impact", "confidence", "effort", "reason"],
                "description": "score = Reach^wR × Impact^wI × Confidence^wC ÷ Effort^wE. All 1 is plain RICE; "
                "a larger weight makes that factor count more in the ranking (0 ignores it).",
            },
        )
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # one row, created by the migration

    def save_model(self, request: HttpRequest, obj: ScoringWeights, form: Any, change: bool) -> None:
        data = form.cleaned_data
        saved = services.scoring_weights_update(
            actor=request_actor(request),
            reach=data["reach"],
            impact=data["impact"],
            confidence=data["confidence"],
            effort=data["effort"],
            reason=data.get("reason", ""),
        )
        copy_saved_state(obj, saved)
