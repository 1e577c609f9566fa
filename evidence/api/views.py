from __future__ import annotations

from typing import Any

from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.views import APIView

from core.actors import request_actor
from evidence.admin import zip_response
from evidence.services import EXPORT_PERMISSION, evidence_pack_export
from releases.models import Release

ZIP_RESPONSES = {
    (200, "application/zip"): OpenApiResponse(OpenApiTypes.BINARY, description="The evidence pack (ZIP)"),
    400: OpenApiResponse(description="A bad scope, e.g. an end before the start"),
    403: OpenApiResponse(description="Only auditors (core.export_evidence) export evidence"),
}


class CanExportEvidence(BasePermission):
    message = "Only auditors export evidence."

    def has_permission(self, request: Request, view: Any) -> bool:
        return bool(request.user and request.user.has_perm(EXPORT_PERMISSION))


class RangeQuerySerializer(serializers.Serializer[Any]):
    release = serializers.IntegerField(required=False, min_value=1, max_value=2**31 - 1)
    # The query says ``from``/``to`` (``from`` is a Python keyword): the view maps them to these names.
    date_from = serializers.DateField(required=False)
    date_to = serializers.DateField(required=False)


class ReleaseEvidenceView(APIView):
    """GET releases/{id}/evidence/: the evidence pack of one release."""

    permission_classes = [IsAuthenticated, CanExportEvidence]

    @extend_schema(responses=ZIP_RESPONSES, operation_id="releases_evidence_retrieve")
    def get(self, request: Request, pk: int) -> HttpResponse:
        release = get_object_or_404(Release.objects.with_related(), pk=pk)
        return zip_response(evidence_pack_export(actor=request_actor(request), release=release))


class RangeEvidenceView(APIView):
    """GET audit-events/evidence/?release=&from=&to=: the evidence pack of a period (and optionally a release)."""

    permission_classes = [IsAuthenticated, CanExportEvidence]

    @extend_schema(
        parameters=[
            OpenApiParameter("release", int, required=False),
            OpenApiParameter("from", OpenApiTypes.DATE, required=False, description="First day (inclusive)"),
            OpenApiParameter("to", OpenApiTypes.DATE, required=False, description="Last day (inclusive)"),
        ],
        responses=ZIP_RESPONSES,
        operation_id="audit_events_evidence_retrieve",
    )
    def get(self, request: Request) -> HttpResponse:
        query = RangeQuerySerializer(
            data={
                key: value
                for key, value in {
                    "release": request.query_params.get("release"),
                    "date_from": request.query_params.get("from"),
                    "date_to": request.query_params.get("to"),
                }.items()
                if value not in (None, "")
            }
        )
        query.is_valid(raise_exception=True)
        release = None
        if "release" in query.validated_data:
            release = get_object_or_404(Release, pk=query.validated_data["release"])
        pack = evidence_pack_export(
            actor=request_actor(request),
            release=release,
            date_from=query.validated_data.get("date_from"),
            date_to=query.validated_data.get("date_to"),
        )
        return zip_response(pack)
