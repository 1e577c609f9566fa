from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from core.actors import request_actor
from core.errors import DomainValidationError
from core.transitions import Transition

from .. import selectors, services
from ..filters import ContactReasonVolumeFilter, OpportunityFilter
from ..ingestion import contact_reason_volumes_ingest
from ..models import ContactReasonVolume, Opportunity
from ..state_machine import ACCEPT, DELIVER, DROP, MEASURE, OPPORTUNITY_LIFECYCLE, START_DELIVERY
from .serializers import (
    CalibrationSerializer,
    ContactReasonVolumeInputSerializer,
    ContactReasonVolumeSerializer,
    GapAnalysisSerializer,
    GapQuerySerializer,
    OpportunityInputSerializer,
    OpportunitySerializer,
    TransitionInputSerializer,
    VolumeIngestResultSerializer,
)


class ContactReasonVolumeViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    viewsets.GenericViewSet[ContactReasonVolume],
):
    """Contact-reason volumes. POST a JSON list of up to 10,000 rows: an idempotent upsert on (source,
    contact_reason, market, audience, arm, solution, window_start), all or nothing; a 400 lists every bad row by
    index, more rows than allowed is 413."""

    serializer_class = ContactReasonVolumeSerializer
    filterset_class = ContactReasonVolumeFilter
    ordering_fields = ["window_start", "received_at"]

    def get_queryset(self) -> QuerySet[ContactReasonVolume]:
        return selectors.contact_reason_volume_list()

    @extend_schema(
        request=ContactReasonVolumeInputSerializer(many=True),
        responses={
            201: VolumeIngestResultSerializer,
            400: OpenApiResponse(description="{code, detail, rows: [{index, errors: {field: [messages]}}]}"),
            413: OpenApiResponse(description="More than 10,000 rows"),
        },
    )
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        if not isinstance(request.data, list):
            raise DomainValidationError({"non_field_errors": ["Expected a JSON list of contact-reason rows."]})
        result = contact_reason_volumes_ingest(rows=request.data, actor=request_actor(request))
        return Response(
            {"rows": result.rows, "contact_reasons": list(result.contact_reasons)}, status=status.HTTP_201_CREATED
        )


class GapView(generics.GenericAPIView[ContactReasonVolume]):
    """Contact reasons ranked by the human work left (handoffs × handle time, hours per week over the last 4
    complete weeks), with the 8-week trend, coverage, containment and CSAT."""

    # One object, not a list (a plain view, so the schema says so). The queryset is only for the permission
    # check: seeing the gaps needs seeing the contact-reason data.
    queryset = ContactReasonVolume.objects.none()
    serializer_class = GapAnalysisSerializer
    filter_backends: list[Any] = []
    pagination_class = None

    @extend_schema(
        parameters=[
            OpenApiParameter("market", str, description="Only this market"),
            OpenApiParameter("audience", str, description="buyers, sellers or creators"),
        ],
        responses=GapAnalysisSerializer,
    )
    def get(self, request: Request) -> Response:
        query = GapQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        analysis = selectors.gap_analysis(
            market=query.validated_data.get("market") or None, audience=query.validated_data.get("audience") or None
        )
        return Response(GapAnalysisSerializer(analysis).data)


_ACTION_RESPONSES = {
    200: OpportunitySerializer,
    400: OpenApiResponse(description="Validation error"),
    403: OpenApiResponse(description="Your role may not manage opportunities"),
    409: OpenApiResponse(description="Illegal for the opportunity's status, or a guard refused"),
}


def _transition_action(transition: Transition, doc: str) -> Any:
    @extend_schema(request=TransitionInputSerializer, responses=_ACTION_RESPONSES, description=doc)
    def handler(self: OpportunityViewSet, request: Request, pk: str | None = None) -> Response:
        payload = TransitionInputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        opportunity = services.opportunity_transition(
            opportunity=self.get_object(),
            transition=transition.name,
            actor=request_actor(request),
            reason=payload.validated_data.get("reason", ""),
            live_since=payload.validated_data.get("live_since"),
        )
        return self._respond(opportunity, request)

    handler.__name__ = transition.name
    handler.__doc__ = doc
    return action(detail=True, methods=["post"], url_path=transition.url_name)(handler)


class OpportunityViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet[Opportunity],
):
    """The opportunity backlog, highest RICE score first (``?ordering=`` to sort otherwise). Program managers
    propose and edit them; the lifecycle moves with the POST actions. Never deleted: drop it instead."""

    filterset_class = OpportunityFilter
    ordering_fields = ["created_at", "title", "status"]
    view_only_actions = (*OPPORTUNITY_LIFECYCLE.names(), "impact", "calibration")

    def get_queryset(self) -> QuerySet[Opportunity]:
        return selectors.opportunity_list()

    def get_serializer_class(self) -> type[Any]:
        return (
            OpportunityInputSerializer
            if self.action in ("create", "update", "partial_update")
            else (OpportunitySerializer)
        )

    def _respond(self, opportunity: Opportunity, request: Request, code: int = status.HTTP_200_OK) -> Response:
        fresh = selectors.opportunity_list().get(pk=opportunity.pk)
        score = selectors.opportunity_score(fresh)
        context = {"request": request, "scores": {fresh.pk: score}}
        return Response(OpportunitySerializer(fresh, context=context).data, status=code)

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        queryset = self.filter_queryset(self.get_queryset())
        ordered = "ordering" in request.query_params
        scored = selectors.scored_opportunities(queryset)
        items = [opp for opp, _ in scored] if not ordered else list(queryset)
        page = self.paginate_queryset(items)  # type: ignore[arg-type]
        context = {"request": request, "scores": {opp.pk: score for opp, score in scored}}
        data = OpportunitySerializer(page if page is not None else items, many=True, context=context).data
        return self.get_paginated_response(data) if page is not None else Response(data)

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self._respond(self.get_object(), request)

    @extend_schema(request=OpportunityInputSerializer, responses={201: OpportunitySerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        payload = OpportunityInputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        opportunity = services.opportunity_create(actor=request_actor(request), **payload.validated_data)
        return self._respond(opportunity, request, status.HTTP_201_CREATED)

    @extend_schema(request=OpportunityInputSerializer, responses={200: OpportunitySerializer})
    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        partial = kwargs.pop("partial", False)
        payload = OpportunityInputSerializer(data=request.data, partial=partial)
        payload.is_valid(raise_exception=True)
        opportunity = services.opportunity_update(
            opportunity=self.get_object(), actor=request_actor(request), **payload.validated_data
        )
        return self._respond(opportunity, request)

    accept = _transition_action(ACCEPT, "proposed → accepted; snapshots the prediction (needs contact-reason volume).")
    start_delivery = _transition_action(START_DELIVERY, "accepted → in_delivery (needs a linked solution).")
    deliver = _transition_action(
        DELIVER, "in_delivery → delivered (needs a launched linked release); optional live_since with a reason."
    )
    measure = _transition_action(
        MEASURE, "delivered → measured: realized lift and hours saved (needs a verified release and data)."
    )
    drop = _transition_action(DROP, "any open status → dropped, with a reason.")

    @extend_schema(responses={200: OpenApiResponse(description="prediction beside the realized impact")})
    @action(detail=True, methods=["get"])
    def impact(self, request: Request, pk: str | None = None) -> Response:
        return Response(selectors.opportunity_impact(self.get_object()))

    @extend_schema(responses=CalibrationSerializer)
    @action(detail=False, methods=["get"])
    def calibration(self, request: Request) -> Response:
        result = selectors.calibration()
        rows = [{**vars(row), "ratio": row.ratio} for row in result.rows]
        return Response(CalibrationSerializer({"summary": result.summary, "factor": result.factor, "rows": rows}).data)
