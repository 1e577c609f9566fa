"""The evidence pack in the admin: a download on the release page and a date-range export on the audit log."""

from __future__ import annotations

from datetime import date

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.loader import render_to_string
from django.urls import URLPattern, path, reverse
from django.utils.safestring import SafeString

from core.actors import request_actor
from core.errors import DomainError
from releases.models import Release

from .services import EXPORT_PERMISSION, EvidencePack, evidence_pack_export


def zip_response(pack: EvidencePack) -> HttpResponse:
    response = HttpResponse(pack.content, content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="{pack.filename}"'
    response["X-Content-SHA256"] = pack.sha256
    return response


def evidence_release_panel(request: HttpRequest, release: Release) -> SafeString | None:
    """On the release page, for those who may export: one download."""
    if not request.user.has_perm(EXPORT_PERMISSION):
        return None
    return SafeString(render_to_string("evidence/release_panel.html", {"release": release}, request=request))


class RangeForm(forms.Form):
    date_from = forms.DateField(required=True, widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(required=True, widget=forms.DateInput(attrs={"type": "date"}))


def _refuse(request: HttpRequest, text: str, back: str) -> HttpResponse:
    messages.error(request, text)
    return HttpResponseRedirect(back)


def release_evidence_view(request: HttpRequest, release_id: int) -> HttpResponse:
    release = get_object_or_404(Release.objects.with_related(), pk=release_id)
    back = reverse("admin:releases_release_change", args=[release.pk])
    try:
        pack = evidence_pack_export(actor=request_actor(request), release=release)
    except DomainError as exc:
        return _refuse(request, f"Evidence export refused: {exc.detail}", back)
    return zip_response(pack)


def range_evidence_view(request: HttpRequest) -> HttpResponse:
    back = reverse("admin:core_auditevent_changelist")
    form = RangeForm(request.GET)
    if not form.is_valid():
        return _refuse(request, "Evidence export refused: choose a start and an end date.", back)
    release_id = request.GET.get("release", "")
    release = (
        Release.objects.filter(pk=int(release_id)).first() if release_id.isdigit() and len(release_id) < 10 else None
    )
    start: date = form.cleaned_data["date_from"]
    end: date = form.cleaned_data["date_to"]
    try:
        pack = evidence_pack_export(actor=request_actor(request), release=release, date_from=start, date_to=end)
    except DomainError as exc:
        return _refuse(request, f"Evidence export refused: {exc.detail}", back)
    return zip_response(pack)


def urls() -> list[URLPattern]:
    return [
        path("releases/<int:release_id>/", admin.site.admin_view(release_evidence_view), name="evidence_release"),
        path("range/", admin.site.admin_view(range_evidence_view), name="evidence_range"),
    ]
